"""Turn one run's figures into ratios, target verdicts, Markdown / reST tables and a PNG plot.

Owns: the columns of each scenario's table, the issue's performance targets, ratios against the
baseline measured IN THE SAME RUN, and every rendering of a result document (the JSON written
by ``run.py``). Works on plain dicts so a saved JSON can be re-rendered later, including one
written before rounds existed (read as one round).

Invariants: a missing or failed figure renders as "-" / "pending", never as a number; ratios
and verdicts use the figures ``aggregate.combine`` put at the top of each result (medians;
min / max for the worst-case ones), and are only taken between two figures of the same
document; the headline figure's spread over rounds is shown next to it as ``[min-max]``.
matplotlib is optional: ``plot`` raises ``PlotUnavailable`` with an install hint when it is
missing. Must not know: how figures were measured.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.aggregate import headline_key, round_count, spread

Document = dict[str, Any]
BASELINE = "aiosmtpd-1.4.6"
EN_DASH = "\u2013"  # between the min and the max of a spread
# Candidate -> the server it is held against (same event loop).
PAIRS = {"aiosmtpd-2": "aiosmtpd-1.4.6", "aiosmtpd-2-uvloop": "aiosmtpd-1.4.6-uvloop"}


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    lower_is_better: bool


MESSAGE_COLUMNS = (
    Column("cpu_s_per_1k", "CPU-s/1k msg", True),
    Column("msgs_per_s", "msg/s", False),
    Column("peak_rss_kb", "peak RSS kB", True),
)
COLUMNS: dict[str, tuple[Column, ...]] = {
    "small": MESSAGE_COLUMNS,
    "per_connection": MESSAGE_COLUMNS,
    "pipelined": (Column("cpu_s_per_1k", "CPU-s/1k tx", True), Column("tx_per_s", "tx/s", False)),
    "big": (
        Column("MBps", "MB/s", False),
        Column("cpu_s_per_GB", "CPU-s/GB", True),
        Column("peak_growth_kb", "peak RSS growth kB", True),
        Column("peak_growth_per_message", "growth / msg size", True),
        Column("client_cpu_util", "client CPU util", True),
    ),
    "idle": (
        Column("kb_per_connection", "kB/conn", True),
        Column("held", "held", False),
        Column("noop_ok", "answer NOOP", False),
    ),
}
NO_RATIO = {"held", "noop_ok", "client_cpu_util"}
TITLES = {
    "small": "Small messages, sessions reused (smtp-source -d)",
    "per_connection": "One message per connection (smtp-source)",
    "pipelined": "Pipelined transactions (RFC 2920, built-in client)",
    "big": "One {} message (built-in client)",
    "idle": "Idle connections after EHLO",
}


def scenario_kind(scenario: str) -> str:
    return "big" if scenario.startswith("big_") else scenario


def scenario_title(scenario: str) -> str:
    kind = scenario_kind(scenario)
    if kind == "big":
        return TITLES["big"].format(scenario.removeprefix("big_").replace("MiB", " MiB"))
    return TITLES.get(kind, scenario)


def figure(document: Document, scenario: str, server: str, key: str) -> float | None:
    """A successful numeric figure, or None when it is missing or the scenario failed."""
    figures = document.get("results", {}).get(scenario, {}).get(server)
    if not figures or not figures.get("ok"):
        return None
    value = figures.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def ratio(document: Document, scenario: str, server: str, other: str, key: str) -> float | None:
    """``server``'s figure divided by ``other``'s, both from this document."""
    mine = figure(document, scenario, server, key)
    theirs = figure(document, scenario, other, key)
    if mine is None or theirs is None or theirs == 0:
        return None
    return mine / theirs


def format_number(value: float | None) -> str:
    if value is None:
        return "-"
    if float(value).is_integer():
        return f"{int(value):,}"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 0.01:
        return f"{value:.3g}"
    return f"{value:.2g}"


def format_ratio(value: float | None) -> str:
    if value is None:
        return ""
    if value >= 0.5:
        return f"{value:.2g}x" if value < 10 else f"{value:.0f}x"
    return f"1/{1 / value:.2g}" if value > 0 else "0x"


@dataclass(frozen=True)
class Target:
    """One row of the issue's targets table."""

    scenario: str
    key: str
    description: str
    relative: bool  # True: compare the ratio to the paired 1.4.6 server; False: absolute
    at_most: float | None = None
    at_least: float | None = None
    #: Compare against this server instead of the candidate's 1.4.6 pair (relative targets).
    reference: str | None = None
    #: Only this candidate has the target (the issue's "on uvloop" rows).
    only: str | None = None

    def verdict(self, value: float | None) -> str:
        if value is None:
            return "pending"
        if self.at_most is not None and value > self.at_most:
            return "missed"
        if self.at_least is not None and value < self.at_least:
            return "missed"
        return "met"


TARGETS = (
    Target("small", "cpu_s_per_1k", "small msgs: CPU/1k <= 1/4 of 1.4.6", True, at_most=1 / 4),
    Target(
        "per_connection",
        "cpu_s_per_1k",
        "one per connection: CPU/1k <= 1/2.5",
        True,
        at_most=1 / 2.5,
    ),
    Target(
        "small",
        "cpu_s_per_1k",
        "small msgs: CPU/1k <= 2x smtp-sink",
        True,
        at_most=2,
        reference="smtp-sink",
        only="aiosmtpd-2-uvloop",
    ),
    Target(
        "per_connection",
        "cpu_s_per_1k",
        "one per connection: CPU/1k <= 2x smtp-sink",
        True,
        at_most=2,
        reference="smtp-sink",
        only="aiosmtpd-2-uvloop",
    ),
    Target("pipelined", "cpu_s_per_1k", "pipelined: CPU/1k <= 1/5 of 1.4.6", True, at_most=1 / 5),
    Target("big_10MiB", "MBps", "10 MiB: MB/s >= 20x 1.4.6", True, at_least=20),
    Target(
        "big_10MiB",
        "peak_growth_per_message",
        "10 MiB: peak RSS growth <= 1.5x size",
        False,
        at_most=1.5,
    ),
    Target("big_50MiB", "MBps", "50 MiB: MB/s >= 20x 1.4.6", True, at_least=20),
    Target(
        "big_50MiB",
        "peak_growth_per_message",
        "50 MiB: peak RSS growth <= 1.5x size",
        False,
        at_most=1.5,
    ),
    Target("idle", "kb_per_connection", "idle: <= 3 kB per connection", False, at_most=3.0),
    Target("idle", "noop_ok", "idle: 10,000 held, all answer NOOP", False, at_least=10000),
)


def target_rows(document: Document) -> Iterator[tuple[str, str, str, str]]:
    """(target, candidate, measured, verdict) for each target and each candidate present."""
    names = {server["name"] for server in document.get("servers", [])}
    for candidate, pair in PAIRS.items():
        if candidate not in names:
            continue
        for target in TARGETS:
            if target.scenario not in document.get("results", {}):
                continue
            if target.only is not None and candidate != target.only:
                continue
            if target.relative:
                reference = target.reference or pair
                value = ratio(document, target.scenario, candidate, reference, target.key)
                measured = f"{format_ratio(value)} of {reference}" if value is not None else "-"
            else:
                value = figure(document, target.scenario, candidate, target.key)
                measured = format_number(value)
            verdict = target.verdict(value)
            if target.key == "noop_ok" and value is not None:
                verdict = idle_count_verdict(document, candidate, value, target)
            yield target.description, candidate, measured, verdict


def idle_count_verdict(document: Document, server: str, answered: float, target: Target) -> str:
    """All opened connections must answer; the count itself is only tested by a full run."""
    opened = figure(document, target.scenario, server, "connections") or 0.0
    if answered < opened:
        return "missed"
    if target.at_least is not None and opened < target.at_least:
        return f"all answered; only {format_number(opened)} opened (run the full preset)"
    return "met"


def figure_spread(
    document: Document, scenario: str, server: str, key: str
) -> tuple[float, float] | None:
    """(min, max) of ``key`` over the rounds, for the headline figure of a multi-round run."""
    return spread(document.get("results", {}).get(scenario, {}).get(server), key)


def format_spread(bounds: tuple[float, float] | None) -> str:
    if bounds is None:
        return ""
    return f" [{format_number(bounds[0])}{EN_DASH}{format_number(bounds[1])}]"


def cell(document: Document, scenario: str, server: str, column: Column) -> str:
    value = figure(document, scenario, server, column.key)
    text = format_number(value)
    if value is not None and server != BASELINE and column.key not in NO_RATIO:
        relative = ratio(document, scenario, server, BASELINE, column.key)
        if relative is not None:
            text += f" ({format_ratio(relative)})"
    if value is not None:
        text += format_spread(figure_spread(document, scenario, server, column.key))
    return text


def rounds_of(document: Document) -> int:
    """Rounds per server in this document (the preset's; 1 for a document before rounds)."""
    rounds = document.get("params", {}).get("rounds")
    if isinstance(rounds, int) and rounds > 0:
        return rounds
    counts = [
        round_count(figures)
        for results in document.get("results", {}).values()
        for figures in results.values()
    ]
    return max(counts, default=1)


def rounds_note(document: Document) -> str:
    """How to read the figures: medians of N rounds, which are worst cases, what [min-max] is."""
    rounds = rounds_of(document)
    if rounds < 2:
        return "One round per server (a fresh server per scenario): single measurements."
    return (
        f"Each figure is the median of {rounds} rounds, each on a fresh server, the servers "
        "interleaved round by round; idle held / answer NOOP are the minimum and peak RSS "
        f"growth the maximum over rounds (worst case); [min{EN_DASH}max] is the spread of the "
        "headline figure over the rounds."
    )


def server_status(document: Document, scenario: str, server: str) -> str:
    figures = document.get("results", {}).get(scenario, {}).get(server)
    if figures is None:
        return "not run"
    if figures.get("ok"):
        return "ok"
    return "failed: " + str(figures.get("error", "?"))[:60]


def table_rows(document: Document, scenario: str) -> tuple[list[str], list[list[str]]]:
    columns = COLUMNS.get(scenario_kind(scenario), ())
    header = ["server", *(column.label for column in columns), "status"]
    rows = []
    for server in document.get("servers", []):
        name = server["name"]
        rows.append(
            [
                name,
                *(cell(document, scenario, name, column) for column in columns),
                server_status(document, scenario, name),
            ]
        )
    return header, rows


def server_rows(document: Document) -> tuple[list[str], list[list[str]]]:
    rows = []
    for server in document.get("servers", []):
        state = "measured" if server.get("available") else f"pending: {server.get('error')}"
        rows.append([server["name"], server.get("description", ""), state])
    return ["server", "what", "state"], rows


def _markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def markdown(document: Document) -> str:
    """The whole report: one table per scenario, then the targets."""
    lines = [
        f"# aiosmtpd benchmark {document.get('stamp', '')} (preset {document.get('preset')})",
        "",
        f"Ratios in parentheses are against {BASELINE} measured in this same run; "
        f"host: {document.get('host', {}).get('cpus')} CPUs, noisy when shared; "
        f"aiosmtpd 2 at revision {document.get('revision', 'unknown')}.",
        "",
        rounds_note(document),
    ]
    for scenario in document.get("results", {}):
        header, rows = table_rows(document, scenario)
        lines += ["", f"## {scenario_title(scenario)}", "", *_markdown_table(header, rows)]
    lines += ["", "## Servers", "", *_markdown_table(*server_rows(document))]
    targets = list(target_rows(document))
    if targets:
        lines += ["", "## Targets", ""]
        lines += _markdown_table(
            ["target", "server", "measured", "verdict"], [list(row) for row in targets]
        )
    return "\n".join(lines) + "\n"


def _rst_csv(title: str, header: list[str], rows: list[list[str]]) -> list[str]:
    def quote(text: str) -> str:
        return '"' + text.replace('"', '""') + '"'

    lines = [f".. csv-table:: {title}", "   :header: " + ", ".join(quote(h) for h in header), ""]
    lines += ["   " + ", ".join(quote(value) for value in row) for row in rows]
    return [*lines, ""]


def restructuredtext(document: Document) -> str:
    """The same tables as reST ``csv-table`` directives, for docs/performance.rst."""
    lines: list[str] = [rounds_note(document), ""]
    for scenario in document.get("results", {}):
        header, rows = table_rows(document, scenario)
        lines += _rst_csv(scenario_title(scenario), header, rows)
    lines += _rst_csv("Servers", *server_rows(document))
    targets = list(target_rows(document))
    if targets:
        header = ["target", "server", "measured", "verdict"]
        lines += _rst_csv("Targets", header, [list(row) for row in targets])
    return "\n".join(lines)


class PlotUnavailable(RuntimeError):
    """matplotlib is not installed."""


PLOTTED = (
    ("small", "cpu_s_per_1k", "small msgs: server CPU-s / 1k msgs"),
    ("per_connection", "cpu_s_per_1k", "one per connection: CPU-s / 1k msgs"),
    ("pipelined", "cpu_s_per_1k", "pipelined: CPU-s / 1k tx"),
    ("big_10MiB", "MBps", "10 MiB message: MB/s (higher is better)"),
    ("big_50MiB", "MBps", "50 MiB message: MB/s (higher is better)"),
    ("big_10MiB", "peak_growth_per_message", "10 MiB: peak RSS growth / msg size"),
    ("big_50MiB", "peak_growth_per_message", "50 MiB: peak RSS growth / msg size"),
    ("idle", "kb_per_connection", "idle: kB RSS per connection"),
)


def plot(document: Document, path: Path) -> Path:
    """Write a PNG with one bar chart per headline figure; return its path."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise PlotUnavailable(
            "the plot needs matplotlib: .venv/bin/pip install matplotlib (or --no-plot)"
        ) from error
    panels = [p for p in PLOTTED if p[0] in document.get("results", {})]
    servers = [server["name"] for server in document.get("servers", [])]
    columns = 2
    rows = max(1, (len(panels) + columns - 1) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(12, 2.0 + 1.9 * rows), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for index, (scenario, key, title) in enumerate(panels):
        axis = axes[index // columns][index % columns]
        values = [figure(document, scenario, name, key) for name in servers]
        positions = list(range(len(servers)))
        axis.barh(
            positions,
            [value or 0.0 for value in values],
            color=[colours[i % len(colours)] for i in positions],
        )
        label_at = [value or 0.0 for value in values]
        if key == headline_key(scenario):  # whiskers: the spread over rounds
            for position, name, value in zip(positions, servers, values, strict=True):
                bounds = figure_spread(document, scenario, name, key)
                if value is not None and bounds is not None:
                    low, high = max(0.0, value - bounds[0]), max(0.0, bounds[1] - value)
                    axis.errorbar(value, position, xerr=[[low], [high]], fmt="none", ecolor="black")
                    label_at[position] = max(value, bounds[1])
        axis.set_yticks(positions, servers, fontsize=8)
        axis.invert_yaxis()
        axis.set_title(title, fontsize=9)
        axis.tick_params(axis="x", labelsize=7)
        for position, value in zip(positions, values, strict=True):
            label = format_number(value) if value is not None else "pending / n/a"
            axis.text(label_at[position], position, " " + label, va="center", fontsize=7)
        axis.margins(x=0.25)
    for index in range(len(panels), rows * columns):
        axes[index // columns][index % columns].axis("off")
    fig.suptitle(
        f"aiosmtpd benchmark {document.get('stamp', '')} ({document.get('preset')}, "
        f"median of {rounds_of(document)} round(s), whiskers min{EN_DASH}max); "
        "only ratios within one run are meaningful",
        fontsize=10,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
