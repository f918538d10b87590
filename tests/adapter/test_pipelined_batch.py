"""A pipelined batch restarts the idle timer once, and the timer still fires after it.

``resume`` serves DATA's content when it arrives (a message held whole is answered at
once, with no coroutine) and drives the commands pipelined behind it in the same call:
one restart of the idle timer covers all of them (no time passes between them).
"""

from __future__ import annotations

import asyncio

import pytest

from aiosmtpd import _flow
from aiosmtpd.handlers import Sink
from aiosmtpd.smtp import SMTP
from aiosmtpd.testing.transport import SMTPClient

ENVELOPE = b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n"
BODY = b"Subject: x\r\n\r\nbody\r\n.\r\n"


@pytest.fixture
def touches(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many times the idle timer was restarted (one counter for the whole test)."""
    count = [0]
    touch = _flow.IdleTimer.touch

    def counting(self: _flow.IdleTimer) -> None:
        count[0] += 1
        touch(self)

    monkeypatch.setattr(_flow.IdleTimer, "touch", counting)
    return count


@pytest.mark.asyncio
@pytest.mark.parametrize("body", [BODY, b"a\r\n..dot\r\n.\r\n"], ids=["whole", "unstuffed"])
async def test_one_restart_per_pipelined_batch(touches: list[int], body: bytes) -> None:
    server = SMTP(Sink(), hostname="mx.test", timeout=30)
    async with SMTPClient(server) as client:
        await client.command("EHLO me")
        await client.send(ENVELOPE)
        assert [r.code for r in await client.replies(3)] == [250, 250, 354]
        for _ in range(3):
            before = touches[0]
            await client.send(body + ENVELOPE)
            assert [r.code for r in await client.replies(4)] == [250, 250, 250, 354]
            # The content's first event restarts it (the whole-message shortcut does
            # what that event would); the commands behind it add nothing.
            assert touches[0] - before == 1
        assert server._suspended is not None  # DATA waits for its content, task-less
        assert server._task is None


@pytest.mark.asyncio
async def test_one_restart_for_a_batch_served_by_drive(touches: list[int]) -> None:
    server = SMTP(Sink(), hostname="mx.test", timeout=30)
    async with SMTPClient(server) as client:
        await client.command("EHLO me")
        before = touches[0]
        await client.send((ENVELOPE + BODY) * 3 + b"NOOP\r\n")
        assert [r.code for r in await client.replies(13)] == [250, 250, 354, 250] * 3 + [250]
        assert touches[0] - before == 1


@pytest.mark.asyncio
@pytest.mark.parametrize("pending_data", [True, False])
async def test_the_idle_timer_fires_after_a_pipelined_batch(pending_data: bool) -> None:
    server = SMTP(Sink(), hostname="mx.test", timeout=0.05)
    async with asyncio.timeout(10), SMTPClient(server) as client:
        await client.command("EHLO me")
        await client.send(ENVELOPE)
        assert [r.code for r in await client.replies(3)] == [250, 250, 354]
        tail = ENVELOPE if pending_data else b"NOOP\r\n"
        await client.send(BODY + tail)
        await client.replies(4 if pending_data else 2)
        timed_out = await client.reply()
        assert timed_out.code == 421
        assert b"timeout exceeded" in bytes(client.transport.output)
        await client.wait_closed()
