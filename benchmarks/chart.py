"""The chart: append latency against history length, per backend and peer, log-log.

One line per subject (sessionhub solid, peers dashed, one colour per kind
of storage), the median with a bar up to the p95, and each floor as a dotted
horizontal line. Drawn with matplotlib's Agg backend, so no display is needed;
without matplotlib the chart is skipped with a message.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

from benchmarks.plans import append_key
from benchmarks.results import RunResult

__all__ = ["draw_append_chart"]

TIER_COLOURS = {
    "in-process": ("#1f77b4", "#6baed6", "#9ecae1"),
    "local file": ("#d62728", "#ff7f0e", "#e377c2", "#8c564b"),
    "redis": ("#2ca02c", "#98df8a", "#bcbd22"),
    "mongodb": ("#9467bd", "#c5b0d5"),
    "postgres": ("#17becf", "#9edae5"),
}
FLOOR_COLOURS = {
    "memory": "#1f77b4",
    "sqlite": "#d62728",
    "redis": "#2ca02c",
    "mongodb": "#9467bd",
    "postgres": "#17becf",
}


def draw_append_chart(run: RunResult, path: Path) -> Path | None:
    """Draw the W1 chart to ``path`` (PNG); return it, or ``None`` without matplotlib/data."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("chart skipped: matplotlib is not installed", file=sys.stderr)
        return None
    lengths = run.plan["append_lengths"]
    figure, axes = plt.subplots(figsize=(10, 7.5), dpi=120)
    used: dict[str, int] = {}
    drawn = 0
    for subject in run.subjects:
        points = [
            (length, cell.samples.median, cell.samples.p95)
            for length in lengths
            if (cell := subject.cells.get(append_key(length))) is not None
            and cell.samples is not None
        ]
        if not points:
            continue
        palette = TIER_COLOURS[subject.tier]
        colour = palette[used.get(subject.tier, 0) % len(palette)]
        used[subject.tier] = used.get(subject.tier, 0) + 1
        xs = [point[0] for point in points]
        medians = [point[1] * 1e3 for point in points]
        lower = [0.0] * len(points)
        upper = [(point[2] - point[1]) * 1e3 for point in points]
        sessionhub = subject.family == "sessionhub"
        axes.errorbar(
            xs,
            medians,
            yerr=[lower, upper],
            label=subject.name,
            color=colour,
            linestyle="-" if sessionhub else "--",
            linewidth=2.2 if sessionhub else 1.4,
            marker="o" if sessionhub else "s",
            markersize=5,
            capsize=3,
        )
        drawn += 1
    if not drawn:
        plt.close(figure)
        return None
    for storage in run.floors:
        samples = [
            value
            for subject in run.subjects
            if subject.storage == storage
            for cell in subject.cells.values()
            if cell.floor is not None
            for value in cell.floor.seconds
        ]
        if samples:
            axes.axhline(
                statistics.median(samples) * 1e3,
                color=FLOOR_COLOURS.get(storage, "grey"),
                linestyle=":",
                linewidth=1,
                label=f"floor, {storage}",
            )
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xticks(lengths, [f"{length:,}" for length in lengths])
    axes.set_xlabel("events already in the session")
    axes.set_ylabel("append latency, ms (median; bar to p95)")
    axes.set_title(f"Append latency against history length ({run.mode} run)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=3)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path
