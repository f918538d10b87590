"""PROXY header then implicit TLS over a real socket: a client that floods the
connection while ``handle_PROXY`` decides has at most the high-water mark (plus one
socket read) held by the server; the rest stays in the kernel and the client."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator
from typing import Any

import pytest

from aiosmtpd._engine import READ_HIGH_WATER
from aiosmtpd.smtp import SMTP
from tests.support import require_module

HEADER = b"PROXY TCP4 192.0.2.7 127.0.0.1 40123 465\r\n"
#: Far more than the server may hold; what a socket read can add past the mark.
FLOOD = 8 * READ_HIGH_WATER
ONE_READ = 256 * 1024


@contextlib.asynccontextmanager
async def serving(
    cls: type[SMTP], handler: Any, server_context: ssl.SSLContext, **kwargs: Any
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """A PROXY-then-TLS server of ``cls`` on port 0 and one client connection to it; on
    exit the client is aborted and every session has ended."""
    protocols: list[SMTP] = []

    def factory() -> SMTP:
        protocol = cls(
            handler,
            hostname="mx.test",
            proxy_protocol_timeout=10,
            proxy_tls_context=server_context,
            **kwargs,
        )
        protocols.append(protocol)
        return protocol

    server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            yield reader, writer
        finally:
            writer.transport.abort()
        await asyncio.wait([p._handler_coroutine for p in protocols])  # type: ignore[misc]
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture(scope="module")
def contexts() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context, client context) from a throw-away trustme CA."""
    trustme = require_module("trustme")
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    return server_context, client_context


@pytest.mark.asyncio
async def test_flood_behind_a_deciding_proxy_hook_is_bounded(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext], caplog: pytest.LogCaptureFixture
) -> None:
    server_context, _ = contexts
    loop = asyncio.get_running_loop()
    deciding = asyncio.Event()
    paused = asyncio.Event()
    verdict: asyncio.Future[bool] = loop.create_future()
    peak = 0

    class Handler:
        async def handle_PROXY(self, server: Any, session: Any, envelope: Any, data: Any) -> bool:
            deciding.set()
            return await verdict

    class Watched(SMTP):
        def data_received(self, data: bytes) -> None:
            nonlocal peak
            super().data_received(data)
            if self._proxy_buffer is not None:
                peak = max(peak, len(self._proxy_buffer))
            if self._reading_paused:
                paused.set()

    async with serving(Watched, Handler(), server_context) as (reader, writer):
        writer.write(HEADER)
        async with asyncio.timeout(10):  # safety nets: fail rather than hang
            await deciding.wait()
            writer.write(b"\x16" * FLOOD)  # not drained: the server stops reading
            await paused.wait()
        assert READ_HIGH_WATER < peak <= READ_HIGH_WATER + ONE_READ
        # The hook accepts; the "handshake" is junk, so TLS fails and the server
        # closes, without a reply and without an error from the early-byte replay.
        # (Closing with unread input makes the kernel send a reset, not a FIN.)
        verdict.set_result(True)
        async with asyncio.timeout(10):
            try:
                received = await reader.read()
            except ConnectionResetError:
                received = b""
        assert received == b""
    assert peak <= READ_HIGH_WATER + ONE_READ
    assert "TLS handshake after PROXY header failed" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.asyncio
async def test_pause_taken_while_the_hook_decides_does_not_outlive_the_handshake(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    """A pause taken while ``handle_PROXY`` decided (the flood above) is undone by
    ``start_tls()``; the engine must know it, or it would never pause the TLS transport
    when a pipelining client runs ahead of slow hooks."""
    server_context, client_context = contexts
    after_header: list[tuple[bool, bool]] = []

    class Handler:
        async def handle_PROXY(self, server: Any, session: Any, envelope: Any, data: Any) -> bool:
            # As data_received does past the high-water mark.
            server._reading_paused = True
            server.transport.pause_reading()
            return True

    class Watched(SMTP):
        async def _accept_proxy_header(self) -> bool:
            accepted = await super()._accept_proxy_header()
            after_header.append((self._reading_paused, self._original_transport.is_reading()))
            return accepted

    async with serving(Watched, Handler(), server_context) as (reader, writer):
        writer.write(HEADER)
        async with asyncio.timeout(10):
            await writer.start_tls(client_context, server_hostname="127.0.0.1")
            assert (await reader.readline()).startswith(b"220 ")
    assert after_header == [(False, True)]


@pytest.mark.asyncio
async def test_tls_handshake_timeout_applies_after_the_proxy_header(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext], caplog: pytest.LogCaptureFixture
) -> None:
    """``tls_handshake_timeout`` bounds the handshake that follows a PROXY header (as
    documented), not only STARTTLS's: a client that sends the header and then nothing is
    dropped after it, not after the 60-second default."""
    server_context, _ = contexts

    class Handler:
        async def handle_PROXY(self, server: Any, session: Any, envelope: Any, data: Any) -> bool:
            return True

    async with serving(SMTP, Handler(), server_context, tls_handshake_timeout=0.2) as (
        reader,
        writer,
    ):
        writer.write(HEADER)
        async with asyncio.timeout(10):  # far below the 60 s default
            assert await reader.read() == b""
    assert "TLS handshake after PROXY header failed" in caplog.text
