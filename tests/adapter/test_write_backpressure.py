"""Write back-pressure: a client that reads its replies slowly, or stops reading at all.

Found in review: a command served inline (from ``data_received``) that met a paused
transport crashed the session when the task took it over, and a session closed on a
client that stopped reading waited forever for its write buffer to drain, keeping the
connection and its connection-cap slot.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from aiosmtpd.smtp import SMTP, Envelope, Session
from aiosmtpd.testing.transport import SMTPClient

PIPELINED_NOOPS = 20_000


class NoHooks:
    """No hooks at all, so NOOP is served inline."""


@pytest.mark.asyncio
async def test_inline_command_that_meets_a_paused_transport_finishes_in_the_task() -> None:
    server = SMTP(NoHooks(), hostname="mx.test")
    async with SMTPClient(server) as client:
        await client.command("EHLO client.test")
        transport: Any = server.transport
        write = transport.write

        def write_then_fill_the_socket(data: Any) -> None:
            write(data)
            transport.write = write
            server.pause_writing()  # the kernel buffer filled on this write

        transport.write = write_then_fill_the_socket
        await client.send(b"NOOP\r\n" * PIPELINED_NOOPS)
        server.resume_writing()
        await client.send(b"QUIT\r\n")
        await client.wait_closed()
    assert bytes(client.transport.output).endswith(b"250 OK\r\n221 Bye\r\n")
    assert server._handler_coroutine is not None
    assert server._handler_coroutine.exception() is None
    assert bytes(client.transport.output).count(b"250 OK\r\n") == PIPELINED_NOOPS


class SlowNoop:
    """A NOOP hook, so commands go through the session task, not the inline path."""

    async def handle_NOOP(
        self, server: SMTP, session: Session, envelope: Envelope, arg: str | None
    ) -> str:
        return "250 OK"


class LossAware(SMTP):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lost = asyncio.Event()

    def connection_made(self, transport: Any) -> None:
        # Small buffers: the stall shows after a few thousand replies, not millions.
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        transport.set_write_buffer_limits(high=16384)
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.lost.set()


@pytest.mark.parametrize("handler", [NoHooks(), SlowNoop()], ids=["inline", "task"])
@pytest.mark.asyncio
async def test_a_client_that_stops_reading_is_cut_at_the_timeout(handler: Any) -> None:
    loop = asyncio.get_running_loop()
    protocols: list[LossAware] = []
    accepted = asyncio.Event()

    def factory() -> LossAware:
        protocol = LossAware(handler, hostname="mx.test", timeout=0.3)
        protocols.append(protocol)
        accepted.set()
        return protocol

    server = await loop.create_server(factory, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.connect(("127.0.0.1", port))
    client.setblocking(False)
    reader, writer = await asyncio.open_connection(sock=client)
    try:
        # Far more replies than the socket buffers hold; the client never reads one.
        writer.write(b"EHLO client.test\r\n" + b"NOOP\r\n" * 200_000)
        await asyncio.wait_for(accepted.wait(), 20)
        (protocol,) = protocols
        assert protocol._handler_coroutine is not None
        await asyncio.wait_for(asyncio.shield(protocol._handler_coroutine), 20)
        # The transport was aborted, not left waiting to drain: the connection is gone.
        assert protocol.transport.is_closing()
        await asyncio.wait_for(protocol.lost.wait(), 20)
    finally:
        writer.transport.abort()
        server.close()
        await server.wait_closed()
    del reader
