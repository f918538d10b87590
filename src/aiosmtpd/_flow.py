"""Flow control for one SMTP connection: the idle timer and the write gate.

Owns: ``IdleTimer`` (RFC 5321 §4.5.3.2 idle timeout with a lazily moved deadline, so a
busy pipelined connection costs one ``call_later`` per timeout period, not one per
command) and ``WriteGate`` (the transport's ``pause_writing``/``resume_writing``).
Invariants: no sleeping tasks, only ``loop.call_later`` handles and futures; ``cancel``
and ``release`` are idempotent and leave nothing scheduled.
Also the receive buffer the transports of one thread read into (``receive_buffer``).
Must not know: SMTP replies, the core, hooks.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

#: Size of the receive buffer shared by the connections one thread serves (asyncio's own
#: read size). One per thread, not per connection: idle connections must not hold it.
RECEIVE_BUFFER_SIZE = 256 * 1024


class _ReceiveBuffer(threading.local):
    """The buffer the transports of this thread's event loop read into (``recv_into``).

    Sharing it is safe because a transport calls ``get_buffer``, reads, and calls
    ``buffer_updated`` in one step, and the engine hands the bytes to the core, which
    copies them, before it returns. Reusing one buffer saves a fresh 256 KiB ``bytes``
    per read: with glibc those large short-lived allocations trim and regrow the heap,
    so every read faulted fresh pages in (about 2.4x the minor faults per GB of a big
    message).
    """

    def __init__(self) -> None:
        self.view = memoryview(bytearray(RECEIVE_BUFFER_SIZE))


_receive_buffer = _ReceiveBuffer()


def receive_buffer() -> memoryview:
    """This thread's shared receive buffer."""
    return _receive_buffer.view


class IdleTimer:
    """Calls ``on_expire`` once when ``timeout`` seconds pass without ``touch()``.

    While ``busy`` is non-zero (the server itself is working, e.g. inside a handler hook)
    the timer does not expire: the client is not the one being idle.
    """

    __slots__ = ("_cancelled", "_deadline", "_handle", "_loop", "_on_expire", "_timeout", "busy")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        timeout: float | None,
        on_expire: Callable[[], None],
    ) -> None:
        self._loop = loop
        self._timeout = timeout if timeout and timeout > 0 else None
        self._on_expire = on_expire
        self._deadline = 0.0
        self._handle: asyncio.TimerHandle | None = None
        self._cancelled = False
        self.busy = 0

    def touch(self) -> None:
        """The client made progress: the idle period starts again now."""
        if self._timeout is None or self._cancelled:
            return
        self._deadline = self._loop.time() + self._timeout
        if self._handle is None:
            self._handle = self._loop.call_at(self._deadline, self._fire)

    def cancel(self) -> None:
        self._cancelled = True
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _fire(self) -> None:
        self._handle = None
        if self._cancelled or self._timeout is None:
            return
        now = self._loop.time()
        if now < self._deadline:
            self._handle = self._loop.call_at(self._deadline, self._fire)
            return
        if self.busy:
            self._deadline = now + self._timeout
            self._handle = self._loop.call_at(self._deadline, self._fire)
            return
        self._cancelled = True
        self._on_expire()


class WriteGate:
    """Mirrors the transport's write flow control as something a task can await.

    A peer that stops reading its replies keeps writes paused; ``pause`` can arm a stall
    timer so that such a peer is dropped instead of holding the connection forever (the
    idle timer does not run while a command is in progress).
    """

    __slots__ = ("_stall", "_waiter", "paused")

    def __init__(self) -> None:
        self.paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._stall: asyncio.TimerHandle | None = None

    def pause(
        self, stall_after: float | None = None, on_stall: Callable[[], None] | None = None
    ) -> None:
        if not self.paused and stall_after and on_stall is not None:
            self._stall = asyncio.get_running_loop().call_later(stall_after, on_stall)
        self.paused = True

    def resume(self) -> None:
        self.paused = False
        self._cancel_stall()
        self._release_waiter()

    def release(self) -> None:
        """The connection is gone: nobody may stay blocked on it."""
        self.paused = False
        self._cancel_stall()
        self._release_waiter()

    def _cancel_stall(self) -> None:
        if self._stall is not None:
            self._stall.cancel()
            self._stall = None

    async def wait(self) -> None:
        if not self.paused:
            return
        if self._waiter is None or self._waiter.done():
            self._waiter = asyncio.get_running_loop().create_future()
        await self._waiter

    def _release_waiter(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        self._waiter = None
