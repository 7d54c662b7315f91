"""W6, the OpenAI Agents session workload: what the SDK's runner does to its session per turn.

One sample is ``add_items`` of one turn (two Responses items: the assistant
message and its function call, as in :class:`benchmarks.subjects.OpenAISubject`)
followed by ``get_items(limit=20)``, at several history lengths. The subjects:
``SessionHubSession`` (``sessionhub-openai-agents``) on every sessionhub backend,
and the SDK's own ``SQLiteSession`` (a file) and ``RedisSession`` on the same
Redis server. It runs when the SDK and the adapter are installed; every read
checks that it got 20 items back (a wrong count marks the cell failed).
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.payload import TurnFactory
from benchmarks.results import Cell, SubjectResult
from benchmarks.servers import Server
from benchmarks.subjects import (
    OpenAISubject,
    SessionhubSubject,
    Subject,
    Unavailable,
    _importable,
    discover,
)
from benchmarks.timing import measure

__all__ = ["W6_NAME", "LIMIT", "SIZES", "turn_key", "agents_subjects", "run_agents_session"]

W6_NAME = "OpenAI Agents session"
"""The workload's name; ``--only "OpenAI Agents session"`` runs W6 alone."""
LIMIT = 20
"""The ``get_items`` limit of every sample."""
PREFILL_ITEMS = 1_000
WARMUP = 5
"""Untimed turns before each length's samples (connections, caches, prepared statements)."""


@dataclass(frozen=True)
class Size:
    """History lengths (in items) and the sampling of one mode."""

    lengths: tuple[int, ...]
    samples: int
    budget: float
    minimum: int


SIZES = {
    "smoke": Size((40, 200), 10, 2.0, 3),
    "quick": Size((20, 2_000, 20_000), 100, 3.0, 20),
    "full": Size((20, 2_000, 20_000), 500, 10.0, 100),
}


def turn_key(length: int) -> str:
    """The cell key of W6 at ``length`` stored items."""
    return f"turn@{length}"


def agents_subjects(redis: Server, mongodb: Server, run_id: str) -> list[Subject | Unavailable]:
    """The adapter on each sessionhub backend, then the SDK's sessions ([]: SDK not installed)."""
    if not (_importable("agents") and _importable("sessionhub_openai_agents")):
        return []
    found = discover(redis, mongodb, f"{run_id}w6", peers=True)
    return [
        subject
        for subject in found
        if isinstance(subject, (SessionhubSubject, OpenAISubject))
        or (isinstance(subject, Unavailable) and subject.family == "sessionhub")
        or (isinstance(subject, Unavailable) and subject.name.startswith("OpenAI Agents"))
    ]


def _row_name(subject: Subject | Unavailable) -> str:
    return subject.name.replace("sessionhub ", "SessionHubSession on ")  # the SDK's keep theirs


async def _open_session(subject: Subject, session_id: str) -> Any:
    if isinstance(subject, SessionhubSubject):
        from sessionhub_openai_agents import SessionHubSession

        return SessionHubSession(session_id, subject.service)
    return await subject.create("w6", session_id)


async def _measure(subject: Subject, size: Size, turns: TurnFactory) -> dict[str, Cell]:
    items_of = OpenAISubject(None, "").native
    cells: dict[str, Cell] = {}
    for length in size.lengths:
        key = turn_key(length)
        try:
            session = await _open_session(subject, f"w6-{length}")
            history = [item for turn in turns.many(length // 2) for item in items_of(turn)]
            for start in range(0, len(history), PREFILL_ITEMS):
                await session.add_items(history[start : start + PREFILL_ITEMS])
            samples = [items_of(turn) for turn in turns.many(size.samples)]
            wrong: list[int] = []

            async def one_turn(
                index: int, session: Any = session, samples: Any = samples, wrong: Any = wrong
            ) -> None:
                await session.add_items(samples[index])
                got = len(await session.get_items(limit=LIMIT))
                if got != LIMIT:
                    wrong.append(got)

            for turn in turns.many(WARMUP):
                await session.add_items(items_of(turn))
                await session.get_items(limit=LIMIT)
            measured = await measure(
                one_turn, count=size.samples, budget=size.budget, minimum=size.minimum
            )
            cell = Cell(samples=measured, wanted=size.samples)
            if wrong:
                cell.failed = True
                cell.detail = f"get_items(limit={LIMIT}) returned {wrong[0]} items"
            cells[key] = cell
        except Exception as exc:  # one failing length marks its cell, the others still run
            line = traceback.format_exception_only(type(exc), exc)[-1].strip()
            cells[key] = Cell(missing=f"error: {line}"[:200], failed=True, detail=line)
    return cells


async def run_agents_session(
    subjects: Sequence[Subject | Unavailable],
    mode: str,
    turns: TurnFactory,
    workdir: Path,
    progress: Callable[[str], None],
) -> list[SubjectResult]:
    """Run W6 on every subject; a subject that cannot run gets its row with the reason."""
    size = SIZES[mode]
    results: list[SubjectResult] = []
    for subject in subjects:
        name = _row_name(subject)
        result = SubjectResult(name, subject.family, subject.storage, subject.tier)
        if isinstance(subject, Unavailable):
            result.status = subject.reason
            results.append(result)
            continue
        directory = workdir / "w6" / name.replace(" ", "-").lower()
        directory.mkdir(parents=True, exist_ok=True)
        try:
            await subject.open(directory)
            result.cells = await _measure(subject, size, turns)
        except Exception as exc:  # a subject that cannot start still gets its row
            result.status = f"error: {type(exc).__name__}: {exc}".splitlines()[0][:200]
        finally:
            try:
                await subject.close()
            except Exception as exc:  # closing must not hide the results
                progress(f"W6 {name}: closing failed: {type(exc).__name__}: {exc}")
        progress(f"W6 {name}: done")
        results.append(result)
    return results
