"""The shared idle clock: one timer handle per loop and timeout, for every connection."""

from __future__ import annotations

import heapq
from typing import Any

import pytest

from aiosmtpd._flow import IdleClock, IdleTimer


class FakeHandle:
    def __init__(self, loop: FakeLoop, when: float, callback: Any) -> None:
        self.loop, self._when, self.callback, self.cancelled = loop, when, callback, False

    def when(self) -> float:
        return self._when

    def cancel(self) -> None:
        self.cancelled = True

    def __lt__(self, other: FakeHandle) -> bool:
        return self._when < other._when


class FakeLoop:
    """Just enough of a loop for IdleClock: a clock we move by hand."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.handles: list[FakeHandle] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Any) -> FakeHandle:
        handle = FakeHandle(self, when, callback)
        heapq.heappush(self.handles, handle)
        return handle

    def pending(self) -> list[FakeHandle]:
        return [h for h in self.handles if not h.cancelled]

    def advance(self, seconds: float) -> None:
        self.now += seconds
        while self.handles and self.handles[0].when() <= self.now:
            handle = heapq.heappop(self.handles)
            if not handle.cancelled:
                handle.callback()


class Owner:
    def __init__(self) -> None:
        self.timeouts = 0

    def _on_timeout(self) -> None:
        self.timeouts += 1


def make(loop: FakeLoop, timeout: float = 80.0) -> tuple[IdleTimer, Owner]:
    owner = Owner()
    timer = IdleTimer(loop, timeout, owner)  # type: ignore[arg-type]
    timer.touch()
    return timer, owner


def test_many_connections_share_one_handle() -> None:
    loop = FakeLoop()
    timers = [make(loop) for _ in range(1000)]
    assert len(loop.pending()) == 1
    for timer, _ in timers:
        timer.cancel()
    assert loop.pending() == []
    clocks = IdleClock.clocks_of(loop)  # type: ignore[arg-type]
    assert list(clocks) == [80.0]  # the one clock all 1,000 timers shared
    assert not any(clock._buckets for clock in clocks.values())


@pytest.mark.parametrize("idle", [79.0, 80.0])
def test_not_before_the_timeout(idle: float) -> None:
    loop = FakeLoop()
    timer, owner = make(loop)
    loop.advance(idle - 0.001)
    assert owner.timeouts == 0
    timer.cancel()


def test_fires_once_within_one_bucket_after_the_timeout() -> None:
    loop = FakeLoop()
    _, owner = make(loop)
    loop.advance(80.0 * (1 + 1 / IdleClock.BUCKETS_PER_TIMEOUT) + 0.001)
    assert owner.timeouts == 1
    loop.advance(1000)
    assert owner.timeouts == 1
    assert loop.pending() == []


def test_activity_moves_the_deadline() -> None:
    loop = FakeLoop()
    timer, owner = make(loop)
    for _ in range(10):
        loop.advance(60)
        timer.touch()
    assert owner.timeouts == 0
    loop.advance(80.0 * (1 + 1 / IdleClock.BUCKETS_PER_TIMEOUT) + 0.001)
    assert owner.timeouts == 1


def test_a_busy_server_is_not_an_idle_client() -> None:
    loop = FakeLoop()
    timer, owner = make(loop)
    timer.busy += 1
    loop.advance(500)
    assert owner.timeouts == 0
    timer.busy -= 1
    loop.advance(80.0 * (1 + 2 / IdleClock.BUCKETS_PER_TIMEOUT) + 0.001)
    assert owner.timeouts == 1


def test_no_timeout_means_no_clock() -> None:
    loop = FakeLoop()
    for timeout in (None, 0, -1):
        timer = IdleTimer(loop, timeout, Owner())  # type: ignore[arg-type]
        timer.touch()
        timer.cancel()
    assert loop.handles == []


def test_a_loop_that_ends_with_open_connections_is_not_kept_alive() -> None:
    import asyncio
    import gc
    import weakref

    loop = asyncio.SelectorEventLoop()
    timer = IdleTimer(loop, 300.0, Owner())
    timer.touch()  # a connection the test never closed
    ended = weakref.ref(loop)
    loop.set_debug(False)  # a debug loop logs "Close <loop>": the log record would keep it
    loop.close()
    del loop, timer
    gc.collect()
    assert ended() is None
