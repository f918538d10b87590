"""``python -m aiosmtpd --workers N``: a worker killed with SIGKILL is replaced.

The parent announces each replacement on stderr (``worker PID exited (...); started
worker PID``), which is what the test waits for; the worker pids are read from /proc.
"""

from __future__ import annotations

import os
import signal
import smtplib
from pathlib import Path
from typing import Any

import pytest

from .test_cli import TIMEOUT, _python, running

HOST = "127.0.0.1"


def _children(pid: int) -> set[int]:
    """The pids whose parent is ``pid`` (Linux /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces, so split after the ")".
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == pid:
            found.add(int(entry.name))
    return found


def _send_several(port: int, count: int) -> None:
    for number in range(count):
        with smtplib.SMTP(HOST, port, timeout=TIMEOUT) as client:
            refused = client.sendmail("a@x.test", ["b@y.test"], f"Subject: {number}\r\n\r\nx\r\n")
            assert refused == {}


def _wait_for_replacement(server: Any, victim: int) -> int:
    """The pid that replaced ``victim``, once it listens (the two lines come in any order)."""
    started: int | None = None
    listening: set[int] = set()
    pattern = rf"worker {victim} exited \(-9\); started worker (\d+)|worker (\d+) listening"
    while started is None or started not in listening:
        match = server.wait_for(pattern, stream="stderr")
        if match.group(1) is not None:
            started = int(match.group(1))
        else:
            listening.add(int(match.group(2)))
    return started


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_a_killed_worker_is_replaced_and_the_port_keeps_serving() -> None:
    argv = _python(
        "-m", "aiosmtpd", "-n", "-c", "aiosmtpd.handlers.Sink", "-l", f"{HOST}:0",
        "--workers", "2",
    )  # fmt: skip
    with running(argv) as server:
        port = server.wait_listening()
        workers = _children(server.proc.pid)
        assert len(workers) == 2
        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        replacement = _wait_for_replacement(server, victim)
        _send_several(port, 8)
        assert _children(server.proc.pid) == (workers - {victim}) | {replacement}
        # The replacement serves too: kill the other original; only it is left.
        survivor = max(workers)
        os.kill(survivor, signal.SIGKILL)
        server.wait_for(rf"worker {survivor} exited \(-9\)", stream="stderr")
        _send_several(port, 4)
        code = server.stop()
    assert code == 0, server.all_stderr
    assert "Traceback" not in server.all_stderr
