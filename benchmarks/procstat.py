"""Read a server's CPU time and memory from ``/proc`` (Linux only).

Owns: parsing ``/proc/<pid>/stat`` (utime, stime, cutime, cstime, process group) and
``/proc/<pid>/status`` (VmRSS, VmHWM), and summing them over a process group, because a
server may fork workers. Servers are started in their own session, so every process whose
process group is the leader's pid belongs to the server under test and to nothing else.

Invariants: CPU figures include reaped children (cutime/cstime); memory is in kB as the kernel
reports it; a process that vanishes between listing and reading is skipped, never an error.
Must not know: which server runs, or what load is applied.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")


@dataclass(frozen=True)
class StatFields:
    """The fields of ``/proc/<pid>/stat`` the benchmark uses (times in clock ticks)."""

    process_group: int
    user_ticks: int
    system_ticks: int
    children_user_ticks: int
    children_system_ticks: int

    @property
    def cpu_ticks(self) -> int:
        return (
            self.user_ticks
            + self.system_ticks
            + self.children_user_ticks
            + self.children_system_ticks
        )


@dataclass(frozen=True)
class GroupSample:
    """One reading of a whole process group."""

    cpu_seconds: float
    rss_kb: int
    hwm_kb: int
    processes: int


def parse_stat(text: str) -> StatFields:
    """Parse ``/proc/<pid>/stat``; the command name may contain spaces and parentheses."""
    after_name = text[text.rindex(")") + 2 :].split()
    # after_name[0] is field 3 (state); field N is after_name[N - 3].
    return StatFields(
        process_group=int(after_name[5 - 3]),
        user_ticks=int(after_name[14 - 3]),
        system_ticks=int(after_name[15 - 3]),
        children_user_ticks=int(after_name[16 - 3]),
        children_system_ticks=int(after_name[17 - 3]),
    )


def parse_status_memory(text: str) -> tuple[int, int]:
    """Return (VmRSS, VmHWM) in kB from ``/proc/<pid>/status`` (0 for a zombie)."""
    rss = hwm = 0
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
        elif line.startswith("VmHWM:"):
            hwm = int(line.split()[1])
    return rss, hwm


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def group_members(process_group: int) -> list[int]:
    """Pids whose process group is ``process_group`` (the leader included, if alive)."""
    members = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        text = _read(entry / "stat")
        if text is None:
            continue
        try:
            if parse_stat(text).process_group == process_group:
                members.append(int(entry.name))
        except (ValueError, IndexError):
            continue
    return members


def sample_group(process_group: int) -> GroupSample:
    """CPU seconds (incl. reaped children) and summed VmRSS/VmHWM of a process group."""
    ticks = rss = hwm = count = 0
    for pid in group_members(process_group):
        stat_text = _read(PROC / str(pid) / "stat")
        status_text = _read(PROC / str(pid) / "status")
        if stat_text is None or status_text is None:
            continue
        ticks += parse_stat(stat_text).cpu_ticks
        pid_rss, pid_hwm = parse_status_memory(status_text)
        rss += pid_rss
        hwm += pid_hwm
        count += 1
    return GroupSample(ticks / CLOCK_TICKS_PER_SECOND, rss, hwm, count)


def reset_peak_rss(process_group: int) -> bool:
    """Reset VmHWM to the current VmRSS for every member (``clear_refs`` value 5).

    Returns False when the kernel refuses (old kernel, foreign uid); callers then measure the
    peak from a freshly started server instead.
    """
    done = True
    for pid in group_members(process_group):
        try:
            (PROC / str(pid) / "clear_refs").write_text("5")
        except OSError:
            done = False
    return done


def host_busy_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks over all CPUs, from ``/proc/stat``: shows foreign load."""
    first = (PROC / "stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in first[:8]]
    idle = values[3] + values[4]
    total = sum(values)
    return total - idle, total
