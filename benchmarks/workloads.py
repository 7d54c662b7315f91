"""The workloads, run on one subject (their sizes per mode: :mod:`benchmarks.plans`).

- W1 append latency at several history lengths (median, p95), each sample
  beside a floor sample. The samples are spread over as many sessions of the
  length as it takes for none to grow by more than a fifth (at 10 events, two
  appends per session; at 10,000 events, one session).
- W1b, on the same sessions right after W1, where the backend declares the
  capability: ``pop_event`` (an untimed append, then the timed pop, so the
  length stays) and a compare-and-set append (``expected_last_seq`` set to
  the session's current ``last_seq``), each beside a floor sample.
- W2 ``get_session`` with every event, and with ``last_n``, at several lengths, each
  sample beside a read-floor sample (the same rows through the raw driver).
- W3 ``list_sessions``: the first page, and a full walk following the cursor,
  for a user owning many sessions among several users; a sessionhub subject's
  samples each beside a listing-floor sample (as many session rows, read page
  by page through the raw driver).
- W4 concurrent writers appending to one session: the wall time, and a check
  that every event is stored once (and, where there are seqs, that they run
  1..N without a gap).
- W5 ``create_session`` latency and throughput.

Every read checks the number of events it got back; a wrong count marks the
cell failed. An exception in one workload marks its cells "error: ..." and
the subject goes on with the next workload.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
import traceback
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from benchmarks.floors import Floor
from benchmarks.payload import TurnFactory
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
from benchmarks.profiling import ProfileRequest, profiled
from benchmarks.results import Cell
from benchmarks.subjects import StoredTurn, Subject
from benchmarks.timing import Operation, Samples, measure, measure_paired

__all__ = ["run_subject"]

WARMUP = 5
GROWTH = 5
"""W1 spreads its samples so that no session grows by more than 1/GROWTH of its length."""

Progress = Callable[[str], None]


class _Run:
    """One subject's pass through the workloads."""

    def __init__(
        self,
        subject: Subject,
        plan: Plan,
        floor: Floor | None,
        turns: TurnFactory,
        progress: Progress,
        profile: ProfileRequest | None = None,
    ) -> None:
        self.subject = subject
        self.profile = profile
        self.plan = plan
        self.floor = floor
        self.turns = turns
        self.progress = progress
        self.cells: dict[str, Cell] = {}
        self._ids = itertools.count()
        self.sessions: dict[int, Any] = {}
        self.targets: dict[int, list[Any]] = {}
        """W1's sessions of each length, which W1b then uses."""

    def new_id(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids)}"

    async def session_of(self, user_id: str, length: int) -> Any:
        handle = await self.subject.create(user_id, self.new_id(f"len{length}"))
        return await self.subject.prefill(handle, self.turns.many(length)) if length else handle

    async def guarded(
        self, keys: list[str], workload: Callable[[], Awaitable[None]], *, quiet: bool = False
    ) -> None:
        """Run ``workload``; on an exception, mark its cells that have no value as errors."""
        if not quiet:
            self.progress(f"{self.subject.name}: {', '.join(keys)}")
        try:
            # The quiet calls wrap a whole phase; its cells are profiled one by one inside.
            with profiled(None if quiet else self.profile, self.subject.name, keys):
                await workload()
        except Exception as exc:  # one failing workload must not end the subject's row
            text = f"error: {type(exc).__name__}: {exc}".splitlines()[0][:200]
            self.progress(f"{self.subject.name}: {text}\n{traceback.format_exc()}")
            for key in keys:
                if key not in self.cells or self.cells[key].samples is None:
                    self.cells[key] = Cell(missing=text, failed=True)

    # --- W2 -----------------------------------------------------------------------

    def history_keys(self) -> list[str]:
        plan = self.plan
        keys = self.append_keys()
        for length in plan.read_lengths:
            keys += [get_key(length), last_key(plan.last_n, length)]
        return keys

    async def fill(self) -> None:
        """Make the sessions W2 reads (W1 appends to them afterwards), before any timing."""
        plan = self.plan
        for length in sorted(set(plan.read_lengths)):
            self.progress(f"{self.subject.name}: filling a session of {length:,} events")
            self.sessions[length] = await self.session_of("reader", length)
            if self.floor is not None:
                await self.floor.prepare_reads(length)

    async def reads(self) -> None:
        plan = self.plan
        for length in plan.read_lengths:
            if length not in self.sessions:
                continue
            await self.guarded([get_key(length)], partial(self.read, length, None))
            key = last_key(plan.last_n, length)
            if "last_n" in self.subject.missing:
                self.cells[key] = Cell(missing=f"n/a ({self.subject.missing['last_n']})")
            else:
                await self.guarded([key], partial(self.read, length, plan.last_n))

    async def read(self, length: int, last_n: int | None) -> None:
        handle = self.sessions[length]
        expected = length if last_n is None else min(last_n, length)
        got = await self.subject.get(handle, last_n)
        plan = self.plan
        count, budget, minimum = plan.read_samples, plan.read_budget, plan.read_minimum
        floor: Samples | None = None
        if self.floor is None:
            samples = await measure(
                lambda i: self.subject.get(handle, last_n),
                count=count,
                budget=budget,
                minimum=minimum,
            )
        else:
            read_floor = self.floor
            samples, floor = await measure_paired(
                lambda i: self.subject.get(handle, last_n),
                lambda i: read_floor.read(length, last_n),
                count=count,
                budget=budget,
                minimum=minimum,
            )
        cell = Cell(samples=samples, floor=floor, wanted=self.plan.read_samples)
        if got != expected:
            cell.failed = True
            cell.detail = f"returned {got} events, expected {expected}"
        self.cells[get_key(length) if last_n is None else last_key(last_n, length)] = cell

    # --- W1 -----------------------------------------------------------------------

    def append_keys(self) -> list[str]:
        lengths = self.plan.append_lengths
        keys = [append_key(length) for length in lengths]
        return keys + [pop_key(length) for length in lengths] + [cas_key(n) for n in lengths]

    async def appends(self) -> None:
        plan = self.plan
        warm = await self.session_of("writer", 0)
        for turn in self.turns.many(WARMUP):
            await self.subject.append(warm, self.subject.native(turn))
            if self.floor is not None:
                await self.floor.once(0)
        for length in plan.append_lengths:
            await self.guarded([append_key(length)], partial(self.append_at, length))
            for key, operation, workload in (
                (cas_key(length), "compare_and_set", self.cas_at),
                (pop_key(length), "pop_event", self.pop_at),
            ):
                if operation in self.subject.missing:
                    self.cells[key] = Cell(missing=f"n/a ({self.subject.missing[operation]})")
                elif length in self.targets:
                    await self.guarded([key], partial(workload, length))

    async def append_at(self, length: int) -> None:
        """W1 at ``length``: enough sessions that none grows by more than a fifth while sampled."""
        wanted = math.ceil(self.plan.append_samples / max(1, length // GROWTH))
        targets = [self.sessions[length]] if length in self.sessions else []
        if len(targets) < wanted:
            more = wanted - len(targets)
            self.progress(f"{self.subject.name}: filling {more} sessions of {length:,} events")
        while len(targets) < wanted:
            targets.append(await self.session_of("writer", length))
        self.targets[length] = targets
        await self.append(length, targets)

    async def append(self, length: int, targets: list[Any]) -> None:
        plan = self.plan
        items = [self.subject.native(turn) for turn in self.turns.many(plan.append_samples)]

        def operation(index: int) -> Awaitable[None]:
            return self.subject.append(targets[index % len(targets)], items[index])

        count, budget, minimum = plan.append_samples, plan.append_budget, plan.append_minimum
        floor: Samples | None = None
        if self.floor is None:
            samples = await measure(operation, count=count, budget=budget, minimum=minimum)
        else:
            samples, floor = await measure_paired(
                operation, self.floor.once, count=count, budget=budget, minimum=minimum
            )
        self.cells[append_key(length)] = Cell(samples=samples, floor=floor, wanted=count)

    async def paired(self, key: str, operation: Operation, setup: Operation | None = None) -> None:
        """Time ``operation`` as W1 times an append: beside the floor when there is one."""
        plan = self.plan
        count, budget, minimum = plan.append_samples, plan.append_budget, plan.append_minimum
        floor: Samples | None = None
        if self.floor is None:
            samples = await measure(
                operation, count=count, budget=budget, minimum=minimum, setup=setup
            )
        else:
            samples, floor = await measure_paired(
                operation, self.floor.once, count=count, budget=budget, minimum=minimum, setup=setup
            )
        self.cells[key] = Cell(samples=samples, floor=floor, wanted=count)

    async def cas_at(self, length: int) -> None:
        """W1b: appends that name the ``last_seq`` they expect, on W1's sessions."""
        targets = self.targets[length]
        last = [await self.subject.last_seq(target) for target in targets]
        items = [self.subject.native(turn) for turn in self.turns.many(self.plan.append_samples)]

        async def operation(index: int) -> None:
            slot = index % len(targets)
            last[slot] = await self.subject.append_expecting(
                targets[slot], items[index], last[slot]
            )

        await self.paired(cas_key(length), operation)

    async def pop_at(self, length: int) -> None:
        """W1b: an untimed append, then the timed ``pop_event``: the length stays."""
        targets = self.targets[length]
        items = [self.subject.native(turn) for turn in self.turns.many(self.plan.append_samples)]

        async def setup(index: int) -> None:
            await self.subject.append(targets[index % len(targets)], items[index])

        await self.paired(
            pop_key(length), lambda i: self.subject.pop(targets[i % len(targets)]), setup
        )

    # --- W3 -----------------------------------------------------------------------

    async def listing(self) -> None:
        keys = [LIST_FIRST, LIST_WALK]
        if "list" in self.subject.missing:
            for key in keys:
                self.cells[key] = Cell(missing=f"n/a ({self.subject.missing['list']})")
            return
        await self.guarded(keys, self._listing)

    async def _listing(self) -> None:
        plan = self.plan
        users = [self.new_id("lister") for _ in range(plan.list_users)]
        self.progress(f"{self.subject.name}: creating sessions for {plan.list_users} users")
        for number, user_id in enumerate(users):
            count = plan.list_sessions if number == 0 else plan.list_others
            await self.subject.populate(user_id, [self.new_id("listed") for _ in range(count)])
        target = users[0]

        async def walk() -> tuple[int, int]:
            total, pages, cursor = 0, 0, None
            while True:
                size, cursor = await self.subject.list_page(target, plan.page_size, cursor)
                total, pages = total + size, pages + 1
                if cursor is None:
                    return total, pages

        count, budget, minimum = plan.list_samples, plan.list_budget, plan.list_minimum
        first_size, _ = await self.subject.list_page(target, plan.page_size, None)
        total, pages = await walk()
        pages_like_floor = (
            self.subject.family == "sessionhub" and "paging" not in self.subject.missing
        )
        floor = self.floor if pages_like_floor else None
        first_floor: Samples | None = None
        walk_floor: Samples | None = None
        if floor is not None and await self._listing_floor(floor):
            sessions = plan.list_sessions
            first, first_floor = await measure_paired(
                lambda i: self.subject.list_page(target, plan.page_size, None),
                lambda i: floor.list_page(sessions, plan.page_size, None),
                count=count,
                budget=budget,
                minimum=minimum,
            )
            walked, walk_floor = await measure_paired(
                lambda i: walk(),
                lambda i: floor.list_walk(sessions, plan.page_size),
                count=count,
                budget=budget,
                minimum=minimum,
            )
        else:
            first = await measure(
                lambda i: self.subject.list_page(target, plan.page_size, None),
                count=count,
                budget=budget,
                minimum=minimum,
            )
            walked = await measure(lambda i: walk(), count=count, budget=budget, minimum=minimum)
        paging = self.subject.missing.get("paging")
        first_cell = Cell(
            samples=first, floor=first_floor, wanted=plan.list_samples, detail=f"{first_size:,}"
        )
        walk_cell = Cell(
            samples=walked,
            floor=walk_floor,
            wanted=plan.list_samples,
            detail=f"{total:,} in {pages}",
        )
        if paging is not None:
            first_cell.detail = f"all {first_size:,} at once ({paging.split(':')[0]})"
            walk_cell.detail += " call"
        else:
            walk_cell.detail += " page" if pages == 1 else " pages"
            if first_size != min(plan.page_size, plan.list_sessions):
                first_cell.failed = True
                first_cell.detail += f", expected {min(plan.page_size, plan.list_sessions)}"
        if total != plan.list_sessions:
            walk_cell.failed = True
            walk_cell.detail += f", expected {plan.list_sessions:,}"
        self.cells[LIST_FIRST], self.cells[LIST_WALK] = first_cell, walk_cell

    async def _listing_floor(self, floor: Floor) -> bool:
        """Fill the floor's session rows (once per floor); False if it has no listing floor."""
        try:
            await floor.prepare_listing(self.plan.list_sessions)
        except NotImplementedError:
            return False
        return True

    # --- W4 -----------------------------------------------------------------------

    async def concurrency(self) -> None:
        await self.guarded([CONCURRENT], self._concurrency)

    async def _concurrency(self) -> None:
        if "concurrent" in self.subject.missing:
            self.cells[CONCURRENT] = Cell(missing=f"n/a ({self.subject.missing['concurrent']})")
            return
        plan = self.plan
        walls: list[float] = []
        problems: list[str] = []
        has_seqs = False
        expected_total = plan.writers * plan.appends_per_writer
        for _ in range(plan.concurrent_runs):
            handle = await self.subject.create("writer", self.new_id("concurrent"))
            batches = [self.turns.many(plan.appends_per_writer) for _ in range(plan.writers)]
            natives = [[self.subject.native(turn) for turn in batch] for batch in batches]

            async def writer(items: list[Any], handle: Any = handle) -> None:
                for item in items:
                    await self.subject.append(handle, item)

            began = time.perf_counter()
            outcomes = await asyncio.gather(
                *(writer(items) for items in natives), return_exceptions=True
            )
            walls.append(time.perf_counter() - began)
            errors = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
            expected = [turn.call_id for batch in batches for turn in batch]
            try:
                stored = await self.subject.stored(handle)
            except Exception as exc:  # e.g. a snapshot file the writers left corrupt
                problems.append(f"session unreadable afterwards ({type(exc).__name__}: {exc})")
                continue
            found, has_seqs = _check_stored(stored, expected, errors)
            problems += found
        if problems:
            detail = "; ".join(dict.fromkeys(problems))
        else:
            detail = f"{expected_total:,}/{expected_total:,} stored once"
            detail += f", seqs 1..{expected_total:,}" if has_seqs else " (no seqs to check)"
        self.cells[CONCURRENT] = Cell(
            samples=Samples(tuple(walls)),
            wanted=plan.concurrent_runs,
            detail=detail,
            failed=bool(problems),
        )

    # --- W5 -----------------------------------------------------------------------

    async def creates(self) -> None:
        if "create" in self.subject.missing:
            self.cells[CREATE] = Cell(missing=f"n/a ({self.subject.missing['create']})")
            return
        await self.guarded([CREATE], self._creates)

    async def _creates(self) -> None:
        plan = self.plan
        ids = [self.new_id("created") for _ in range(plan.creates)]
        samples = await measure(
            lambda i: self.subject.create("creator", ids[i]),
            count=plan.creates,
            budget=plan.create_budget,
            minimum=min(plan.creates, 20),
        )
        rate = samples.count / samples.total
        self.cells[CREATE] = Cell(samples=samples, wanted=plan.creates, detail=f"{rate:,.0f}/s")


def _check_stored(
    stored: list[StoredTurn], expected: list[str], errors: list[BaseException]
) -> tuple[list[str], bool]:
    """What is wrong with a session after the concurrent writers, and whether it has seqs."""
    problems: list[str] = []
    if errors:
        kinds = sorted({type(error).__name__ for error in errors})
        problems.append(f"{len(errors)} writers failed ({', '.join(kinds)})")
    ids = [turn.call_id for turn in stored]
    lost = set(expected) - set(ids)
    if lost:
        problems.append(f"{len(lost)} of {len(expected)} events lost")
    if len(ids) != len(set(ids)):
        problems.append(f"{len(ids) - len(set(ids))} duplicates")
    seqs = [turn.seq for turn in stored]
    has_seqs = bool(seqs) and all(seq is not None for seq in seqs)
    if has_seqs and seqs != list(range(1, len(seqs) + 1)):
        problems.append("seqs are not 1..N")
    return problems, has_seqs


async def run_subject(
    subject: Subject,
    plan: Plan,
    floor: Floor | None,
    turns: TurnFactory,
    progress: Progress,
    profile: ProfileRequest | None = None,
) -> dict[str, Cell]:
    """Run W2, W1 (with W1b), W3, W4 and W5 (reads before appends grow the sessions).

    With ``profile``, the workload of that cell is profiled (see :mod:`benchmarks.profiling`).
    """
    run = _Run(subject, plan, floor, turns, progress, profile)
    await run.guarded(run.history_keys(), run.fill, quiet=True)
    await run.reads()
    await run.guarded(run.append_keys(), run.appends, quiet=True)
    await run.listing()
    await run.concurrency()
    await run.creates()
    return run.cells
