"""Whether a run's report is complete: every row filled, every check passed.

A row is filled when each of its cells has a measurement or an explicit
"n/a (reason)", and no correctness check of a sessionhub row failed (lost
events, a read returning the wrong number of events); a peer failing a check
is a finding, shown in its row, not a problem of the run. A subject that could not run at all
must say why ("n/a (no server: ...)"); with ``CI=true``, a sessionhub backend
whose tests' server helper exists but could not start a server is a problem,
as a missing server is for the tests.
Timings are never checked.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from benchmarks.agents_session import SIZES, turn_key
from benchmarks.agentscope_subjects import NOT_IN_API
from benchmarks.plans import Plan, expected_keys
from benchmarks.results import RunResult
from benchmarks.servers import HELPER_FAILED
from benchmarks.subjects import NOT_MEASURED, UNDECLARED

__all__ = ["find_problems"]

SUBJECT_TABLES = 7
"""The report's tables with one row per subject (summary, W1, W1b, W2-W5)."""


def find_problems(run: RunResult, markdown: str, directory: Path) -> list[str]:
    """Everything that makes the smoke run's report incomplete (nothing: ``[]``)."""
    problems: list[str] = []
    keys = expected_keys(Plan(**run.plan))
    in_ci = os.environ.get("CI", "").lower() == "true"
    if not any(subject.status is None for subject in run.subjects):
        problems.append("no subject ran at all")
    for subject in run.subjects:
        row = subject.name
        if subject.status is not None:
            if not subject.status.startswith("n/a ("):
                problems.append(f"{row}: did not run: {subject.status}")
            elif in_ci and subject.family == "sessionhub" and HELPER_FAILED in subject.status:
                problems.append(f"{row}: no server with CI=true: {subject.status}")
            continue
        for key in keys:
            cell = subject.cells.get(key)
            if cell is None:
                problems.append(f"{row}: no {key} cell")
            elif cell.samples is None and not (cell.missing or "").startswith("n/a ("):
                problems.append(f"{row} {key}: {cell.missing or 'empty'}")
            elif cell.samples is None and (cell.missing or "").startswith(f"n/a ({UNDECLARED}"):
                continue  # a history operation the backend does not declare
            elif cell.samples is None and NOT_MEASURED in (cell.missing or ""):
                continue  # a history operation measured on the backend rows, not an adapter's
            elif cell.samples is None and NOT_IN_API in (cell.missing or ""):
                continue  # an adapter row: the framework's session API has no such call
            elif cell.samples is None and subject.family == "sessionhub":
                problems.append(f"{row} {key}: sessionhub has every operation, got {cell.missing}")
            elif cell.failed and subject.family == "sessionhub":
                problems.append(f"{row} {key}: check failed: {cell.detail}")
        if subject.family == "sessionhub" and not any(
            cell.floor for cell in subject.cells.values()
        ):
            problems.append(f"{row}: no floor was measured beside its appends")
    for subject in run.subjects:
        rows = sum(line.startswith(f"| {subject.name} |") for line in markdown.splitlines())
        if rows < SUBJECT_TABLES:
            problems.append(
                f"{subject.name}: in {rows} of the {SUBJECT_TABLES} subject tables of report.md"
            )
    for subject in run.agents_session:  # W6: every length of every runnable row
        if subject.status is not None:
            if not subject.status.startswith("n/a ("):
                problems.append(f"W6 {subject.name}: did not run: {subject.status}")
            continue
        for key in (turn_key(length) for length in SIZES[run.mode].lengths):
            cell = subject.cells.get(key)
            if cell is None or cell.samples is None:
                problems.append(f"W6 {subject.name} {key}: {cell.missing if cell else 'no cell'}")
            elif cell.failed and subject.family == "sessionhub":
                problems.append(f"W6 {subject.name} {key}: check failed: {cell.detail}")
    if "error:" in markdown:
        problems.append("report.md shows an error")
    results = json.loads((directory / "results.json").read_text(encoding="utf-8"))
    if len(results["subjects"]) != len(run.subjects):
        problems.append("results.json does not list every subject")
    return problems
