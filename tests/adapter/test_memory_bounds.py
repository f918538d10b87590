"""Memory bounds of the adapter, measured with tracemalloc over the in-memory transport.

A big message must exist about once in the server's memory (receive buffer + the content
handed to ``handle_DATA``), not twice (a list of chunks plus their join). An idle
connection after EHLO must stay small. The bounds are generous but fail on the old
behaviour (2.0x the message size; about 6.7 kB per idle connection).
"""

from __future__ import annotations

import tracemalloc

import pytest

from aiosmtpd.smtp import SMTP, Envelope, Session
from aiosmtpd.testing.transport import SMTPClient

MESSAGE_SIZE = 8 << 20
LINE = b"x" * 76 + b"\r\n"


class SizeRecorder:
    def __init__(self) -> None:
        self.size = -1

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        self.size = len(envelope.content)
        return "250 OK"


@pytest.mark.asyncio
async def test_big_message_is_held_about_once() -> None:
    body = LINE * (MESSAGE_SIZE // len(LINE))
    handler = SizeRecorder()
    async with SMTPClient(SMTP(handler, data_size_limit=None)) as client:
        for command in ("EHLO a", "MAIL FROM:<a@example.com>", "RCPT TO:<b@example.com>"):
            assert (await client.command(command)).code == 250
        assert (await client.command("DATA")).code == 354
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            for start in range(0, len(body), 64 * 1024):
                await client.send(body[start : start + 64 * 1024])
            reply = await client.command(".")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert reply.code == 250
    assert handler.size == len(body)
    assert (peak - base) / len(body) < 1.5
