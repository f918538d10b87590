"""The cheap per-connection path keeps every behaviour of the general one.

Connections share their loop's idle clock (made once per loop and timeout, not per
connection), a finished connection is freed by reference counting (no cycle through its
idle timer), the greeting is rendered once per server, and ``connection_lost`` after an
ended session does nothing more: these tests fail if any of that changes what a client,
a cap or a 1.4 subclass sees, or leaves anything behind.
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import Any

import pytest

from aiosmtpd import _lifecycle
from aiosmtpd._flow import IdleClock, IdleTimer
from aiosmtpd.handlers import Sink
from aiosmtpd.lmtp import LMTP
from aiosmtpd.serving import ConnectionLimiter
from aiosmtpd.smtp import SMTP
from aiosmtpd.testing.transport import MemoryTransport, SMTPClient


class SocketLikeTransport(MemoryTransport):
    """Drops its protocol once ``connection_lost`` was delivered, as asyncio's do."""

    def _connection_lost(self) -> None:
        super()._connection_lost()
        self._protocol = None


async def one_connection(server: SMTP, *commands: str) -> SMTPClient:
    """Connect, send ``commands`` and QUIT, and wait until ``connection_lost`` ran."""
    client = SMTPClient(server, SocketLikeTransport())
    await client.connect()
    for command in commands:
        await client.command(command)
    assert (await client.command("QUIT")).code == 221
    await client.transport.wait_closed()
    return client


def clock_of(server: SMTP) -> IdleClock:
    return IdleClock.clocks_of(asyncio.get_running_loop())[server._timeout_duration]


@pytest.mark.asyncio
async def test_many_connections_leave_nothing_behind() -> None:
    limiter = ConnectionLimiter(max_connections=3, max_connections_per_address=2)
    servers: weakref.WeakSet[SMTP] = weakref.WeakSet()
    gc.collect()
    gc.disable()
    try:
        for _ in range(50):
            server = SMTP(Sink(), hostname="mx.test", connection_limiter=limiter)
            servers.add(server)
            client = await one_connection(server, "EHLO me", "NOOP")
            del server, client
        # Freed by reference counting alone: no cycle through the idle timer or anything.
        assert len(servers) == 0
    finally:
        gc.enable()
    assert limiter.total == 0
    clock = clock_of(SMTP(Sink(), hostname="mx.test"))
    assert clock._buckets == {}
    assert clock._handle is None


@pytest.mark.asyncio
async def test_connections_share_their_loops_clock_even_one_at_a_time() -> None:
    first = SMTP(Sink(), hostname="mx.test", timeout=123.0)
    await one_connection(first)
    clock = clock_of(first)
    assert clock._buckets == {}  # nothing left on it between connections...
    second = SMTP(Sink(), hostname="mx.test", timeout=123.0)
    client = SMTPClient(second)
    await client.connect()
    assert second._timer._clock is clock  # ...and the next connection reuses it
    assert sum(len(bucket) for bucket in clock._buckets.values()) == 1
    assert clock._handle is not None
    await client.command("QUIT")
    await client.transport.wait_closed()
    other = SMTP(Sink(), hostname="mx.test", timeout=124.0)
    await one_connection(other)
    assert clock_of(other) is not clock


@pytest.mark.asyncio
async def test_the_timer_of_a_later_connection_still_fires() -> None:
    # The first connection leaves its clock idle; the second must still time out.
    await one_connection(SMTP(Sink(), hostname="mx.test", timeout=0.05))
    server = SMTP(Sink(), hostname="mx.test", timeout=0.05)
    client = SMTPClient(server)
    await client.connect()
    await client.command("EHLO me")
    await asyncio.wait_for(client.transport.wait_closed(), 10)
    assert client.pending().startswith(b"421 4.4.2 mx.test Error: timeout exceeded")
    assert server._timer._owner is None  # fired, then forgot the connection


def test_clocks_of_different_loops_are_not_mixed() -> None:
    first, second = asyncio.new_event_loop(), asyncio.new_event_loop()
    try:
        a = IdleClock.of(first, 300.0)
        b = IdleClock.of(second, 300.0)
        assert a is not b
        assert IdleClock.of(first, 300.0) is a  # after the other loop asked in between
        assert IdleClock.of(second, 300.0) is b
        assert IdleClock.of(first, 60.0) is not a
    finally:
        first.close()
        second.close()


class OwnTimeLoop(asyncio.SelectorEventLoop):
    """A loop with its own ``time()`` (as uvloop has): the clock calls it, weakly."""

    def time(self) -> float:
        return super().time() + 1000.0


class Owner:
    def _on_timeout(self) -> None:
        raise AssertionError("not expected to fire")


def test_a_loop_with_its_own_time_that_ends_with_open_connections_is_freed() -> None:
    loop = OwnTimeLoop()
    timer = IdleTimer(loop, 300.0, Owner())
    timer.touch()  # never cancelled
    clock = timer._clock
    assert clock is not None
    assert clock.now() >= loop.time() - 1.0  # the loop's own clock, not time.monotonic
    ended = weakref.ref(loop)
    loop.set_debug(False)
    loop.close()
    del loop, timer, clock
    gc.collect()
    assert ended() is None


@pytest.mark.asyncio
async def test_connection_lost_after_the_session_ended_releases_the_slot_once() -> None:
    limiter = ConnectionLimiter(max_connections=1)
    server = SMTP(Sink(), hostname="mx.test", connection_limiter=limiter)
    client = SMTPClient(server)
    await client.connect()
    assert limiter.total == 1
    ended = server._handler_coroutine
    await client.command("QUIT")
    assert limiter.total == 0  # released when the session ended...
    await client.transport.wait_closed()
    assert limiter.total == 0  # ...and not again by connection_lost (that would raise)
    assert server._lost
    assert ended.done()
    assert not ended.cancelled()
    assert server._handler_coroutine.done()
    # A new connection is admitted: the one slot is free.
    await one_connection(SMTP(Sink(), hostname="mx.test", connection_limiter=limiter))


@pytest.mark.asyncio
async def test_connection_lost_before_the_session_ended_still_ends_it() -> None:
    limiter = ConnectionLimiter(max_connections=1)
    server = SMTP(Sink(), hostname="mx.test", connection_limiter=limiter)
    client = SMTPClient(server)
    await client.connect()
    await client.command("EHLO me")
    server.connection_lost(ConnectionResetError())
    await asyncio.sleep(0)
    assert limiter.total == 0
    assert server._handler_coroutine.done()
    assert server._timer._clock is None
    assert server._timer._owner is None


@pytest.mark.asyncio
async def test_a_subclass_sees_the_1_4_attributes_after_connection_made() -> None:
    seen: dict[str, Any] = {}

    class Reading(SMTP):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            seen["loop"] = self.loop
            seen["session_loop"] = self.session.loop
            seen["peer"] = self.session.peer
            seen["transport"] = self.transport
            seen["writer"] = self._writer._transport
            seen["reader"] = self._reader._transport
            seen["envelope"] = self.envelope.mail_from
            seen["task"] = self._handler_coroutine.done()

    server = Reading(Sink(), hostname="mx.test")
    client = await one_connection(server)
    running = asyncio.get_running_loop()
    assert seen == {
        "loop": running,
        "session_loop": running,
        "peer": ("127.0.0.1", 54321),
        "transport": client.transport,
        "writer": client.transport,
        "reader": client.transport,
        "envelope": None,
        "task": False,
    }


@pytest.mark.asyncio
async def test_an_explicit_loop_is_kept() -> None:
    running = asyncio.get_running_loop()
    server = SMTP(Sink(), hostname="mx.test", loop=running)
    await one_connection(server)
    assert server.loop is running
    assert server.session.loop is running


@pytest.mark.asyncio
@pytest.mark.parametrize("cls", [SMTP, LMTP])
@pytest.mark.parametrize("enhanced", [False, True])
async def test_the_cached_greeting_is_the_rendered_one(cls: type[SMTP], enhanced: bool) -> None:
    for hostname, ident in (("mx.test", "Hello"), ("other.test", "ESMTP ready"), ("mx.test", "")):
        server = cls(Sink(), hostname=hostname, ident=ident, enhanced_status_codes=enhanced)
        client = SMTPClient(server)
        greeting = await client.connect()
        assert greeting is not None
        expected = f"{hostname} {ident or server.__ident__}"
        assert (greeting.code, greeting.text) == (220, expected)
        assert client.transport.writes[0] == f"220 {expected}\r\n".encode()
        await client.command("QUIT")
        await client.transport.wait_closed()


def test_the_greeting_cache_is_bounded() -> None:
    for n in range(_lifecycle._GREETINGS_MAX * 3):
        assert _lifecycle.greeting_line(f"h{n}", "x") == f"220 h{n} x".encode()
        assert len(_lifecycle._GREETINGS) <= _lifecycle._GREETINGS_MAX


@pytest.mark.asyncio
async def test_a_refused_connection_is_freed_too() -> None:
    limiter = ConnectionLimiter(max_connections=1)
    holder = SMTPClient(SMTP(Sink(), hostname="mx.test", connection_limiter=limiter))
    await holder.connect()
    refused = SMTP(Sink(), hostname="mx.test", connection_limiter=limiter)
    transport = MemoryTransport()
    client = SMTPClient(refused, transport)
    greeting = await client.connect()
    assert greeting is not None
    assert greeting.code == 421
    await transport.wait_closed()
    assert refused._released
    assert limiter.total == 1
    await holder.command("QUIT")
    await holder.transport.wait_closed()
    assert limiter.total == 0


class OwnAllowance(SMTP):
    """Computes its MAIL allowance from its own state: never served from the cache."""

    extra = 0

    def _mail_esmtp_extra(self) -> int:
        return self.extra


@pytest.mark.asyncio
async def test_core_configuration_follows_each_servers_settings() -> None:
    small = SMTP(Sink(), hostname="mx.test", data_size_limit=100)
    large = SMTP(Sink(), hostname="mx.test", data_size_limit=200)
    for server in (small, large, SMTP(Sink(), hostname="mx.test", data_size_limit=100)):
        await one_connection(server)
    assert small._conn._config is not large._conn._config
    assert small._conn._config.data_size_limit == 100
    assert large._conn._config.data_size_limit == 200
    for extra in (7, 70):
        server = OwnAllowance(Sink(), hostname="mx.test", data_size_limit=100)
        server.extra = extra
        await one_connection(server)
        assert server._conn._config.mail_esmtp_extra == extra


class SlottedHandle:
    def __init__(self, when: float) -> None:
        self._when, self.cancelled = when, False

    def when(self) -> float:
        return self._when

    def cancel(self) -> None:
        self.cancelled = True


class SlottedLoop:
    """A loop object that takes no attributes: its clocks go to the weak registry."""

    __slots__ = ("__weakref__", "clock", "handles")

    def __init__(self) -> None:
        self.clock = 1000.0
        self.handles: list[tuple[SlottedHandle, Any]] = []

    def time(self) -> float:
        return self.clock

    def call_at(self, when: float, callback: Any) -> SlottedHandle:
        handle = SlottedHandle(when)
        self.handles.append((handle, callback))
        return handle

    def fire_due(self) -> None:
        due = [(h, c) for h, c in self.handles if not h.cancelled and h.when() <= self.clock]
        self.handles = [(h, c) for h, c in self.handles if (h, c) not in due]
        for _, callback in due:
            callback()


class Counting:
    def __init__(self) -> None:
        self.timeouts = 0

    def _on_timeout(self) -> None:
        self.timeouts += 1


def test_a_loop_without_attributes_shares_clocks_through_the_weak_registry() -> None:
    loop: Any = SlottedLoop()
    owners = [Counting(), Counting()]
    timers = [IdleTimer(loop, 80.0, owner) for owner in owners]
    for timer in timers:
        timer.touch()
    assert timers[0]._clock is timers[1]._clock is not None
    assert IdleClock._clocks.get(loop) is not None  # type: ignore[call-overload]
    assert len([h for h, _ in loop.handles if not h.cancelled]) == 1
    timers[1].cancel()
    loop.clock += 80.0 * (1 + 1 / IdleClock.BUCKETS_PER_TIMEOUT) + 0.001
    loop.fire_due()
    assert [owner.timeouts for owner in owners] == [1, 0]
    assert [h for h, _ in loop.handles if not h.cancelled] == []
    ended = weakref.ref(loop)
    del loop, timers
    gc.collect()
    assert ended() is None


def test_a_loop_with_its_own_time_is_read_directly() -> None:
    loop = OwnTimeLoop()
    try:
        clock = IdleClock.of(loop, 300.0)
        assert clock.now == loop.time  # the bound method itself: no wrapper per touch
    finally:
        loop.close()


@pytest.mark.asyncio
async def test_input_after_quit_is_dropped_with_the_session() -> None:
    server = SMTP(Sink(), hostname="mx.test")
    client = SMTPClient(server, SocketLikeTransport())
    await client.connect()
    await client.send(b"QUIT\r\nNOOP\r\nMAIL FROM:<a@example.com>\r\n")
    await client.transport.wait_closed()
    assert client.pending() == b"221 Bye\r\n"
    assert server._conn.buffered_size == 0
    assert server._released
    server.data_received(b"NOOP\r\n")  # a late read after the close
    assert server._conn.buffered_size == 0
