"""W6, the OpenAI Agents session workload: what the SDK's runner does to its session per turn.

One sample is ``add_items`` of one turn (two Responses items: the assistant
message and its function call, as in :class:`benchmarks.peer_subjects.OpenAISubject`)
followed by ``get_items(limit=20)``, at several history lengths; the subjects on
one storage are timed alternately, turn by turn. The subjects:
``SessionHubSession`` (``sessionhub-openai-agents``) on every sessionhub backend,
and the SDK's own ``SQLiteSession`` (a file) and ``RedisSession`` on the same
Redis server. It runs when the SDK and the adapter are installed; every read
checks that it got 20 items back (a wrong count marks the cell failed).
"""

from __future__ import annotations

import gc
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.payload import TurnFactory
from benchmarks.peer_subjects import OpenAISubject, _importable
from benchmarks.results import Cell, SubjectResult
from benchmarks.servers import Server
from benchmarks.subjects import (
    SessionhubSubject,
    Subject,
    Unavailable,
    discover,
)
from benchmarks.timing import Samples

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


def agents_subjects(
    redis: Server, mongodb: Server, run_id: str, postgres: Server | None = None
) -> list[Subject | Unavailable]:
    """The adapter on each sessionhub backend, then the SDK's sessions ([]: SDK not installed)."""
    if not (_importable("agents") and _importable("sessionhub_openai_agents")):
        return []
    found = discover(redis, mongodb, f"{run_id}w6", peers=True, postgres=postgres)
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


@dataclass
class _Turns:
    """One subject's session at one history length, ready to be timed turn by turn."""

    session: Any
    samples: list[Any]
    seconds: list[float] = field(default_factory=list)
    wrong: list[int] = field(default_factory=list)

    async def timed(self, index: int) -> float:
        """Time one turn: ``add_items`` of sample ``index``, then ``get_items(limit=LIMIT)``."""
        began = time.perf_counter()
        await self.session.add_items(self.samples[index])
        got = len(await self.session.get_items(limit=LIMIT))
        elapsed = time.perf_counter() - began
        if got != LIMIT:
            self.wrong.append(got)
        return elapsed


async def _prepare(subject: Subject, length: int, size: Size, turns: TurnFactory) -> _Turns:
    """The subject's session filled with ``length`` items and warmed up."""
    items_of = OpenAISubject(None, "").native
    session = await _open_session(subject, f"w6-{length}")
    history = [item for turn in turns.many(length // 2) for item in items_of(turn)]
    for start in range(0, len(history), PREFILL_ITEMS):
        await session.add_items(history[start : start + PREFILL_ITEMS])
    for turn in turns.many(WARMUP):
        await session.add_items(items_of(turn))
        await session.get_items(limit=LIMIT)
    return _Turns(session, [items_of(turn) for turn in turns.many(size.samples)])


def _failure(exc: Exception) -> Cell:
    line = traceback.format_exception_only(type(exc), exc)[-1].strip()
    return Cell(missing=f"error: {line}"[:200], failed=True, detail=line)


async def _measure(
    subjects: Sequence[Subject], size: Size, turns: TurnFactory
) -> dict[str, dict[str, Cell]]:
    """Every subject's cells, by name; the subjects' turns alternate, sample by sample.

    Subjects on one storage are timed side by side (the order rotating each round),
    so a change in the machine's load hits the adapter and the SDK's session alike.
    """
    cells: dict[str, dict[str, Cell]] = {subject.name: {} for subject in subjects}
    for length in size.lengths:
        key = turn_key(length)
        running: dict[str, _Turns] = {}
        for subject in subjects:
            try:
                running[subject.name] = await _prepare(subject, length, size, turns)
            except Exception as exc:  # one failing length marks its cell, the others still run
                cells[subject.name][key] = _failure(exc)
        gc.collect()
        deadline = time.perf_counter() + size.budget * max(1, len(running))
        for index in range(size.samples):
            names = list(running)
            for name in names[index % len(names) :] + names[: index % len(names)]:
                try:
                    running[name].seconds.append(await running[name].timed(index))
                except Exception as exc:  # this subject stops; the others go on
                    cells[name][key] = _failure(exc)
                    del running[name]
            if not running or (
                time.perf_counter() > deadline
                and min(len(each.seconds) for each in running.values()) >= size.minimum
            ):
                break
        for name, each in running.items():
            cell = Cell(samples=Samples(tuple(each.seconds)), wanted=size.samples)
            if each.wrong:
                cell.failed = True
                cell.detail = f"get_items(limit={LIMIT}) returned {each.wrong[0]} items"
            cells[name][key] = cell
    return cells


async def run_agents_session(
    subjects: Sequence[Subject | Unavailable],
    mode: str,
    turns: TurnFactory,
    workdir: Path,
    progress: Callable[[str], None],
) -> list[SubjectResult]:
    """Run W6 on every subject; a subject that cannot run gets its row with the reason.

    The subjects of one storage (the adapter on sqlite and ``SQLiteSession``; on
    redis and ``RedisSession``) are open together and timed alternately.
    """
    size = SIZES[mode]
    results: dict[str, SubjectResult] = {}
    storages: dict[str, list[Subject]] = {}
    for subject in subjects:
        name = _row_name(subject)
        results[subject.name] = SubjectResult(name, subject.family, subject.storage, subject.tier)
        if isinstance(subject, Unavailable):
            results[subject.name].status = subject.reason
        else:
            storages.setdefault(subject.storage, []).append(subject)
    for group in storages.values():
        opened: list[Subject] = []
        try:
            for subject in group:
                directory = workdir / "w6" / _row_name(subject).replace(" ", "-").lower()
                directory.mkdir(parents=True, exist_ok=True)
                try:
                    await subject.open(directory)
                except Exception as exc:  # a subject that cannot start still gets its row
                    status = f"error: {type(exc).__name__}: {exc}".splitlines()[0][:200]
                    results[subject.name].status = status
                    await _close(subject, progress)
                    continue
                opened.append(subject)
            for name, measured in (await _measure(opened, size, turns)).items():
                results[name].cells = measured
        finally:
            for subject in opened:
                await _close(subject, progress)
        for subject in group:
            progress(f"W6 {_row_name(subject)}: done")
    return [results[subject.name] for subject in subjects]


async def _close(subject: Subject, progress: Callable[[str], None]) -> None:
    try:
        await subject.close()
    except Exception as exc:  # closing must not hide the results
        progress(f"W6 {_row_name(subject)}: closing failed: {type(exc).__name__}: {exc}")
