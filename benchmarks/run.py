"""Benchmark aiosmtpd 2 against aiosmtpd 1.4.6 and Postfix's smtp-sink, side by side, in one run.

Usage (from the repository root)::

    .venv/bin/python benchmarks/run.py --quick          # under 2 minutes once the venv exists
    .venv/bin/python benchmarks/run.py                  # the full preset (10,000 idle, ...)
    .venv/bin/python benchmarks/run.py --render benchmarks/results/STAMP.json

Owns: the command line, the choice of servers (this project on asyncio and, when its CLI has
``--loop``, on uvloop; aiosmtpd 1.4.6 from PyPI in a venv this script creates, on asyncio and on
uvloop; smtp-sink), running every scenario ``rounds`` times against every server with a fresh
server each time, and writing ``benchmarks/results/<stamp>.json`` / ``.md`` / ``.rst`` /
``.png``.

Invariants: scenarios are the outer loop, rounds the middle one and servers the inner one
(``aggregate.measurement_order``), so a burst of foreign load hits every server of a scenario
alike; each server's rounds are folded by ``aggregate.combine`` (medians, per-round figures
kept); every server is killed (whole process group) before the next starts, also on Ctrl-C or
SIGTERM; a server that cannot start is reported as pending, not measured, and a server that
fails a round is not run again for that scenario. Must not know: how a scenario measures, how
tables are rendered.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path
from types import FrameType
from typing import Any

if __package__ in {None, ""}:  # run as ``python benchmarks/run.py``
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import aggregate, report
from benchmarks.scenarios import MIB, PRESETS, Preset, scenario_table, smtp_source_path
from benchmarks.servers import (
    BENCH_DIR,
    REFERENCE_VENV,
    RunningServer,
    ServerError,
    ServerSpec,
    aiosmtpd_spec,
    bare_sink_spec,
    cli_has_loop_option,
    ensure_reference_venv,
    imports_uvloop,
    project_python,
    require_loopback,
    smtp_sink_spec,
)

DEFAULT_SERVERS = (
    "aiosmtpd-2",
    "aiosmtpd-2-uvloop",
    "aiosmtpd-1.4.6",
    "aiosmtpd-1.4.6-uvloop",
    "smtp-sink",
)
#: ``aiosmtpd-2-workers2``: ``--workers 2`` (one SO_REUSEPORT port); compare its "small"
#: throughput with aiosmtpd-2's in the same run (CPU and memory are summed over its processes).
KNOWN_SERVERS = (*DEFAULT_SERVERS, "bare-asyncio", "bare-uvloop", "aiosmtpd-2-workers2")


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    preset = parser.add_mutually_exclusive_group()
    preset.add_argument(
        "--quick",
        action="store_const",
        const="quick",
        dest="preset",
        help="small counts, 2000 idle connections: under 2 minutes",
    )
    preset.add_argument(
        "--full",
        action="store_const",
        const="full",
        dest="preset",
        help="larger counts, 10,000 idle connections (the default)",
    )
    preset.add_argument("--preset", choices=sorted(PRESETS), dest="preset")
    parser.add_argument(
        "--servers",
        default=",".join(DEFAULT_SERVERS),
        help=f"comma-separated subset of {', '.join(KNOWN_SERVERS)}",
    )
    parser.add_argument(
        "--scenarios", default="", help="comma-separated subset (default: all); see --list"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a preset figure, e.g. --set idle_connections=500",
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to listen on")
    parser.add_argument("--out-dir", type=Path, default=BENCH_DIR / "results")
    parser.add_argument(
        "--reference-venv",
        type=Path,
        default=REFERENCE_VENV,
        help="where to create the aiosmtpd 1.4.6 venv",
    )
    parser.add_argument(
        "--project-python",
        type=Path,
        default=None,
        help="interpreter with this project installed (default: .venv)",
    )
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG (no matplotlib)")
    parser.add_argument(
        "--render",
        type=Path,
        metavar="JSON",
        help="do not measure: re-render a saved result document",
    )
    parser.add_argument("--list", action="store_true", help="print presets and scenarios")
    arguments = parser.parse_args(argv)
    arguments.preset = arguments.preset or "full"
    return arguments


def preset_from(arguments: argparse.Namespace) -> Preset:
    overrides = {}
    for item in arguments.set:
        key, separator, value = item.partition("=")
        if not separator:
            raise SystemExit(f"--set wants KEY=VALUE, got {item!r}")
        overrides[key.strip()] = value.strip()
    try:
        return PRESETS[arguments.preset].with_overrides(overrides)
    except ValueError as error:
        raise SystemExit(str(error)) from error


def build_specs(
    wanted: list[str], arguments: argparse.Namespace, preset: Preset, log_dir: Path
) -> tuple[list[ServerSpec], dict[str, str]]:
    """The specs to run, and a reason for each wanted server that cannot run."""
    specs: list[ServerSpec] = []
    unavailable: dict[str, str] = {}
    project = arguments.project_python or project_python()
    reference: Path | None = None
    size_limit = 2 * max((*preset.big_sizes_mib, 16)) * MIB
    if any(name.startswith("aiosmtpd-1.4.6") for name in wanted):
        try:
            reference = ensure_reference_venv(arguments.reference_venv, log_dir / "venv.log")
        except (ServerError, OSError) as error:
            log(f"cannot prepare aiosmtpd 1.4.6: {error}")
    for name in wanted:
        if name == "aiosmtpd-2":
            specs.append(
                aiosmtpd_spec(
                    name,
                    project,
                    uvloop=None,
                    size_limit=size_limit,
                    description="this project, asyncio loop",
                )
            )
        elif name == "aiosmtpd-2-workers2":
            specs.append(
                aiosmtpd_spec(
                    name,
                    project,
                    uvloop=None,
                    size_limit=size_limit,
                    description="this project, --workers 2",
                    extra=("--workers", "2"),
                )
            )
        elif name == "aiosmtpd-2-uvloop":
            if not imports_uvloop(project):
                unavailable[name] = f"uvloop is not installed for {project}"
            elif cli_has_loop_option(project):
                specs.append(
                    aiosmtpd_spec(
                        name,
                        project,
                        uvloop="cli",
                        size_limit=size_limit,
                        description="this project, --loop uvloop",
                    )
                )
            else:
                unavailable[name] = "python -m aiosmtpd has no --loop option yet"
        elif name.startswith("aiosmtpd-1.4.6"):
            if reference is None:
                unavailable[name] = "the aiosmtpd 1.4.6 venv could not be created"
                continue
            on_uvloop = name.endswith("-uvloop")
            specs.append(
                aiosmtpd_spec(
                    name,
                    reference,
                    uvloop="policy" if on_uvloop else None,
                    size_limit=size_limit,
                    description="aiosmtpd 1.4.6 from PyPI, "
                    + ("uvloop" if on_uvloop else "asyncio"),
                    isolated=True,
                )
            )
        elif name == "smtp-sink":
            sink = smtp_sink_spec(max(10000, preset.idle_connections + 100))
            if sink is None:
                unavailable[name] = "smtp-sink is not installed (apt-get install postfix)"
            else:
                specs.append(sink)
        elif name == "bare-asyncio":
            specs.append(bare_sink_spec(project))
        elif name == "bare-uvloop":
            specs.append(bare_sink_spec(project, uvloop=True))
        else:
            raise SystemExit(f"unknown server {name!r}; known: {', '.join(KNOWN_SERVERS)}")
    return specs, unavailable


def server_entries(
    wanted: list[str], specs: list[ServerSpec], unavailable: dict[str, str]
) -> list[dict[str, Any]]:
    """One entry per wanted server, in the order asked for; unavailable ones say why."""
    by_name = {spec.name: spec for spec in specs}
    entries = []
    for name in wanted:
        spec = by_name.get(name)
        entries.append(
            {
                "name": name,
                "description": spec.description if spec else "",
                "command": list(spec.argv) if spec else [],
                "available": spec is not None,
                "error": unavailable.get(name),
            }
        )
    return entries


def project_revision() -> str:
    """``git describe --always --dirty`` of this checkout: which aiosmtpd 2 was measured."""
    try:
        completed = subprocess.run(
            ["git", "-C", str(BENCH_DIR.parent), "describe", "--always", "--dirty"],
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return completed.stdout.decode().strip() or "unknown"


def raise_open_file_limit(wanted: int) -> int:
    """Raise RLIMIT_NOFILE (inherited by the servers) towards ``wanted``; return the result."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # unwinds through RunningServer.__exit__


def measure(arguments: argparse.Namespace) -> tuple[report.Document, bool]:
    preset = preset_from(arguments)
    require_loopback(arguments.host)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    log_dir = arguments.out_dir / "logs" / stamp
    table = scenario_table(preset)
    chosen = [s.strip() for s in arguments.scenarios.split(",") if s.strip()] or list(table)
    for name in chosen:
        if name not in table:
            raise SystemExit(f"unknown scenario {name!r}; known: {', '.join(table)}")
    needs_source = {"small", "per_connection"} & set(chosen)
    if needs_source and smtp_source_path() is None:
        raise SystemExit("smtp-source is not installed (apt-get install postfix)")
    wanted = [s.strip() for s in arguments.servers.split(",") if s.strip()]
    specs, unavailable = build_specs(wanted, arguments, preset, log_dir)
    file_limit = raise_open_file_limit(2 * preset.idle_connections + 1024)
    if file_limit < preset.idle_connections + 256:
        log(f"warning: only {file_limit} open files allowed; the idle scenario will fall short")

    document: report.Document = {
        "schema": 2,
        "stamp": stamp,
        "preset": arguments.preset,
        "params": {k: list(v) if isinstance(v, tuple) else v for k, v in vars(preset).items()},
        "host": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "open_file_limit": file_limit,
        },
        "revision": project_revision(),
        "baseline": report.BASELINE,
        "servers": server_entries(wanted, specs, unavailable),
        "results": {},
    }
    for name, why in unavailable.items():
        log(f"{name}: pending ({why})")
    broken: dict[str, str] = {}
    rounds: dict[str, dict[str, list[dict[str, Any]]]] = {}
    started = time.monotonic()
    for scenario, number, spec in aggregate.measurement_order(chosen, specs, preset.rounds):
        done = rounds.setdefault(scenario, {}).setdefault(spec.name, [])
        if spec.name in broken or (done and not done[-1]["ok"]):
            continue  # cannot start, or already failed this scenario: nothing more to learn
        figures = run_one(spec, scenario, table[scenario], preset, arguments.host, log_dir, number)
        if figures.pop("start_failed", False):
            broken[spec.name] = figures["error"]
            for server in document["servers"]:
                if server["name"] == spec.name:
                    server.update(available=False, error=figures["error"])
        done.append(figures)
        log(f"{scenario:15} r{number}/{preset.rounds} {spec.name:22} {brief(figures)}")
    all_ok = True
    for scenario in chosen:
        results: dict[str, Any] = document["results"].setdefault(scenario, {})
        for spec in specs:
            done = rounds.get(scenario, {}).get(spec.name, [])
            if not done:  # a server that could not start in an earlier scenario
                results[spec.name] = {"ok": False, "error": broken.get(spec.name, "not run")}
            else:
                results[spec.name] = aggregate.combine(done, scenario, preset.rounds)
            all_ok = all_ok and bool(results[spec.name]["ok"])
    document["elapsed_s"] = round(time.monotonic() - started, 1)
    return document, all_ok


def run_one(
    spec: ServerSpec,
    scenario: str,
    function: Any,
    preset: Preset,
    host: str,
    log_dir: Path,
    round_number: int = 1,
) -> dict[str, Any]:
    """Start a fresh server, run one round of one scenario, always kill the server."""
    log_path = log_dir / f"{spec.name}-{scenario}-r{round_number}.log"
    try:
        server = RunningServer(spec, host, log_path)
        server.start()
    except (ServerError, OSError) as error:
        return {"ok": False, "error": f"did not start: {error}", "start_failed": True}
    try:
        figures: dict[str, Any] = function(server, preset)
        figures["startup_s"] = round(server.startup_seconds, 3)
        figures["ok"] = "error" not in figures
    except Exception as error:
        with log_path.open("a") as log_file:
            traceback.print_exc(file=log_file)
        figures = {"ok": False, "error": f"{type(error).__name__}: {error}"[:300]}
    finally:
        server.stop()
    return figures


def brief(figures: dict[str, Any]) -> str:
    keys = (
        "cpu_s_per_1k",
        "msgs_per_s",
        "tx_per_s",
        "MBps",
        "peak_growth_kb",
        "kb_per_connection",
        "noop_ok",
        "host_busy",
        "error",
    )
    return " ".join(f"{key}={figures[key]}" for key in keys if key in figures)


def write_outputs(document: report.Document, out_dir: Path, with_plot: bool) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    base = out_dir / str(document["stamp"])
    json_path = base.with_suffix(".json")
    json_path.write_text(json.dumps(document, indent=2) + "\n")
    markdown = report.markdown(document)
    base.with_suffix(".md").write_text(markdown)
    base.with_suffix(".rst").write_text(report.restructuredtext(document))
    print(markdown)
    if with_plot:
        try:
            log(f"plot: {report.plot(document, base.with_suffix('.png'))}")
        except report.PlotUnavailable as error:
            log(f"no plot: {error}")
    log(f"results: {json_path} (.md, .rst next to it)")
    return json_path


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    if arguments.list:
        for name, preset in PRESETS.items():
            print(name, json.dumps(vars(preset)))
        print("scenarios:", ", ".join(scenario_table(PRESETS["full"])))
        print("servers:", ", ".join(KNOWN_SERVERS))
        return 0
    if arguments.render:
        document = json.loads(arguments.render.read_text())
        write_outputs(document, arguments.render.parent, not arguments.no_plot)
        return 0
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        document, all_ok = measure(arguments)
    finally:
        signal.signal(signal.SIGTERM, previous)
    write_outputs(document, arguments.out_dir, not arguments.no_plot)
    log(f"measured in {document['elapsed_s']} s")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
