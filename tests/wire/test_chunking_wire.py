"""BDAT (RFC 3030) over a real socket: no client we have speaks CHUNKING (smtplib, swaks
and curl do not), so a raw asyncio stream plays the client."""

from __future__ import annotations

import asyncio

import pytest

from .test_smtp_clients import Box, serve

pytestmark = pytest.mark.wire


async def _reply(reader: asyncio.StreamReader) -> bytes:
    lines = []
    while True:
        line = await reader.readline()
        assert line, "connection closed"
        lines.append(line)
        if line[3:4] != b"-":
            return b"".join(lines)


@pytest.mark.asyncio
async def test_bdat_over_a_socket() -> None:
    box = Box()
    body = bytes(range(256)) * 400  # binary, with bare CR/LF and ".\r\n" sequences
    async with serve(box, enable_CHUNKING=True, enhanced_status_codes=True) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            assert (await _reply(reader)).startswith(b"220 ")
            writer.write(b"EHLO client\r\n")
            ehlo = await _reply(reader)
            assert b"250-CHUNKING\r\n" in ehlo
            assert b"250-BINARYMIME\r\n" in ehlo
            writer.write(
                b"MAIL FROM:<a@example.com> BODY=BINARYMIME\r\nRCPT TO:<b@example.com>\r\n"
            )
            assert await _reply(reader) == b"250 2.0.0 OK\r\n"
            assert await _reply(reader) == b"250 2.0.0 OK\r\n"
            half = len(body) // 2
            writer.write(b"BDAT %d\r\n" % half + body[:half])
            writer.write(b"BDAT %d LAST\r\n" % (len(body) - half) + body[half:])
            writer.write(b"QUIT\r\n")
            assert await _reply(reader) == b"250 2.0.0 %d octets received\r\n" % half
            assert await _reply(reader) == b"250 OK queued\r\n"
            assert await _reply(reader) == b"221 2.0.0 Bye\r\n"
        finally:
            writer.close()
            await writer.wait_closed()
    assert box.envelopes[0].content == body
    assert box.envelopes[0].mail_options == ["BODY=BINARYMIME"]
