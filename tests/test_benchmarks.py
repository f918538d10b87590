"""Smoke tests of the benchmark harness in ``benchmarks/`` (not of the server's speed).

Covers the pure parts (``/proc`` parsing, message generation, presets, ratios, targets and
rendering) and a tiny end-to-end run against the bare asyncio sink started as a real process,
so server start-up, measurement and process-group killing are exercised in a few seconds.
Postfix's smtp-source is only needed by the session scenarios (``require_program``).
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest
from benchmarks import client, report, run
from benchmarks.procstat import parse_stat, parse_status_memory, sample_group
from benchmarks.scenarios import PRESETS, Preset
from benchmarks.servers import RunningServer, ServerError, bare_sink_spec, free_port, greets

from tests.support import require_module, require_program

STAT = (
    "4242 (odd) name (x)) S 1 4242 4242 0 -1 4194560 900 0 0 0 "
    "150 25 7 3 20 0 1 0 100 20000000 3000 18446744073709551615"
)
STATUS = "Name:\tpython\nVmPeak:\t 90000 kB\nVmHWM:\t   41000 kB\nVmRSS:\t   30500 kB\n"


def test_parse_stat_survives_parentheses_and_spaces_in_the_name() -> None:
    fields = parse_stat(STAT)
    assert fields.process_group == 4242
    assert (fields.user_ticks, fields.system_ticks) == (150, 25)
    assert fields.cpu_ticks == 150 + 25 + 7 + 3


def test_parse_status_memory_reads_rss_and_peak() -> None:
    assert parse_status_memory(STATUS) == (30500, 41000)
    assert parse_status_memory("Name:\tzombie\nState:\tZ\n") == (0, 0)


@pytest.mark.parametrize("size", [0, 1, 60, 79, 80, 81, 5000, 65537])
def test_message_body_has_the_exact_size_and_no_dot_lines(size: int) -> None:
    body = client.message_body(size)
    assert len(body) == max(size, len(client.message_body(0)))
    assert not any(line.startswith(b".") for line in body.split(b"\r\n"))
    assert max(len(line) for line in body.split(b"\r\n")) <= 998


def test_parse_reply_code_uses_the_last_line() -> None:
    assert client.parse_reply_code([b"250-first", b"250 last"]) == 250
    with pytest.raises(client.SMTPLoadError):
        client.parse_reply_code([b"garbage"])


def test_preset_overrides_convert_types_and_reject_unknown_keys() -> None:
    preset = Preset().with_overrides(
        {"idle_connections": "7", "big_sizes_mib": "1,2", "idle_hold_seconds": "0.5"}
    )
    assert (preset.idle_connections, preset.big_sizes_mib) == (7, (1, 2))
    assert preset.idle_hold_seconds == 0.5
    with pytest.raises(ValueError, match="unknown parameter 'nope'"):
        Preset().with_overrides({"nope": "1"})


def document(project_ok: bool) -> dict[str, Any]:
    def msgs(cpu: float) -> dict[str, Any]:
        return {"ok": True, "cpu_s_per_1k": cpu, "msgs_per_s": 1000.0, "peak_rss_kb": 20000}

    project = msgs(0.2) if project_ok else {"ok": False, "error": "did not start"}
    return {
        "stamp": "test",
        "preset": "smoke",
        "host": {"cpus": 2},
        "servers": [
            {"name": "aiosmtpd-2", "description": "", "available": project_ok, "error": None},
            {"name": "aiosmtpd-1.4.6", "description": "", "available": True, "error": None},
        ],
        "results": {
            "small": {"aiosmtpd-2": project, "aiosmtpd-1.4.6": msgs(1.0)},
            "idle": {
                "aiosmtpd-2": {
                    "ok": True,
                    "kb_per_connection": 3.5,
                    "held": 10,
                    "noop_ok": 10,
                    "connections": 10,
                },
                "aiosmtpd-1.4.6": {"ok": True, "kb_per_connection": 10.0, "held": 10},
            },
        },
    }


def test_ratios_and_target_verdicts() -> None:
    doc = document(project_ok=True)
    assert report.ratio(doc, "small", "aiosmtpd-2", "aiosmtpd-1.4.6", "cpu_s_per_1k") == 0.2
    verdicts = {row[0]: row[3] for row in report.target_rows(doc)}
    assert verdicts["small msgs: CPU/1k <= 1/4 of 1.4.6"] == "met"
    assert verdicts["idle: <= 3 kB per connection"] == "missed"
    assert verdicts["idle: 10,000 held, all answer NOOP"].startswith("all answered; only 10")
    doc["results"]["idle"]["aiosmtpd-2"]["noop_ok"] = 9
    verdicts = {row[0]: row[3] for row in report.target_rows(doc)}
    assert verdicts["idle: 10,000 held, all answer NOOP"] == "missed"
    assert "pipelined: CPU/1k <= 1/5 of 1.4.6" not in verdicts  # scenario not run


@pytest.mark.parametrize(
    ("uvloop_cpu", "expected"), [(0.099, "met"), (0.1, "met"), (0.101, "missed")]
)
def test_the_uvloop_rows_compare_with_smtp_sink(uvloop_cpu: float, expected: str) -> None:
    doc = document(project_ok=True)
    for name in ("aiosmtpd-2-uvloop", "smtp-sink"):
        doc["servers"].append({"name": name, "description": "", "available": True, "error": None})
    small = doc["results"]["small"]
    small["smtp-sink"] = {"ok": True, "cpu_s_per_1k": 0.05, "msgs_per_s": 1.0, "peak_rss_kb": 1}
    small["aiosmtpd-2-uvloop"] = dict(small["smtp-sink"], cpu_s_per_1k=uvloop_cpu)
    rows = [row for row in report.target_rows(doc) if "smtp-sink" in row[0]]
    # Only the uvloop variant has the row, and it is measured against smtp-sink (2x at most).
    assert [(row[1], row[3]) for row in rows] == [("aiosmtpd-2-uvloop", expected)]
    assert rows[0][2].endswith("of smtp-sink")


def test_a_failed_server_renders_as_pending_never_as_a_number() -> None:
    doc = document(project_ok=False)
    text = report.markdown(doc)
    assert "| aiosmtpd-2 | - | - | - | failed: did not start |" in text
    verdicts = {row[0]: row[3] for row in report.target_rows(doc)}
    assert verdicts["small msgs: CPU/1k <= 1/4 of 1.4.6"] == "pending"
    assert ".. csv-table:: Small messages" in report.restructuredtext(doc)


def test_number_and_ratio_formats() -> None:
    assert report.format_number(None) == "-"
    assert report.format_number(12345.0) == "12,345"
    assert report.format_number(0.1234) == "0.123"
    assert report.format_ratio(0.25) == "1/4"
    assert report.format_ratio(25.0) == "25x"
    assert report.format_ratio(0.97) == "0.97x"


def test_plot_writes_a_png(tmp_path: Path) -> None:
    require_module("matplotlib")
    path = report.plot(document(project_ok=True), tmp_path / "plot.png")
    assert path.read_bytes().startswith(b"\x89PNG")


def test_running_server_greets_is_measured_and_its_group_is_killed(tmp_path: Path) -> None:
    server = RunningServer(bare_sink_spec(), "127.0.0.1", tmp_path / "sink.log")
    with server:
        pid = server.pid
        assert greets(server.host, server.port)
        sample = sample_group(pid)
        assert sample.processes == 1
        assert sample.rss_kb > 0
        assert sample.hwm_kb >= sample.rss_kb
        result = asyncio.run(client.pipelined(server.host, server.port, 5, 300, limit=10))
        assert result == 5
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)


def test_non_loopback_addresses_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ServerError, match="non-loopback"):
        RunningServer(bare_sink_spec(), "192.0.2.1", tmp_path / "x.log")
    assert free_port("127.0.0.1") > 0


def run_smoke(tmp_path: Path, scenarios: str) -> dict[str, Any]:
    status = run.main(
        ["--preset", "smoke", "--servers", "bare-asyncio", "--scenarios", scenarios,
         "--out-dir", str(tmp_path), "--no-plot"]
    )  # fmt: skip
    [json_path] = tmp_path.glob("*.json")
    assert json_path.with_suffix(".md").exists()
    assert json_path.with_suffix(".rst").exists()
    assert status == 0
    result: dict[str, Any] = json.loads(json_path.read_text())
    return result


def test_tiny_run_of_the_built_in_client_scenarios(tmp_path: Path) -> None:
    result = run_smoke(tmp_path, "pipelined,big_1MiB,idle")
    figures = result["results"]
    smoke = PRESETS["smoke"]
    assert figures["pipelined"]["bare-asyncio"]["messages"] == smoke.pipelined_transactions
    assert figures["big_1MiB"]["bare-asyncio"]["message_bytes"] == 1 << 20
    assert figures["big_1MiB"]["bare-asyncio"]["MBps"] > 0
    idle = figures["idle"]["bare-asyncio"]
    assert idle["held"] == idle["noop_ok"] == smoke.idle_connections


def test_tiny_run_of_the_smtp_source_scenarios(tmp_path: Path) -> None:
    require_program("smtp-source")
    result = run_smoke(tmp_path, "small,per_connection")
    for scenario, count in (("small", 40), ("per_connection", 20)):
        figures = result["results"][scenario]["bare-asyncio"]
        assert figures["ok"], figures
        assert figures["messages"] == count
        assert figures["server_cpu_s"] >= 0
