"""Timing (interleaved repetitions, medians), result rows, and the Markdown and PNG reports."""

from __future__ import annotations

import gc
import statistics
import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Row", "Settings", "interleaved", "once", "write_charts", "write_markdown"]


@dataclass(frozen=True)
class Settings:
    """Sizes and repetition counts of one run (``quick`` shrinks everything for a smoke run)."""

    quick: bool
    rounds: int  # interleaved rounds per measurement (the median is taken over them)
    inner: int  # calls per round per variant (their mean is one sample)
    big_conversation: int  # links in the "long" conversation of the growth test
    chain_depths: tuple[int, ...]
    peer_messages: int  # messages appended in the peers workload
    rss_items: int
    async_calls: int  # calls per concurrency round (split across 32 workers)

    @classmethod
    def make(cls, quick: bool) -> Settings:
        if quick:
            return cls(
                True,
                rounds=3,
                inner=5,
                big_conversation=2_000,
                chain_depths=(10, 100),
                peer_messages=50,
                rss_items=2_000,
                async_calls=320,
            )
        return cls(
            False,
            rounds=21,
            inner=40,
            big_conversation=100_000,
            chain_depths=(10, 100, 1_000),
            peer_messages=1_000,
            rss_items=100_000,
            async_calls=3_200,
        )


@dataclass
class Row:
    """One figure of the report.

    ``ratio`` is always a ratio measured in the same run; what it divides depends on the
    section (see ``RATIO_MEANING``). ``met`` is ``None`` where no target applies.
    """

    backend: str
    section: str
    measure: str
    datacon: str  # the datacon figure, formatted (a time, a throughput, bytes...)
    other_label: str
    other: str
    ratio: float | None
    target: str = ""
    met: bool | None = None
    note: str = ""
    seconds: tuple[float, float] | None = None  # raw (datacon, other) timings, for charts

    def ratio_text(self) -> str:
        return "n/a" if self.ratio is None else f"{self.ratio:.2f}×"

    def met_text(self) -> str:
        return {None: "", True: "yes", False: "**no**"}[self.met]


SECTIONS = {
    "overhead": "1. Overhead against the raw driver (ratio = datacon / baseline; lower is better)",
    "turn": "1b. A turn of four items (ratio = create_item ×4 + link_items / append_items; higher is better)",
    "growth": "2a. Page cost growth (ratio = page time on the long conversation / on the short one)",
    "chain": "2b. Response chains (ratio = naive one-query-per-link walk / datacon; higher is better)",
    "async": "3. Async facade (per call: async / sync time; throughput: async / threads)",
    "peers": "4. Peers, same workload and server (ratio = peer time / datacon time; > 1: datacon faster)",
    "delay": "4b. Behind a network delay (delaying TCP proxy; chain, append: slower way / datacon; higher is better)",
    "memory": "5. Memory (peak RSS per stored item)",
    "telemetry": "6. Telemetry (ratio = with opentelemetry-api, no SDK / without opentelemetry; lower is better)",
}


def fmt_time(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} µs"


def interleaved(
    variants: dict[str, Callable[[], object]],
    *,
    rounds: int,
    inner: int,
    warmup: bool = True,
    statistic: Callable[[list[float]], float] = statistics.median,
    between: Callable[[], object] | None = None,
) -> dict[str, float]:
    """Median seconds per call of each variant (or ``statistic`` of the per-round means).

    Every round runs each variant ``inner`` times, in an order that alternates from round to
    round, so that drift and noise on this shared machine hit every variant alike.
    ``between`` runs before every sample, untimed (e.g. a SQLite WAL checkpoint, so that no
    sample pays one that a write of the other variant made due).
    """
    names = list(variants)
    samples: dict[str, list[float]] = {name: [] for name in names}
    if warmup:
        for name in names:
            variants[name]()
    gc.collect()
    for index in range(rounds):
        order = names if index % 2 == 0 else names[::-1]
        for name in order:
            call = variants[name]
            if between is not None:
                between()
            start = time.perf_counter()
            for _ in range(inner):
                call()
            samples[name].append((time.perf_counter() - start) / inner)
    return {name: statistic(values) for name, values in samples.items()}


def once(call: Callable[[], object]) -> float:
    """Seconds taken by one call (for long workloads measured as a whole)."""
    gc.collect()
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def takeaway(rows: Sequence[Row]) -> str:
    """One line summing up a section's rows: how many targets were met, and the worst miss."""
    judged = [row for row in rows if row.met is not None]
    if not judged:
        return "No target in this section: the figures are for information."
    missed = [row for row in judged if not row.met]
    if not missed:
        return f"Every target met ({len(judged)} of {len(judged)})."

    def shortfall(row: Row) -> float:
        goal = _target_value(row.target) or 1.0
        ratio = row.ratio or 0.0
        return ratio / goal if row.target.startswith("≤") else goal / max(ratio, 1e-9)

    worst = max(missed, key=shortfall)
    return (
        f"{len(judged) - len(missed)} of {len(judged)} targets met; furthest from its target: "
        f"{worst.backend} {worst.measure}, datacon vs {worst.other_label}, {worst.ratio_text()} "
        f"(target {worst.target})."
    )


def write_markdown(rows: Sequence[Row], path: Path, *, title: str, header: str, charts: str | None = None) -> None:
    """A Markdown report: one table per section, in section order, each under a one-line
    takeaway (and its chart ``{charts}-{section}.png`` when ``charts`` is given)."""
    lines = [f"# {title}", "", header, ""]
    for section, heading in SECTIONS.items():
        chosen = [row for row in rows if row.section == section]
        if not chosen:
            continue
        lines += [f"## {heading}", "", f"**Takeaway:** {takeaway(chosen)}", ""]
        if charts is not None and any(row.ratio is not None and row.ratio > 0 for row in chosen):
            lines += [f"![{heading}]({charts}-{section}.png)", ""]
        lines.append("| backend | measure | datacon | compared with | other | ratio | target | met | note |")
        lines.append("|---|---|---|---|---|---|---|---|---|")
        for row in chosen:
            lines.append(
                f"| {row.backend} | {row.measure} | {row.datacon} | {row.other_label} | {row.other} "
                f"| {row.ratio_text()} | {row.target} | {row.met_text()} | {row.note} |"
            )
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")


@dataclass
class _Chart:
    labels: list[str] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    targets: list[float | None] = field(default_factory=list)
    colours: list[str] = field(default_factory=list)


def _target_value(target: str) -> float | None:
    digits = target.lstrip("≤≥<> ").rstrip("×x ")
    try:
        return float(digits)
    except ValueError:
        return None


def write_charts(rows: Sequence[Row], directory: Path, prefix: str) -> list[Path]:
    """One PNG bar chart of ratios per section (log scale), with each row's target marked."""
    import matplotlib

    matplotlib.use("Agg")  # no display on CI machines
    import matplotlib.pyplot as plt

    written: list[Path] = []
    for section, heading in SECTIONS.items():
        chart = _Chart()
        for row in rows:
            if row.section == section and row.ratio is not None and row.ratio > 0:
                ours = "datacon sync API" if section == "peers" else "datacon"
                chart.labels.append(f"{row.backend}: {row.measure}\n{ours} vs {row.other_label}")
                chart.values.append(row.ratio)
                chart.targets.append(_target_value(row.target))
                chart.colours.append({True: "#2e7d32", False: "#c62828", None: "#546e7a"}[row.met])
        if not chart.values:
            continue
        height = max(2.5, 0.62 * len(chart.values) + 1.4)
        fig, ax = plt.subplots(figsize=(10, height))
        positions = range(len(chart.values))
        ax.barh(list(positions), chart.values, color=chart.colours)
        for pos, target in zip(positions, chart.targets, strict=True):
            if target is not None:
                ax.plot([target, target], [pos - 0.45, pos + 0.45], color="black", linewidth=2)
        ax.set_yticks(list(positions), chart.labels, fontsize=8)
        ax.invert_yaxis()
        ax.axvline(1.0, color="grey", linewidth=0.8, linestyle="--")
        if section in ("chain", "peers"):  # these ratios span orders of magnitude
            ax.set_xscale("log")
        ax.set_xlabel("ratio (black tick: target; green met, red missed, grey no target)")
        summary = textwrap.fill(takeaway([row for row in rows if row.section == section]), 120)
        ax.set_title(f"{heading}\n{summary}", fontsize=8, loc="left")
        fig.tight_layout()
        path = directory / f"{prefix}-{section}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    depth_chart = _chain_depth_chart(rows, directory / f"{prefix}-chain-depth.png", plt)
    if depth_chart is not None:
        written.append(depth_chart)
    return written


def _chain_depth_chart(rows: Sequence[Row], path: Path, plt: Any) -> Path | None:
    """Absolute chain times by depth (log-log): datacon against the naive walk, per backend."""
    series: dict[str, list[tuple[int, float, float]]] = {}
    for row in rows:
        if row.section == "chain" and row.seconds is not None:
            depth = int(row.measure.rsplit(" ", 1)[-1].replace(",", ""))
            series.setdefault(row.backend, []).append((depth, *row.seconds))
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(8, 5))
    for backend, points in series.items():
        points.sort()
        depths = [p[0] for p in points]
        line = ax.plot(depths, [p[1] * 1e3 for p in points], marker="o", label=f"{backend}: datacon")[0]
        ax.plot(
            depths,
            [p[2] * 1e3 for p in points],
            marker="x",
            linestyle="--",
            color=line.get_color(),
            label=f"{backend}: naive walk",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("chain depth (responses)")
    ax.set_ylabel("ms per get_response_chain (median)")
    ax.set_title("2b. Response chains: datacon (solid) against one query per link (dashed)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
