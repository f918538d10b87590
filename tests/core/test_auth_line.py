"""AUTH continuation lines (RFC 4954 §4): one line per ``334``, with its own limit."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from aiosmtpd._core import replies
from aiosmtpd._core.connection import CoreConfig, ServerConnection
from aiosmtpd._core.events import (
    NEED_DATA,
    PAUSED,
    AuthLine,
    Command,
    ConnectionClosed,
    Rejected,
)
from aiosmtpd._core.state import Mode

from .driver import SPLITTERS, drive

Splitter = Callable[[bytes], list[bytes]]


@pytest.fixture(params=sorted(SPLITTERS))
def split(request: pytest.FixtureRequest) -> Splitter:
    return SPLITTERS[request.param]


def test_plain_with_one_continuation(split: Splitter) -> None:
    events = drive(split(b"AUTH PLAIN\r\nAHVzZXIAcGFzcw==\r\nNOOP\r\n"))
    assert events == [
        Command("AUTH", "PLAIN", b"AUTH PLAIN"),
        AuthLine(b"AHVzZXIAcGFzcw=="),
        Command("NOOP", None, b"NOOP"),
    ]


def test_login_with_two_continuations(split: Splitter) -> None:
    def responder(event: object) -> tuple[bytes, ...]:
        if isinstance(event, Command):
            return (b"334 VXNlcm5hbWU6",) if event.verb == "AUTH" else (b"250 OK",)
        if event == AuthLine(b"dXNlcg=="):
            return (b"334 UGFzc3dvcmQ6",)
        return (b"235 2.7.0 Authentication successful",)

    events = drive(split(b"AUTH LOGIN\r\ndXNlcg==\r\ncGFzcw==\r\nNOOP\r\n"), responder=responder)
    assert events == [
        Command("AUTH", "LOGIN", b"AUTH LOGIN"),
        AuthLine(b"dXNlcg=="),
        AuthLine(b"cGFzcw=="),
        Command("NOOP", None, b"NOOP"),
    ]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"*\r\n", AuthLine(b"*")),
        (b"\r\n", AuthLine(b"")),
        (b"=\n", AuthLine(b"=")),
        (b"\xff\x00 x\r\n", AuthLine(b"\xff\x00 x")),
        (b"QUIT\r\n", AuthLine(b"QUIT")),
    ],
)
def test_any_line_is_the_answer(line: bytes, expected: AuthLine, split: Splitter) -> None:
    events = drive(split(b"AUTH X\r\n" + line))
    assert events == [Command("AUTH", "X", b"AUTH X"), expected]


@pytest.mark.parametrize(("total", "ok"), [(12_287, True), (12_288, True), (12_289, False)])
def test_auth_line_limit_12288(total: int, ok: bool, split: Splitter) -> None:
    line = b"A" * (total - 2) + b"\r\n"
    events = drive(split(b"AUTH PLAIN\r\n" + line + b"NOOP\r\n"))
    middle = AuthLine(line[:-2]) if ok else Rejected(replies.COMMAND_TOO_LONG)
    assert events == [
        Command("AUTH", "PLAIN", b"AUTH PLAIN"),
        middle,
        Command("NOOP", None, b"NOOP"),
    ]


def test_overlong_auth_line_without_newline_is_rejected_early_and_skipped() -> None:
    conn = ServerConnection(CoreConfig())
    conn.receive_data(b"AUTH PLAIN\r\n")
    assert conn.next_event() == Command("AUTH", "PLAIN", b"AUTH PLAIN")
    conn.send(b"334 ")
    assert conn.mode.name == "AUTH_LINE"  # (not `is`: mypy would keep the narrowing)
    conn.receive_data(b"A" * 12_287)
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"A")
    assert conn.next_event() == Rejected(replies.COMMAND_TOO_LONG)
    assert conn.mode is Mode.COMMAND
    conn.receive_data(b"A" * 100_000 + b"\r\nNOOP\r\n")
    assert conn.next_event() == Command("NOOP", None, b"NOOP")


def test_pause_after_auth_line_until_reply() -> None:
    conn = ServerConnection(CoreConfig())
    conn.receive_data(b"AUTH LOGIN\r\nuser\r\npass\r\n")
    assert conn.next_event() == Command("AUTH", "LOGIN", b"AUTH LOGIN")
    conn.send(b"334 VXNlcm5hbWU6")
    assert conn.next_event() == AuthLine(b"user")
    assert conn.next_event() is PAUSED
    conn.send(b"334 UGFzc3dvcmQ6")
    assert conn.next_event() == AuthLine(b"pass")
    conn.send(b"535 5.7.8 Authentication credentials invalid")
    assert conn.mode is Mode.COMMAND
    assert conn.next_event() is NEED_DATA


def test_eof_while_waiting_for_auth_line() -> None:
    events = drive([b"AUTH PLAIN\r\npartial"], eof=True)
    assert events == [Command("AUTH", "PLAIN", b"AUTH PLAIN"), ConnectionClosed()]
