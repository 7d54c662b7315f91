"""The report: markdown tables (stdout and ``report.md``), ``results.json`` and the chart.

Every cell shows the median; W1 cells add the p95 and the ratio to the floor
measured beside them; every cell adds the ratio to the fastest peer on the
same kind of storage in the same column. Rows are grouped by that kind
(in-process, local file, redis, mongodb, postgres), sessionhub first.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from benchmarks.agents_session import LIMIT, SIZES, turn_key
from benchmarks.chart import draw_append_chart
from benchmarks.plans import (
    CONCURRENT,
    CREATE,
    LIST_FIRST,
    LIST_WALK,
    Plan,
    append_key,
    cas_key,
    get_key,
    last_key,
    pop_key,
)
from benchmarks.results import Cell, RunResult, SubjectResult
from benchmarks.timing import Samples

__all__ = ["render_markdown", "write_report", "format_seconds", "format_ratio"]

TIER_ORDER = ("in-process", "local file", "redis", "mongodb", "postgres")
CHART_FILE = "append_latency.png"


def format_seconds(seconds: float) -> str:
    """A duration with three significant digits and a fitting unit (µs, ms, s)."""
    for unit, scale in (("µs", 1e6), ("ms", 1e3)):
        if seconds * scale < 999.5:
            return f"{seconds * scale:.3g} {unit}"
    return f"{seconds:.3g} s"


def format_ratio(ratio: float) -> str:
    """A ratio such as ``1.42x`` or ``183x``."""
    if ratio < 10:
        return f"{ratio:.2f}x"
    return f"{ratio:.3g}x" if ratio < 100 else f"{ratio:,.0f}x"


def _sorted(subjects: list[SubjectResult]) -> list[SubjectResult]:
    def order(subject: SubjectResult) -> tuple[int, int]:
        return TIER_ORDER.index(subject.tier), subject.family != "sessionhub"

    return sorted(subjects, key=order)


class _Table:
    """The ratios of one run: fastest peer per (tier, cell key)."""

    def __init__(self, run: RunResult) -> None:
        self.run = run
        self.subjects = _sorted(run.subjects)
        self.plan = Plan(**run.plan)

    def fastest_peer(self, tier: str, key: str) -> tuple[str, float] | None:
        best: tuple[str, float] | None = None
        for subject in self.subjects:
            cell = subject.cells.get(key)
            if subject.family != "peer" or subject.tier != tier or cell is None:
                continue
            if cell.median is None or cell.failed:
                continue
            if best is None or cell.median < best[1]:
                best = (subject.name, cell.median)
        return best

    def peer_ratio(self, subject: SubjectResult, key: str) -> float | None:
        cell = subject.cells.get(key)
        best = self.fastest_peer(subject.tier, key)
        if cell is None or cell.median is None or best is None:
            return None
        return cell.median / best[1]

    def cell(self, subject: SubjectResult, key: str, *, p95: bool = False) -> str:
        cell = subject.cells.get(key)
        if cell is None:
            return "—"
        if cell.samples is None:
            return cell.missing or "—"
        parts = [format_seconds(cell.samples.median)]
        if p95:
            parts[0] += f" (p95 {format_seconds(cell.samples.p95)})"
        if cell.floor is not None:
            parts.append(f"{format_ratio(cell.samples.median / cell.floor.median)} floor")
        ratio = self.peer_ratio(subject, key)
        if ratio is not None:
            parts.append(f"{format_ratio(ratio)} peer")
        text = " · ".join(parts)
        if cell.short:
            text += f" (n={cell.samples.count})"
        if cell.failed:
            text = f"**FAILED** ({cell.detail}) {text}"
        return text

    def rows(self, headers: list[str], render: Callable[[SubjectResult], list[str]]) -> list[str]:
        lines = [
            "| subject | storage | " + " | ".join(headers) + " |",
            "|---|---|" + "---|" * len(headers),
        ]
        for subject in self.subjects:
            if subject.status is not None:
                cells = [subject.status] + ["—"] * (len(headers) - 1)
            else:
                cells = render(subject)
            lines.append(f"| {subject.name} | {subject.storage} | " + " | ".join(cells) + " |")
        return lines


def _growth(subject: SubjectResult, plan: Plan) -> float | None:
    first = subject.cells.get(append_key(plan.append_lengths[0]))
    last = subject.cells.get(append_key(plan.append_lengths[-1]))
    if first is None or last is None or first.median is None or last.median is None:
        return None
    return last.median / first.median


def _floor_ratio(cell: Cell | None) -> float | None:
    if cell is None or cell.median is None or cell.floor is None:
        return None
    return cell.median / cell.floor.median


def _or_dash(value: float | None, render: Callable[[float], str] = format_ratio) -> str:
    return "—" if value is None else render(value)


def _summary(table: _Table) -> list[str]:
    plan = table.plan
    short, long = plan.append_lengths[0], plan.append_lengths[-1]
    headers = [
        f"append @{short:,}",
        f"append @{long:,}",
        f"growth {long:,}/{short:,}",
        f"x floor @{short:,} / @{long:,}",
        f"x fastest peer @{short:,} / @{long:,}",
        "fastest peer (same storage)",
    ]

    def render(subject: SubjectResult) -> list[str]:
        cells = [subject.cells.get(append_key(length)) for length in (short, long)]
        medians = [
            format_seconds(cell.median) if cell and cell.median is not None else "—"
            for cell in cells
        ]
        floors = " / ".join(_or_dash(_floor_ratio(cell)) for cell in cells)
        peers = " / ".join(
            _or_dash(table.peer_ratio(subject, append_key(length))) for length in (short, long)
        )
        best = table.fastest_peer(subject.tier, append_key(short))
        return [
            *medians,
            _or_dash(_growth(subject, plan)),
            floors,
            peers,
            best[0] if best else "—",
        ]

    return table.rows(headers, render)


def _appends(table: _Table) -> list[str]:
    plan = table.plan
    headers = [f"@{length:,}" for length in plan.append_lengths] + ["growth"]

    def render(subject: SubjectResult) -> list[str]:
        cells = [table.cell(subject, append_key(n), p95=True) for n in plan.append_lengths]
        return [*cells, _or_dash(_growth(subject, plan))]

    return table.rows(headers, render)


def _history(table: _Table) -> list[str]:
    """W1b: pop and compare-and-set append per length, each also as a multiple of W1's append."""
    lengths = table.plan.append_lengths
    headers = [f"{name} @{length:,}" for name in ("pop", "cas") for length in lengths]
    headers += ["x append pop / cas", "growth pop / cas"]

    def versus_append(subject: SubjectResult, key: Callable[[int], str]) -> str:
        ratios = []
        for length in lengths:
            mine, append = subject.cells.get(key(length)), subject.cells.get(append_key(length))
            if mine is None or append is None or mine.median is None or append.median is None:
                ratios.append("—")
            else:
                ratios.append(format_ratio(mine.median / append.median))
        return "/".join(ratios)

    def growth(subject: SubjectResult, key: Callable[[int], str]) -> str:
        first, last = subject.cells.get(key(lengths[0])), subject.cells.get(key(lengths[-1]))
        if first is None or last is None or first.median is None or last.median is None:
            return "—"
        return format_ratio(last.median / first.median)

    def render(subject: SubjectResult) -> list[str]:
        cells = [table.cell(subject, key(n)) for key in (pop_key, cas_key) for n in lengths]
        return [
            *cells,
            f"{versus_append(subject, pop_key)} · {versus_append(subject, cas_key)}",
            f"{growth(subject, pop_key)} / {growth(subject, cas_key)}",
        ]

    return table.rows(headers, render)


def _reads(table: _Table) -> list[str]:
    plan = table.plan
    keys = [get_key(n) for n in plan.read_lengths] + [
        last_key(plan.last_n, n) for n in plan.read_lengths
    ]
    headers = [f"all @{n:,}" for n in plan.read_lengths] + [
        f"last {plan.last_n} @{n:,}" for n in plan.read_lengths
    ]
    return table.rows(headers, lambda subject: [table.cell(subject, key) for key in keys])


def _listing(table: _Table) -> list[str]:
    plan = table.plan
    headers = [f"first page ({plan.page_size})", "full walk (cursor)", "returned"]

    def render(subject: SubjectResult) -> list[str]:
        first, walk = subject.cells.get(LIST_FIRST), subject.cells.get(LIST_WALK)
        details = "; ".join(
            cell.detail for cell in (first, walk) if cell is not None and cell.detail
        )
        return [table.cell(subject, LIST_FIRST), table.cell(subject, LIST_WALK), details or "—"]

    return table.rows(headers, render)


def _concurrency(table: _Table) -> list[str]:
    plan = table.plan
    total = plan.writers * plan.appends_per_writer
    headers = ["wall time", "appends/s", "check"]

    def render(subject: SubjectResult) -> list[str]:
        cell = subject.cells.get(CONCURRENT)
        if cell is None or cell.samples is None:
            return [table.cell(subject, CONCURRENT), "—", "—"]
        rate = f"{total / cell.samples.median:,.0f}"
        check = f"**FAILED**: {cell.detail}" if cell.failed else f"ok: {cell.detail}"
        wall = table.cell(subject, CONCURRENT).replace(f"**FAILED** ({cell.detail}) ", "")
        return [wall, rate, check]

    return table.rows(headers, render)


def _creates(table: _Table) -> list[str]:
    headers = ["latency", "throughput"]

    def render(subject: SubjectResult) -> list[str]:
        cell = subject.cells.get(CREATE)
        rate = cell.detail if cell is not None and cell.samples is not None else "—"
        return [table.cell(subject, CREATE), rate]

    return table.rows(headers, render)


_APPEND_FLOOR_KEYS = ("append@", "pop@", "cas@")
"""The cells whose floor is the append floor (W2's cells have the read floor)."""


def _floors(table: _Table) -> list[str]:
    lines = ["| storage | floor | median | p95 | samples |", "|---|---|---|---|---|"]
    for storage, label in table.run.floors.items():
        samples = [
            value
            for subject in table.subjects
            if subject.storage == storage
            for key, cell in subject.cells.items()
            if cell.floor is not None and key.startswith(_APPEND_FLOOR_KEYS)
            for value in cell.floor.seconds
        ]
        if not samples:
            continue  # no subject of this storage ran
        pooled = Samples(tuple(samples))
        lines.append(
            f"| {storage} | {label} | {format_seconds(pooled.median)} "
            f"| {format_seconds(pooled.p95)} | {pooled.count} |"
        )
    return lines


def _agents_session(run: RunResult) -> list[str]:
    """W6: each session's median (p95) per history length, its growth, and x the SDK's own."""
    lengths = SIZES[run.mode].lengths
    headers = ["session", "storage", *(f"@{n:,} items" for n in lengths), "growth", "x SDK"]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    sdk = {
        subject.storage: subject.cells.get(turn_key(lengths[-1]))
        for subject in run.agents_session
        if subject.family == "peer"
    }
    for subject in _sorted(run.agents_session):
        if subject.status is not None:
            lines.append(f"| {subject.name} | {subject.storage} | {subject.status} |")
            continue
        cells = [subject.cells.get(turn_key(n)) for n in lengths]
        shown = []
        for cell in cells:
            if cell is None or cell.samples is None:
                shown.append(cell.missing if cell is not None and cell.missing else "—")
            else:
                flag = " (check failed)" if cell.failed else ""
                shown.append(
                    f"{format_seconds(cell.samples.median)} ({format_seconds(cell.samples.p95)})"
                    + flag
                )
        first, last = cells[0], cells[-1]
        growth = (
            last.median / first.median
            if first is not None and last is not None and first.median and last.median
            else None
        )
        theirs = sdk.get(subject.storage)
        versus = (
            last.median / theirs.median
            if subject.family == "sessionhub"
            and last is not None
            and last.median is not None
            and theirs is not None
            and theirs.median
            else None
        )
        row = [subject.name, subject.storage, *shown, _or_dash(growth), _or_dash(versus)]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def render_markdown(run: RunResult, chart: str | None = None) -> str:
    """The whole report as markdown."""
    table = _Table(run)
    plan = table.plan
    env = run.environment
    total = plan.writers * plan.appends_per_writer
    others = (plan.list_users - 1) * plan.list_others
    lines = [
        f"# sessionhub benchmarks: {run.mode} run",
        "",
        f"{run.started}, {run.seconds:.0f} s. Python {env['python']}, SQLite {env['sqlite']}, "
        f"{env['cpus']} CPUs (load average {env['load']} at the start), {env['platform']}.",
        f"Servers: redis from {env['redis server']}; mongodb from {env['mongodb server']}; "
        f"postgres from {env.get('postgres server', 'not needed')}.",
        f"Packages: {env['packages']}.",
        "",
        "Times are medians. **x floor**: divided by the raw-driver floor of the same storage, "
        "sampled beside each append (W1), or the same rows read through the raw driver without "
        "decoding, sampled beside each read (W2). **x peer**: divided by the fastest peer on "
        "the same kind of storage (in-process, local file, redis, mongodb, postgres) in the same "
        "column; below 1 is faster. **n=...**: the cell's time budget stopped sampling early. "
        "Each event is one assistant turn of about 500 bytes: text, a tool call, a timestamp.",
    ]
    if run.peers_not_installed:
        lines += [
            "",
            "Peers not installed (`nox -s bench -- --peers` installs them): "
            + ", ".join(run.peers_not_installed)
            + ".",
        ]
    sections = [
        ("Summary: append latency per backend", _summary(table)),
        (
            f"W1 append latency (median, p95; {plan.append_samples} samples per cell wanted)",
            _appends(table),
        ),
        (
            "W1b pop_event (after an untimed append) and compare-and-set append "
            "(expected_last_seq), on W1's sessions; x append: divided by W1 at the same length",
            _history(table),
        ),
        ("W2 get_session: every event, and the newest " + str(plan.last_n), _reads(table)),
        (
            f"W3 list_sessions: a user with {plan.list_sessions:,} sessions, "
            f"{others:,} more among {plan.list_users - 1} other users",
            _listing(table),
        ),
        (
            f"W4 {plan.writers} concurrent writers x {plan.appends_per_writer} appends to one "
            f"session ({total:,} events; median of {plan.concurrent_runs} run(s))",
            _concurrency(table),
        ),
        ("W5 create_session", _creates(table)),
        ("Floors (all samples taken beside the appends)", _floors(table)),
    ]
    if run.agents_session:
        title = (
            f"W6 OpenAI Agents session: add_items of one turn, then get_items(limit={LIMIT}); "
            "growth: the longest history over the shortest; x SDK: over the SDK's own session "
            "on the same storage, at the longest history"
        )
        sections.insert(-1, (title, _agents_session(run)))
    for title, rows in sections:
        lines += ["", f"## {title}", "", *rows]
    notes = [
        f"- {subject.name}: {'; '.join(subject.notes)}"
        for subject in table.subjects
        if subject.notes
    ]
    if notes:
        lines += ["", "## Settings that matter", "", *notes]
    if chart:
        lines += ["", f"![append latency against history length]({chart})"]
    return "\n".join(lines) + "\n"


def write_report(run: RunResult, directory: Path) -> tuple[str, list[Path]]:
    """Write ``report.md``, ``results.json`` and the chart; return the markdown and the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    chart = draw_append_chart(run, directory / CHART_FILE)
    if chart is not None:
        paths.append(chart)
    markdown = render_markdown(run, CHART_FILE if chart is not None else None)
    report = directory / "report.md"
    report.write_text(markdown, encoding="utf-8")
    results = directory / "results.json"
    results.write_text(json.dumps(run.to_json(), indent=1) + "\n", encoding="utf-8")
    return markdown, [report, results, *paths]
