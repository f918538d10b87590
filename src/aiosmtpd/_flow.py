"""Flow control for one SMTP connection: the idle timer and the write gate.

Owns: ``IdleTimer`` and ``IdleClock`` (RFC 5321 §4.5.3.2 idle timeout: one timer handle
per event loop and timeout for all connections, deadlines moved lazily, so a busy
pipelined connection costs no timer work per command and an idle one no handle) and
``WriteGate`` (the transport's ``pause_writing``/``resume_writing``).
Invariants: no sleeping tasks, only ``loop.call_later`` handles and futures; ``cancel``
and ``release`` are idempotent and leave nothing scheduled.
Also the receive buffer the transports of one thread read into (``receive_buffer``).
Must not know: SMTP replies, the core, hooks.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import Callable, MutableMapping
from typing import Any

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


#: ``receive_buffers.view`` is this thread's shared receive buffer (what
#: ``receive_buffer()`` returns; the engine reads the attribute itself, twice per receive).
receive_buffers = _ReceiveBuffer()


def receive_buffer() -> memoryview:
    """This thread's shared receive buffer."""
    return receive_buffers.view


#: The attribute of an event loop that holds its clocks (by timeout).
_LOOP_ATTRIBUTE = "_aiosmtpd_idle_clocks"


class IdleClock:
    """The idle deadlines of every connection of one event loop with one timeout.

    One ``call_at`` handle for all of them instead of one per connection (an idle
    connection then holds no timer handle): deadlines are kept in buckets
    ``timeout / BUCKETS_PER_TIMEOUT`` wide, so a connection times out between
    ``timeout`` and ``timeout * (1 + 1 / BUCKETS_PER_TIMEOUT)`` after its last activity
    (RFC 5321 §4.5.3.2 timeouts are minimums). ``touch()`` only stores the new deadline;
    a timer found not yet due when its bucket comes round moves to a later bucket, so
    each connection is looked at about once per timeout period.

    A clock lives as long as its loop, so that a server taking one connection at a time
    does not build and drop a clock per connection: the loop itself holds its clocks (an
    attribute of the loop object; a clock refers to its loop, so no registry outside the
    loop may hold one strongly, or the loop would never be freed). A loop that takes no
    attributes falls back to a weak registry, where a clock lives while it has timers.
    A clock has a scheduled handle only while it has timers.
    """

    BUCKETS_PER_TIMEOUT = 8

    __slots__ = ("__weakref__", "_buckets", "_handle", "_loop", "_width", "now", "timeout")

    #: Clocks of loops that take no attributes, by loop and timeout; neither the loop nor
    #: the clock is kept alive by this.
    _clocks: weakref.WeakKeyDictionary[
        asyncio.AbstractEventLoop, weakref.WeakValueDictionary[float, IdleClock]
    ] = weakref.WeakKeyDictionary()
    #: The clock ``of()`` returned last (weakly), with its timeout: every connection of a
    #: server asks for the same one.
    _last: tuple[Callable[[], IdleClock | None], float] = (lambda: None, 0.0)

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        self._loop = loop
        #: The loop's clock, read on every command: asyncio's own ``time()`` is
        #: ``time.monotonic()`` behind a Python method, so call that directly (a loop that
        #: overrides ``time()``, such as uvloop or a test's fake clock, is called as is).
        self.now: Callable[[], float] = (
            time.monotonic if type(loop).time is asyncio.BaseEventLoop.time else loop.time
        )
        self.timeout = timeout
        self._width = timeout / self.BUCKETS_PER_TIMEOUT
        self._buckets: dict[int, set[IdleTimer]] = {}
        self._handle: asyncio.TimerHandle | None = None

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop, timeout: float) -> IdleClock:
        last, last_timeout = cls._last
        clock = last()
        if clock is not None and clock._loop is loop and last_timeout == timeout:
            return clock
        clocks = cls.clocks_of(loop)
        clock = clocks.get(timeout)
        if clock is None:
            clock = clocks[timeout] = cls(loop, timeout)
        cls._last = (weakref.ref(clock), timeout)
        return clock

    @classmethod
    def clocks_of(cls, loop: asyncio.AbstractEventLoop) -> MutableMapping[float, IdleClock]:
        """The clocks of ``loop`` by timeout (made on first use)."""
        clocks: MutableMapping[float, IdleClock] | None = getattr(loop, _LOOP_ATTRIBUTE, None)
        if clocks is None:
            try:
                clocks = {}
                setattr(loop, _LOOP_ATTRIBUTE, clocks)
            except (AttributeError, TypeError):  # no instance attributes (__slots__, C type)
                clocks = cls._clocks.get(loop)
                if clocks is None:
                    clocks = cls._clocks[loop] = weakref.WeakValueDictionary()
        return clocks

    def add(self, timer: IdleTimer, deadline: float) -> int:
        """File ``timer`` under the bucket that ends at or after ``deadline``."""
        slot = int(deadline / self._width) + 1
        bucket = self._buckets.get(slot)
        if bucket is None:
            bucket = self._buckets[slot] = set()
            if self._handle is None or slot * self._width < self._handle.when():
                self._schedule(slot)
        bucket.add(timer)
        return slot

    def remove(self, timer: IdleTimer, slot: int) -> None:
        bucket = self._buckets.get(slot)
        if bucket is not None:
            bucket.discard(timer)
            if not bucket:
                del self._buckets[slot]
        if not self._buckets and self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _schedule(self, slot: int) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self._loop.call_at(slot * self._width, self._tick)

    def _tick(self) -> None:
        self._handle = None
        now = self._loop.time()
        due = sorted(slot for slot in self._buckets if slot * self._width <= now)
        for slot in due:
            for timer in self._buckets.pop(slot, ()):
                try:
                    timer._due(now)
                except Exception as error:  # one connection's failure must not stop the rest
                    self._loop.call_exception_handler(
                        {"message": "idle timeout callback failed", "exception": error}
                    )
        if self._buckets:
            self._schedule(min(self._buckets))


class IdleTimer:
    """Calls ``owner._on_timeout()`` once when ``timeout`` seconds pass without ``touch()``.

    While ``busy`` is non-zero (the server itself is working, e.g. inside a handler hook)
    the timer does not expire: the client is not the one being idle. Once cancelled (or
    fired) it forgets its owner: the connection and its timer then form no reference
    cycle, and a finished connection is freed at once instead of by the cyclic GC.
    """

    __slots__ = ("_clock", "_deadline", "_owner", "_slot", "busy")

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float | None, owner: Any) -> None:
        self._clock = IdleClock.of(loop, timeout) if timeout and timeout > 0 else None
        #: The object whose ``_on_timeout()`` is called (not a bound method: one less
        #: object per connection).
        self._owner = owner
        self._deadline = 0.0
        self._slot = 0
        self.busy = 0

    def touch(self) -> None:
        """The client made progress: the idle period starts again now."""
        clock = self._clock
        if clock is None:
            return
        self._deadline = clock.now() + clock.timeout
        if not self._slot:
            self._slot = clock.add(self, self._deadline)

    def cancel(self) -> None:
        clock = self._clock
        self._owner = None
        if clock is not None:
            self._clock = None
            if self._slot:
                clock.remove(self, self._slot)
                self._slot = 0

    def _due(self, now: float) -> None:
        """Our bucket came round (the clock already took us out of it)."""
        clock = self._clock
        self._slot = 0
        if clock is None:
            return
        if now < self._deadline:
            self._slot = clock.add(self, self._deadline)
            return
        if self.busy:
            self._deadline = now + clock.timeout
            self._slot = clock.add(self, self._deadline)
            return
        self._clock = None
        owner, self._owner = self._owner, None
        owner._on_timeout()


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
