"""The MongoDB layout: indexes and plans, dead writers' leftovers, TTL, exact round trips."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import pytest_asyncio
from pymongo import AsyncMongoClient, monitoring

from sessionhub import (
    AppendRequest,
    BackendUnavailable,
    Event,
    Expiry,
    InvalidInput,
    SessionHistoryService,
    SessionKey,
    StateDeltas,
    TextPart,
)
from sessionhub.plugins import get_plugin_manager
from sessionhub.settings import SessionHubSettings
from sessionhub_mongodb._append_optimistic import append_optimistic
from sessionhub_mongodb.backend import MongoBackend, MongoSettings

pytestmark = pytest.mark.asyncio


class _Finds(monitoring.CommandListener):
    """Records the find commands a client sends."""

    def __init__(self) -> None:
        self.commands: list[dict] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "find":
            self.commands.append(dict(event.command))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def _service(backend, **settings) -> SessionHistoryService:
    settings.setdefault("purge_interval", None)
    return SessionHistoryService(
        backend,
        settings=SessionHubSettings.isolated(**settings),
        plugin_manager=get_plugin_manager(entry_points=False),
    )


@pytest_asyncio.fixture
async def backend(target):
    async with MongoBackend(target.settings()) as backend:
        yield backend


def _stages(plan: dict) -> list[str]:
    found = [plan.get("stage", "")]
    for child in ("inputStage", "queryPlan"):
        if child in plan:
            found += _stages(plan[child])
    for child in plan.get("inputStages", []):
        found += _stages(child)
    return found


def _indexes(plan: dict) -> list[str]:
    names = [plan["indexName"]] if "indexName" in plan else []
    for child in ("inputStage", "queryPlan"):
        if child in plan:
            names += _indexes(plan[child])
    return names


async def test_indexes_exist(backend):
    """Unique session key, listing keysets, unique (session, seq) and (session, event id), TTL."""
    sessions = await backend._sessions.index_information()
    events = await backend._events.index_information()
    state = await backend._state.index_information()
    assert sessions["session_key"]["unique"] is True
    assert sessions["session_key"]["key"] == [("app", 1), ("user", 1), ("sid", 1)]
    assert sessions["by_updated"]["key"] == [
        ("app", 1),
        ("user", 1),
        ("updated_us", -1),
        ("sid", -1),
    ]
    assert sessions["children_by_updated"]["key"][2] == ("parent", 1)
    assert sessions["by_app_updated"]["key"] == [
        ("app", 1),
        ("updated_us", -1),
        ("user", -1),
        ("sid", -1),
    ]
    assert events["session_seq"]["key"] == [("session", 1), ("seq", 1)]
    assert events["session_event_id"]["key"] == [("session", 1), ("event_id", 1)]
    assert events["session_seq"]["unique"] and events["session_event_id"]["unique"]
    for indexes in (sessions, events, state):
        assert indexes["ttl"]["key"] == [("expires_at", 1)]
        assert indexes["ttl"]["expireAfterSeconds"] == 0


async def test_last_n_reads_twenty_events_through_the_seq_index(mongo_server, database_name):
    """get_session(last_n=20) of a 10,000-event session: IXSCAN on (session, seq), 20 docs."""
    finds = _Finds()
    client = AsyncMongoClient(mongo_server.url, event_listeners=[finds], tz_aware=True)
    try:
        backend = MongoBackend(MongoSettings(database=database_name), client=client)
        service = _service(backend)
        async with service:
            await service.create_session("alice", "long")
            for start in range(0, 10_000, 1000):
                await service.append(("alice", "long"), [f"m{start + i}" for i in range(1000)])
            finds.commands.clear()
            got = await service.get_session("alice", "long", last_n=20)
            assert got is not None and [e.seq for e in got.events] == list(range(9981, 10_001))
            [query] = [c for c in finds.commands if c["find"].endswith("events")]
            command = {k: v for k, v in query.items() if k in ("find", "filter", "sort", "limit")}
            explained = await client[database_name].command(
                {"explain": command, "verbosity": "executionStats"}
            )
            plan = explained["queryPlanner"]["winningPlan"]
            assert "IXSCAN" in _stages(plan) and "COLLSCAN" not in _stages(plan), plan
            assert _indexes(plan) == ["session_seq"], plan
            stats = explained.get("executionStats")
            if stats is not None:
                assert stats["nReturned"] == 20
                assert stats["totalDocsExamined"] <= 20
    finally:
        await client.close()


@pytest.mark.parametrize(
    ("user", "index"),
    [("alice", "by_updated"), (None, "by_app_updated")],
    ids=["one-user", "every-user"],
)
async def test_listing_uses_the_keyset_index(mongo_server, database_name, user, index):
    """A page of one user's sessions is an index scan of (app, user, updated_us, sid); of
    every user's, of (app, updated_us, user, sid): never a collection scan."""
    finds = _Finds()
    client = AsyncMongoClient(mongo_server.url, event_listeners=[finds], tz_aware=True)
    try:
        service = _service(MongoBackend(MongoSettings(database=database_name), client=client))
        async with service:
            for i in range(30):
                await service.create_session(user or f"user-{i % 7}", f"s{i:02d}")
            page = await service.list_sessions(user, limit=10)
            finds.commands.clear()
            await service.list_sessions(user, limit=10, cursor=page.next_cursor)
            [query] = [c for c in finds.commands if c["find"].endswith("sessions")]
            command = {
                k: v for k, v in query.items() if k in ("find", "filter", "sort", "limit", "hint")
            }
            explained = await client[database_name].command({"explain": command})
            plan = explained["queryPlanner"]["winningPlan"]
            assert "COLLSCAN" not in _stages(plan) and _indexes(plan) == [index], plan
    finally:
        await client.close()


async def test_standalone_leftovers_of_a_dead_writer_are_reclaimed(target):
    """A writer that died holding the lease leaves it, unpublished events and an unapplied
    user-scope delta. Readers never see the events; the next writer waits out the lease
    (its first attempt to take it is refused), deletes them, replays the delta, and
    numbering stays contiguous."""
    if target.scheme != "standalone":
        pytest.skip("the lease exists only in the standalone scheme")
    async with MongoBackend(target.settings(write_lease_ms=300)) as backend:
        service = _service(backend)
        session = await service.create_session("alice", "s1")
        await service.append(session, [Event(id="e1", role="user"), Event(id="e2", role="user")])
        document = await backend._sessions.find_one({"sid": "s1"})
        incarnation = document["incarnation"]
        now_us = time.time_ns() // 1000
        await backend._events.insert_many(
            [
                {
                    "session": incarnation,
                    "seq": 3,
                    "event_id": "e3",
                    "timestamp_us": now_us,
                    "data": Event(id="e3", seq=3, role="dead").model_dump_json(),
                    "writer": "dead:1",
                },
                {
                    "session": incarnation,
                    "seq": 4,
                    "event_id": "half-written",
                    "timestamp_us": now_us,
                    "data": Event(id="half-written", seq=4, role="dead").model_dump_json(),
                    "writer": "dead:1",
                },
            ]
        )
        dead_lease = {
            "$set": {
                "lock": {"owner": "dead:1", "instance": "dead", "until_us": now_us + 300_000},
                "pending": {
                    "app": "default",
                    "user": "alice",
                    "app_delta": {},
                    "user_delta": {"from-the-dead": '"yes"'},
                    "now_us": now_us,
                    "app_expires_us": None,
                    "user_expires_us": None,
                },
            }
        }
        await backend._sessions.update_one({"_id": document["_id"]}, dead_lease)

        listener = _Commands()
        client = AsyncMongoClient(target.url, event_listeners=[listener], tz_aware=True)
        other = _service(MongoBackend(target.settings(write_lease_ms=300), client=client))
        async with other:
            got = await other.get_session("alice", "s1")
            assert got is not None and [e.id for e in got.events] == ["e1", "e2"]
            # Still valid for a while from now: the next writer must wait it out.
            dead_lease["$set"]["lock"]["until_us"] = time.time_ns() // 1000 + 2_000_000
            await backend._sessions.update_one({"_id": document["_id"]}, dead_lease)
            listener.on = True
            [event] = await other.append(
                ("alice", "s1"), Event(id="e3", role="user", content=[TextPart(text="alive")])
            )
            listener.on = False
            takes = listener.names.count("findAndModify")
            assert takes >= 2, listener.names  # refused while the dead writer's lease held
            assert (event.seq, event.text) == (3, "alive")
            got = await other.get_session("alice", "s1")
            assert got is not None
            assert [(e.id, e.seq, e.role) for e in got.events] == [
                ("e1", 1, "user"),
                ("e2", 2, "user"),
                ("e3", 3, "user"),
            ]
            assert got.state == {"user:from-the-dead": "yes"}
            assert await backend._events.count_documents({"session": incarnation}) == 3
            document = await backend._sessions.find_one({"_id": document["_id"]})
            assert "lock" not in document and "pending" not in document
        await client.close()
        # The first backend's remembered head is stale now; it must notice.
        [late] = await service.append(("alice", "s1"), "from the first backend")
        assert late.seq == 4


class _Commands(monitoring.CommandListener):
    """Records the name of every command a client sends while ``on``."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.filters: list[Any] = []
        """The ``filter`` of each command (None where it has none)."""
        self.on = False

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self.on:
            self.names.append(event.command_name)
            self.filters.append(event.command.get("filter"))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@contextlib.asynccontextmanager
async def _watched(target) -> AsyncIterator[tuple[SessionHistoryService, _Commands]]:
    """A service whose client reports its commands to the listener it comes with."""
    listener = _Commands()
    client = AsyncMongoClient(target.url, event_listeners=[listener], tz_aware=True)
    try:
        async with _service(MongoBackend(target.settings(), client=client)) as service:
            yield service, listener
    finally:
        await client.close()


async def test_a_read_of_a_known_session_is_three_finds_two_by_id(target):
    """With the head remembered: the session document and both states by _id, and the events."""
    async with _watched(target) as (service, listener):
        await service.create_session("alice", "s1")
        await service.append(("alice", "s1"), [str(i) for i in range(300)])
        listener.on = True
        for last_n in (None, 20):
            listener.names.clear()
            listener.filters.clear()
            session = await service.get_session("alice", "s1", last_n=last_n)
            assert len(session.events) == (300 if last_n is None else 20)
            assert listener.names == ["find"] * 3
            assert sum(list(query) == ["_id"] for query in listener.filters) == 2


async def test_an_append_is_one_command(target):
    """Session-scope appends are one bulkWrite on either scheme; app: deltas need more."""
    async with _watched(target) as (service, listener):
        await service.create_session("alice", "s1")
        listener.on = True
        for seq, text in enumerate(("one", "two", "three"), start=1):
            [event] = await service.append(("alice", "s1"), text)
            assert event.seq == seq
            assert listener.names == ["bulkWrite"], (text, listener.names)
            listener.names.clear()
        await service.append(("alice", "s1"), Event(role="user", content=[], state_delta={"k": 1}))
        assert listener.names == ["bulkWrite"]
        listener.names.clear()
        await service.append(
            ("alice", "s1"), Event(role="user", content=[], state_delta={"app:k": 1})
        )
        if target.scheme == "transactions":
            assert listener.names[-1] == "commitTransaction"
        assert len(listener.names) > 1
        listener.on = False
        got = await service.get_session("alice", "s1")
        assert got is not None
        assert [e.seq for e in got.events] == [1, 2, 3, 4, 5]
        assert got.state == {"k": 1, "app:k": 1}


async def test_an_optimistic_publish_on_a_stale_head_changes_nothing(target):
    """The publish filters on ``_id`` alone and evaluates its condition in the update:
    on a stale head the session document stays exactly as it was (state sets and
    unsets included) and the writer takes its events back; on the current head it
    publishes, leaving no trace of the condition in the document."""
    async with MongoBackend(target.settings()) as backend:
        service = _service(backend)
        await service.create_session("alice", "s1", state={"a": 1})
        await service.append(("alice", "s1"), "one")
        store = backend._store()
        key = SessionKey(service.app_name, "alice", "s1")
        head = store.heads.get(key)
        assert head is not None
        now = datetime.now(timezone.utc)
        event = Event(role="user", content=[TextPart(text="two")], timestamp=now)
        request = AppendRequest(
            key, [event], [StateDeltas(session={"b": 2, "a": None})], Expiry(now=now)
        )
        before = await backend._sessions.find_one({"sid": "s1"})
        for stale in (
            dataclasses.replace(head, version=head.version + 1),
            dataclasses.replace(head, event_count=head.event_count + 1),
        ):
            assert await append_optimistic(store, request, stale) is None
            assert await backend._sessions.find_one({"sid": "s1"}) == before
            assert await backend._events.count_documents({}) == 1
        appended = await append_optimistic(store, request, head)
        assert appended is not None and appended.last_seq == 2
        after = await backend._sessions.find_one({"sid": "s1"})
        assert "_publish" not in after
        assert (after["last_seq"], after["event_count"]) == (2, 2)
        got = await service.get_session("alice", "s1")
        assert got is not None and got.state == {"b": 2}
        assert [e.seq for e in got.events] == [1, 2]


async def test_concurrent_appends_from_two_backends_stay_contiguous(target):
    """Two backends (two pools, as two processes would be) x 4 tasks: seqs 1..200."""
    async with (
        MongoBackend(target.settings()) as one,
        MongoBackend(target.settings()) as two,
    ):
        services = [_service(one), _service(two)]
        await services[0].create_session("alice", "s1")

        async def writer(w: int) -> None:
            for i in range(25):
                await services[w % 2].append(("alice", "s1"), f"{w}:{i}")

        await asyncio.gather(*(writer(w) for w in range(8)))
        got = await services[1].get_session("alice", "s1")
        assert got is not None and [e.seq for e in got.events] == list(range(1, 201))
        assert await one._events.count_documents({}) == 200
        assert await one._sessions.count_documents({"_publish": {"$exists": True}}) == 0


async def test_events_expire_with_their_session(backend):
    """Every event's TTL date is at or after its session's, and moves only when overtaken."""
    service = _service(backend, session_ttl=600)
    session = await service.create_session("alice", "s1")
    await service.append(session, ["a", "b"])
    document = await backend._sessions.find_one({"sid": "s1"})
    dates = [row["expires_at"] async for row in backend._events.find({})]
    assert len(dates) == 2 and all(d >= document["expires_at"] for d in dates)
    assert document["horizon_us"] > document["expires_us"]
    await service.get_session("alice", "s1")  # a sliding refresh within the horizon
    assert [row["expires_at"] async for row in backend._events.find({})] == dates


async def test_every_record_carries_the_date_the_ttl_monitor_reads(backend):
    """The session, its events and the user state each carry ``expires_at`` as a BSON
    date (compared as one by the server) no later than two TTLs from now: the ``ttl``
    indexes (expireAfterSeconds=0, see test_indexes_exist) let the server's monitor
    reclaim all of them with no sweeper."""
    ttl = timedelta(seconds=60)
    service = _service(backend, session_ttl=ttl.total_seconds(), user_state_ttl=60)
    await service.create_session("alice", "s1", state={"user:k": 1})
    await service.append(("alice", "s1"), ["a", "b"])
    latest = datetime.now(timezone.utc) + 2 * ttl + timedelta(seconds=30)
    for collection, expected in (
        (backend._sessions, 1),
        (backend._events, 2),
        (backend._state, 1),
    ):
        assert await collection.count_documents({}) == expected
        dated = {"expires_at": {"$type": "date", "$lte": latest}}
        assert await collection.count_documents(dated) == expected, collection.name


async def test_purge_removes_half_deleted_sessions(backend):
    """A delete interrupted after hiding the session is finished by purge_expired."""
    service = _service(backend)
    await service.create_session("alice", "s1")
    await service.append(("alice", "s1"), ["a", "b"])
    await backend._sessions.update_one(
        {"sid": "s1"}, {"$set": {"deleted": True, "expires_us": 0}, "$unset": {"expires_at": ""}}
    )
    assert await service.get_session("alice", "s1") is None
    assert await service.purge_expired() == 1
    assert await backend._events.count_documents({}) == 0
    assert await backend._sessions.count_documents({}) == 0


async def test_awkward_keys_and_times_round_trip(backend):
    """Dotted, $-prefixed, empty, percent and NUL keys; microsecond timestamps; big ints."""
    service = _service(backend)
    keys = ["a.b", "$where", "%", "%2E", "x\x00y", "ünï.$", "user", ".", "$"]
    state = {key: {"nested.key": [1, {"$gt": 2}], "big": 2**70} for key in keys}
    metadata = {"": "empty key", **dict.fromkeys(keys, True)}
    await service.create_session("alice", "s1", state=state, metadata=metadata)
    when = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)
    events = [
        Event(id=f"e{i}", role="user", timestamp=when + timedelta(microseconds=i)) for i in range(3)
    ]
    await service.append(("alice", "s1"), events)
    await service.update_session("alice", "s1", state={"a.b": None, "%": 5}, metadata={"": None})
    got = await service.get_session("alice", "s1", after_time=when)
    assert got is not None
    assert [e.timestamp for e in got.events] == [when + timedelta(microseconds=i) for i in (1, 2)]
    expected = {**state, "%": 5}
    del expected["a.b"]
    assert got.state == expected
    assert got.metadata == dict.fromkeys(keys, True)


async def test_document_too_large_is_invalid_input(backend):
    """An event over MongoDB's 16 MiB document limit is InvalidInput; nothing is stored."""
    service = _service(backend)
    await service.create_session("alice", "s1")
    with pytest.raises(InvalidInput, match="16 MiB"):
        await service.append(("alice", "s1"), "x" * (17 * 1024 * 1024))
    got = await service.get_session("alice", "s1")
    assert got is not None and got.events == [] and got.last_seq == 0
    await service.append(("alice", "s1"), "small")


async def test_closed_backend_is_unavailable(target):
    backend = MongoBackend(target.settings())
    with pytest.raises(BackendUnavailable, match="not open"):
        await backend.ping()
