"""A message the core holds whole is taken at once (``_fastlane._receive_whole``): the same
bytes and content as the general path, with every limit and defence.

Each message runs through the fast lane and through the general path, with the input
split into two reads at every position; the replies must be byte-identical and the
delivered content the same. Messages the shortcut must leave to the events (dots to
unstuff, a broken limit, an end marker not yet whole) are shown to take them.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from aiosmtpd import _driver, _fastlane
from aiosmtpd.smtp import SMTP
from aiosmtpd.testing.transport import SMTPClient

SIZE_LIMIT = 20
ENVELOPE = b"EHLO client.test\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n"


class ShortLines(SMTP):
    """A line limit small enough to break with a short message."""

    line_length_limit = 12


#: (message as sent after DATA, whether the whole-message shortcut may take it)
MESSAGES = [
    (b"Subject: hi\r\n\r\nb\r\n.\r\n", True),
    (b".\r\n", True),  # empty
    (b"\r\n.\r\n", True),  # one empty line
    (b"x" * (SIZE_LIMIT - 2) + b"\r\n.\r\n", True),  # just under the size limit
    (b"x" * (SIZE_LIMIT - 3) + b"\r\n.\r\n", True),
    (b"x" * (SIZE_LIMIT - 1) + b"\r\n.\r\n", False),  # just over: 552
    (b"x" * 30 + b"\r\n.\r\n", False),
    (b"a\r\n..b\r\n.\r\n", False),  # a transparency dot
    (b"..a\r\n.\r\n", False),  # the first line's
    (b"...\r\n.\r\n", False),
    # SMTP smuggling: only CRLF.CRLF ends the message.
    (b"a\n.\nb\r\n.\r\n", True),
    (b"a\r.\rb\r\n.\r\n", True),
    (b"a\n.\r\nb\r\n.\r\n", True),
    (b"a\r\n.\nb\r\n.\r\n", False),
    (b"a\r\n.\rb\r\n.\r\n", False),
    (b"a\r\n.\r\r\n.\r\n", False),
]


async def session(
    data: list[bytes], owed: int, cls: type[SMTP] = SMTP
) -> tuple[bytes, list[bytes | None]]:
    """Send ``data`` in these reads; everything written back and the contents received."""
    server = cls(object(), hostname="mx.test", data_size_limit=SIZE_LIMIT)
    contents: list[bytes | None] = []
    original = SMTP._set_rset_state

    def noting(self: SMTP) -> None:
        if self._envelope is not None and self._envelope.rcpt_tos:
            contents.append(self._envelope.content)  # type: ignore[arg-type]
        original(self)

    client = SMTPClient(server)
    await client.connect()
    try:
        with pytest.MonkeyPatch.context() as patch:
            # (on SMTP itself: a subclass of its own would keep the class off the fast lane)
            patch.setattr(SMTP, "_set_rset_state", noting)
            async with asyncio.timeout(10):
                for piece in data:
                    if piece:  # (an empty read would be the end of input)
                        await client.send(piece)
                await client.replies(owed)
    finally:
        await client.close()
    return bytes(client.transport.output), contents


@pytest.fixture
def whole_taken(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Per DATA served by the fast lane: whether the shortcut took the message."""
    taken: list[bool] = []
    receive = _fastlane._receive

    def noting_receive(engine: Any) -> Any:
        taken[-1] = False
        return receive(engine)

    whole = _fastlane._receive_whole

    def noting_whole(engine: Any) -> Any:
        taken.append(True)
        return whole(engine)

    monkeypatch.setattr(_fastlane, "_receive", noting_receive)
    monkeypatch.setattr(_fastlane, "_receive_whole", noting_whole)
    monkeypatch.setattr(_driver, "_LANES", {})
    return taken


async def both_ways(
    data: list[bytes], owed: int, cls: type[SMTP] = SMTP
) -> tuple[bytes, list[bytes | None]]:
    fast = await session(data, owed, cls)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_fastlane, "fast_verbs", lambda cls, inline: {})
        patch.setattr(_driver, "_LANES", {})
        general = await session(data, owed, cls)
    assert fast == general
    return fast


@pytest.mark.asyncio
@pytest.mark.parametrize(("message", "shortcut"), MESSAGES)
async def test_split_at_every_position(
    whole_taken: list[bool], message: bytes, shortcut: bool
) -> None:
    stream = b"DATA\r\n" + message + b"NOOP\r\n"
    for split in range(len(stream) + 1):
        whole_taken.clear()
        output, contents = await both_ways(
            [ENVELOPE, stream[:split], stream[split:], b"QUIT\r\n"], 7
        )
        assert len(contents) == 1
        assert output.endswith(b"250 OK\r\n221 Bye\r\n")
        assert whole_taken, "DATA never took the fast lane"
        # Taken whole exactly when all of it arrived in one read with DATA or after.
        whole_in_one = split <= len(b"DATA\r\n") or split >= len(stream) - len(b"NOOP\r\n")
        assert whole_taken == [shortcut and whole_in_one]


@pytest.mark.asyncio
async def test_the_content_and_replies_of_a_whole_message() -> None:
    output, contents = await both_ways([ENVELOPE + b"DATA\r\na\n.\nb\r\n.\r\n" + b"QUIT\r\n"], 6)
    assert contents == [b"a\n.\nb\r\n"]
    assert output.endswith(b"354 End data with <CR><LF>.<CR><LF>\r\n250 OK\r\n221 Bye\r\n")


@pytest.mark.asyncio
async def test_limits_are_the_general_paths() -> None:
    stuffed = await both_ways([ENVELOPE + b"DATA\r\na\r\n..b\r\n.\r\nQUIT\r\n"], 6)
    assert stuffed[1] == [b"a\r\n.b\r\n"]
    over = await both_ways([ENVELOPE + b"DATA\r\n" + b"x" * 19 + b"\r\n.\r\nQUIT\r\n"], 6)
    assert b"\r\n552 " in over[0]
    at = await both_ways([ENVELOPE + b"DATA\r\n" + b"x" * 18 + b"\r\n.\r\nQUIT\r\n"], 6)
    assert at[1] == [b"x" * 18 + b"\r\n"]


@pytest.mark.asyncio
@pytest.mark.parametrize("length", [ShortLines.line_length_limit - 1, 12, 13])
async def test_line_length_just_under_at_and_over(whole_taken: list[bool], length: int) -> None:
    line = b"y" * (length - 2) + b"\r\n"
    output, contents = await both_ways(
        [ENVELOPE + b"DATA\r\n" + line + b".\r\nQUIT\r\n"], 6, ShortLines
    )
    fits = length <= ShortLines.line_length_limit
    assert whole_taken == [fits]
    assert contents == [line if fits else None]
    assert (b"\r\n500 Line too long" in output) is not fits
