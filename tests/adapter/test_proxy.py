"""PROXY protocol before the greeting (``proxy_protocol_timeout``, ``handle_PROXY``)."""

from __future__ import annotations

import asyncio
import logging
from ipaddress import IPv4Address
from typing import Any

import pytest

from aiosmtpd._engine import READ_HIGH_WATER
from aiosmtpd.smtp import SMTP
from aiosmtpd.testing.transport import SMTPClient

from .util import Recorder

HEADER_V1 = b"PROXY TCP4 192.0.2.1 198.51.100.2 40000 25\r\n"


class ProxyHandler(Recorder):
    def __init__(self, verdict: Any = True) -> None:
        super().__init__()
        self.verdict = verdict
        self.seen: list[Any] = []

    async def handle_PROXY(self, server: SMTP, session: Any, envelope: Any, proxy_data: Any) -> Any:
        self.seen.append((proxy_data, session.proxy_data))
        return self.verdict


async def _start(handler: Any, timeout: float = 10.0) -> SMTPClient:
    client = SMTPClient(SMTP(handler, hostname="mx.test", proxy_protocol_timeout=timeout))
    await client.connect(read_greeting=False)
    return client


@pytest.mark.asyncio
async def test_v1_header_then_smtp_in_one_packet() -> None:
    handler = ProxyHandler()
    client = await _start(handler)
    assert client.transport.output == b""
    await client.send(HEADER_V1 + b"EHLO c\r\n")
    assert (await client.reply()).code == 220
    assert (await client.reply()).code == 250
    ((data, in_session),) = handler.seen
    assert data is in_session
    assert data.src_addr == IPv4Address("192.0.2.1")
    assert data.src_port == 40000
    await client.close()


@pytest.mark.asyncio
async def test_header_split_byte_by_byte() -> None:
    handler = ProxyHandler()
    client = await _start(handler)
    for byte in HEADER_V1:
        await client.send(bytes([byte]))
    assert (await client.reply()).code == 220
    await client.close()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("handler", "data"),
    [
        (ProxyHandler(), b"EHLO c\r\n"),  # no header at all
        (ProxyHandler(), b"PROXY TCP4 nonsense\r\n"),
        (ProxyHandler(verdict=False), HEADER_V1),
        (Recorder(), HEADER_V1),  # no handle_PROXY hook
    ],
)
async def test_refused_without_reply(handler: Any, data: bytes) -> None:
    client = await _start(handler)
    await client.send(data)
    await client.wait_closed()
    await asyncio.wait([client.protocol._handler_coroutine])  # type: ignore[attr-defined]
    assert client.transport.output == b""


@pytest.mark.asyncio
async def test_proxy_timeout_closes_without_reply() -> None:
    client = await _start(ProxyHandler(), timeout=0.05)
    await client.send(b"PROXY TCP4")
    await client.wait_closed()
    await asyncio.wait([client.protocol._handler_coroutine])  # type: ignore[attr-defined]
    assert client.transport.output == b""


@pytest.mark.asyncio
async def test_input_behind_a_deciding_proxy_hook_stops_being_read(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A megabyte of NOOPs: keep the suite-wide DEBUG capture from logging each one.
    caplog.set_level(logging.WARNING, logger="mail.log")
    gate = asyncio.Event()
    deciding = asyncio.Event()

    class Deliberating(ProxyHandler):
        async def handle_PROXY(
            self, server: SMTP, session: Any, envelope: Any, proxy_data: Any
        ) -> Any:
            deciding.set()
            await gate.wait()
            return True

    client = await _start(Deliberating())
    await client.send(HEADER_V1)
    await deciding.wait()
    assert client.transport.is_reading()
    # At the high-water mark the transport is still read; one command past it, it is not.
    await client.send(b"NOOP\r\n" * (READ_HIGH_WATER // 6))
    assert client.transport.is_reading()
    await client.send(b"NOOP\r\n")
    assert not client.transport.is_reading()
    gate.set()
    assert (await client.reply()).code == 220
    assert (await client.reply()).code == 250  # the first buffered NOOP, now being served
    await client.close()
