"""The command line: run every subject through the workloads, print and write the report.

    python -m benchmarks [--quick | --smoke] [--peers | --no-peers] [--out DIR] [--only NAME]
    python benchmarks/run.py --quick

Modes: the default (full) takes about ten minutes, ``--quick`` about two,
``--smoke`` a few seconds with tiny sizes (for CI: it proves the harness
works, and asserts no timing). Peers run when they are installed; with
``--peers`` a missing peer shows as an "n/a" row, with ``--no-peers`` they are
skipped. The markdown table goes to stdout, progress to stderr, and
``report.md``, ``results.json`` and ``append_latency.png`` to ``--out``
(default ``bench-report/``). The exit status is 1 when a correctness check
of a sessionhub row failed (an event lost, a read returning the wrong number
of events) or, with ``--smoke``, when a row is not filled
(:mod:`benchmarks.completeness`); never because of a timing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import os
import platform
import re
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.agents_session import W6_NAME, agents_subjects, run_agents_session
from benchmarks.completeness import find_problems
from benchmarks.floors import Floor, make_floors
from benchmarks.payload import TurnFactory
from benchmarks.plans import Plan
from benchmarks.profiling import ProfileRequest
from benchmarks.report import write_report
from benchmarks.results import RunResult, SubjectResult
from benchmarks.servers import Server, start_mongodb, start_postgres, start_redis
from benchmarks.subjects import Subject, Unavailable, discover
from benchmarks.workloads import run_subject

__all__ = ["main", "execute", "parse_args"]

DISTRIBUTIONS = (
    "sessionhub",
    "sessionhub-memory",
    "sessionhub-sqlite",
    "sessionhub-redis",
    "sessionhub-mongodb",
    "sessionhub-openai-agents",
    "sessionhub-postgres",
    "aiosqlite",
    "redis",
    "pymongo",
    "asyncpg",
    "google-adk",
    "sqlalchemy",
    "openai-agents",
    "agentscope",
)


class Progress:
    """Progress lines on stderr, stamped with the seconds since the run began."""

    def __init__(self) -> None:
        self.began = time.perf_counter()

    def __call__(self, message: str) -> None:
        """Print one progress line."""
        print(f"[{time.perf_counter() - self.began:6.1f}s] {message}", file=sys.stderr, flush=True)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark sessionhub's backends against raw-driver floors and peers.",
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="fewer samples (about two minutes)")
    size.add_argument("--smoke", action="store_true", help="tiny sizes: check the harness works")
    peers = parser.add_mutually_exclusive_group()
    peers.add_argument(
        "--peers", action="store_true", help="show every peer, as n/a when not installed"
    )
    peers.add_argument("--no-peers", action="store_true", help="leave the peers out")
    parser.add_argument(
        "--out", type=Path, default=Path("bench-report"), help="report directory (bench-report)"
    )
    parser.add_argument(
        "--workdir", type=Path, default=None, help="where the databases go (a temporary folder)"
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="run only subjects whose name contains NAME (repeatable; e.g. --only sqlite)",
    )
    parser.add_argument(
        "--profile",
        default=None,
        metavar="KEY",
        help="write a cProfile profile of one cell's workload per subject into --out "
        "(a cell key: get@5000, last20@10000, append@1000, list.first, ...)",
    )
    return parser.parse_args(argv)


def _environment(redis: Server, mongodb: Server, postgres: Server) -> dict[str, str]:
    versions = {}
    for distribution in DISTRIBUTIONS:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[distribution] = importlib.metadata.version(distribution)
    return {
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "cpus": str(os.cpu_count()),
        "load": " ".join(f"{load:.1f}" for load in os.getloadavg()),
        "sqlite": sqlite3.sqlite_version,
        "redis server": redis.source,
        "mongodb server": mongodb.source,
        "postgres server": postgres.source,
        "packages": ", ".join(f"{name} {version}" for name, version in versions.items()),
    }


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


async def _run_one(
    subject: Subject,
    plan: Plan,
    floor: Floor | None,
    turns: TurnFactory,
    workdir: Path,
    progress: Progress,
    profile: ProfileRequest | None,
) -> SubjectResult:
    result = SubjectResult(
        subject.name,
        subject.family,
        subject.storage,
        subject.tier,
        floor_label=floor.label if floor else None,
    )
    began = time.perf_counter()
    directory = workdir / _slug(subject.name)
    directory.mkdir(parents=True, exist_ok=True)
    try:
        await subject.open(directory)
        result.cells = await run_subject(subject, plan, floor, turns, progress, profile)
    except Exception as exc:  # a subject that cannot even start still gets its row
        result.status = f"error: {type(exc).__name__}: {exc}".splitlines()[0][:200]
        progress(f"{subject.name}: {result.status}")
    finally:
        try:
            await subject.close()
        except Exception as exc:  # closing must not hide the results
            progress(f"{subject.name}: closing failed: {type(exc).__name__}: {exc}")
    result.notes = list(subject.notes)
    result.seconds = time.perf_counter() - began
    progress(f"{subject.name}: done in {result.seconds:.1f}s")
    return result


async def _run_all(
    plan: Plan,
    subjects: list[Subject | Unavailable],
    floors: dict[str, Floor],
    turns: TurnFactory,
    workdir: Path,
    progress: Progress,
    profile: ProfileRequest | None,
) -> list[SubjectResult]:
    opened: dict[str, Floor] = {}
    for storage, floor in floors.items():
        try:
            await floor.open()
            opened[storage] = floor
        except Exception as exc:  # no floor is better than no run
            progress(f"floor {floor.label}: cannot open: {type(exc).__name__}: {exc}")
    results: list[SubjectResult] = []
    try:
        for subject in subjects:
            if isinstance(subject, Unavailable):
                results.append(
                    SubjectResult(
                        subject.name, subject.family, subject.storage, subject.tier, subject.reason
                    )
                )
                continue
            beside = opened.get(subject.storage)
            results.append(await _run_one(subject, plan, beside, turns, workdir, progress, profile))
    finally:
        for floor in opened.values():
            with contextlib.suppress(Exception):
                await floor.close()
    return results


def _wanted(only: Sequence[str], name: str) -> bool:
    return not only or any(part.lower() in name.lower() for part in only)


def execute(
    plan: Plan,
    *,
    peers: str = "auto",
    only: Sequence[str] = (),
    workdir: Path | None = None,
    progress: Progress | None = None,
    profile: ProfileRequest | None = None,
) -> RunResult:
    """Start the servers, run every subject through ``plan``, and return what was measured.

    ``peers``: ``auto`` (those installed), ``all`` (missing ones as n/a rows), ``none``.
    ``profile``: profile the workload of one cell in each subject (``--profile``).
    """
    progress = progress or Progress()
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    run_id = uuid.uuid4().hex[:8]
    began = time.perf_counter()
    with ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sh-bench-")))
        redis_users = ["sessionhub redis"]
        if peers != "none":
            redis_users += [
                "OpenAI Agents RedisSession",
                "AgentScope RedisSession",
                W6_NAME,
                "sessionhub-adk on redis",
                "ADK RedisSessionService",
                "sessionhub-agentscope on redis",
            ]
        redis = Server(None, "not needed")
        if any(_wanted(only, name) for name in redis_users):
            progress("starting Redis")
            redis = start_redis(stack)
        mongodb = Server(None, "not needed")
        mongodb_users = ["sessionhub mongodb"]
        if peers != "none":
            mongodb_users += [W6_NAME, "OpenAI Agents MongoDBSession"]
        if any(_wanted(only, name) for name in mongodb_users):
            progress("starting MongoDB")
            mongodb = start_mongodb(stack)
        postgres = Server(None, "not needed")
        postgres_users = ["sessionhub postgres"]
        if peers != "none":
            postgres_users += [W6_NAME, "ADK DatabaseSessionService (postgresql"]
        if any(_wanted(only, name) for name in postgres_users):
            progress("starting PostgreSQL")
            postgres = start_postgres(stack)
        progress(
            f"redis: {redis.url or '-'} ({redis.source}); mongodb: {mongodb.source}; "
            f"postgres: {postgres.source}"
        )
        found = discover(redis, mongodb, run_id, peers=peers != "none", postgres=postgres)
        absent_peers = [
            subject
            for subject in found
            if isinstance(subject, Unavailable) and subject.family == "peer" and subject.install
        ]
        if peers == "auto":
            found = [subject for subject in found if subject not in absent_peers]
        found = [subject for subject in found if _wanted(only, subject.name)]
        turns = TurnFactory(run_id)
        floors = make_floors(turns(), workdir, redis, mongodb, run_id, postgres)
        results = asyncio.run(_run_all(plan, found, floors, turns, workdir, progress, profile))
        agents: list[Subject | Unavailable] = []
        if peers != "none":
            agents = agents_subjects(redis, mongodb, run_id, postgres)
            agents = [
                subject
                for subject in agents
                if _wanted(only, subject.name) or _wanted(only, W6_NAME)
            ]
        if agents:
            progress("W6: the OpenAI Agents session workload")
        agents_results = asyncio.run(
            run_agents_session(agents, plan.mode, turns, workdir, progress)
        )
        return RunResult(
            mode=plan.mode,
            plan=asdict(plan),
            environment=_environment(redis, mongodb, postgres),
            subjects=results,
            floors={storage: floor.label for storage, floor in floors.items()},
            started=started,
            seconds=time.perf_counter() - began,
            peers_not_installed=sorted({subject.install for subject in absent_peers}),
            agents_session=agents_results,
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks from the command line; return the exit status."""
    options = parse_args(argv)
    mode = "smoke" if options.smoke else "quick" if options.quick else "full"
    peers = "all" if options.peers else "none" if options.no_peers else "auto"
    progress = Progress()
    run = execute(
        Plan.for_mode(mode),
        peers=peers,
        only=options.only,
        workdir=options.workdir,
        progress=progress,
        profile=None if options.profile is None else ProfileRequest(options.profile, options.out),
    )
    markdown, paths = write_report(run, options.out)
    print(markdown)
    for path in paths:
        progress(f"wrote {path}")
    failed = [
        f"{subject.name} {key}: {cell.detail or cell.missing}"
        for subject in [*run.subjects, *run.agents_session]
        if subject.family == "sessionhub"
        for key, cell in subject.cells.items()
        if cell.failed
    ]
    if mode == "smoke":  # CI: every row must be filled too
        failed += find_problems(run, markdown, options.out)
    for line in dict.fromkeys(failed):
        progress(f"check failed: {line}")
    if mode == "smoke" and not failed:
        progress("smoke check passed: every row is filled")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
