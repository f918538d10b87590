"""Big messages on several connections at once, over real sockets, arrive intact.

Guards the receive path against mixing connections' bytes: the transports of one event
loop may read into one shared receive buffer (``asyncio.BufferedProtocol``), which is only
safe if every byte is consumed (copied by the core) before the next read into it.  The
messages are sent in interleaved pieces, with transparency dots and line ends that
straddle the pieces, so the readers of both connections are mid-line at every switch.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from aiosmtpd.smtp import SMTP

HOST = "127.0.0.1"
PIECE = 64 * 1024 + 7  # pieces end mid-line
MESSAGE_LINES = 40_000


class Keeper:
    def __init__(self) -> None:
        self.contents: dict[str, bytes] = {}

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.contents[envelope.mail_from] = envelope.content
        return "250 OK kept"


def message_for(tag: bytes) -> bytes:
    """About 3 MiB of 78-octet lines unique to ``tag``; every 7th line starts with a dot."""
    lines = [
        (b"." if i % 7 == 0 else b"") + tag * 4 + b" %08d " % i + b"y" * 50 + b"\r\n"
        for i in range(MESSAGE_LINES)
    ]
    return b"".join(lines)


def stuffed(content: bytes) -> bytes:
    """``content`` dot-stuffed for the wire (RFC 5321 §4.5.2)."""
    wire = content.replace(b"\r\n.", b"\r\n..")
    return b"." + wire if wire.startswith(b".") else wire


async def read_reply(reader: asyncio.StreamReader) -> bytes:
    while True:
        line = await reader.readline()
        assert line, "server closed the connection"
        if line[3:4] != b"-":
            return line


async def start_transaction(
    port: int, sender: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(HOST, port)
    assert (await read_reply(reader)).startswith(b"220")
    for command in (b"EHLO a.example", b"MAIL FROM:<%s>" % sender.encode(), b"RCPT TO:<b@x>"):
        writer.write(command + b"\r\n")
        assert (await read_reply(reader)).startswith(b"250")
    writer.write(b"DATA\r\n")
    assert (await read_reply(reader)).startswith(b"354")
    return reader, writer


@pytest.mark.asyncio
async def test_interleaved_big_messages_arrive_intact() -> None:
    handler = Keeper()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(handler, data_size_limit=None), HOST, 0)
    port = server.sockets[0].getsockname()[1]
    senders = ["a@x", "b@x", "c@x"]
    messages = {sender: message_for(sender[:1].encode()) for sender in senders}
    try:
        clients = [await start_transaction(port, sender) for sender in senders]
        wires = [stuffed(messages[sender]) + b".\r\n" for sender in senders]
        for offset in range(0, max(map(len, wires)), PIECE):
            for (_, writer), wire in zip(clients, wires, strict=True):
                writer.write(wire[offset : offset + PIECE])
            for _, writer in clients:
                await writer.drain()
        for reader, writer in clients:
            assert await read_reply(reader) == b"250 OK kept\r\n"
            writer.close()
            await writer.wait_closed()
    finally:
        server.close()
        await server.wait_closed()
    assert handler.contents == messages
