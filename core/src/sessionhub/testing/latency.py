"""Latency of appends and reads against a floor, as each plugin's ``bench_append.py`` measures it.

A backend author measures the backend against the cheapest write its storage
can do (one raw insert through the driver) and prints the ratios::

    samples = await measure(service, raw_insert, iterations=2000)
    report(samples, [Target("append@10", "raw", 1.5), *FLAT])

Workloads, timed ``iterations`` times after a warm-up:

- ``raw``: the floor the caller passes (one round trip of the raw driver);
- ``append@10`` / ``append@10000``: ``SessionHistoryService.append`` of one
  message to a session holding 10 events, and to one holding 10,000;
- ``backend@10``: ``Backend.append`` of one event to a session of 10, the
  backend's own share of ``append@10`` (no validation, hooks or normalising);
- ``last20@100`` / ``last20@10000``: ``get_session(last_n=20)`` of a session
  holding 100 events, and 10,000.

Samples are interleaved, so drift in the machine's load hits every workload
alike: in an order that rotates every iteration, or (``order="shuffle"``) in a
seeded random order. Each ratio is given both as a ratio of medians and as the
median of the ratios of samples taken side by side. Timings belong in a
benchmark run, never in assertions of a test.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal

from sessionhub.backend import AppendRequest, Expiry, SessionKey, StateDeltas
from sessionhub.backend_tools import event_to_json
from sessionhub.models import Event, TextPart
from sessionhub.service import SessionHistoryService

__all__ = ["FLAT", "MESSAGE", "Target", "Workload", "event_row", "measure", "report"]

MESSAGE = "The quick brown fox jumps over the lazy dog. " * 4
"""The text of every timed message (about an assistant sentence)."""

_USER = "bench"
_SMALL_SESSIONS = 50

Workload = Callable[[], Awaitable[object]]
"""One timed call."""


@dataclass(frozen=True)
class Target:
    """A bound on the ratio of two workloads' medians: ``top / bottom <= limit``."""

    top: str
    bottom: str
    limit: float


FLAT = (Target("append@10000", "append@10", 1.2), Target("last20@10000", "last20@100", 1.2))
"""The targets every backend meets: appends and ``last_n`` reads cost the same at any length."""


def event_row() -> str:
    """An event-sized JSON text (one message of :data:`MESSAGE`), for a raw floor to write."""
    return event_to_json(Event(role="user", content=[TextPart(text=MESSAGE)], seq=1))


async def _fill(service: SessionHistoryService, session_id: str, count: int) -> None:
    await service.create_session(_USER, session_id)
    for start in range(0, count, 500):
        await service.append((_USER, session_id), [MESSAGE] * min(500, count - start))


async def measure(
    service: SessionHistoryService,
    floor: Workload,
    iterations: int,
    *,
    order: Literal["rotate", "shuffle"] = "rotate",
) -> dict[str, list[float]]:
    """Fill the sessions through ``service``, then time every workload, interleaved.

    ``service`` must be open, on an empty namespace of its backend. Returns the
    samples in seconds, per workload name.
    """
    backend = service.backend
    # Many sessions of 10 events, refilled every round, so that each timed append
    # meets a session holding 10.
    small = [f"small-{n}" for n in range(_SMALL_SESSIONS)]
    backend_small = [f"backend-small-{n}" for n in range(_SMALL_SESSIONS)]
    for session_id in small + backend_small:
        await _fill(service, session_id, 10)
    await _fill(service, "long", 10_000)
    await _fill(service, "read-100", 100)
    await _fill(service, "read-10000", 10_000)
    turn = 0

    async def backend_append() -> None:
        now = datetime.now(timezone.utc)
        event = Event(
            id=f"backend-{turn}", role="user", content=[TextPart(text=MESSAGE)], timestamp=now
        )
        key = SessionKey(service.app_name, _USER, backend_small[turn % _SMALL_SESSIONS])
        await backend.append(AppendRequest(key, [event], [StateDeltas()], Expiry(now=now)))

    workloads: dict[str, Workload] = {
        "raw": floor,
        "append@10": lambda: service.append((_USER, small[turn % _SMALL_SESSIONS]), MESSAGE),
        "backend@10": backend_append,
        "append@10000": lambda: service.append((_USER, "long"), MESSAGE),
        "last20@100": lambda: service.get_session(_USER, "read-100", last_n=20),
        "last20@10000": lambda: service.get_session(_USER, "read-10000", last_n=20),
    }
    names = list(workloads)
    chance = random.Random(0)
    samples: dict[str, list[float]] = {name: [] for name in names}
    warmup = max(50, iterations // 10)
    for turn in range(warmup + iterations):
        if turn and turn % _SMALL_SESSIONS == 0:
            for session_id in small + backend_small:
                await service.delete_session(_USER, session_id)
                await _fill(service, session_id, 10)
        if order == "shuffle":
            chance.shuffle(names)
            sequence = names
        else:
            start = turn % len(names)
            sequence = names[start:] + names[:start]
        for name in sequence:
            began = time.perf_counter()
            await workloads[name]()
            elapsed = time.perf_counter() - began
            if turn >= warmup:
                samples[name].append(elapsed)
    return {name: samples[name] for name in workloads}


def report(samples: dict[str, list[float]], targets: Iterable[Target]) -> bool:
    """Print p50 / p90 per workload and the target ratios; return whether all are met."""
    p50 = {name: statistics.median(values) * 1e6 for name, values in samples.items()}
    print(f"{'workload':<16}{'p50 (us)':>10}{'p90 (us)':>10}")
    for name, values in samples.items():
        p90 = statistics.quantiles(values, n=10)[-1] * 1e6
        print(f"{name:<16}{p50[name]:>10.1f}{p90:>10.1f}")
    print(f"\n{'ratio':<30}{'of p50s':>9}{'paired':>9}  target")
    met = True
    for target in targets:
        of_medians = p50[target.top] / p50[target.bottom]
        paired = statistics.median(
            a / b for a, b in zip(samples[target.top], samples[target.bottom], strict=True)
        )
        ok = of_medians <= target.limit
        met = met and ok
        label = f"{target.top} / {target.bottom}"
        verdict = "ok" if ok else "over"
        print(f"{label:<30}{of_medians:>9.2f}{paired:>9.2f}  <= {target.limit} {verdict}")
    return met
