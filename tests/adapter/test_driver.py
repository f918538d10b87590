"""Sessions driven from ``data_received`` with a task only while one is needed (``_driver``).

The fast path must be invisible: the same replies in the same order, hooks and overrides
always run inside the session task, write back-pressure and graceful stop behave as when
a task serves every command; an idle session holds no task.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from aiosmtpd import _driver
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session
from aiosmtpd.testing.transport import MemoryTransport, SMTPClient

from .util import Recorder, connect

TRANSACTION = b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n"


def test_inline_verbs_of_the_stock_classes() -> None:
    assert _driver._inline_verbs(SMTP) == frozenset(
        {"DATA", "EHLO", "HELO", "MAIL", "NOOP", "QUIT", "RCPT", "RSET"}
    )
    # LMTP replaces HELO and EHLO with refusals of its own: never inline.
    assert "EHLO" not in _driver._inline_verbs(LMTP)
    assert "HELO" not in _driver._inline_verbs(LMTP)


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

    assert "MAIL" not in _driver._inline_verbs(OwnMail)
    assert "RCPT" in _driver._inline_verbs(OwnMail)
    assert _driver._inline_verbs(OwnHeloCheck) == frozenset()
    assert "RSET" not in _driver._inline_verbs(LegacyRsetHook)
    assert "MAIL" in _driver._inline_verbs(LegacyRsetHook)
    assert _driver._inline_verbs(OwnExtensionLines) == frozenset()


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
            seen.append((asyncio.current_task(), server._task))
            envelope.rcpt_tos.append(address)
            return "250 rcpt ok"

    server = SMTP(Handler(), hostname="mx.test")
    async with SMTPClient(server) as client:
        await client.command("EHLO me")
        await client.send(TRANSACTION + b"NOOP\r\n")
        replies = await client.replies(3)
        assert [(r.code, r.text) for r in replies] == [(250, "OK"), (250, "rcpt ok"), (250, "OK")]
    assert len(seen) == 1
    assert seen[0][0] is not None
    assert seen[0][0] is seen[0][1]


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
    finish = _driver.finish_in_task

    async def counting_finish(coro: Any, yielded: Any) -> Any:
        handed_over.append(yielded)
        return await finish(coro, yielded)

    monkeypatch.setattr(_driver, "finish_in_task", counting_finish)

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


MESSAGE = TRANSACTION + b"DATA\r\nSubject: x\r\n\r\nhello\r\n.\r\n"


def _count_tasks(loop: asyncio.AbstractEventLoop) -> list[Any]:
    """Record every task the loop creates from now on (restored by the caller)."""
    created: list[Any] = []

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        task = asyncio.Task(coro, loop=loop, **kwargs)
        created.append(task)
        return task

    loop.set_task_factory(factory)  # type: ignore[arg-type]
    return created


@pytest.mark.asyncio
async def test_an_idle_session_holds_no_task() -> None:
    server = SMTP(Recorder(), hostname="mx.test")
    async with SMTPClient(server) as client:
        await client.command("EHLO me")
        await client.send(MESSAGE)
        assert [r.code for r in await client.replies(4)] == [250, 250, 354, 250]
        assert server._task is None
        assert server._suspended is None
        assert not server._handler_coroutine.done()


@pytest.mark.asyncio
async def test_a_transaction_without_hooks_creates_no_task() -> None:
    class NoHooks:
        pass

    loop = asyncio.get_running_loop()
    server = SMTP(NoHooks(), hostname="mx.test")
    async with SMTPClient(server) as client:
        created = _count_tasks(loop)
        try:
            await client.command("EHLO me")
            await client.send(MESSAGE + MESSAGE)
            assert [r.code for r in await client.replies(8)] == [250, 250, 354, 250] * 2
            assert (await client.command("QUIT")).code == 221
        finally:
            loop.set_task_factory(None)
        assert not [task for task in created if "_session_task" in repr(task.get_coro())]


@pytest.mark.asyncio
async def test_data_content_waits_without_a_task_and_the_hook_runs_in_one() -> None:
    seen: list[Any] = []

    class Handler(Recorder):
        async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
            # asyncio.timeout() only works inside a task: user code must run in one.
            async with asyncio.timeout(5):
                await asyncio.sleep(0)
            seen.append((asyncio.current_task(), server._task))
            return await super().handle_DATA(server, session, envelope)

    handler = Handler()
    server = SMTP(handler, hostname="mx.test")
    async with SMTPClient(server) as client:
        await client.command("EHLO me")
        await client.send(TRANSACTION + b"DATA\r\n")
        assert [r.code for r in await client.replies(3)] == [250, 250, 354]
        # Waiting for the content: the command is parked, no task exists.
        assert server._task is None
        assert server._suspended is not None
        await client.send(b"hello\r\n.\r\n")
        assert (await client.reply()).code == 250
        assert server._task is None
        assert server._suspended is None
    assert handler.envelopes[0].content == b"hello\r\n"
    assert len(seen) == 1
    assert seen[0][0] is not None
    assert seen[0][0] is seen[0][1]


@pytest.mark.asyncio
async def test_process_message_runs_in_the_session_task() -> None:
    seen: list[Any] = []

    class Legacy:
        async def process_message(self, peer: Any, sender: str, rcpt_tos: Any, data: Any) -> None:
            seen.append(asyncio.current_task())

    server = SMTP(Legacy(), hostname="mx.test")
    async with SMTPClient(server) as client:
        await client.command("EHLO me")
        await client.send(TRANSACTION + b"DATA\r\n")
        await client.replies(3)
        with pytest.warns(DeprecationWarning, match="process_message"):
            await client.send(b"hello\r\n.\r\n")
        assert (await client.reply()).code == 250
    assert len(seen) == 1
    assert seen[0] is not None


@pytest.mark.asyncio
async def test_handler_coroutine_is_done_when_the_session_is() -> None:
    server = SMTP(Recorder(), hostname="mx.test")
    client = SMTPClient(server)
    await client.connect()
    ended = server._handler_coroutine
    await client.command("EHLO me")
    assert not ended.done()
    assert (await client.command("QUIT")).code == 221
    await client.wait_closed()
    await asyncio.wait_for(ended, 5)
    # Asked for only after the end: already done.
    late = SMTP(Recorder(), hostname="mx.test")
    async with SMTPClient(late) as other:
        await other.command("QUIT")
        await other.wait_closed()
    assert late._handler_coroutine.done()
    await client.close()


@pytest.mark.asyncio
async def test_cancelling_handler_coroutine_ends_the_session() -> None:
    server = SMTP(Recorder(), hostname="mx.test")
    async with SMTPClient(server) as client:
        await client.command("EHLO me")
        await client.send(TRANSACTION + b"DATA\r\nhalf a message\r\n")
        await client.replies(3)
        server._handler_coroutine.cancel()
        await client.wait_closed()
        assert server._suspended is None
        assert server._task is None
    assert client.protocol is server


@pytest.mark.asyncio
async def test_an_internal_error_while_driving_ends_only_that_session(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken(SMTP):
        broken = False

        def _ready_event(self) -> Any:
            if self.broken:
                raise RuntimeError("broken")
            return super()._ready_event()

    server = Broken(Recorder(), hostname="mx.test")
    async with SMTPClient(server) as client:
        await client.command("HELO me")
        server.broken = True
        server.data_received(b"NOOP\r\n")  # must not raise into the transport's callback
        await client.wait_closed()
    assert "SMTP session exception" in caplog.text


@pytest.mark.asyncio
async def test_a_hook_raising_cancelled_error_ends_the_session_without_a_250() -> None:
    class Cancelling(Recorder):
        async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
            cancelled = asyncio.get_running_loop().create_future()
            cancelled.cancel()
            await cancelled  # something this hook depended on was cancelled
            return "250 never"

    server = SMTP(Cancelling(), hostname="mx.test")
    async with SMTPClient(server) as client:
        await client.command("EHLO me")
        await client.send(MESSAGE)
        assert [r.code for r in await client.replies(3)] == [250, 250, 354]
        await client.wait_closed()
        # The client must never read a later reply as the answer to its message.
        assert b"250 never" not in client.transport.output
        assert client.pending() == b""
    await asyncio.wait_for(server._handler_coroutine, 5)


@pytest.mark.asyncio
async def test_library_commands_run_in_a_task_of_their_own() -> None:
    """1.4 subclasses may run super()'s command under wait_for() (a task of its own on
    Python 3.11), create_task() or gather(): it waits for input and calls hooks there."""

    class Wrapping(SMTP):
        async def smtp_DATA(self, arg: str | None) -> None:
            await asyncio.wait_for(asyncio.ensure_future(super().smtp_DATA(arg)), 30)

        async def smtp_NOOP(self, arg: str | None) -> None:
            await asyncio.create_task(super().smtp_NOOP(arg))

    handler = Recorder()
    server = Wrapping(handler, hostname="mx.test")
    async with SMTPClient(server) as client:
        await client.command("EHLO me")
        await client.send(TRANSACTION + b"DATA\r\n")
        assert [r.code for r in await client.replies(3)] == [250, 250, 354]
        await client.send(b"hello\r\n.\r\n")
        assert (await client.reply()).code == 250
        assert (await client.command("NOOP")).code == 250
    assert [e.content for e in handler.envelopes] == [b"hello\r\n"]


@pytest.mark.asyncio
async def test_a_slow_process_message_is_not_an_idle_client() -> None:
    release = asyncio.get_running_loop().create_future()

    class Slow:
        async def process_message(self, peer: Any, sender: str, rcpt_tos: Any, data: Any) -> None:
            await release

    server = SMTP(Slow(), hostname="mx.test", timeout=0.1)
    async with SMTPClient(server) as client:
        await client.command("EHLO me")
        await client.send(TRANSACTION + b"DATA\r\n")
        await client.replies(3)
        with pytest.warns(DeprecationWarning, match="process_message"):
            await client.send(b"hello\r\n.\r\n")
        closed = asyncio.ensure_future(client.wait_closed())
        # Pacing, not a wait for an event: three timeouts pass while delivery runs.
        await asyncio.wait([closed], timeout=0.3)
        assert not closed.done()
        release.set_result(None)
        assert (await client.reply()).code == 250
    await closed
