"""STARTTLS plaintext injection (CVE-2011-0411 class): nothing sent in plaintext after
the STARTTLS command may ever become an event once ``220`` has been sent.

The same checks run against a deliberately vulnerable variant that parses ahead, to prove
they would catch the bug.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from aiosmtpd._core import replies
from aiosmtpd._core.connection import CoreConfig, ServerConnection
from aiosmtpd._core.events import NEED_DATA, PAUSED, Command, Event, Rejected, Sentinel
from aiosmtpd._core.state import CoreUsageError, Mode

from .driver import at_cuts

INJECTION = b"STARTTLS\r\nMAIL FROM:<x>\r\nRCPT TO:<evil@x>\r\n"


class ParseAheadConnection(ServerConnection):
    """A vulnerable core: parses every complete line as soon as it arrives, ignoring the
    pause after STARTTLS, and queues the events (what CVE-2011-0411 servers did)."""

    def __init__(self, config: CoreConfig) -> None:
        super().__init__(config)
        self.queue: list[Event] = []

    def receive_data(self, data: bytes) -> None:
        super().receive_data(data)
        while True:
            self._awaiting_reply = False
            event = super().next_event()
            if event is NEED_DATA or event is PAUSED:
                return
            self.queue.append(event)

    def next_event(self) -> Event | Sentinel:
        if self.queue:
            event = self.queue.pop(0)
            if isinstance(event, Command):
                self._current_verb = event.verb  # the reply answers the dispatched command
            return event
        return super().next_event()


Factory = Callable[[CoreConfig], ServerConnection]


def events_after_starttls(factory: Factory, pieces: list[bytes]) -> list[Event]:
    """Feed ``pieces`` (STARTTLS first), send 220, and return what leaks as events,
    before and after the handshake completes (the client then sends ``EHLO tls``)."""
    conn = factory(CoreConfig())
    leaked: list[Event] = []
    started_tls = False
    for piece in pieces:
        conn.receive_data(piece)
        while (event := conn.next_event()) is not NEED_DATA and event is not PAUSED:
            if started_tls:
                leaked.append(event)
            elif event == Command("STARTTLS", None, b"STARTTLS"):
                conn.send(b"220 Ready to start TLS")
                started_tls = True
                assert conn.mode is Mode.TLS_PENDING
            else:
                conn.send(b"250 OK")
    assert started_tls
    conn.tls_established()
    conn.receive_data(b"EHLO tls\r\n")
    while (event := conn.next_event()) is not NEED_DATA and event is not PAUSED:
        leaked.append(event)
    assert leaked[-1:] == [Command("EHLO", "tls", b"EHLO tls")], leaked
    return leaked[:-1]


SPLITS = {
    "one-receive": [INJECTION],
    "split-after-starttls": [INJECTION[:10], INJECTION[10:]],
    "split-inside-starttls": [INJECTION[:5], INJECTION[5:]],
    "split-inside-mail": [INJECTION[:14], INJECTION[14:]],
    "bytewise": [INJECTION[i : i + 1] for i in range(len(INJECTION))],
}


@pytest.mark.parametrize("pieces", SPLITS.values(), ids=SPLITS.keys())
def test_no_plaintext_survives_starttls(pieces: list[bytes]) -> None:
    assert events_after_starttls(ServerConnection, pieces) == []


@pytest.mark.parametrize("cuts", [[3], [12, 20], [9, 10, 11], [30, 31, 40]])
def test_no_plaintext_survives_starttls_at_other_splits(cuts: list[int]) -> None:
    assert events_after_starttls(ServerConnection, at_cuts(INJECTION, cuts)) == []


def test_the_check_catches_a_parse_ahead_core() -> None:
    leaked = events_after_starttls(ParseAheadConnection, [INJECTION])
    assert Command("MAIL", "FROM:<x>", b"MAIL FROM:<x>") in leaked


def test_plaintext_arriving_after_220_is_ignored() -> None:
    conn = ServerConnection(CoreConfig())
    conn.receive_data(b"STARTTLS\r\n")
    assert conn.next_event() == Command("STARTTLS", None, b"STARTTLS")
    assert conn.send(b"220 Ready to start TLS") == b"220 Ready to start TLS\r\n"
    conn.receive_data(b"MAIL FROM:<x>\r\n")
    conn.receive_data(b"")  # even a plaintext EOF
    assert conn.buffered_size == 0
    assert conn.next_event() is PAUSED
    conn.tls_established()
    assert conn.mode is Mode.COMMAND
    assert conn.next_event() is NEED_DATA


def test_starttls_refused_keeps_parsing() -> None:
    conn = ServerConnection(CoreConfig())
    conn.receive_data(INJECTION)
    assert conn.next_event() == Command("STARTTLS", None, b"STARTTLS")
    conn.send(b"454 TLS not available")
    assert conn.next_event() == Command("MAIL", "FROM:<x>", b"MAIL FROM:<x>")


def test_tls_restart_forgets_esmtp_limits() -> None:
    config = CoreConfig(mail_esmtp_extra=36)
    conn = ServerConnection(config)
    conn.receive_data(b"EHLO x\r\n")
    conn.next_event()
    conn.send(b"250 HELP")
    conn.receive_data(b"STARTTLS\r\n")
    conn.next_event()
    conn.send(b"220 Ready to start TLS")
    conn.tls_established()
    conn.receive_data(b"MAIL " + b"x" * 530 + b"\r\n")  # 537 octets: needs ESMTP limits
    assert conn.next_event() == Rejected(replies.COMMAND_TOO_LONG)


def test_220_to_another_command_does_not_start_tls() -> None:
    conn = ServerConnection(CoreConfig())
    conn.receive_data(b"NOOP\r\nRSET\r\n")
    conn.next_event()
    conn.send(b"220 odd but harmless")
    assert conn.mode is Mode.COMMAND
    assert conn.next_event() == Command("RSET", None, b"RSET")


def test_tls_established_outside_tls_pending_is_misuse() -> None:
    conn = ServerConnection(CoreConfig())
    with pytest.raises(CoreUsageError):
        conn.tls_established()
    conn.close()
    conn.tls_established()  # a handshake finishing after close() is harmless
    assert conn.mode is Mode.CLOSED
