"""BDAT with an unparsable size over a real socket: ``501``, then the server closes before
reading the chunk as commands (the stream cannot be resynchronised)."""

from __future__ import annotations

import asyncio

import pytest

from .test_smtp_clients import Box, serve

pytestmark = pytest.mark.wire


@pytest.mark.asyncio
async def test_unparsable_bdat_size_closes_the_connection() -> None:
    box = Box()
    smuggled = b"RSET\r\nMAIL FROM:<evil@x>\r\nRCPT TO:<b@example.com>\r\nDATA\r\nevil\r\n.\r\n"
    async with serve(box, enable_CHUNKING=True) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            assert (await reader.readline()).startswith(b"220 ")
            writer.write(
                b"EHLO client\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n"
                b"BDAT 0x40 LAST\r\n" + smuggled
            )
            await writer.drain()
            # Everything up to EOF: the replies, then the server's close (the timeout is
            # a safety net: without the close the chunk's commands are answered instead).
            async with asyncio.timeout(10):
                received = await reader.read()
        finally:
            writer.close()
            await writer.wait_closed()
    after_ehlo = received.split(b"250 HELP\r\n", 1)[1]
    assert after_ehlo == b"250 OK\r\n250 OK\r\n501 Syntax: BDAT <chunk-size> [LAST]\r\n"
    assert box.envelopes == []
