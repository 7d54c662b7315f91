"""Concurrency: many writers, one session; no lost event or update; several connections."""

from __future__ import annotations

import asyncio
import multiprocessing
import queue
import traceback
from typing import Any

import pytest

from sessionhub.errors import SessionExists
from sessionhub.models import Event, TextPart
from sessionhub.plugins import get_plugin_manager
from sessionhub.service import SessionHistoryService
from sessionhub.settings import SessionHubSettings
from sessionhub.testing._base import BackendFactory, Connect, MakeService, requires

PROCESSES = 4
APPENDS_PER_PROCESS = 250
_PROCESS_DEADLINE_S = 300.0


def _append_in_process(
    factory: BackendFactory, name: str, count: int, messages: Any, go: Any
) -> None:
    """A writer process: open the backend, say ready, wait for go, append, say done."""

    async def main() -> None:
        service = SessionHistoryService(
            factory(),
            settings=SessionHubSettings.isolated(purge_interval=None),
            plugin_manager=get_plugin_manager(entry_points=False),
        )
        async with service:
            messages.put(("ready", name))
            if not await asyncio.to_thread(go.wait, _PROCESS_DEADLINE_S):
                raise TimeoutError("no go signal")
            for i in range(count):
                event = Event(id=f"{name}-{i}", role="user", content=[TextPart(text=f"{name}:{i}")])
                await service.append(("alice", "shared"), event)

    try:
        asyncio.run(main())
    except BaseException:
        messages.put(("error", f"{name}: {traceback.format_exc()}"))
    else:
        messages.put(("done", name))


class ConcurrencyTests:
    """DESIGN §3: any number of writers; appends are all-or-nothing and never lost."""

    pytestmark = pytest.mark.asyncio

    async def test_fifty_writers_lose_nothing(self, service: SessionHistoryService) -> None:
        """50 tasks x 20 appends to one session: seqs exactly 1..1000, each writer's order kept."""
        await service.create_session("alice", "busy")

        async def writer(w: int) -> None:
            for i in range(20):
                await service.append(
                    ("alice", "busy"),
                    Event(id=f"w{w}-{i}", role="user", content=[TextPart(text=f"{w}:{i}")]),
                )

        await asyncio.gather(*(writer(w) for w in range(50)))
        got = await service.get_session("alice", "busy")
        assert got is not None
        assert [e.seq for e in got.events] == list(range(1, 1001))
        assert (got.event_count, got.last_seq) == (1000, 1000)
        by_writer: dict[str, list[int]] = {}
        for event in got.events:
            w, i = event.text.split(":")
            by_writer.setdefault(w, []).append(int(i))
        assert len(by_writer) == 50
        assert all(order == list(range(20)) for order in by_writer.values())

    async def test_concurrent_state_deltas_are_all_applied(
        self, service: SessionHistoryService
    ) -> None:
        """Concurrent appends with deltas to different keys, in every scope, lose nothing."""
        await service.create_session("alice", "s1")

        async def writer(w: int) -> None:
            await service.append(
                ("alice", "s1"),
                {
                    "role": "user",
                    "content": str(w),
                    "state_delta": {f"k{w}": w, f"user:u{w}": w, f"app:a{w}": w},
                },
            )

        await asyncio.gather(*(writer(w) for w in range(40)))
        got = await service.get_session("alice", "s1")
        assert got is not None
        for w in range(40):
            assert got.state[f"k{w}"] == w
            assert got.state[f"user:u{w}"] == w
            assert got.state[f"app:a{w}"] == w

    async def test_concurrent_direct_state_updates(self, service: SessionHistoryService) -> None:
        """Concurrent update_user_state / update_app_state calls all land."""
        await asyncio.gather(
            *(service.update_user_state("alice", {f"k{i}": i}) for i in range(30)),
            *(service.update_app_state({f"k{i}": i}) for i in range(30)),
        )
        assert await service.get_user_state("alice") == {f"k{i}": i for i in range(30)}
        assert await service.get_app_state() == {f"k{i}": i for i in range(30)}

    async def test_concurrent_creates_of_one_id(self, service: SessionHistoryService) -> None:
        """Of concurrent creates of one id, exactly one succeeds; the rest get SessionExists."""
        results = await asyncio.gather(
            *(service.create_session("alice", "race", state={"n": n}) for n in range(10)),
            return_exceptions=True,
        )
        winners = [r for r in results if not isinstance(r, BaseException)]
        assert len(winners) == 1
        assert all(isinstance(r, SessionExists) for r in results if isinstance(r, BaseException))
        got = await service.get_session("alice", "race")
        assert got is not None and got.state == winners[0].state

    async def test_concurrent_retries_store_once(self, service: SessionHistoryService) -> None:
        """The same event appended by many tasks at once is stored exactly once."""
        await service.create_session("alice", "s1")
        event = Event(id="only-once", role="user", content=[TextPart(text="x")])
        results = await asyncio.gather(*(service.append(("alice", "s1"), event) for _ in range(20)))
        assert {r[0].seq for r in results} == {1}
        got = await service.get_session("alice", "s1")
        assert got is not None and got.event_count == 1

    @requires("shared_store")
    async def test_a_second_connection_sees_every_write(
        self, connect: Connect | None, make_service: MakeService
    ) -> None:
        """Two backend instances on one store: what one writes, the other reads."""
        assert connect is not None, "declare shared_store only with a 'connect' fixture"
        one = make_service()
        other = await connect()
        try:
            two = make_service(other)
            await one.create_session("alice", "s1")
            await two.append(
                ("alice", "s1"), {"role": "user", "content": "x", "state_delta": {"user:k": 1}}
            )
            got = await one.get_session("alice", "s1")
            assert got is not None and got.event_count == 1 and got.state == {"user:k": 1}
        finally:
            await other.close()

    @requires("shared_store")
    async def test_two_connections_append_concurrently(
        self, connect: Connect | None, make_service: MakeService
    ) -> None:
        """Writers on two connections to one session: seqs 1..N, nothing lost."""
        assert connect is not None, "declare shared_store only with a 'connect' fixture"
        other = await connect()
        try:
            services = [make_service(), make_service(other)]
            await services[0].create_session("alice", "shared")

            async def writer(w: int) -> None:
                for i in range(25):
                    await services[w % 2].append(("alice", "shared"), f"{w}:{i}")

            await asyncio.gather(*(writer(w) for w in range(8)))
            got = await services[1].get_session("alice", "shared")
            assert got is not None and [e.seq for e in got.events] == list(range(1, 201))
        finally:
            await other.close()

    @requires("multi_process")
    async def test_processes_append_to_one_session(
        self, backend_factory: BackendFactory | None, service: SessionHistoryService
    ) -> None:
        """4 processes x 250 appends to one session: seqs exactly 1..1000, no writer fails."""
        assert backend_factory is not None, (
            "declare multi_process only with a 'backend_factory' fixture"
        )
        await service.create_session("alice", "shared")
        context = multiprocessing.get_context("spawn")
        messages = context.Queue()
        go = context.Event()
        names = [f"p{n}" for n in range(PROCESSES)]
        processes = [
            context.Process(
                target=_append_in_process,
                args=(backend_factory, name, APPENDS_PER_PROCESS, messages, go),
                daemon=True,
            )
            for name in names
        ]
        for process in processes:
            process.start()
        try:
            said = [await _next_message(messages) for _ in names]
            assert all(kind == "ready" for kind, _ in said), said
            go.set()  # every writer is open: now they contend
            said = [await _next_message(messages) for _ in names]
            assert sorted(said) == [("done", name) for name in names], said
        finally:
            go.set()
            for process in processes:
                await asyncio.to_thread(process.join, 10)
                if process.is_alive():
                    process.kill()
        got = await service.get_session("alice", "shared")
        assert got is not None
        total = PROCESSES * APPENDS_PER_PROCESS
        assert [e.seq for e in got.events] == list(range(1, total + 1))
        assert (got.event_count, got.last_seq) == (total, total)
        by_writer: dict[str, list[int]] = {}
        for event in got.events:
            name, i = event.text.split(":")
            by_writer.setdefault(name, []).append(int(i))
        assert by_writer == {name: list(range(APPENDS_PER_PROCESS)) for name in names}


async def _next_message(messages: Any) -> tuple[str, str]:
    try:
        kind, text = await asyncio.to_thread(messages.get, True, _PROCESS_DEADLINE_S)
    except queue.Empty:
        raise AssertionError("a writer process said nothing for 300 s") from None
    if kind == "error":
        raise AssertionError(f"a writer process failed:\n{text}")
    return kind, text
