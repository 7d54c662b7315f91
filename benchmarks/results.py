"""What a run measured: one row per subject, one cell per workload variant.

The report (:mod:`benchmarks.report`) and the chart (:mod:`benchmarks.chart`)
read these; ``results.json`` is :meth:`RunResult.to_json` of them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from benchmarks.timing import Samples

__all__ = ["Cell", "SubjectResult", "RunResult"]


@dataclass
class Cell:
    """One measured workload variant of one subject, or why it has no value.

    ``samples`` are latencies in seconds (W4: the wall time of each run);
    ``floor`` the floor samples taken beside them (W1 only). ``missing`` is
    the table text when nothing was measured ("n/a (...)", "error: ...").
    ``failed`` marks a correctness check that did not pass (lost events, a
    read returning the wrong number of events); ``detail`` says what it found.
    """

    samples: Samples | None = None
    floor: Samples | None = None
    missing: str | None = None
    detail: str = ""
    failed: bool = False
    wanted: int = 0

    @property
    def median(self) -> float | None:
        """The median latency in seconds, if measured."""
        return None if self.samples is None else self.samples.median

    @property
    def short(self) -> bool:
        """True when the time budget stopped sampling before ``wanted`` samples."""
        return self.samples is not None and self.samples.count < self.wanted

    def to_json(self) -> dict[str, Any]:
        """The cell as JSON values (summaries and raw samples)."""
        data: dict[str, Any] = {
            "missing": self.missing,
            "detail": self.detail,
            "failed": self.failed,
            "wanted": self.wanted,
        }
        if self.samples is not None:
            data["samples"] = self.samples.summary()
            data["seconds"] = list(self.samples.seconds)
        if self.floor is not None:
            data["floor"] = self.floor.summary()
        return data


@dataclass
class SubjectResult:
    """One row: a subject and its cells (``status`` is set when it did not run at all)."""

    name: str
    family: str
    storage: str
    tier: str
    status: str | None = None
    floor_label: str | None = None
    cells: dict[str, Cell] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """The row as JSON values."""
        data = {k: v for k, v in dataclasses.asdict(self).items() if k != "cells"}
        data["cells"] = {key: cell.to_json() for key, cell in self.cells.items()}
        return data


@dataclass
class RunResult:
    """A whole run: the plan, the machine, every row, and how long it took."""

    mode: str
    plan: dict[str, Any]
    environment: dict[str, str]
    subjects: list[SubjectResult]
    floors: dict[str, str]
    started: str
    seconds: float = 0.0
    peers_not_installed: list[str] = field(default_factory=list)
    agents_session: list[SubjectResult] = field(default_factory=list)
    """W6 (:mod:`benchmarks.agents_session`): empty when the OpenAI Agents SDK is not installed."""

    def to_json(self) -> dict[str, Any]:
        """The run as JSON values (``results.json``)."""
        return {
            "mode": self.mode,
            "plan": self.plan,
            "environment": self.environment,
            "started": self.started,
            "seconds": self.seconds,
            "floors": self.floors,
            "peers_not_installed": self.peers_not_installed,
            "subjects": [subject.to_json() for subject in self.subjects],
            "agents_session": [subject.to_json() for subject in self.agents_session],
        }
