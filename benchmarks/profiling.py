"""The ``--profile KEY`` switch: a cProfile profile of the workload of one cell, per subject.

``--profile get@5000`` runs the benchmarks as usual and profiles the workload
of that cell (its untimed first call and its samples; for a paired cell, the
floor's samples too, side by side) in every subject that runs it. Each one
writes ``profile-<subject>-<key>.prof`` (open it with ``python -m pstats``
or snakeviz) and ``.txt`` (the 40 costliest functions by cumulative time)
into the report directory. The event loop's thread is profiled: the work a
backend hands to a thread of its own (sqlite's connection thread) shows as
the wait for it.
"""

from __future__ import annotations

import contextlib
import cProfile
import io
import pstats
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ProfileRequest", "profiled"]


@dataclass(frozen=True)
class ProfileRequest:
    """Which cell to profile, and the directory the profiles go to."""

    key: str
    directory: Path

    def path(self, subject: str) -> Path:
        """The profile file of ``subject`` (``.prof``; the summary is beside it, ``.txt``)."""
        slug = re.sub(r"[^a-z0-9@.]+", "-", f"{subject}-{self.key}".lower()).strip("-")
        return self.directory / f"profile-{slug}.prof"


@contextlib.contextmanager
def profiled(request: ProfileRequest | None, subject: str, keys: list[str]) -> Iterator[None]:
    """Profile the block when ``request`` names one of ``keys``; otherwise just run it."""
    if request is None or request.key not in keys:
        yield
        return
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        yield
    finally:
        profiler.disable()
        path = request.path(subject)
        path.parent.mkdir(parents=True, exist_ok=True)
        profiler.dump_stats(path)
        summary = io.StringIO()
        stats = pstats.Stats(profiler, stream=summary)
        stats.strip_dirs().sort_stats("cumulative").print_stats(40)
        path.with_suffix(".txt").write_text(summary.getvalue())
