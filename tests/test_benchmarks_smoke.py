"""Smoke test of the benchmark harness: a --quick run on memory writes its tables (timings are not checked)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.run import main


def test_quick_memory_run_writes_the_markdown_table(tmp_path: Path) -> None:
    status = main(["--backend", "memory", "--quick", "--no-charts", "--out", str(tmp_path)])

    assert status == 0
    table = (tmp_path / "memory.md").read_text(encoding="utf-8")
    assert table.startswith("# datacon benchmarks: memory")
    headings = (
        "## 1. Overhead",
        "## 2a. Page cost growth",
        "## 2b. Response chains",
        "## 3. Async",
        "## 5. Memory",
        "## 6. Telemetry",
    )
    for heading in headings:
        assert heading in table
    measures = (
        "store_response",
        "create_item + link_item",
        "list_items page at the end",
        "peak RSS per item",
        "get_response, opentelemetry-api without SDK",
    )
    for measure in measures:
        assert f"| memory | {measure}" in table
    rows = json.loads((tmp_path / "memory.json").read_text(encoding="utf-8"))
    assert not [row for row in rows if row["datacon"] in ("failed", "not run")]
    # Issue #23 targets the async throughput of the network backends; memory's is reported only.
    (throughput,) = [row for row in rows if row["measure"] == "get_response throughput, 32 tasks vs 32 threads"]
    assert throughput["target"] == ""
    assert throughput["met"] is None
    assert throughput["ratio"] > 0
    assert "| memory |" in (tmp_path / "README.md").read_text(encoding="utf-8")
    from datacon import telemetry

    assert telemetry.OTEL_AVAILABLE, "the benchmark left telemetry switched off for the rest of the process"


def test_only_runs_some_sections_and_carries_the_others_over(tmp_path: Path) -> None:
    assert main(["--backend", "memory", "--quick", "--no-charts", "--out", str(tmp_path)]) == 0
    before = {row["measure"]: row for row in json.loads((tmp_path / "memory.json").read_text(encoding="utf-8"))}
    assert main(["--backend", "memory", "--quick", "--no-charts", "--out", str(tmp_path), "--only", "turn"]) == 0
    after = json.loads((tmp_path / "memory.json").read_text(encoding="utf-8"))
    assert {row["measure"] for row in after} == set(before)  # every section still reported
    for row in after:
        if row["section"] == "turn":
            assert "measured at commit" not in row["note"]  # measured now
        else:
            assert "measured at commit" in row["note"]  # carried over, saying from which run
            assert row["datacon"] == before[row["measure"]]["datacon"]
    table = (tmp_path / "memory.md").read_text(encoding="utf-8")
    assert "Sections measured in this run: turn" in table
    assert next(line for line in table.splitlines() if line.startswith("## ")).startswith("## 1. Overhead")


def test_prune_benchmark_runs_on_memory(tmp_path: Path) -> None:
    from benchmarks import prune

    assert prune.main(["--backend", "memory", "--records", "6000", "--out", str(tmp_path)]) == 0
    report = (tmp_path / "prune-memory.md").read_text(encoding="utf-8")
    assert "| 6,000 |" in report  # every restored record was pruned (the run asserts the counts)


@pytest.mark.postgres
def test_the_postgres_server_the_harness_starts_runs_on_one_cpu() -> None:
    # Both sides of an overhead row are then served by processes placed alike (targets.pin_server).
    import os

    import psycopg

    from benchmarks.harness import Settings
    from benchmarks.targets import open_target, server_cpu

    cpu = server_cpu()
    if cpu is None:
        pytest.skip("one CPU: nothing to pin")
    with open_target("postgres", Settings.make(quick=True)) as target:
        dsn = target.server["dsn"]
        with psycopg.connect(dsn) as a, psycopg.connect(dsn) as b:  # backends forked after the pinning
            pids = [a.info.backend_pid, b.info.backend_pid]
            parent = int(Path(f"/proc/{pids[0]}/stat").read_text().rsplit(")", 1)[1].split()[1])
            for pid in [parent, *pids]:
                assert os.sched_getaffinity(pid) == {cpu}, pid
        assert os.sched_getaffinity(0) != {cpu}  # the client itself is left alone
