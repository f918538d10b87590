"""Input through ``asyncio.BufferedProtocol``: one receive buffer per thread, never kept."""

from __future__ import annotations

import asyncio

import pytest

from aiosmtpd._flow import RECEIVE_BUFFER_SIZE, receive_buffer
from aiosmtpd.smtp import SMTP
from aiosmtpd.testing.transport import SMTPClient

from .util import Recorder


def feed(server: SMTP, data: bytes) -> None:
    """What a selector transport does: get_buffer, recv_into, buffer_updated."""
    buffer = server.get_buffer(-1)
    buffer[: len(data)] = data
    server.buffer_updated(len(data))
    # The next read reuses the buffer: the server must not have kept a view of it.
    buffer[: len(data)] = b"\xff" * len(data)


def test_the_buffer_is_shared_and_sized_for_asyncio_reads() -> None:
    server = SMTP(Recorder(), hostname="mx.test")
    other = SMTP(Recorder(), hostname="mx.test")
    assert server.get_buffer(-1) is other.get_buffer(-1) is receive_buffer()
    assert len(receive_buffer()) == RECEIVE_BUFFER_SIZE
    assert isinstance(server, asyncio.BufferedProtocol)


@pytest.mark.asyncio
async def test_buffered_input_is_copied_before_the_buffer_is_reused() -> None:
    handler = Recorder()
    server = SMTP(handler, hostname="mx.test")
    async with SMTPClient(server) as client:
        feed(server, b"EHLO me\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n")
        feed(server, b"DATA\r\nhello ")  # a partial line stays buffered in the core
        feed(server, b"world\r\n.\r\n")
        replies = await client.replies(5)
        assert [r.code for r in replies] == [250, 250, 250, 354, 250]
    assert handler.envelopes[0].content == b"hello world\r\n"


@pytest.mark.asyncio
async def test_a_subclass_overriding_data_received_gets_bytes() -> None:
    seen: list[object] = []

    class Watching(SMTP):
        def data_received(self, data: bytes) -> None:
            seen.append(data)
            super().data_received(data)

    server = Watching(Recorder(), hostname="mx.test")
    async with SMTPClient(server) as client:
        feed(server, b"NOOP\r\n")
        assert (await client.reply()).code == 250
    assert seen == [b"NOOP\r\n"]
    assert type(seen[0]) is bytes
