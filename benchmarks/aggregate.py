"""Fold the rounds of one scenario on one server into the figures the report shows.

Owns: how the per-round figures of a server (each round measured on a fresh server process)
become one set of figures: the median of every numeric figure, except the worst-case ones
(idle "held" and "answer NOOP": the minimum, the worst round must hold them all; peak RSS
growth: the maximum), the spread (min, max) of each scenario's headline figure, and the rule
that a server failing in any round has failed, with that round's error. Also which figure
headlines each scenario and the order in which rounds are measured (interleaved).

Invariants: pure functions on plain JSON values; the per-round figures are kept unchanged
under ``rounds``; a document written before rounds existed (figures without ``rounds``) reads
as one round. Must not know: how figures are measured or rendered.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

Figures = dict[str, Any]
Server = TypeVar("Server")

#: The figure each scenario is judged by; its spread over rounds is shown in the tables.
HEADLINE = {
    "small": "cpu_s_per_1k",
    "per_connection": "cpu_s_per_1k",
    "pipelined": "cpu_s_per_1k",
    "big": "MBps",
    "idle": "kb_per_connection",
}
#: Worst case is the smallest value: the worst round must still hold every idle connection.
TAKE_MIN = frozenset({"held", "noop_ok"})
#: Worst case is the largest value: the memory a server may need for one message.
TAKE_MAX = frozenset({"peak_growth_kb", "peak_growth_per_message"})


def headline_key(scenario: str) -> str | None:
    """The headline figure of ``scenario`` (``big_<N>MiB`` are all "big")."""
    return HEADLINE.get("big" if scenario.startswith("big_") else scenario)


def measurement_order(
    scenarios: Sequence[str], servers: Sequence[Server], rounds: int
) -> Iterator[tuple[str, int, Server]]:
    """(scenario, round, server): per scenario, round 1 on every server, then round 2, ...

    Interleaving the servers within each round spreads a noisy period of the shared host over
    all servers of a scenario instead of over the rounds of one server.
    """
    for scenario in scenarios:
        for round_number in range(1, rounds + 1):
            for server in servers:
                yield scenario, round_number, server


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _median(values: list[float]) -> float:
    middle = float(statistics.median(values))
    if middle.is_integer() and all(isinstance(value, int) for value in values):
        return int(middle)  # counts and kB stay integers when the median is one
    return round(middle, 6)


def combine(rounds: Sequence[Figures], scenario: str, planned: int | None = None) -> Figures:
    """One server's figures for ``scenario`` from its rounds, in the order they ran.

    A failed round fails the whole: ``ok`` is False and ``error`` is that round's, prefixed
    with its number (of ``planned`` rounds: the rounds after a failure are not run).
    Otherwise each numeric figure is the median over rounds (min or max for the worst-case
    figures above), booleans must hold in every round, and other values are kept when every
    round agrees. ``spread`` gives the headline figure's min and max.
    """
    if not rounds:
        return {"ok": False, "error": "not measured", "rounds": []}
    count = max(len(rounds), planned or 0)
    for number, figures in enumerate(rounds, start=1):
        if not figures.get("ok"):
            error = str(figures.get("error", "failed"))
            return {
                "ok": False,
                "error": f"round {number} of {count}: {error}" if count > 1 else error,
                "failed_round": number,
                "rounds": list(rounds),
            }
    combined: Figures = {}
    keys = [key for key in rounds[0] if all(key in figures for figures in rounds)]
    for key in keys:
        values = [figures[key] for figures in rounds]
        if all(_is_number(value) for value in values):
            if key in TAKE_MIN:
                combined[key] = min(values)
            elif key in TAKE_MAX:
                combined[key] = max(values)
            else:
                combined[key] = _median(values)
        elif all(isinstance(value, bool) for value in values):
            combined[key] = all(values)
        elif all(value == values[0] for value in values):
            combined[key] = values[0]
    headline = headline_key(scenario)
    if headline is not None and headline in keys:
        values = [figures[headline] for figures in rounds]
        if all(_is_number(value) for value in values):
            combined["spread"] = {"key": headline, "min": min(values), "max": max(values)}
    combined["ok"] = True
    combined["rounds"] = list(rounds)
    return combined


def round_count(figures: Figures | None) -> int:
    """How many rounds ``figures`` summarises (1 for a document without rounds)."""
    if not figures:
        return 0
    rounds = figures.get("rounds")
    return len(rounds) if isinstance(rounds, list) else 1


def spread(figures: Figures | None, key: str) -> tuple[float, float] | None:
    """(min, max) of ``key`` over the rounds of a successful result with two or more rounds."""
    if not figures or not figures.get("ok") or round_count(figures) < 2:
        return None
    recorded = figures.get("spread")
    if not isinstance(recorded, dict) or recorded.get("key") != key:
        return None
    low, high = recorded.get("min"), recorded.get("max")
    if not isinstance(low, int | float) or not isinstance(high, int | float):
        return None
    return float(low), float(high)
