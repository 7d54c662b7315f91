"""Redis Cluster: slots as the server computes them, and what is atomic across the app's slot."""

from __future__ import annotations

import pytest
import pytest_asyncio
from redis.asyncio import Redis

from sessionhub import BackendUnavailable, Event, TextPart
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
            names += [keys.hash, keys.events, keys.ids, users.children(session)]
        slots = {await client.cluster_keyslot(name) for name in names}
        assert slots == {await client.cluster_keyslot(users.base)}


def _node_port(backend: RedisBackend, key: str) -> int:
    return int(backend.client.get_node_from_key(key).port)


async def test_app_deltas_on_cluster_are_a_second_script_applied_at_most_once(
    cluster_backend, make_service
):
    """A crash between the two scripts leaves the session's part stored, the app part not.

    The app state's node is made to refuse writes (min-replicas-to-write with no
    replica) between the user's script and the app's, as if it had gone away.
    """
    service = make_service(cluster_backend)
    app_key = cluster_backend.keys.app_state(service.app_name)
    app_port = _node_port(cluster_backend, app_key)
    user = next(
        f"user-{n}"
        for n in range(1000)
        if _node_port(
            cluster_backend, cluster_backend.keys.user(service.app_name, f"user-{n}").base
        )
        != app_port
    )
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
        await app_node.config_set("min-replicas-to-write", 1)
        with pytest.raises(BackendUnavailable, match="app: state delta was not applied"):
            await service.append((user, "s1"), event)
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
