"""Sampling: time an operation many times, optionally interleaved with its floor.

Samples are wall-clock seconds from :func:`time.perf_counter`. A measurement
takes ``count`` samples but stops early once ``budget`` seconds have passed and
at least ``minimum`` samples are in, so a slow subject cannot blow the run's
time budget; the number actually taken is kept with the samples and shown in
the report when it fell short.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

__all__ = ["Samples", "Operation", "measure", "measure_paired"]

Operation = Callable[[int], Awaitable[object]]
"""An operation to time; it gets the sample's index."""


@dataclass(frozen=True)
class Samples:
    """The durations (seconds) of one measured operation."""

    seconds: tuple[float, ...]

    @property
    def count(self) -> int:
        """How many samples were taken."""
        return len(self.seconds)

    @property
    def median(self) -> float:
        """The median duration."""
        return statistics.median(self.seconds)

    @property
    def p95(self) -> float:
        """The 95th percentile (inclusive method; the maximum below 2 samples)."""
        if self.count < 2:
            return max(self.seconds)
        return statistics.quantiles(self.seconds, n=20, method="inclusive")[-1]

    @property
    def total(self) -> float:
        """The sum of the durations."""
        return sum(self.seconds)

    def summary(self) -> dict[str, float | int]:
        """The median, p95 and count, for ``results.json``."""
        return {"median": self.median, "p95": self.p95, "count": self.count}


async def _timed(operation: Operation, index: int, setup: Operation | None = None) -> float:
    if setup is not None:
        await setup(index)
    began = time.perf_counter()
    await operation(index)
    return time.perf_counter() - began


async def measure(
    operation: Operation,
    *,
    count: int,
    budget: float,
    minimum: int,
    setup: Operation | None = None,
) -> Samples:
    """Time ``operation(i)`` for i in 0..count-1, stopping early after ``budget`` seconds.

    ``setup(i)``, when given, runs untimed right before each ``operation(i)``.
    """
    gc.collect()
    durations: list[float] = []
    deadline = time.perf_counter() + budget
    for index in range(count):
        durations.append(await _timed(operation, index, setup))
        if len(durations) >= minimum and time.perf_counter() > deadline:
            break
    return Samples(tuple(durations))


async def measure_paired(
    operation: Operation,
    floor: Operation,
    *,
    count: int,
    budget: float,
    minimum: int,
    setup: Operation | None = None,
) -> tuple[Samples, Samples]:
    """Like :func:`measure`, with one floor sample taken beside each sample, order alternating.

    Drift in the machine's load then hits the operation and its floor alike. ``setup(i)``,
    when given, runs untimed right before each ``operation(i)`` (a pop needs an event).
    """
    gc.collect()
    durations: list[float] = []
    floor_durations: list[float] = []
    deadline = time.perf_counter() + budget
    for index in range(count):
        if index % 2:
            durations.append(await _timed(operation, index, setup))
            floor_durations.append(await _timed(floor, index))
        else:
            floor_durations.append(await _timed(floor, index))
            durations.append(await _timed(operation, index, setup))
        if len(durations) >= minimum and time.perf_counter() > deadline:
            break
    return Samples(tuple(durations)), Samples(tuple(floor_durations))
