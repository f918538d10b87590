"""Message content that spans reads is written by the core straight into the adapter's
storage (``ServerConnection.write_content_to``): same content, same replies, no per-slab
``bytes`` on the way; a message of one read keeps its single chunk as before."""

from __future__ import annotations

import io
from typing import Any

import pytest

from aiosmtpd._core.connection import ServerConnection
from aiosmtpd._core.events import DataChunk
from aiosmtpd.smtp import SMTP
from aiosmtpd.testing.transport import SMTPClient

from .util import Recorder

ENVELOPE = ("EHLO a", "MAIL FROM:<a@example.com>", "RCPT TO:<b@example.com>")
#: Dot-led lines, and SMTP-smuggling sequences that must stay content.
BODY = b"".join(
    b"..dot-led %d\r\n" % i
    if i % 50 == 0
    else b"a\n.\nb\r.\r%d\r\n" % i
    if i % 77 == 0
    else b"line %d of the message, long enough to matter\r\n" % i
    for i in range(20_000)
)
UNSTUFFED = BODY[1:].replace(b"\r\n.", b"\r\n")


class Spy:
    """Records the sinks the adapter gives the core and the DataChunks it hands out."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sinks: list[Any] = []
        self.chunks: list[DataChunk] = []
        give = ServerConnection.write_content_to
        next_event = ServerConnection.next_event

        def write_content_to(conn: ServerConnection, sink: Any) -> None:
            self.sinks.append(sink)
            give(conn, sink)

        def recording_next_event(conn: ServerConnection) -> Any:
            event = next_event(conn)
            if isinstance(event, DataChunk):
                self.chunks.append(event)
            return event

        monkeypatch.setattr(ServerConnection, "write_content_to", write_content_to)
        monkeypatch.setattr(ServerConnection, "next_event", recording_next_event)


async def start(client: SMTPClient) -> None:
    for command in ENVELOPE:
        assert (await client.command(command)).code == 250


@pytest.mark.asyncio
@pytest.mark.parametrize("read", [1000, 65_536, 256 * 1024])
async def test_a_message_over_many_reads_is_written_into_one_buffer(
    read: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = Spy(monkeypatch)
    handler = Recorder()
    async with SMTPClient(SMTP(handler, data_size_limit=None)) as client:
        await start(client)
        assert (await client.command("DATA")).code == 354
        for offset in range(0, len(BODY), read):
            await client.send(BODY[offset : offset + read])
        assert (await client.command(".")).code == 250
    assert handler.envelopes[0].content == UNSTUFFED
    assert [type(sink) for sink in spy.sinks] == [io.BytesIO, type(None)]
    # At most the first read's content came as bytes; the rest was written to the sink.
    assert all(chunk.data == b"" for chunk in spy.chunks[1:])
    assert sum(chunk.written for chunk in spy.chunks) >= len(UNSTUFFED) - read


@pytest.mark.asyncio
async def test_a_message_of_one_read_gets_no_sink(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = Spy(monkeypatch)
    handler = Recorder()
    async with SMTPClient(SMTP(handler)) as client:
        await start(client)
        await client.send(b"DATA\r\n..dot-led\r\nb\r\n.\r\n")  # not whole: a dot to unstuff
        assert [r.code for r in await client.replies(2)] == [354, 250]
    assert handler.envelopes[0].content == b".dot-led\r\nb\r\n"
    assert spy.sinks == []
    assert spy.chunks == [DataChunk(b".dot-led\r\nb\r\n")]


@pytest.mark.asyncio
async def test_size_limit_over_many_reads_with_the_sink(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = Spy(monkeypatch)
    handler = Recorder()
    async with SMTPClient(SMTP(handler, data_size_limit=100_000)) as client:
        await start(client)
        assert (await client.command("DATA")).code == 354
        for offset in range(0, len(BODY), 65_536):
            await client.send(BODY[offset : offset + 65_536])
        assert (await client.command(".")).code == 552
        await start(client)  # the session goes on
    assert handler.envelopes == []
    assert isinstance(spy.sinks[0], io.BytesIO)
    assert spy.sinks[0].tell() <= 100_000


@pytest.mark.asyncio
async def test_bdat_chunks_are_written_into_the_transfer_buffer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spy = Spy(monkeypatch)
    handler = Recorder()
    server = SMTP(handler, enable_CHUNKING=True, data_size_limit=None)
    async with SMTPClient(server) as client:
        await start(client)
        half = len(BODY) // 2
        for chunk, last in ((BODY[:half], b""), (BODY[half:], b" LAST")):
            await client.send(b"BDAT %d%s\r\n" % (len(chunk), last))
            for offset in range(0, len(chunk), 65_536):
                await client.send(chunk[offset : offset + 65_536])
            assert (await client.reply()).code == 250
    assert handler.envelopes[0].content == BODY  # raw: BDAT content is not unstuffed
    assert len(spy.sinks) == 2
    assert all(isinstance(sink, io.BytesIO) for sink in spy.sinks)
    assert all(chunk.data == b"" for chunk in spy.chunks)
