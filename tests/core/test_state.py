"""Every (mode, input) pair of state.py's table, checked on the table and on a live
ServerConnection; pairs outside the table are violations."""

from __future__ import annotations

import itertools

import pytest

from aiosmtpd._core import replies
from aiosmtpd._core.connection import CoreConfig, ServerConnection
from aiosmtpd._core.events import (
    PAUSED,
    AuthLine,
    Command,
    ConnectionClosed,
    DataChunk,
    EndOfData,
    Rejected,
)
from aiosmtpd._core.state import (
    TRANSITIONS,
    Action,
    CoreUsageError,
    Input,
    Mode,
    classify_reply,
    is_final_reply_line,
    transition,
)

ALL_PAIRS = list(itertools.product(Mode, Input))

#: Pairs the table forbids, each with why.  Pinned so that a change to the table is a
#: deliberate change to this list too.
VIOLATIONS = {
    # Framing never produces these: data inputs outside DATA, lines inside DATA.
    **{
        (m, i): "impossible"
        for m in (Mode.COMMAND, Mode.AUTH_LINE)
        for i in (Input.DATA_CONTENT, Input.DATA_END)
    },
    (Mode.DATA, Input.LINE): "impossible",
    (Mode.DATA, Input.OVERLONG_LINE): "impossible",
    **{
        (m, i): "impossible"
        for m in (Mode.TLS_PENDING, Mode.CLOSED)
        for i in (Input.LINE, Input.OVERLONG_LINE, Input.DATA_CONTENT, Input.DATA_END)
    },
    # Driver misuse: no STARTTLS handshake is pending.
    (Mode.COMMAND, Input.TLS_ESTABLISHED): "misuse",
    (Mode.AUTH_LINE, Input.TLS_ESTABLISHED): "misuse",
    (Mode.DATA, Input.TLS_ESTABLISHED): "misuse",
    # Driver misuse: a BDAT chunk starts only from command mode, while BDAT is served.
    (Mode.AUTH_LINE, Input.START_CHUNK): "misuse",
    (Mode.DATA, Input.START_CHUNK): "misuse",
    (Mode.TLS_PENDING, Input.START_CHUNK): "misuse",
}


def test_table_and_violations_cover_every_pair_exactly_once() -> None:
    assert set(TRANSITIONS) | set(VIOLATIONS) == set(ALL_PAIRS)
    assert not set(TRANSITIONS) & set(VIOLATIONS)


@pytest.mark.parametrize(("mode", "event"), ALL_PAIRS, ids=lambda v: v.value)
def test_transition_lookup(mode: Mode, event: Input) -> None:
    if (mode, event) in VIOLATIONS:
        with pytest.raises(CoreUsageError):
            transition(mode, event)
    else:
        action, next_mode = transition(mode, event)
        assert isinstance(action, Action)
        assert isinstance(next_mode, Mode)


# --- the same pairs on a live connection ------------------------------------------------


def connection_in(mode: Mode, verb: str = "NOOP") -> ServerConnection:
    """A connection in ``mode`` whose current command is ``verb`` (COMMAND mode only)."""
    conn = ServerConnection(CoreConfig())
    if mode is Mode.COMMAND:
        conn.receive_data(verb.encode() + b"\r\n")
        assert isinstance(conn.next_event(), Command)
    elif mode is Mode.DATA:
        conn.receive_data(b"DATA\r\n")
        conn.next_event()
        conn.send(b"354 go")
    elif mode is Mode.AUTH_LINE:
        conn.receive_data(b"AUTH PLAIN\r\n")
        conn.next_event()
        conn.send(b"334 ")
    elif mode is Mode.TLS_PENDING:
        conn.receive_data(b"STARTTLS\r\n")
        conn.next_event()
        conn.send(b"220 Ready to start TLS")
    else:
        conn.close()
    assert conn.mode is mode
    return conn


#: A reply line and the current command that make ``classify_reply`` give each input.
REPLY_INPUTS = {
    Input.REPLY_354_TO_DATA: (b"354 End data with <CR><LF>.<CR><LF>", "DATA"),
    Input.REPLY_334: (b"334 ", "AUTH"),
    Input.REPLY_220_TO_STARTTLS: (b"220 Ready to start TLS", "STARTTLS"),
    Input.REPLY_221_TO_QUIT: (b"221 Bye", "QUIT"),
    Input.REPLY_250_TO_EHLO: (b"250 HELP", "EHLO"),
    Input.REPLY_250_TO_HELO: (b"250 mail.example", "HELO"),
    Input.REPLY_OTHER: (b"250-SIZE 1000", "EHLO"),
}


@pytest.mark.parametrize(("mode", "event"), list(itertools.product(Mode, REPLY_INPUTS)))
def test_sending_each_reply_in_each_mode(mode: Mode, event: Input) -> None:
    line, verb = REPLY_INPUTS[event]
    assert classify_reply(line, verb) is event
    conn = connection_in(mode, verb)
    assert conn.send(line) == line + b"\r\n"
    assert conn.mode is TRANSITIONS[mode, event][1]


@pytest.mark.parametrize("mode", list(Mode))
def test_close_in_each_mode(mode: Mode) -> None:
    conn = connection_in(mode)
    conn.receive_data(b"NOOP\r\n")
    conn.close()
    assert conn.mode is Mode.CLOSED
    assert conn.buffered_size == 0
    assert conn.next_event() is PAUSED


@pytest.mark.parametrize("mode", list(Mode))
def test_tls_established_in_each_mode(mode: Mode) -> None:
    conn = connection_in(mode)
    if (mode, Input.TLS_ESTABLISHED) in VIOLATIONS:
        with pytest.raises(CoreUsageError):
            conn.tls_established()
        assert conn.mode is mode
    else:
        conn.tls_established()
        assert conn.mode is TRANSITIONS[mode, Input.TLS_ESTABLISHED][1]


@pytest.mark.parametrize("mode", list(Mode))
def test_start_chunk_in_each_mode(mode: Mode) -> None:
    conn = connection_in(mode, "BDAT")
    if (mode, Input.START_CHUNK) in VIOLATIONS:
        with pytest.raises(CoreUsageError):
            conn.start_chunk(3)
        assert conn.mode is mode
    else:
        conn.start_chunk(3)
        assert conn.mode is TRANSITIONS[mode, Input.START_CHUNK][1]


def test_start_chunk_needs_bdat_as_the_current_command() -> None:
    conn = connection_in(Mode.COMMAND, "NOOP")
    with pytest.raises(CoreUsageError):
        conn.start_chunk(3)
    assert conn.mode is Mode.COMMAND


@pytest.mark.parametrize(("size", "room"), [(-1, None), (3, -1)])
def test_start_chunk_rejects_negative_arguments(size: int, room: int | None) -> None:
    with pytest.raises(ValueError, match=">= 0"):
        connection_in(Mode.COMMAND, "BDAT").start_chunk(size, room)


#: Bytes that produce each framed input in the modes that parse, and the event expected.
FRAMED = {
    (Mode.COMMAND, Input.LINE): (b"NOOP\r\n", Command("NOOP", None, b"NOOP")),
    (Mode.COMMAND, Input.OVERLONG_LINE): (
        b"x" * 600 + b"\r\n",
        Rejected(replies.COMMAND_TOO_LONG),
    ),
    (Mode.COMMAND, Input.PEER_EOF): (b"", ConnectionClosed()),
    (Mode.AUTH_LINE, Input.LINE): (b"abc\r\n", AuthLine(b"abc")),
    (Mode.AUTH_LINE, Input.OVERLONG_LINE): (
        b"x" * 13_000 + b"\r\n",
        Rejected(replies.COMMAND_TOO_LONG),
    ),
    (Mode.AUTH_LINE, Input.PEER_EOF): (b"", ConnectionClosed()),
    (Mode.DATA, Input.DATA_CONTENT): (b"abc\r\n", DataChunk(b"abc\r\n")),
    (Mode.DATA, Input.DATA_END): (b".\r\n", EndOfData(None, 0)),
    (Mode.DATA, Input.PEER_EOF): (b"", ConnectionClosed()),
}


@pytest.mark.parametrize(("mode", "event"), list(FRAMED), ids=lambda v: v.value)
def test_framed_input_in_each_parsing_mode(mode: Mode, event: Input) -> None:
    data, expected = FRAMED[mode, event]
    conn = connection_in(mode)
    conn.receive_data(data)
    assert conn.next_event() == expected
    assert conn.mode is TRANSITIONS[mode, event][1]


def test_every_peer_input_of_a_parsing_mode_has_a_framing_case() -> None:
    peer_inputs = {
        Input.LINE,
        Input.OVERLONG_LINE,
        Input.DATA_CONTENT,
        Input.DATA_END,
        Input.PEER_EOF,
    }
    in_table = {
        pair
        for pair in TRANSITIONS
        if pair[1] in peer_inputs and pair[0] in (Mode.COMMAND, Mode.AUTH_LINE, Mode.DATA)
    }
    assert in_table == set(FRAMED)


@pytest.mark.parametrize("mode", [Mode.TLS_PENDING, Mode.CLOSED])
@pytest.mark.parametrize("data", [b"NOOP\r\n", b""])
def test_bytes_and_eof_are_discarded_when_not_parsing(mode: Mode, data: bytes) -> None:
    conn = connection_in(mode)
    conn.receive_data(data)
    assert conn.buffered_size == 0
    assert conn.next_event() is PAUSED
    assert conn.mode is mode


@pytest.mark.parametrize(
    ("line", "verb", "expected"),
    [
        (b"354 go", "DATA", Input.REPLY_354_TO_DATA),
        (b"354", "DATA", Input.REPLY_354_TO_DATA),
        (b"354 go", "BDAT", Input.REPLY_OTHER),
        (b"354-go", "DATA", Input.REPLY_OTHER),
        (b"3541", "DATA", Input.REPLY_OTHER),
        (b"334 ", None, Input.REPLY_334),
        (b"334 eA==", "NOOP", Input.REPLY_334),
        (b"220 Ready", "STARTTLS", Input.REPLY_220_TO_STARTTLS),
        (b"220 Ready", "NOOP", Input.REPLY_OTHER),
        (b"221 Bye", "QUIT", Input.REPLY_221_TO_QUIT),
        (b"221 Bye", None, Input.REPLY_OTHER),
        (b"250 HELP", "EHLO", Input.REPLY_250_TO_EHLO),
        (b"250 HELP", "LHLO", Input.REPLY_250_TO_EHLO),
        (b"250-SIZE 5", "EHLO", Input.REPLY_OTHER),
        (b"250 host", "HELO", Input.REPLY_250_TO_HELO),
        (b"501 Syntax", "EHLO", Input.REPLY_OTHER),
        (b"", "DATA", Input.REPLY_OTHER),
        (b"ok", "DATA", Input.REPLY_OTHER),
    ],
)
def test_classify_reply(line: bytes, verb: str | None, expected: Input) -> None:
    assert classify_reply(line, verb) is expected


@pytest.mark.parametrize(
    ("line", "final"), [(b"250 OK", True), (b"250", True), (b"250-x", False), (b"abc-", True)]
)
def test_is_final_reply_line(line: bytes, final: bool) -> None:
    assert is_final_reply_line(line) is final


@pytest.mark.parametrize("line", [b"250 OK\r\n", b"250 a\rb", b"250 a\nb"])
def test_send_refuses_line_breaks(line: bytes) -> None:
    conn = ServerConnection(CoreConfig())
    with pytest.raises(ValueError, match="CR or LF"):
        conn.send(line)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"data_size_limit": -1},
        {"line_length_limit": 2},
        {"command_size_limit": 0},
        {"auth_line_limit": 2},
        {"mail_esmtp_extra": -1},
    ],
)
def test_config_rejects_nonsense(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        CoreConfig(**kwargs)  # type: ignore[arg-type]


def test_config_defaults() -> None:
    config = CoreConfig()
    assert (
        config.data_size_limit,
        config.line_length_limit,
        config.command_size_limit,
        config.mail_esmtp_extra,
        config.auth_line_limit,
        config.smtputf8,
    ) == (33_554_432, 1001, 512, 0, 12_288, False)
