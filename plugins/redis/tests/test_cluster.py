"""Redis Cluster: slots as the server computes them, and what is atomic across the app's slot."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import pytest_asyncio
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from sessionhub import BackendError, Event, SessionHistoryService, TextPart
from sessionhub_redis._connect import Connection
from sessionhub_redis._topology import Cluster, Topology
from sessionhub_redis.backend import RedisBackend, RedisSettings

pytestmark = pytest.mark.asyncio

HOSTILE = ["a:b", "{x}", "}{", "*", "{", "}", "%7B", "ünï ✓"]


@pytest_asyncio.fixture
async def cluster_backend(redis_cluster_url, key_prefix):
    async with RedisBackend(RedisSettings(url=redis_cluster_url, key_prefix=key_prefix)) as backend:
        await backend.ping()
        yield backend


async def test_the_server_puts_every_key_of_a_user_in_one_slot(cluster_backend):
    client = cluster_backend.client
    for user in HOSTILE:
        users = cluster_backend.keys.user("default", user)
        names = [users.index, users.state]
        for session in HOSTILE:
            keys = users.session(session)
            names += [keys.hash, keys.events, keys.ids, keys.times, users.children(session)]
        slots = {await client.cluster_keyslot(name) for name in names}
        assert slots == {await client.cluster_keyslot(users.base)}


def _node_port(backend: RedisBackend, key: str) -> int:
    return int(backend.client.get_node_from_key(key).port)


class _Gate:
    """Holds the first write that reaches it until the test lets it go."""

    def __init__(self) -> None:
        self.reached = asyncio.Event()
        self.go = asyncio.Event()

    async def __call__(self) -> None:
        self.reached.set()
        await self.go.wait()

    async def held(self, task: asyncio.Task[Any]) -> None:
        """Return once ``task`` waits at this gate; fail if it ends without reaching it."""
        reached = asyncio.ensure_future(self.reached.wait())
        await asyncio.wait({task, reached}, return_when=asyncio.FIRST_COMPLETED)
        if not self.reached.is_set():
            reached.cancel()
            await task
            pytest.fail("the write ended without reaching the gate")


class SteppedCluster(Cluster):
    """The real Cluster strategy, with gates a test sets between a write's steps.

    ``gates["after clock"]`` holds the next write that ticked the app clock,
    before its session script; ``gates["before app write"]`` the next one whose
    session script ran, before its app script. Each gate holds one write.
    """

    gates: dict[str, _Gate]

    async def app_clock(self, app_name: str, needed: bool) -> int | str:
        stamp = await super().app_clock(app_name, needed)
        gate = self.gates.pop("after clock", None) if needed else None
        if gate is not None:
            await gate()
        return stamp

    async def app_write(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        gate = self.gates.pop("before app write", None)
        if gate is not None:
            await gate()
        return await super().app_write(*args, **kwargs)


class SteppedBackend(RedisBackend):
    """The real backend on the :class:`SteppedCluster` strategy; ``gates`` are its gates."""

    def __init__(self, settings: RedisSettings) -> None:
        super().__init__(settings)
        self.gates: dict[str, _Gate] = {}

    def _topology_for(self, connection: Connection) -> Topology:
        assert isinstance(connection.client, RedisCluster)
        stepped = SteppedCluster(connection.client, self.keys, "the test cluster")
        stepped.gates = self.gates
        return stepped


@pytest_asyncio.fixture
async def stepped_backend(redis_cluster_url, key_prefix):
    async with SteppedBackend(
        RedisSettings(url=redis_cluster_url, key_prefix=key_prefix)
    ) as backend:
        await backend.ping()
        yield backend


def _user_off_the_app_node(backend: RedisBackend, app_name: str) -> tuple[str, int]:
    """A user whose keys live on another node than the app state, and the app's node port."""
    app_port = _node_port(backend, backend.keys.app_state(app_name))
    user = next(
        f"user-{n}"
        for n in range(1000)
        if _node_port(backend, backend.keys.user(app_name, f"user-{n}").base) != app_port
    )
    return user, app_port


async def test_app_deltas_on_cluster_are_a_second_script_applied_at_most_once(
    stepped_backend, make_service
):
    """A crash between the two scripts leaves the session's part stored, the app part not.

    The app state's node is made to refuse writes (min-replicas-to-write with no
    replica) between the user's script and the app's: an error it answers with,
    reported as such (``BackendError``), not as a server gone away.
    """
    service = make_service(stepped_backend)
    user, app_port = _user_off_the_app_node(stepped_backend, service.app_name)
    await service.update_app_state({"before": True})
    await service.create_session(user, "s1")
    app_node = Redis(host="127.0.0.1", port=app_port)
    event = Event(
        id="e1",
        role="user",
        content=[TextPart(text="x")],
        state_delta={"k": 1, "user:u": 1, "app:a": 1},
    )
    try:
        # Refused before the session's script: nothing is stored.
        await app_node.config_set("min-replicas-to-write", 1)
        with pytest.raises(BackendError, match="NOREPLICAS"):
            await service.append((user, "s1"), event)
        got = await service.get_session(user, "s1")
        assert got is not None and got.events == [] and got.state == {"app:before": True}
        await app_node.config_set("min-replicas-to-write", 0)

        gate = stepped_backend.gates["before app write"] = _Gate()
        append = asyncio.create_task(service.append((user, "s1"), event))
        await gate.held(append)
        await app_node.config_set("min-replicas-to-write", 1)
        gate.go.set()
        with pytest.raises(BackendError, match=r"app: state delta was not applied.*NOREPLICAS"):
            await append
        # Without app: keys an append is one script in the user's slot, unaffected.
        [plain] = await service.append((user, "s1"), "no app delta")
        assert plain.seq == 2
    finally:
        await app_node.config_set("min-replicas-to-write", 0)
        await app_node.aclose()

    got = await service.get_session(user, "s1")
    assert got is not None
    assert [e.id for e in got.events] == ["e1", plain.id]
    assert got.state == {"k": 1, "user:u": 1, "app:before": True}
    # A retry of the same event is a no-op: the app delta stays unapplied.
    [again] = await service.append((user, "s1"), event)
    assert again.seq == 1
    assert await service.get_app_state() == {"before": True}

    # With the app's node healthy, the second script applies the app delta.
    await service.append(
        (user, "s1"), {"role": "user", "content": "y", "state_delta": {"app:a": 2}}
    )
    assert await service.get_app_state() == {"before": True, "a": 2}


async def _first_write(service: SessionHistoryService, kind: str, user: str) -> None:
    """Write app:last = "first" to session s1 as a create, an update or an append."""
    if kind == "create":
        await service.create_session(user, "s1", state={"app:last": "first"})
    elif kind == "update":
        await service.update_session(user, "s1", state={"app:last": "first"})
    else:
        await service.append(
            (user, "s1"), {"role": "user", "content": "first", "state_delta": {"app:last": "first"}}
        )


@pytest.mark.parametrize("kind", ["create", "update", "append"])
async def test_app_deltas_arriving_out_of_order_keep_the_later_write(
    stepped_backend, make_service, kind
):
    """A session's later app delta wins even when its app script runs first.

    The first write is held after its session script; a second write to the
    same session completes; then the first one's app script runs, late.
    """
    service = make_service(stepped_backend)
    user, _ = _user_off_the_app_node(stepped_backend, service.app_name)
    if kind != "create":
        await service.create_session(user, "s1")
    await service.update_app_state({"other": 1})
    gate = stepped_backend.gates["before app write"] = _Gate()
    first = asyncio.create_task(_first_write(service, kind, user))
    await gate.held(first)
    [second] = await service.append(
        (user, "s1"),
        {"role": "user", "content": "second", "state_delta": {"app:last": "second", "app:n": 2}},
    )
    gate.go.set()
    await first
    assert await service.get_app_state() == {"other": 1, "last": "second", "n": 2}
    got = await service.get_session(user, "s1")
    assert got is not None and got.events[-1].id == second.id
    assert got.state["app:last"] == "second"


async def test_a_session_write_that_ticked_the_clock_first_but_stored_later_wins(
    stepped_backend, make_service
):
    """Stamps follow the session's order, not the order the app clock was read in.

    The late write's stamp is raised above the session's last one, past the
    clock; the clock follows it, so a write from another session that begins
    afterwards still stamps later (its writer sorts first, so a tie would lose).
    """
    service = make_service(stepped_backend)
    user, _ = _user_off_the_app_node(stepped_backend, service.app_name)
    writer = stepped_backend.keys.session(service.app_name, user, "s1").hash
    other = next(
        f"other-{n}"
        for n in range(1000)
        if stepped_backend.keys.session(service.app_name, f"other-{n}", "s1").hash < writer
    )
    await service.create_session(user, "s1")
    await service.create_session(other, "s1")
    gate = stepped_backend.gates["after clock"] = _Gate()
    first = asyncio.create_task(
        service.append(
            (user, "s1"), {"role": "user", "content": "a", "state_delta": {"app:last": "a"}}
        )
    )
    await gate.held(first)
    await service.append(
        (user, "s1"), {"role": "user", "content": "b", "state_delta": {"app:last": "b"}}
    )
    gate.go.set()
    [late] = await first
    assert late.seq == 2
    assert await service.get_app_state() == {"last": "a"}
    await service.append(
        (other, "s1"), {"role": "user", "content": "c", "state_delta": {"app:last": "c"}}
    )
    assert await service.get_app_state() == {"last": "c"}


async def test_app_writes_one_after_another_win_across_sessions_and_users(
    cluster_backend, make_service
):
    """A write that begins after another ended is applied over it, whatever its session."""
    service = make_service(cluster_backend)
    writers = [("alice", "s1"), ("bob", "s1"), ("alice", "s2"), ("carol", "s9")]
    for user, session in writers:
        await service.create_session(user, session)
    for round_ in range(3):
        for n, (user, session) in enumerate(writers):
            value = f"{round_}-{n}"
            await service.append(
                (user, session), {"role": "user", "content": value, "state_delta": {"app:v": value}}
            )
            assert (await service.get_app_state())["v"] == value
    await service.update_app_state({"v": "direct"})
    assert (await service.get_app_state())["v"] == "direct"
    await service.append(
        ("bob", "s1"), {"role": "user", "content": "x", "state_delta": {"app:v": None}}
    )
    assert "v" not in await service.get_app_state()
    await service.update_session("carol", "s9", state={"app:v": "again"})
    assert (await service.get_app_state())["v"] == "again"
