"""PROXY header then implicit TLS (``proxy_tls_context``): what the client sends while
``handle_PROXY`` decides is held for the TLS layer, and held only up to the high-water
mark (the transport stops being read past it), like the plain-PROXY path."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import pytest

from aiosmtpd._engine import READ_HIGH_WATER
from aiosmtpd.smtp import SMTP
from aiosmtpd.testing.transport import SMTPClient

HEADER_V1 = b"PROXY TCP4 192.0.2.1 198.51.100.2 40000 465\r\n"


class Deliberating:
    """A ``handle_PROXY`` that waits for the test's verdict."""

    def __init__(self) -> None:
        self.deciding = asyncio.Event()
        self.verdict: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    async def handle_PROXY(self, server: SMTP, session: Any, envelope: Any, data: Any) -> bool:
        self.deciding.set()
        return await self.verdict


async def start(handler: Deliberating) -> tuple[SMTP, SMTPClient]:
    server = SMTP(
        handler,
        hostname="mx.test",
        proxy_protocol_timeout=10,
        proxy_tls_context=ssl.create_default_context(ssl.Purpose.CLIENT_AUTH),
    )
    client = SMTPClient(server)
    await client.connect(read_greeting=False)
    return server, client


@pytest.mark.parametrize(("beyond", "reading"), [(-1, True), (0, True), (1, False)])
@pytest.mark.asyncio
async def test_handshake_bytes_behind_a_deciding_hook_are_bounded(
    beyond: int, reading: bool
) -> None:
    handler = Deliberating()
    server, client = await start(handler)
    await client.send(HEADER_V1)
    await handler.deciding.wait()
    # TLS handshake records (type 0x16) queued behind the header; the header itself is
    # no longer held.
    await client.send(b"\x16" * (READ_HIGH_WATER + beyond))
    assert server._proxy_buffer is not None
    assert len(server._proxy_buffer) == READ_HIGH_WATER + beyond
    assert client.transport.is_reading() is reading
    handler.verdict.set_result(False)
    await client.wait_closed()
    await asyncio.wait([server._handler_coroutine])  # type: ignore[list-item]
    assert client.transport.output == b""


@pytest.mark.asyncio
async def test_header_and_bytes_past_the_mark_in_one_read() -> None:
    """The header and more than the mark arrive together: reading stops at once, the
    hook still runs (on the header), and its refusal closes without a reply."""
    handler = Deliberating()
    server, client = await start(handler)
    await client.send(HEADER_V1 + b"\x16" * READ_HIGH_WATER)
    await handler.deciding.wait()
    assert not client.transport.is_reading()
    assert server._proxy_buffer is not None
    assert len(server._proxy_buffer) == READ_HIGH_WATER
    handler.verdict.set_result(False)
    await client.wait_closed()
    assert client.transport.output == b""


@pytest.mark.parametrize("how", ["begin_shutdown", "shutdown_now"])
@pytest.mark.asyncio
async def test_graceful_stop_before_tls_closes_without_a_cleartext_reply(how: str) -> None:
    handler = Deliberating()
    server, client = await start(handler)
    await client.send(HEADER_V1)
    await handler.deciding.wait()
    getattr(server, how)()
    await client.wait_closed()
    # The client expects a TLS handshake next: a cleartext "421" would be junk to it.
    assert client.transport.output == b""
    handler.verdict.set_result(False)
