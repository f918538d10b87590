"""Scenarios: apply one load to one running server and turn it into figures.

Owns: the presets (every count, size and time limit, and how many rounds of each scenario),
the scenario list, driving Postfix's ``smtp-source`` for the two session scenarios and the
built-in client for the others, and the measurement of one round around the load (server CPU
seconds incl. children from ``/proc/<pid>/stat``, VmRSS / VmHWM from ``/proc/<pid>/status``,
wall time, how busy the whole host was).

Invariants: each scenario measures only its load (a short warm-up runs before the
measurement starts, and the peak RSS is reset after it); every external program runs with a
timeout; figures are plain JSON values. Must not know: how servers are started, how results
are rendered.
"""

from __future__ import annotations

import asyncio
import resource
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

from benchmarks import client
from benchmarks.procstat import host_busy_ticks, reset_peak_rss, sample_group
from benchmarks.servers import RunningServer, host_port

Figures = dict[str, Any]
MIB = 1 << 20


@dataclass(frozen=True)
class Preset:
    """Every count, size and bound of one benchmark run (override with ``--set key=value``)."""

    small_messages: int = 2000
    small_sessions: int = 8
    small_size: int = 5000
    per_connection_messages: int = 1000
    per_connection_sessions: int = 8
    per_connection_size: int = 5000
    pipelined_transactions: int = 2000
    pipelined_size: int = 1000
    big_sizes_mib: tuple[int, ...] = (10, 50)
    idle_connections: int = 2000
    idle_concurrency: int = 50
    idle_hold_seconds: float = 1.0
    warmup_messages: int = 50
    scenario_limit_seconds: float = 60.0
    #: Each scenario is measured this many times per server, each time on a fresh server.
    rounds: int = 3

    def with_overrides(self, overrides: dict[str, str]) -> Preset:
        """A copy with ``key=value`` strings converted to each field's type."""
        changes: dict[str, Any] = {}
        current = asdict(self)
        for key, text in overrides.items():
            if key not in current:
                known = ", ".join(sorted(current))
                raise ValueError(f"unknown parameter {key!r}; known: {known}")
            old = current[key]
            if isinstance(old, tuple):
                changes[key] = tuple(int(part) for part in text.split(",") if part.strip())
            elif isinstance(old, float):
                changes[key] = float(text)
            else:
                changes[key] = int(text)
        if changes.get("rounds", self.rounds) < 1:
            raise ValueError("rounds must be at least 1")
        return replace(self, **changes)


PRESETS: dict[str, Preset] = {
    "quick": Preset(),
    "full": Preset(
        small_messages=20000,
        per_connection_messages=5000,
        pipelined_transactions=10000,
        idle_connections=10000,
        idle_hold_seconds=2.0,
        warmup_messages=200,
        scenario_limit_seconds=240.0,
        # Five rounds: a round's figures move by 20-30 % on the shared host (whole rounds
        # at a time), so three rounds left verdicts near a target line to chance.
        rounds=5,
    ),
    # For the harness's own smoke test: seconds, not minutes.
    "smoke": Preset(
        small_messages=40,
        small_sessions=2,
        small_size=500,
        per_connection_messages=20,
        per_connection_sessions=2,
        per_connection_size=500,
        pipelined_transactions=30,
        pipelined_size=500,
        big_sizes_mib=(1,),
        idle_connections=20,
        idle_concurrency=10,
        idle_hold_seconds=0.1,
        warmup_messages=5,
        scenario_limit_seconds=20.0,
        rounds=1,
    ),
}


def client_cpu_seconds() -> float:
    """CPU seconds of this process plus its reaped children (smtp-source runs).

    Servers are reaped only after their measurement, so they never count here.
    """
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


class Measurement:
    """Server CPU, memory, wall time and host load across one measured interval."""

    def __init__(self, server: RunningServer) -> None:
        self.server = server
        self.peak_reset = reset_peak_rss(server.pid)
        self.before = sample_group(server.pid)
        self.host_before = host_busy_ticks()
        self.client_before = client_cpu_seconds()
        self.started = time.perf_counter()

    def finish(self) -> Figures:
        wall = time.perf_counter() - self.started
        after = sample_group(self.server.pid)
        busy_after, total_after = host_busy_ticks()
        busy = busy_after - self.host_before[0]
        total = max(1, total_after - self.host_before[1])
        cpu = after.cpu_seconds - self.before.cpu_seconds
        client_cpu = client_cpu_seconds() - self.client_before
        return {
            "wall_s": round(wall, 3),
            "server_cpu_s": round(cpu, 3),
            "server_cpu_util": round(cpu / wall, 3) if wall > 0 else None,
            # Near 1.0 means the client, not the server, limited the throughput.
            "client_cpu_util": round(client_cpu / wall, 3) if wall > 0 else None,
            "host_busy": round(busy / total, 3),
            "rss_before_kb": self.before.rss_kb,
            "rss_after_kb": after.rss_kb,
            "peak_rss_kb": after.hwm_kb,
            # Without a peak reset VmHWM includes start-up, so growth is an upper bound.
            "peak_growth_kb": max(0, after.hwm_kb - self.before.rss_kb),
            "peak_reset": self.peak_reset,
        }


def smtp_source_path() -> str | None:
    return shutil.which("smtp-source") or shutil.which("smtp-source", path="/usr/sbin:/usr/bin")


def run_smtp_source(
    server: RunningServer, *, sessions: int, messages: int, size: int, reuse: bool, limit: float
) -> None:
    """Run Postfix's smtp-source against ``server``; raise on failure or timeout."""
    program = smtp_source_path()
    if program is None:
        raise FileNotFoundError("smtp-source is not installed (apt-get install postfix)")
    argv = [program, "-s", str(sessions), "-m", str(messages), "-l", str(size)]
    if reuse:
        argv.append("-d")
    argv += ["-f", client.SENDER.decode(), "-t", client.RECIPIENT.decode()]
    argv += ["-M", "bench.example", host_port(server.host, server.port)]
    completed = subprocess.run(argv, capture_output=True, timeout=limit, check=False)
    if completed.returncode != 0:
        message = (completed.stderr or completed.stdout).decode(errors="replace").strip()
        raise RuntimeError(f"smtp-source exited {completed.returncode}: {message[-300:]}")


def _per_message(figures: Figures, messages: int, rate_key: str) -> Figures:
    wall, cpu = figures["wall_s"], figures["server_cpu_s"]
    figures[rate_key] = round(messages / wall, 1) if wall > 0 else None
    figures["cpu_s_per_1k"] = round(cpu * 1000 / messages, 4) if messages else None
    figures["messages"] = messages
    return figures


def _smtp_source_scenario(
    server: RunningServer,
    preset: Preset,
    *,
    sessions: int,
    messages: int,
    size: int,
    reuse: bool,
) -> Figures:
    """Warm up with ``smtp-source``, then measure ``messages`` sent over ``sessions``."""
    limit = preset.scenario_limit_seconds
    warmup = preset.warmup_messages
    run_smtp_source(
        server, sessions=min(sessions, warmup), messages=warmup, size=size, reuse=reuse, limit=limit
    )
    measurement = Measurement(server)
    run_smtp_source(
        server, sessions=sessions, messages=messages, size=size, reuse=reuse, limit=limit
    )
    return _per_message(measurement.finish(), messages, "msgs_per_s")


def scenario_small(server: RunningServer, preset: Preset) -> Figures:
    """Small messages over reused sessions: ``smtp-source -s 8 -m N -l 5000 -d``."""
    return _smtp_source_scenario(
        server,
        preset,
        sessions=preset.small_sessions,
        messages=preset.small_messages,
        size=preset.small_size,
        reuse=True,
    )


def scenario_per_connection(server: RunningServer, preset: Preset) -> Figures:
    """One message per connection: ``smtp-source`` without ``-d``."""
    return _smtp_source_scenario(
        server,
        preset,
        sessions=preset.per_connection_sessions,
        messages=preset.per_connection_messages,
        size=preset.per_connection_size,
        reuse=False,
    )


def scenario_pipelined(server: RunningServer, preset: Preset) -> Figures:
    """One session, RFC 2920 pipelining, one round trip per transaction."""
    limit = preset.scenario_limit_seconds
    asyncio.run(
        client.pipelined(
            server.host, server.port, preset.warmup_messages, preset.pipelined_size, limit
        )
    )
    measurement = Measurement(server)
    done = asyncio.run(
        client.pipelined(
            server.host, server.port, preset.pipelined_transactions, preset.pipelined_size, limit
        )
    )
    figures = _per_message(measurement.finish(), done, "tx_per_s")
    if done < preset.pipelined_transactions:
        figures["error"] = f"only {done} of {preset.pipelined_transactions} within {limit}s"
    return figures


def scenario_big(size_mib: int) -> Callable[[RunningServer, Preset], Figures]:
    """One message of ``size_mib`` MiB: MB/s, CPU-s per GB and peak RSS growth."""

    def run(server: RunningServer, preset: Preset) -> Figures:
        limit = preset.scenario_limit_seconds
        client.big_message(server.host, server.port, 64 * 1024, limit)
        # Built before the measurement: the client's CPU figure is then the transfer's.
        text = client.big_message_text(size_mib * MIB)
        measurement = Measurement(server)
        result = client.big_message(server.host, server.port, size_mib * MIB, limit, text)
        del text
        figures = measurement.finish()
        megabytes = result.size / 1e6
        figures["message_bytes"] = result.size
        figures["transfer_s"] = round(result.seconds, 3)
        figures["MBps"] = round(megabytes / result.seconds, 1) if result.seconds > 0 else None
        figures["cpu_s_per_GB"] = round(figures["server_cpu_s"] * 1000 / megabytes, 3)
        figures["peak_growth_per_message"] = round(
            figures["peak_growth_kb"] * 1024 / result.size, 2
        )
        return figures

    run.__doc__ = f"One {size_mib} MiB message."
    return run


def scenario_idle(server: RunningServer, preset: Preset) -> Figures:
    """Many connections idle after EHLO: RSS per connection; do all still answer NOOP?"""
    asyncio.run(client.pipelined(server.host, server.port, 1, 500, preset.scenario_limit_seconds))
    measurement = Measurement(server)
    held_rss: list[int] = []

    async def sample_while_held() -> None:
        end = time.monotonic() + preset.idle_hold_seconds
        while True:
            held_rss.append(sample_group(server.pid).rss_kb)
            if time.monotonic() >= end:
                return
            await asyncio.sleep(0.1)  # a sampling interval, not a wait for an event

    result = asyncio.run(
        client.idle_connections(
            server.host,
            server.port,
            preset.idle_connections,
            preset.idle_concurrency,
            preset.scenario_limit_seconds,
            sample_while_held,
        )
    )
    figures = measurement.finish()
    rss_held = max(held_rss) if held_rss else figures["rss_after_kb"]
    figures.update(
        {
            "connections": result.wanted,
            "held": result.held,
            "noop_ok": result.noop_ok,
            "connect_s": round(result.connect_seconds, 3),
            "rss_held_kb": rss_held,
            "kb_per_connection": (
                round((rss_held - figures["rss_before_kb"]) / result.held, 2)
                if result.held
                else None
            ),
        }
    )
    if result.errors:
        figures["client_errors"] = result.errors
    if result.noop_ok < result.wanted:
        figures["error"] = f"{result.noop_ok} of {result.wanted} connections answered NOOP"
    return figures


def scenario_table(preset: Preset) -> dict[str, Callable[[RunningServer, Preset], Figures]]:
    """Scenario name -> function, in report order."""
    table: dict[str, Callable[[RunningServer, Preset], Figures]] = {
        "small": scenario_small,
        "per_connection": scenario_per_connection,
        "pipelined": scenario_pipelined,
    }
    for size in preset.big_sizes_mib:
        table[f"big_{size}MiB"] = scenario_big(size)
    table["idle"] = scenario_idle
    return table
