"""Commands served inline from ``data_received`` (``SessionEngine._serve_inline``).

The fast path must be invisible: the same replies in the same order, hooks and overrides
always run inside the session task, write back-pressure and graceful stop behave as when
the session task serves every command.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from aiosmtpd import _inline
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session
from aiosmtpd.testing.transport import MemoryTransport, SMTPClient

from .util import Recorder, connect

TRANSACTION = b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n"


def test_inline_verbs_of_the_stock_classes() -> None:
    assert _inline._inline_verbs(SMTP) == frozenset(
        {"EHLO", "HELO", "MAIL", "NOOP", "QUIT", "RCPT", "RSET"}
    )
    # LMTP replaces HELO and EHLO with refusals of its own: never inline.
    assert "EHLO" not in _inline._inline_verbs(LMTP)
    assert "HELO" not in _inline._inline_verbs(LMTP)


def test_overrides_take_verbs_off_the_inline_path() -> None:
    class OwnMail(SMTP):
        async def smtp_MAIL(self, arg: str | None) -> None:
            await super().smtp_MAIL(arg)

    class OwnHeloCheck(SMTP):
        async def check_helo_needed(self, helo: str = "HELO") -> bool:
            return await super().check_helo_needed(helo)

    class LegacyRsetHook(SMTP):
        async def rset_hook(self) -> None:
            pass

    class OwnExtensionLines(SMTP):
        def _extension_ehlo_lines(self) -> list[str]:
            return super()._extension_ehlo_lines()

    assert "MAIL" not in _inline._inline_verbs(OwnMail)
    assert "RCPT" in _inline._inline_verbs(OwnMail)
    assert _inline._inline_verbs(OwnHeloCheck) == frozenset()
    assert "RSET" not in _inline._inline_verbs(LegacyRsetHook)
    assert "MAIL" in _inline._inline_verbs(LegacyRsetHook)
    assert _inline._inline_verbs(OwnExtensionLines) == frozenset()


@pytest.mark.asyncio
async def test_inline_commands_need_no_task_wakeup() -> None:
    server = SMTP(Recorder(), hostname="mx.test")
    async with SMTPClient(server) as client:
        await client.command("EHLO me")
        # The replies are written by data_received itself, before any loop turn.
        server.data_received(TRANSACTION)
        assert client.pending() == b"250 OK\r\n250 OK\r\n"
        assert [r.code for r in await client.replies(2)] == [250, 250]


@pytest.mark.asyncio
@pytest.mark.parametrize("suspend", [False, True])
async def test_hooks_run_in_the_session_task_whether_or_not_they_suspend(suspend: bool) -> None:
    seen: list[Any] = []

    class Handler(Recorder):
        async def handle_RCPT(
            self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
        ) -> str:
            if suspend:
                await asyncio.sleep(0)
            seen.append(asyncio.current_task())
            envelope.rcpt_tos.append(address)
            return "250 rcpt ok"

    server = SMTP(Handler(), hostname="mx.test")
    async with SMTPClient(server) as client:
        await client.command("EHLO me")
        await client.send(TRANSACTION + b"NOOP\r\n")
        replies = await client.replies(3)
        assert [(r.code, r.text) for r in replies] == [(250, "OK"), (250, "rcpt ok"), (250, "OK")]
    assert seen == [server._handler_coroutine]


@pytest.mark.asyncio
async def test_pipelined_group_mixing_inline_and_task_commands_keeps_order() -> None:
    handler = Recorder()
    async with connect(handler) as client:
        await client.command("EHLO me")
        await client.send(TRANSACTION + b"DATA\r\nhello\r\n.\r\nRSET\r\nNOOP\r\nVRFY x\r\nNOOP\r\n")
        replies = await client.replies(7)
        assert [r.code for r in replies] == [250, 250, 354, 250, 250, 250, 252]
        assert (await client.reply()).code == 250
    assert handler.envelopes[0].content == b"hello\r\n"


@pytest.mark.asyncio
async def test_write_back_pressure_during_inline_commands(monkeypatch: Any) -> None:
    """A reply that pauses writing suspends the command: the task finishes it."""
    handed_over: list[Any] = []
    finish = _inline._finish_suspended

    async def counting_finish(coro: Any, yielded: Any) -> Any:
        handed_over.append(yielded)
        return await finish(coro, yielded)

    monkeypatch.setattr(_inline, "_finish_suspended", counting_finish)

    class PausingTransport(MemoryTransport):
        def write(self, data: bytes | bytearray | memoryview) -> None:
            super().write(data)
            if len(data) > 60_000:
                protocol: Any = self.get_protocol()
                protocol.pause_writing()
                asyncio.get_running_loop().call_soon(protocol.resume_writing)

    transport = PausingTransport()
    server = SMTP(Recorder(), hostname="mx.test")
    async with SMTPClient(server, transport) as client:
        await client.command("EHLO me")
        count = 2000
        # Enough EHLO replies in one group to pass the write-flush size mid-group.
        await client.send(b"EHLO me\r\n" * count + TRANSACTION)
        replies = await client.replies(count + 2)
        assert {r.code for r in replies} == {250}
        assert (await client.command("RSET")).code == 250
    assert len(handed_over) >= 1


@pytest.mark.asyncio
async def test_quit_inline_closes_after_the_reply() -> None:
    async with connect() as client:
        await client.send(b"HELO me\r\nQUIT\r\nNOOP\r\n")
        assert [r.code for r in await client.replies(2)] == [250, 221]
        await client.wait_closed()
        assert client.pending() == b""


@pytest.mark.asyncio
async def test_graceful_stop_between_inline_commands() -> None:
    server = SMTP(Recorder(), hostname="mx.test")
    async with SMTPClient(server) as client:
        await client.command("EHLO me")
        server.data_received(b"NOOP\r\n")
        server.begin_shutdown()
        assert [r.code for r in await client.replies(2)] == [250, 421]
        await client.wait_closed()
