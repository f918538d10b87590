"""Memory bounds of the adapter, measured with tracemalloc over the in-memory transport.

A big message must exist about once in the server's memory (receive buffer + the content
handed to ``handle_DATA``), not twice (a list of chunks plus their join). An idle
connection after EHLO must stay small. The bounds are generous but fail on the old
behaviour (2.0x the message size; about 6.7 kB per idle connection).
"""

from __future__ import annotations

import gc
import logging
import tracemalloc

import pytest

from aiosmtpd.smtp import SMTP
from aiosmtpd.testing.transport import SMTPClient

from .util import SizeRecorder

MESSAGE_SIZE = 8 << 20
LINE = b"x" * 76 + b"\r\n"


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


IDLE_CONNECTIONS = 300
#: Per idle connection after EHLO, server and in-memory client together, traced by
#: tracemalloc (CPython 3.11: about 4.6 kB; it was 5.9 kB when the protocol's connection
#: state lived in an unshared instance dict).
IDLE_BYTES_BOUND = 5400


@pytest.mark.asyncio
async def test_idle_connection_footprint(caplog: pytest.LogCaptureFixture) -> None:
    # The suite-wide log guard captures DEBUG records in memory; they are not the server's.
    for name in (None, "mail.log", "mail.debug", "asyncio"):
        caplog.set_level(logging.WARNING, logger=name)
    handler = SizeRecorder()
    clients: list[SMTPClient] = []
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(IDLE_CONNECTIONS):
            client = SMTPClient(SMTP(handler))
            await client.connect()
            assert (await client.command("EHLO client.example.com")).code == 250
            client.transport.output.clear()
            client.transport.writes.clear()
            client._read_pos = 0
            clients.append(client)
        gc.collect()
        used = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
        for client in clients:
            await client.close()
    assert used / IDLE_CONNECTIONS < IDLE_BYTES_BOUND
