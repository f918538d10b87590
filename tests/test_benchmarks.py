"""Smoke tests of the benchmark harness in ``benchmarks/`` (not of the server's speed).

Covers the pure parts (``/proc`` parsing, message generation, presets, folding rounds into
medians, the interleaved order of rounds, ratios, targets and rendering, also of a document
written before rounds existed) and a tiny end-to-end run against the bare asyncio sink started
as a real process, so server start-up, measurement, rounds and process-group killing are
exercised in a few seconds.
Postfix's smtp-source is only needed by the session scenarios (``require_program``).
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest
from benchmarks import aggregate, client, report, run
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


def test_rounds_per_preset_and_override() -> None:
    assert [PRESETS[name].rounds for name in ("quick", "full", "smoke")] == [3, 5, 1]
    assert PRESETS["quick"].with_overrides({"rounds": "5"}).rounds == 5
    with pytest.raises(ValueError, match="rounds must be at least 1"):
        Preset().with_overrides({"rounds": "0"})


def rounds_of(**columns: list[Any]) -> list[dict[str, Any]]:
    """Per-round figures from one list of values per key (all rounds succeeded)."""
    count = len(next(iter(columns.values())))
    return [
        {"ok": True, **{key: values[i] for key, values in columns.items()}} for i in range(count)
    ]


def test_combine_takes_the_median_of_an_odd_number_of_rounds() -> None:
    rounds = rounds_of(
        cpu_s_per_1k=[0.3, 0.1, 0.2], tx_per_s=[900.0, 1100.0, 1000.0], messages=[30, 30, 30]
    )
    combined = aggregate.combine(rounds, "pipelined")
    assert combined["ok"] is True
    assert (combined["cpu_s_per_1k"], combined["tx_per_s"], combined["messages"]) == (
        0.2,
        1000.0,
        30,
    )
    assert combined["spread"] == {"key": "cpu_s_per_1k", "min": 0.1, "max": 0.3}
    assert combined["rounds"] == rounds  # every round kept as measured
    assert aggregate.spread(combined, "cpu_s_per_1k") == (0.1, 0.3)
    assert aggregate.spread(combined, "tx_per_s") is None  # only the headline figure


def test_combine_of_an_even_number_of_rounds_averages_the_middle_two() -> None:
    rounds = rounds_of(
        cpu_s_per_1k=[0.1, 0.4, 0.2, 0.3],
        peak_rss_kb=[100, 400, 200, 300],
        wall_s=[1.0, 1.0, 3.0, 3.0],
        peak_reset=[True, True, False, True],
        command=["same", "same", "same", "same"],
        differs=["a", "b", "a", "a"],
    )
    combined = aggregate.combine(rounds, "small")
    assert combined["cpu_s_per_1k"] == pytest.approx(0.25)
    assert combined["peak_rss_kb"] == 250
    assert isinstance(combined["peak_rss_kb"], int)
    assert combined["wall_s"] == 2.0
    assert combined["peak_reset"] is False  # a boolean holds only if it held every round
    assert combined["command"] == "same"
    assert "differs" not in combined  # kept per round only
    assert aggregate.combine(rounds_of(held=[3, 4]), "idle")["held"] == 3


def test_combine_takes_the_worst_round_for_idle_counts_and_peak_growth() -> None:
    idle = aggregate.combine(
        rounds_of(
            kb_per_connection=[2.0, 2.5, 2.2],
            held=[2000, 1990, 2000],
            noop_ok=[2000, 1990, 1995],
            connections=[2000, 2000, 2000],
        ),
        "idle",
    )
    assert (idle["held"], idle["noop_ok"], idle["connections"]) == (1990, 1990, 2000)
    assert idle["kb_per_connection"] == 2.2
    assert idle["spread"] == {"key": "kb_per_connection", "min": 2.0, "max": 2.5}
    big = aggregate.combine(
        rounds_of(
            MBps=[650.0, 700.0, 500.0],
            peak_growth_kb=[11000, 30000, 12000],
            peak_growth_per_message=[1.07, 2.93, 1.17],
            cpu_s_per_GB=[1.0, 2.0, 3.0],
        ),
        "big_10MiB",
    )
    assert (big["MBps"], big["cpu_s_per_GB"]) == (650.0, 2.0)
    assert (big["peak_growth_kb"], big["peak_growth_per_message"]) == (30000, 2.93)
    assert big["spread"] == {"key": "MBps", "min": 500.0, "max": 700.0}


def test_a_failed_round_fails_the_server_with_that_rounds_error() -> None:
    good = {"ok": True, "cpu_s_per_1k": 0.1}
    rounds = [good, {"ok": False, "error": "smtp-source exited 1"}, good]
    combined = aggregate.combine(rounds, "small")
    assert combined["ok"] is False
    assert combined["error"] == "round 2 of 3: smtp-source exited 1"
    assert combined["failed_round"] == 2
    assert "cpu_s_per_1k" not in combined  # no median from the rounds that passed
    assert len(combined["rounds"]) == 3
    assert aggregate.combine([{"ok": False, "error": "x"}], "small")["error"] == "x"
    # The rounds after a failure are not run: the count says how many were planned.
    assert aggregate.combine([good, rounds[1]], "small", 3)["error"].startswith("round 2 of 3:")


def test_rounds_are_interleaved_across_servers() -> None:
    order = list(aggregate.measurement_order(["small", "idle"], ["a", "b", "c"], 2))
    assert order == [
        ("small", 1, "a"), ("small", 1, "b"), ("small", 1, "c"),
        ("small", 2, "a"), ("small", 2, "b"), ("small", 2, "c"),
        ("idle", 1, "a"), ("idle", 1, "b"), ("idle", 1, "c"),
        ("idle", 2, "a"), ("idle", 2, "b"), ("idle", 2, "c"),
    ]  # fmt: skip


def test_measure_runs_each_round_on_a_fresh_server_interleaved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, int, str]] = []

    def fake_run_one(
        spec: Any, scenario: str, function: Any, preset: Any, host: str, log_dir: Path,
        round_number: int = 1,
    ) -> dict[str, Any]:  # fmt: skip
        calls.append((scenario, round_number, spec.name))
        if spec.name == "bare-uvloop" and scenario == "pipelined" and round_number == 2:
            return {"ok": False, "error": "only 3 of 30 within 20s"}
        return {"ok": True, "cpu_s_per_1k": float(round_number), "tx_per_s": 10.0 * round_number}

    monkeypatch.setattr(run, "run_one", fake_run_one)
    arguments = run.parse_arguments(
        ["--preset", "smoke", "--servers", "bare-asyncio,bare-uvloop", "--set", "rounds=3",
         "--scenarios", "pipelined,idle", "--out-dir", str(tmp_path)]
    )  # fmt: skip
    document, all_ok = run.measure(arguments)
    assert calls == [
        ("pipelined", 1, "bare-asyncio"), ("pipelined", 1, "bare-uvloop"),
        ("pipelined", 2, "bare-asyncio"), ("pipelined", 2, "bare-uvloop"),
        ("pipelined", 3, "bare-asyncio"),  # a failed server is not run again
        ("idle", 1, "bare-asyncio"), ("idle", 1, "bare-uvloop"),
        ("idle", 2, "bare-asyncio"), ("idle", 2, "bare-uvloop"),
        ("idle", 3, "bare-asyncio"), ("idle", 3, "bare-uvloop"),
    ]  # fmt: skip
    assert all_ok is False
    assert document["params"]["rounds"] == 3
    pipelined = document["results"]["pipelined"]
    assert pipelined["bare-asyncio"]["cpu_s_per_1k"] == 2.0
    assert [r["tx_per_s"] for r in pipelined["bare-asyncio"]["rounds"]] == [10.0, 20.0, 30.0]
    assert pipelined["bare-uvloop"]["ok"] is False
    assert pipelined["bare-uvloop"]["error"] == "round 2 of 3: only 3 of 30 within 20s"
    assert document["results"]["idle"]["bare-uvloop"]["ok"] is True


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


def multi_round_document() -> dict[str, Any]:
    doc = document(project_ok=True)
    doc["params"] = {"rounds": 3}
    doc["results"]["small"] = {
        "aiosmtpd-2": aggregate.combine(
            rounds_of(cpu_s_per_1k=[0.21, 0.2, 0.25], msgs_per_s=[1.0, 2.0, 3.0]), "small"
        ),
        "aiosmtpd-1.4.6": aggregate.combine(
            rounds_of(cpu_s_per_1k=[1.0, 0.9, 1.2], msgs_per_s=[1.0, 1.0, 1.0]), "small"
        ),
    }
    return doc


def test_tables_show_the_median_and_the_headline_spread() -> None:
    doc = multi_round_document()
    text = report.markdown(doc)
    assert "| aiosmtpd-2 | 0.21 (1/4.8) [0.2\u20130.25] | 2 (2x) | - | ok |" in text
    assert "| aiosmtpd-1.4.6 | 1 [0.9\u20131.2] | 1 | - | ok |" in text
    assert "median of 3 rounds" in text
    rst = report.restructuredtext(doc)
    assert '"0.21 (1/4.8) [0.2\u20130.25]"' in rst
    assert "median of 3 rounds" in rst
    verdicts = {row[0]: row[2:] for row in report.target_rows(doc)}
    assert verdicts["small msgs: CPU/1k <= 1/4 of 1.4.6"] == ("1/4.8 of aiosmtpd-1.4.6", "met")


def test_rendering_a_json_written_before_rounds_reads_as_one_round(tmp_path: Path) -> None:
    old = document(project_ok=True)  # no "rounds" anywhere, no params.rounds: schema 1
    old["schema"] = 1
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))
    assert run.main(["--render", str(path), "--no-plot"]) == 0
    text = (tmp_path / "test.md").read_text()  # named after the document's stamp
    assert "One round per server" in text
    assert "| aiosmtpd-2 | 0.2 (1/5) | 1,000 (1x) | 20,000 (1x) | ok |" in text
    assert "[" not in text.split("## Servers")[0].split("\n", 1)[1]  # no spread column
    assert "One round per server" in (tmp_path / "test.rst").read_text()


def test_number_and_ratio_formats() -> None:
    assert report.format_number(None) == "-"
    assert report.format_number(12345.0) == "12,345"
    assert report.format_number(0.1234) == "0.123"
    assert report.format_ratio(0.25) == "1/4"
    assert report.format_ratio(25.0) == "25x"
    assert report.format_ratio(0.97) == "0.97x"


@pytest.mark.parametrize("make", [lambda: document(project_ok=True), multi_round_document])
def test_plot_writes_a_png(tmp_path: Path, make: Any) -> None:
    require_module("matplotlib")
    path = report.plot(make(), tmp_path / "plot.png")
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


def run_smoke(tmp_path: Path, scenarios: str, *extra: str) -> dict[str, Any]:
    status = run.main(
        ["--preset", "smoke", "--servers", "bare-asyncio", "--scenarios", scenarios,
         "--out-dir", str(tmp_path), "--no-plot", *extra]
    )  # fmt: skip
    [json_path] = tmp_path.glob("*.json")
    assert json_path.with_suffix(".md").exists()
    assert json_path.with_suffix(".rst").exists()
    assert status == 0
    result: dict[str, Any] = json.loads(json_path.read_text())
    return result


def test_tiny_run_of_the_built_in_client_scenarios(tmp_path: Path) -> None:
    result = run_smoke(tmp_path, "pipelined,big_1MiB,idle", "--set", "rounds=2")
    figures = result["results"]
    smoke = PRESETS["smoke"]
    assert result["params"]["rounds"] == 2
    assert figures["pipelined"]["bare-asyncio"]["messages"] == smoke.pipelined_transactions
    big = figures["big_1MiB"]["bare-asyncio"]
    assert big["message_bytes"] == 1 << 20
    assert big["MBps"] > 0
    assert [r["message_bytes"] for r in big["rounds"]] == [1 << 20, 1 << 20]
    assert big["spread"]["min"] <= big["MBps"] <= big["spread"]["max"]
    assert big["peak_growth_kb"] == max(r["peak_growth_kb"] for r in big["rounds"])
    idle = figures["idle"]["bare-asyncio"]
    assert idle["held"] == idle["noop_ok"] == smoke.idle_connections
    assert len(idle["rounds"]) == 2
    # Each round ran on its own fresh server (its own log).
    logs = sorted(p.name for p in (tmp_path / "logs" / result["stamp"]).glob("*.log"))
    assert "bare-asyncio-idle-r1.log" in logs
    assert "bare-asyncio-idle-r2.log" in logs
    assert "median of 2 rounds" in (tmp_path / f"{result['stamp']}.md").read_text()


def test_tiny_run_of_the_smtp_source_scenarios(tmp_path: Path) -> None:
    require_program("smtp-source")
    result = run_smoke(tmp_path, "small,per_connection")
    for scenario, count in (("small", 40), ("per_connection", 20)):
        figures = result["results"][scenario]["bare-asyncio"]
        assert figures["ok"], figures
        assert figures["messages"] == count
        assert figures["server_cpu_s"] >= 0
