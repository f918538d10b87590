"""The reply to a big message is written before the message is released.

Freeing a message of ``EARLY_REPLY_SIZE`` or more hands its pages back to the system
(glibc unmaps it), which takes about 5 % of the time the message took to arrive; the
client must not wait for that. The transport here records, at each write, how much memory
``tracemalloc`` sees in use: the reply to the message must be written while the message
is still held. Smaller messages keep their reply in the pipelined group's one write.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest

from aiosmtpd._output import EARLY_REPLY_SIZE
from aiosmtpd.handlers import Sink
from aiosmtpd.smtp import SMTP, Envelope, Session
from aiosmtpd.testing.transport import MemoryTransport, SMTPClient

ENVELOPE = b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n"
LINE = b"0123456789" * 7 + b"abcdef\r\n"  # 78 octets


class MeasuringTransport(MemoryTransport):
    """Notes the memory in use when each write happens."""

    def __init__(self) -> None:
        super().__init__()
        self.in_use_at_write: list[int] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.in_use_at_write.append(tracemalloc.get_traced_memory()[0])
        super().write(data)


class Discarding:
    """A handler with a DATA hook that keeps nothing (the general path)."""

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        return "250 Delivered"


@pytest.fixture
def traced() -> Iterator[None]:
    tracemalloc.start()
    try:
        yield
    finally:
        tracemalloc.stop()


def content_of(size: int) -> bytes:
    """Exactly ``size`` octets of 78-octet lines (the last one shorter), ending in CRLF."""
    lines, rest = divmod(size, len(LINE))
    if rest == 1:  # (no 1-octet line: make the last two lines 40 and 39 octets)
        lines, rest = lines - 1, rest + len(LINE)
        return LINE * lines + b"x" * 38 + b"\r\n" + b"y" * (rest - 42) + b"\r\n"
    return LINE * lines + (b"z" * (rest - 2) + b"\r\n" if rest else b"")


async def send_message(handler: Any, content: bytes) -> tuple[MeasuringTransport, int]:
    """Send ``content`` in 64 KiB reads, the last one with a pipelined NOOP after the
    terminator; return the transport and the memory in use before the message."""
    transport = MeasuringTransport()
    client = SMTPClient(SMTP(handler, hostname="mx.test", data_size_limit=None), transport)
    await client.connect()
    try:
        await client.send(b"EHLO client.test\r\n")
        await client.reply()
        await client.send(ENVELOPE)
        await client.replies(3)
        data = content + b".\r\nNOOP\r\n"
        before = tracemalloc.get_traced_memory()[0]
        writes = len(transport.writes)
        step = 64 * 1024
        for start in range(0, len(data), step):
            await client.send(data[start : start + step])
        replies = await client.replies(2)
        assert [reply.code for reply in replies] == [250, 250]
        del transport.in_use_at_write[:writes]
        del transport.writes[:writes]
    finally:
        await client.close()
    return transport, before


@pytest.mark.asyncio
@pytest.mark.parametrize("handler", [Sink, Discarding], ids=["fast-lane", "handle_DATA"])
@pytest.mark.parametrize("size", [EARLY_REPLY_SIZE, EARLY_REPLY_SIZE + 1, 4 * EARLY_REPLY_SIZE])
async def test_big_message_reply_written_while_message_held(
    traced: None, handler: type, size: int
) -> None:
    content = content_of(size)
    assert len(content) == size
    transport, before = await send_message(handler(), content)
    del content
    # The message's reply alone, then the NOOP's: two writes, the first one made while
    # the message (at least its size) was still in memory.
    assert transport.writes[:2] == [
        b"250 OK\r\n" if handler is Sink else b"250 Delivered\r\n",
        b"250 OK\r\n",
    ]
    assert transport.in_use_at_write[0] - before >= size
    # ... and it was released after that write.
    assert transport.in_use_at_write[1] - before < size // 2


@pytest.mark.asyncio
@pytest.mark.parametrize("handler", [Sink, Discarding], ids=["fast-lane", "handle_DATA"])
async def test_message_under_the_size_keeps_one_write_per_group(
    traced: None, handler: type
) -> None:
    content = content_of(EARLY_REPLY_SIZE - 1)
    assert len(content) == EARLY_REPLY_SIZE - 1
    transport, _ = await send_message(handler(), content)
    # The message's reply and the pipelined NOOP's go out together.
    assert len(transport.writes) == 1
    assert transport.writes[0].endswith(b"\r\n250 OK\r\n")
