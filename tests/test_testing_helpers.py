"""``aiosmtpd.testing.helpers`` and ``aiosmtpd.testing.statuscodes``.

The status codes are checked two ways: against the 1.4 texts written out here by hand (so a
change to ``_core.replies`` that breaks 1.4 compatibility fails), and against what a live
server actually sends (so the table really mirrors the server).
"""

from __future__ import annotations

import importlib
import smtplib
import socket
from collections.abc import Iterator
from unittest import mock

import pytest

from aiosmtpd.controller import Controller
from aiosmtpd.testing import helpers, statuscodes
from aiosmtpd.testing.helpers import (
    ReceivingHandler,
    catchup_delay,
    reset_connection,
    send_recv,
)
from aiosmtpd.testing.statuscodes import SMTP_STATUS_CODES as S
from aiosmtpd.testing.statuscodes import (
    SUPPORTED_COMMANDS_LMTP,
    SUPPORTED_COMMANDS_NOTLS,
    SUPPORTED_COMMANDS_TLS,
    StatusCode,
    _suppcmd,
)

HOST = "127.0.0.1"


@pytest.fixture
def server() -> Iterator[Controller]:
    cont = Controller(ReceivingHandler(), hostname=HOST, port=0, server_hostname="mx.test")
    cont.start()
    yield cont
    cont.stop()


@pytest.fixture
def sock(server: Controller) -> Iterator[socket.socket]:
    with socket.create_connection((HOST, server.port), timeout=5) as client:
        assert read_reply(client).startswith(b"220 mx.test ")
        yield client


def read_reply(sock: socket.socket) -> bytes:
    """One single-line reply, read byte by byte so nothing after it is consumed."""
    reply = b""
    while not reply.endswith(b"\r\n"):
        chunk = sock.recv(1)
        assert chunk, f"connection closed after {reply!r}"
        reply += chunk
    return reply


def ask(sock: socket.socket, command: bytes) -> bytes:
    sock.sendall(command + b"\r\n")
    return read_reply(sock)


# --- StatusCode ----------------------------------------------------------------------------------


def test_status_code_rendering() -> None:
    code = StatusCode(250, b"OK")
    assert code.to_bytes() == b"250 OK"
    assert code.to_bytes(crlf=True) == b"250 OK\r\n"
    assert code.to_str() == "250 OK"
    assert code.to_str(crlf=True) == "250 OK\r\n"
    assert S.S500_CMD_UNRECOG(b"FOO") == StatusCode(500, b'Error: command "FOO" not recognized')
    assert S.S421_TOO_MANY(b"NOOP").to_str() == "421 4.7.0 NOOP sent too many times"
    assert S.S502_VRFY_COULDNT(b"x").to_str() == "502 Could not VRFY x"


# The 1.4.6 texts (spec §7 and §10), written out so the mirror cannot silently drift.
TEXTS_1_4 = {
    "S220_READY_TLS": "220 Ready to start TLS",
    "S221_BYE": "221 Bye",
    "S235_AUTH_SUCCESS": "235 2.7.0 Authentication successful",
    "S250_OK": "250 OK",
    "S250_SYNTAX_EHLO": "250 Syntax: EHLO hostname",
    "S250_SYNTAX_MAIL_E": "250 Syntax: MAIL FROM: <address> [SP <mail-parameters>]",
    "S252_CANNOT_VRFY": "252 Cannot VRFY user, but will accept message and attempt delivery",
    "S334_AUTH_EMPTYPROMPT": "334 ",
    "S354_DATA_ENDWITH": "354 End data with <CR><LF>.<CR><LF>",
    "S454_TLS_NA": "454 TLS not available",
    "S500_AUTH_UNRECOG": "500 Error: command 'AUTH' not recognized",
    "S500_BAD_SYNTAX": "500 Error: bad syntax",
    "S500_CMD_TOO_LONG": "500 Command line too long",
    "S500_DATALINE_TOO_LONG": "500 Line too long (see RFC5321 4.5.3.1.6)",
    "S500_STRICT_ASCII": "500 Error: strict ASCII mode",
    "S501_AUTH_ABORTED": "501 5.7.0 Auth aborted",
    "S501_AUTH_CANTSPLIT": "501 5.5.2 Can't split auth value",
    "S501_AUTH_NOTB64": "501 5.5.2 Can't decode base64",
    "S501_MAIL_BODY": "501 Error: BODY can only be one of 7BIT, 8BITMIME",
    "S501_SMTPUTF8_DISABLED": "501 Error: SMTPUTF8 disabled",
    "S501_SMTPUTF8_NOARG": "501 Error: SMTPUTF8 takes no arguments",
    "S501_SUPPCMD_NOTLS": (
        "501 Supported commands: AUTH DATA EHLO HELO HELP MAIL NOOP QUIT RCPT RSET VRFY"
    ),
    "S501_SYNTAX_HELO": "501 Syntax: HELO hostname",
    "S501_SYNTAX_MAIL": "501 Syntax: MAIL FROM: <address>",
    "S501_SYNTAX_RCPT_E": "501 Syntax: RCPT TO: <address> [SP <mail-parameters>]",
    "S501_TOO_FEW": "501 Not enough value",
    "S501_TOO_MANY": "501 Too many values",
    "S502_EXPN_NOTIMPL": "502 EXPN not implemented",
    "S502_TOO_MANY_UNRECOG": "502 5.5.1 Too many unrecognized commands, goodbye.",
    "S503_ALREADY_AUTH": "503 Already authenticated",
    "S503_EHLO_FIRST": "503 Error: send EHLO first",
    "S503_HELO_FIRST": "503 Error: send HELO first",
    "S503_MAIL_NEEDED": "503 Error: need MAIL command",
    "S503_MAIL_NESTED": "503 Error: nested MAIL command",
    "S503_RCPT_NEEDED": "503 Error: need RCPT command",
    "S504_AUTH_UNRECOG": "504 5.5.4 Unrecognized authentication type",
    "S530_AUTH_REQUIRED": "530 5.7.0 Authentication required",
    "S530_STARTTLS_FIRST": "530 Must issue a STARTTLS command first",
    "S535_AUTH_INVALID": "535 5.7.8 Authentication credentials invalid",
    "S538_AUTH_ENCRYPTREQ": (
        "538 5.7.11 Encryption required for requested authentication mechanism"
    ),
    "S550_NO_RELAY": "550 5.7.1 Unable to relay",
    "S450_DEST_GREYLIST": "450 4.2.0 Recipient address rejected: Greylisted",
    "S552_DATA_TOO_MUCH": "552 Error: Too much mail data",
    "S552_EXCEED_SIZE": "552 Error: message size exceeds fixed maximum message size",
    "S553_MALFORMED": "553 5.1.3 Error: malformed address",
    "S554_LACK_SECURITY": "554 Command refused due to lack of security",
    "S555_MAIL_PARAMS_UNRECOG": "555 MAIL FROM parameters not recognized or not implemented",
    "S555_RCPT_PARAMS_UNRECOG": "555 RCPT TO parameters not recognized or not implemented",
}


@pytest.mark.parametrize(("name", "text"), sorted(TEXTS_1_4.items()))
def test_status_codes_keep_the_1_4_texts(name: str, text: str) -> None:
    assert getattr(S, name).to_str() == text


def test_auth_login_prompts_follow_decisions_row_5() -> None:
    assert StatusCode(334, b"VXNlcm5hbWU6") == S.S334_AUTH_USERNAME  # "Username:"
    assert StatusCode(334, b"UGFzc3dvcmQ6") == S.S334_AUTH_PASSWORD  # "Password:"


def test_every_constant_is_a_status_code() -> None:
    names = [name for name in vars(S) if name.startswith("S")]
    assert len(names) >= 80
    for name in names:
        code = getattr(S, name)
        assert isinstance(code, StatusCode)
        assert name.startswith(f"S{code.code}_"), name


def test_supported_commands() -> None:
    assert _suppcmd([b"B", b"A"]) == b"Supported commands: A B"
    assert b"STARTTLS" in SUPPORTED_COMMANDS_TLS
    assert b"STARTTLS" not in SUPPORTED_COMMANDS_NOTLS
    assert b"LHLO" in SUPPORTED_COMMANDS_LMTP
    assert b"HELO" not in SUPPORTED_COMMANDS_LMTP
    assert S.S250_SUPPCMD_LMTP.to_str() == (
        "250 Supported commands: AUTH DATA HELP LHLO MAIL NOOP QUIT RCPT RSET VRFY"
    )


# --- the table mirrors a live server -----------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (b"HELO", S.S501_SYNTAX_HELO),
        (b"EHLO", S.S501_SYNTAX_EHLO),
        (b"MAIL FROM:<a@example.com>", S.S503_HELO_FIRST),
        (b"AUTH PLAIN", S.S503_EHLO_FIRST),
        (b"NOOP", S.S250_OK),
        (b"RSET x", S.S501_SYNTAX_RSET),
        (b"QUIT x", S.S501_SYNTAX_QUIT),
        (b"STARTTLS", S.S454_TLS_NA),
        (b"EXPN a", S.S502_EXPN_NOTIMPL),
        (b"VRFY", S.S501_SYNTAX_VRFY),
        (b"VRFY <a@example.com>", S.S252_CANNOT_VRFY),
        (b"FOO", S.S500_CMD_UNRECOG(b"FOO")),
        (b"HELP", S.S250_SUPPCMD_NOTLS),
        (b"HELP HELO", S.S250_SYNTAX_HELO),
        (b"HELP BOGUS", S.S501_SUPPCMD_NOTLS),
    ],
)
def test_table_matches_the_server(
    sock: socket.socket, command: bytes, expected: StatusCode
) -> None:
    assert ask(sock, command) == expected.to_bytes(crlf=True)


def test_transaction_replies_match_the_server(sock: socket.socket) -> None:
    script: list[tuple[bytes, StatusCode | None]] = [
        (b"HELO client.test", StatusCode(250, b"mx.test")),
        (b"MAIL FROM:<a@example.com> SIZE=10", S.S501_SYNTAX_MAIL),
        (b"EHLO client.test", None),
        (b"RCPT TO:<b@example.com>", S.S503_MAIL_NEEDED),
        (b"DATA", S.S503_RCPT_NEEDED),
        (b"MAIL FROM:<a@example.com> BODY=BINARYMIME", S.S501_MAIL_BODY),
        (b"MAIL FROM:<a@example.com>", S.S250_OK),
        (b"MAIL FROM:<a@example.com>", S.S503_MAIL_NESTED),
        (b"RCPT TO:<b@example.com> NOTIFY=NEVER", S.S555_RCPT_PARAMS_UNRECOG),
        (b"RCPT TO:<b@example.com>", S.S250_OK),
        (b"DATA x", S.S501_SYNTAX_DATA),
        (b"DATA", S.S354_DATA_ENDWITH),
        (b"Subject: t\r\n\r\nhi\r\n.", S.S250_OK),
        (b"QUIT", S.S221_BYE),
    ]
    for command, expected in script:
        reply = ask(sock, command)
        if expected is None:  # multi-line EHLO: skip to its last line
            while reply[3:4] == b"-":
                reply = read_reply(sock)
            continue
        assert reply == expected.to_bytes(crlf=True), command


# --- helpers ---------------------------------------------------------------------------------


def test_receiving_handler_keeps_envelopes(server: Controller) -> None:
    with smtplib.SMTP(HOST, server.port, timeout=5) as client:
        client.sendmail("a@example.com", ["b@example.com"], b"Subject: 1\r\n\r\none\r\n")
        client.sendmail("c@example.com", ["d@example.com"], b"Subject: 2\r\n\r\ntwo\r\n")
    box = server.handler.box
    assert [(e.mail_from, e.rcpt_tos) for e in box] == [
        ("a@example.com", ["b@example.com"]),
        ("c@example.com", ["d@example.com"]),
    ]
    assert box[1].content == b"Subject: 2\r\n\r\ntwo\r\n"


def test_send_recv_returns_at_end_of_stream(sock: socket.socket) -> None:
    # A long timeout proves it returns on the server's close, not on the timer.
    assert send_recv(sock, b"QUIT", timeout=60) == b"221 Bye\r\n"


def test_send_recv_custom_end(sock: socket.socket) -> None:
    assert send_recv(sock, b"NOOP\r\nNOOP", end=b"\n", timeout=0.5) == b"250 OK\r\n250 OK\r\n"


def test_reset_connection_aborts_and_server_survives(server: Controller) -> None:
    client = smtplib.SMTP(HOST, server.port, timeout=5)
    client.ehlo()
    reset_connection(client)
    assert client.sock is None
    reset_connection(client)  # already closed: nothing to do
    with smtplib.SMTP(HOST, server.port, timeout=5) as again:
        assert again.noop()[0] == 250


def test_reset_connection_sends_rst() -> None:
    with socket.create_server((HOST, 0)) as listener:
        client = smtplib.SMTP()
        client.sock = socket.create_connection(listener.getsockname(), timeout=5)
        accepted, _ = listener.accept()
        with accepted:
            reset_connection(client)
            with pytest.raises(ConnectionResetError):
                accepted.recv(10)


def test_catchup_delay() -> None:
    with mock.patch.object(helpers.time, "sleep") as sleep:
        catchup_delay()
        catchup_delay(0.5)
    assert sleep.call_args_list == [mock.call(helpers.ASYNCIO_CATCHUP_DELAY), mock.call(0.5)]


def test_catchup_delay_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASYNCIO_CATCHUP_DELAY", "0.25")
    try:
        assert importlib.reload(helpers).ASYNCIO_CATCHUP_DELAY == 0.25
    finally:
        monkeypatch.delenv("ASYNCIO_CATCHUP_DELAY")
        importlib.reload(helpers)
    assert helpers.ASYNCIO_CATCHUP_DELAY == 0.1


def test_statuscodes_module_exports() -> None:
    assert set(statuscodes.__all__) >= {"StatusCode", "SMTP_STATUS_CODES", "_suppcmd"}
