"""The CI check: a tiny run proves the harness works and that every row of every table is filled.

    python -m benchmarks.smoke_check [--out DIR] [--no-peers]

From a test: ``run_smoke(tmp_path)`` raises ``AssertionError`` listing every
problem (see :mod:`benchmarks.completeness`). It asserts no timing.
``python -m benchmarks --smoke`` runs the same check after printing the tables.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.completeness import find_problems
from benchmarks.plans import Plan
from benchmarks.report import write_report
from benchmarks.results import RunResult
from benchmarks.run import execute

__all__ = ["run_smoke", "main"]


def run_smoke(directory: Path | None = None, *, peers: str = "auto") -> RunResult:
    """Run the smoke plan, write its report to ``directory``, and assert that it is complete."""
    with tempfile.TemporaryDirectory(prefix="sh-bench-smoke-") as scratch:
        out = directory if directory is not None else Path(scratch)
        run = execute(Plan.for_mode("smoke"), peers=peers)
        markdown, _ = write_report(run, out)
        problems = find_problems(run, markdown, out)
    if problems:
        raise AssertionError("benchmark smoke check failed:\n" + "\n".join(problems))
    return run


def main(argv: Sequence[str] | None = None) -> int:
    """Run the smoke check from the command line; exit 1 when the report is incomplete."""
    parser = argparse.ArgumentParser(description="Check that a tiny benchmark run fills every row.")
    parser.add_argument("--out", type=Path, default=None, help="keep the report here")
    parser.add_argument("--no-peers", action="store_true", help="leave the peers out")
    options = parser.parse_args(argv)
    try:
        run = run_smoke(options.out, peers="none" if options.no_peers else "auto")
    except AssertionError as exc:
        print(exc, file=sys.stderr)
        return 1
    ran = sum(subject.status is None for subject in run.subjects)
    print(
        f"benchmark smoke check passed: {ran} of {len(run.subjects)} subjects ran, every row filled"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
