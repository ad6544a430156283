"""Run the benchmarks of one backend or all, and write Markdown tables and PNG charts.

Usage: ``python -m benchmarks.run --backend memory|sqlite|postgres|redis|all [--quick]
[--only SECTION ...]`` (the tox environments ``bench-<backend>`` and ``bench`` run it without
``--only``). With ``--only``, the other sections' rows are carried over from the previous
``<backend>.json``, each noting the commit of the run that measured it. ``--backend all`` runs
each backend in a process of its own, one after the other.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import re
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from benchmarks.harness import SECTIONS, Row, Settings, write_charts, write_markdown

ROOT = Path(__file__).resolve().parent.parent
BACKENDS = ("memory", "sqlite", "postgres", "redis")
DEFAULT_OUT = ROOT / "benchmarks" / "results"


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out.stdout.strip()


def _header(command: str, quick: bool) -> str:
    from benchmarks.targets import server_cpu

    return (
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} at commit `{_commit()}`, Python "
        f"{platform.python_version()}, {platform.system()} {platform.machine()}, {os.cpu_count()} CPUs"
        f"{', **quick mode (smoke sizes, figures not meaningful)**' if quick else ''}.\n"
        f"Reproduce with `{command}`. Every ratio compares two figures measured in this run, "
        "in interleaved repetitions (medians)."
        + (
            f" The PostgreSQL server the harness starts runs pinned to CPU {cpu}"
            " (`benchmarks/targets.py`, `pin_server`)."
            if (cpu := server_cpu()) is not None
            else ""
        )
    )


def run_backend(name: str, settings: Settings, only: Sequence[str] = ()) -> list[Row]:
    """Every workload of one backend (or those in ``only``); a failure becomes a row saying what failed."""
    from benchmarks import delay, peers, targets, workloads

    rows: list[Row] = []
    # Every section but "telemetry" measures a default install (no opentelemetry); that one
    # opens its own with and without (workloads.run_telemetry).
    try:
        with workloads.default_install(), targets.open_target(name, settings) as target:
            steps: list[tuple[str, Callable[[], list[Row]]]] = [
                ("overhead", lambda: workloads.run_overhead(target, settings)),
                ("turn", lambda: workloads.run_turn(target, settings)),
                ("growth", lambda: workloads.run_growth(target, settings)),
                ("chain", lambda: workloads.run_chains(target, settings)),
                ("async", lambda: workloads.run_async(target, settings)),
                ("peers", lambda: peers.run_peers(target, settings)),
            ]
            if name in ("postgres", "redis"):
                steps.append(("delay", lambda: delay.run_delay(target, settings)))
            if name == "memory":
                steps.append(("memory", lambda: workloads.run_rss(settings)))
            else:
                steps.append(("memory", lambda: workloads.run_client_rss(target, settings)))
            if name in ("memory", "sqlite"):
                steps.append(("telemetry", lambda: workloads.run_telemetry(target, settings)))
            for section, step in steps:
                if only and section not in only:
                    continue
                print(f"[{name}] {section}...", file=sys.stderr, flush=True)
                started = time.perf_counter()
                try:
                    rows += step()
                except Exception as exc:
                    traceback.print_exc()
                    rows.append(
                        Row(
                            name,
                            section,
                            f"{section} workload",
                            "failed",
                            "",
                            "",
                            None,
                            note=f"{type(exc).__name__}: {exc}"[:200],
                        )
                    )
                print(f"[{name}] {section} took {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    except Exception as exc:
        traceback.print_exc()
        rows.append(
            Row(name, "overhead", "backend", "not run", "", "", None, note=f"{type(exc).__name__}: {exc}"[:200])
        )
    return rows


def _load_all(out: Path) -> list[Row]:
    rows: list[Row] = []
    for name in BACKENDS:
        path = out / f"{name}.json"
        if path.exists():
            for data in json.loads(path.read_text(encoding="utf-8")):
                if data.get("seconds") is not None:
                    data["seconds"] = tuple(data["seconds"])
                rows.append(Row(**data))
    return rows


_RUN_COMMIT = re.compile(r"^Run .* at commit `([^`]*)`", re.MULTILINE)
_FROM_RUN = "measured at commit"


def _carried(out: Path, name: str, measured: Sequence[str]) -> list[Row]:
    """The previous run's rows of ``name`` outside the ``measured`` sections, each noting its commit."""
    path = out / f"{name}.json"
    if not path.exists():
        return []
    report = out / f"{name}.md"
    found = _RUN_COMMIT.search(report.read_text(encoding="utf-8")) if report.exists() else None
    commit = found.group(1) if found else "unknown"
    rows = []
    for data in json.loads(path.read_text(encoding="utf-8")):
        if data["section"] in measured:
            continue
        if data.get("seconds") is not None:
            data["seconds"] = tuple(data["seconds"])
        if _FROM_RUN not in data.get("note", ""):
            data["note"] = "; ".join(filter(None, [data.get("note", ""), f"{_FROM_RUN} `{commit}`"]))
        rows.append(Row(**data))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=(*BACKENDS, "all"), default="all")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run, not a measurement")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write results")
    parser.add_argument("--no-charts", action="store_true", help="skip the PNG charts")
    parser.add_argument(
        "--only",
        action="append",
        choices=tuple(SECTIONS),
        default=[],
        help="run only this section (repeatable); the others are kept from the previous results",
    )
    args = parser.parse_args(argv)
    settings = Settings.make(args.quick)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    command = "python -m benchmarks.run " + " ".join(argv if argv is not None else sys.argv[1:])
    header = _header(command.strip(), args.quick)
    if args.only:
        header += (
            f" Sections measured in this run: {', '.join(args.only)}; the others are carried over from"
            " earlier runs (their notes say at which commit)."
        )
    selected: tuple[str, ...] = BACKENDS if args.backend == "all" else (args.backend,)
    failed = False
    if len(selected) > 1:
        # One process per backend, as `tox -e bench-<backend>` runs it: a backend's figures must
        # not depend on what the backends before it left in the process (the peers libraries
        # imported for SQLite and PostgreSQL, about 300,000 objects, made every later garbage
        # collection slower, and the last backend's reads with it).
        for name in selected:
            child = [sys.executable, "-m", "benchmarks.run", "--backend", name, "--out", str(out)]
            child += ["--quick"] * args.quick + ["--no-charts"] * args.no_charts
            child += [arg for section in args.only for arg in ("--only", section)]
            failed |= subprocess.run(child, cwd=ROOT, check=False).returncode != 0
        selected = ()
    for name in selected:
        rows = run_backend(name, settings, args.only)
        failed |= any(row.datacon in ("failed", "not run") for row in rows)
        if args.only:
            carried = _carried(out, name, args.only)
            rows = sorted([*carried, *rows], key=lambda row: list(SECTIONS).index(row.section))
        (out / f"{name}.json").write_text(
            json.dumps([dataclasses.asdict(row) for row in rows], indent=1, ensure_ascii=False), encoding="utf-8"
        )
        write_markdown(
            rows,
            out / f"{name}.md",
            title=f"datacon benchmarks: {name}",
            header=header,
            charts=None if args.no_charts else name,
        )
        if not args.no_charts:
            write_charts(rows, out, name)
    # The index gathers the latest result of every backend (each may come from a different run).
    every = _load_all(out)
    write_markdown(
        every,
        out / "README.md",
        title="datacon benchmarks: latest results",
        header="Latest result of each backend; see each `<backend>.md` for its run's details.\n\n" + header,
        charts=None if args.no_charts else "all",
    )
    if not args.no_charts:
        write_charts(every, out, "all")
    print(f"wrote {out}/README.md", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
