"""Graceful stop: begin_shutdown() / shutdown_now() (DECISIONS "graceful stop", row 7)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from .util import Recorder, connect

SHUTTING_DOWN = (421, "4.3.2 Service shutting down")


async def _start_data(client: Any) -> None:
    for command in ("EHLO c", "MAIL FROM:<a@b.c>", "RCPT TO:<d@e.f>", "DATA"):
        assert (await client.command(command)).code in (250, 354)


@pytest.mark.asyncio
async def test_idle_session_is_told_at_once() -> None:
    async with connect() as client:
        await client.command("EHLO c")
        await client.command("MAIL FROM:<a@b.c>")
        client.protocol.begin_shutdown()  # type: ignore[attr-defined]
        reply = await client.reply()
        assert (reply.code, reply.text) == SHUTTING_DOWN
        await client.wait_closed()


@pytest.mark.asyncio
async def test_data_in_progress_finishes_first() -> None:
    handler = Recorder()
    async with connect(handler) as client:
        await _start_data(client)
        await client.send(b"Subject: x\r\n\r\npart one\r\n")
        client.protocol.begin_shutdown()  # type: ignore[attr-defined]
        assert client.pending() == b""
        await client.send(b"part two\r\n.\r\nNOOP\r\n")
        assert (await client.reply()).code == 250
        reply = await client.reply()
        assert (reply.code, reply.text) == SHUTTING_DOWN
        await client.wait_closed()
    assert handler.envelopes[0].content == b"Subject: x\r\n\r\npart one\r\npart two\r\n"


@pytest.mark.asyncio
async def test_running_hook_finishes_first() -> None:
    gate = asyncio.Event()

    class Slow:
        async def handle_NOOP(self, *args: Any) -> str:
            await gate.wait()
            return "250 finished"

    async with connect(Slow()) as client:
        await client.send(b"NOOP\r\n")
        client.protocol.begin_shutdown()  # type: ignore[attr-defined]
        gate.set()
        assert (await client.reply()).text == "finished"
        reply = await client.reply()
        assert (reply.code, reply.text) == SHUTTING_DOWN
        await client.wait_closed()


@pytest.mark.asyncio
async def test_shutdown_now_mid_data_delivers_nothing() -> None:
    handler = Recorder()
    async with connect(handler) as client:
        await _start_data(client)
        await client.send(b"Subject: x\r\n\r\npart one\r\n")
        client.protocol.shutdown_now()  # type: ignore[attr-defined]
        reply = await client.reply()
        assert (reply.code, reply.text) == SHUTTING_DOWN
        await client.wait_closed()
        await asyncio.wait([client.protocol._handler_coroutine])  # type: ignore[attr-defined]
    assert handler.envelopes == []
