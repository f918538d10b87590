"""Command-line framing, decoding and length limits of ServerConnection (no sockets)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiosmtpd._core import replies
from aiosmtpd._core.connection import CoreConfig, ServerConnection
from aiosmtpd._core.events import (
    NEED_DATA,
    PAUSED,
    Command,
    ConnectionClosed,
    Rejected,
)
from aiosmtpd._core.state import MODE_CHANGING_VERBS, Mode

from .driver import SPLITTERS, at_cuts, drive

Splitter = Callable[[bytes], list[bytes]]


@pytest.fixture(params=sorted(SPLITTERS))
def split(request: pytest.FixtureRequest) -> Splitter:
    return SPLITTERS[request.param]


FRAMING_TABLE = [
    # (input, expected events)
    (b"NOOP\r\n", [Command("NOOP", None, b"NOOP")]),
    (b"NOOP\n", [Command("NOOP", None, b"NOOP")]),
    (b"NOOP\r\r\n", [Command("NOOP", None, b"NOOP")]),
    (b"noop\r\n", [Command("NOOP", None, b"noop")]),
    (b"NOOP \r\n", [Command("NOOP", "", b"NOOP ")]),
    (b"NOOP  hello  \r\n", [Command("NOOP", "hello", b"NOOP  hello  ")]),
    (b"mail FROM:<a@b>\r\n", [Command("MAIL", "FROM:<a@b>", b"mail FROM:<a@b>")]),
    (b"NOOP\tx\r\n", [Command("NOOP\tX", None, b"NOOP\tx")]),
    (b"NOOP x\ty\r\n", [Command("NOOP", "x\ty", b"NOOP x\ty")]),
    (b"\r\n", [Rejected(replies.BAD_SYNTAX)]),
    (b"\n", [Rejected(replies.BAD_SYNTAX)]),
    (b"   \r\n", [Rejected(replies.BAD_SYNTAX)]),
    (b" NOOP\r\n", [Rejected(replies.BAD_SYNTAX)]),
    (b"NO\x00OP\r\n", [Rejected(replies.BAD_SYNTAX)]),
    (b"NO\rOP\r\n", [Rejected(replies.BAD_SYNTAX)]),
    (b"\xc3\xa9HLO x\r\n", [Rejected(replies.BAD_SYNTAX)]),
    (b"NOOP \xc3\xa9\r\n", [Rejected(replies.STRICT_ASCII)]),
    (b"NOOP a\x00b\r\n", [Command("NOOP", "a\x00b", b"NOOP a\x00b")]),
    (
        b"NOOP\r\nRSET\nNOOP 1\r\n",
        [
            Command("NOOP", None, b"NOOP"),
            Command("RSET", None, b"RSET"),
            Command("NOOP", "1", b"NOOP 1"),
        ],
    ),
    (b"NOOP", []),  # no line end yet
]


@pytest.mark.parametrize(("data", "expected"), FRAMING_TABLE)
def test_framing_table(data: bytes, expected: list[object], split: Splitter) -> None:
    assert drive(split(data)) == expected


def test_smtputf8_decodes_arguments_as_utf8() -> None:
    config = CoreConfig(smtputf8=True)
    events = drive([b"MAIL FROM:<\xc3\xa9@x>\r\nNOOP \xff\r\n"], config=config)
    assert events == [
        Command("MAIL", "FROM:<\u00e9@x>", b"MAIL FROM:<\xc3\xa9@x>"),
        Command("NOOP", "\udcff", b"NOOP \xff"),
    ]


def test_smtputf8_still_rejects_non_ascii_verb() -> None:
    events = drive([b"\xc3\xa9HLO x\r\n"], config=CoreConfig(smtputf8=True))
    assert events == [Rejected(replies.BAD_SYNTAX)]


@given(data=st.binary(max_size=300), cuts=st.lists(st.integers(0, 400), max_size=12))
def test_any_split_gives_the_same_events(data: bytes, cuts: list[int]) -> None:
    assert drive(at_cuts(data, cuts)) == drive([data])


@given(data=st.binary(max_size=2000))
def test_garbage_never_crashes_and_always_needs_data_or_closes(data: bytes) -> None:
    conn = ServerConnection(CoreConfig())
    events = drive([data], conn=conn, eof=True)
    last = events[-1]
    if isinstance(last, Command) and last.verb == "QUIT":
        # Answered 221: the core closed itself and hands out nothing more, not even EOF.
        assert conn.mode is Mode.CLOSED
    elif isinstance(last, Command) and last.verb == "STARTTLS":
        # Answered 220: whatever followed in plaintext is discarded until the handshake.
        assert conn.mode is Mode.TLS_PENDING
    else:
        assert isinstance(last, ConnectionClosed)
        assert conn.mode is Mode.CLOSED


# --- length limits -----------------------------------------------------------------------


def _line(verb: bytes, total: int, ending: bytes = b"\r\n") -> bytes:
    """A ``verb`` command line of exactly ``total`` octets including ``ending``."""
    body = verb + b" "
    return body + b"x" * (total - len(body) - len(ending)) + ending


@pytest.mark.parametrize(
    ("total", "ok"), [(511, True), (512, True), (513, False), (600, False), (5000, False)]
)
@pytest.mark.parametrize("ending", [b"\r\n", b"\n"])
def test_command_limit_512_including_line_end(
    total: int, ok: bool, ending: bytes, split: Splitter
) -> None:
    line = _line(b"NOOP", total, ending)
    events = drive(split(line + b"RSET\r\n"))
    first = Command("NOOP", line[5:].strip().decode(), line.rstrip(b"\r\n"))
    assert events[0] == (first if ok else Rejected(replies.COMMAND_TOO_LONG))
    # The rest of an over-long line never becomes a command; the next line parses.
    assert events[1:] == [Command("RSET", None, b"RSET")]


@pytest.mark.parametrize(
    ("total", "ok"), [(12_287, True), (12_288, True), (12_289, False), (20_000, False)]
)
def test_auth_command_limit_12288(total: int, ok: bool, split: Splitter) -> None:
    line = _line(b"AUTH", total)
    responder = lambda event: ()  # noqa: E731 - no reply: keep the next line a command
    conn = ServerConnection(CoreConfig())
    events = drive(split(line), conn=conn, responder=responder)
    if ok:
        assert events == [Command("AUTH", line[5:-2].decode(), line[:-2])]
    else:
        assert events == [Rejected(replies.COMMAND_TOO_LONG)]


@pytest.mark.parametrize("verb", [b"MAIL", b"mail", b"RCPT", b"NOOP"])
@pytest.mark.parametrize(("extra", "total"), [(36, 548), (36, 549), (26, 538), (26, 539)])
def test_mail_esmtp_allowance_only_for_mail_after_ehlo(
    verb: bytes, extra: int, total: int, split: Splitter
) -> None:
    config = CoreConfig(mail_esmtp_extra=extra)
    line = _line(verb, total)
    before_ehlo = drive(split(line), config=config)
    assert before_ehlo == [Rejected(replies.COMMAND_TOO_LONG)]
    after_ehlo = drive(split(b"EHLO x\r\n" + line), config=config)
    fits = verb.upper() == b"MAIL" and total <= 512 + extra
    assert isinstance(after_ehlo[1], Command) == fits
    after_helo = drive(split(b"EHLO x\r\nHELO x\r\n" + line), config=config)
    assert after_helo[2] == Rejected(replies.COMMAND_TOO_LONG)


def test_continuation_line_does_not_switch_limits() -> None:
    conn = ServerConnection(CoreConfig(mail_esmtp_extra=36))
    conn.receive_data(b"EHLO x\r\n" + _line(b"MAIL", 548))
    assert conn.next_event() == Command("EHLO", "x", b"EHLO x")
    conn.send(b"250-mail.example")
    conn.send(b"250-SIZE 1000")
    assert conn.next_event() is PAUSED  # EHLO's reply is not finished
    conn.send(b"250 HELP")
    assert isinstance(conn.next_event(), Command)


def test_ehlo_error_reply_keeps_base_limits() -> None:
    conn = ServerConnection(CoreConfig(mail_esmtp_extra=36))
    conn.receive_data(b"EHLO\r\n" + _line(b"MAIL", 548))
    assert conn.next_event() == Command("EHLO", None, b"EHLO")
    conn.send(b"501 Syntax: EHLO hostname")
    assert conn.next_event() == Rejected(replies.COMMAND_TOO_LONG)


def test_ten_mib_line_without_newline_stays_bounded() -> None:
    conn = ServerConnection(CoreConfig())
    piece = b"A" * 65_536
    rejected = 0
    max_buffered = 0
    for _ in range(160):  # 10 MiB
        conn.receive_data(piece)
        while (event := conn.next_event()) is not NEED_DATA:
            assert event == Rejected(replies.COMMAND_TOO_LONG)
            rejected += 1
            conn.send(b"500 Command line too long")
        max_buffered = max(max_buffered, conn.buffered_size)
    assert rejected == 1
    assert max_buffered <= 65_536
    assert len(conn._buf) <= 2 * 65_536  # the consumed part is really released
    conn.receive_data(b"tail of the line\r\nNOOP\r\n")
    assert conn.next_event() == Command("NOOP", None, b"NOOP")


def test_long_line_rejected_as_soon_as_limit_is_passed() -> None:
    conn = ServerConnection(CoreConfig())
    conn.receive_data(b"NOOP " + b"x" * 506)  # 511 octets: a CRLF could still fit
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"x")  # 512 octets without LF: the line will be at least 513
    assert conn.next_event() == Rejected(replies.COMMAND_TOO_LONG)
    assert conn.buffered_size == 0


def test_long_auth_prefix_waits_for_the_auth_limit() -> None:
    conn = ServerConnection(CoreConfig())
    conn.receive_data(b"AUTH PLAIN " + b"x" * 5000)
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"x" * 8000)
    assert conn.next_event() == Rejected(replies.COMMAND_TOO_LONG)


def test_one_mib_binary_garbage() -> None:
    garbage = bytes(range(256)) * 4096
    conn = ServerConnection(CoreConfig())
    events = drive([garbage[i : i + 65_536] for i in range(0, len(garbage), 65_536)], conn=conn)
    # 0x0a splits lines: each 256-octet cycle gives one line, all bad syntax (NUL verb).
    assert events
    assert all(isinstance(event, Rejected) for event in events)
    assert conn.buffered_size < 512


# --- pipelining and EOF --------------------------------------------------------------------


def test_hundred_pipelined_transactions_in_one_receive(split: Splitter) -> None:
    transaction = b"MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nDATA\r\nSubject: %d\r\n\r\n.body\r\n.\r\n"
    data = b"EHLO x\r\n" + b"".join(transaction % i for i in range(100)) + b"QUIT\r\n"
    events = drive(split(data))
    assert len(events) == 1 + 100 * 5 + 1
    for i in range(100):
        mail, rcpt, data_cmd, chunk, end = events[1 + 5 * i : 6 + 5 * i]
        assert [mail.verb, rcpt.verb, data_cmd.verb] == ["MAIL", "RCPT", "DATA"]  # type: ignore[union-attr]
        assert chunk.data == b"Subject: %d\r\n\r\nbody\r\n" % i  # type: ignore[union-attr]
        assert end.error is None  # type: ignore[union-attr]
    assert events[-1] == Command("QUIT", None, b"QUIT")


def test_eof_after_commands_closes_after_buffered_events(split: Splitter) -> None:
    conn = ServerConnection(CoreConfig())
    events = drive(split(b"NOOP\r\nRSET\r\npartial"), conn=conn, eof=True)
    assert events == [
        Command("NOOP", None, b"NOOP"),
        Command("RSET", None, b"RSET"),
        ConnectionClosed(),
    ]
    assert conn.mode is Mode.CLOSED
    assert conn.next_event() is PAUSED
    conn.receive_data(b"NOOP\r\n")
    assert conn.next_event() is PAUSED


def test_eof_while_skipping_a_long_line() -> None:
    events = drive([b"X" * 20_000], eof=True)
    assert events == [Rejected(replies.COMMAND_TOO_LONG), ConnectionClosed()]


def test_quit_closes() -> None:
    conn = ServerConnection(CoreConfig())
    events = drive([b"QUIT\r\nNOOP\r\n"], conn=conn)
    assert events == [Command("QUIT", None, b"QUIT")]
    assert conn.mode is Mode.CLOSED
    assert conn.buffered_size == 0


def test_quit_with_error_reply_does_not_close() -> None:
    conn = ServerConnection(CoreConfig())
    conn.receive_data(b"QUIT x\r\nNOOP\r\n")
    assert conn.next_event() == Command("QUIT", "x", b"QUIT x")
    conn.send(b"501 Syntax: QUIT")
    assert conn.next_event() == Command("NOOP", None, b"NOOP")


@pytest.mark.parametrize("verb", sorted(MODE_CHANGING_VERBS))
def test_pause_after_mode_changing_command_until_final_reply(verb: str) -> None:
    conn = ServerConnection(CoreConfig())
    conn.receive_data(verb.encode() + b"\r\nNOOP\r\n")
    assert conn.next_event() == Command(verb, None, verb.encode())
    assert conn.next_event() is PAUSED
    conn.send(b"250-still going")
    assert conn.next_event() is PAUSED
    conn.send(b"503 Error: no")
    assert conn.next_event() == Command("NOOP", None, b"NOOP")


def test_no_pause_after_ordinary_commands() -> None:
    conn = ServerConnection(CoreConfig())
    conn.receive_data(b"NOOP\r\nRSET\r\n")
    assert conn.next_event() == Command("NOOP", None, b"NOOP")
    assert conn.next_event() == Command("RSET", None, b"RSET")


@pytest.mark.parametrize("spelling", [b"MAIL", b"mail", b"Mail", b"mAiL"])
def test_common_verbs_in_any_case_give_the_same_command(spelling: bytes) -> None:
    conn = ServerConnection(CoreConfig())
    conn.receive_data(spelling + b" FROM:<a@b.c>\r\n")
    event = conn.next_event()
    assert isinstance(event, Command)
    assert (event.verb, event.arg) == ("MAIL", "FROM:<a@b.c>")


def test_reply_classification_is_the_same_when_repeated() -> None:
    """The reply-kind cache must not carry one verb's reading of a line to another."""
    for _ in range(2):
        conn = ServerConnection(CoreConfig())
        conn.receive_data(b"DATA\r\nNOOP\r\n")
        assert isinstance(conn.next_event(), Command)
        conn.send(b"354 End data with <CR><LF>.<CR><LF>")
        assert conn.mode is Mode.DATA
        conn.close()
        conn = ServerConnection(CoreConfig())
        conn.receive_data(b"NOOP\r\n")
        assert isinstance(conn.next_event(), Command)
        conn.send(b"354 End data with <CR><LF>.<CR><LF>")
        assert conn.mode is Mode.COMMAND
    with pytest.raises(ValueError):
        ServerConnection(CoreConfig()).send(b"250 a\r\n250 b")
    with pytest.raises(ValueError):
        ServerConnection(CoreConfig()).send(bytearray(b"250 a\n"))
