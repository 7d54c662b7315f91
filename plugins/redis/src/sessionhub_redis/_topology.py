"""Single node or Redis Cluster: what differs between them, behind one interface chosen at open.

On a single node (or a Sentinel master) every key is on one server, so the
session scripts also take the app's keys: one script applies ``app:`` deltas
and records the user in the app's user index. On Redis Cluster the app's keys
live in another slot: a write with ``app:`` deltas first ticks the app's clock,
its session script stamps it, and a second script (APP_DELTA) applies the
deltas in the app's slot; the user index, the app's index of every user's
sessions and the index of apps get commands of their own (the app's index one
sent before a create or a restore, after any other write), and a read
fetches the app state beside the session's script.

Every command and script goes through :meth:`Topology.run` or
:meth:`Topology.command`, where redis-py's failures become sessionhub's by one
rule (:func:`failure`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Mapping
from datetime import datetime
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import (
    ClusterDownError,
    NoPermissionError,
    NoScriptError,
    ReadOnlyError,
    RedisClusterException,
    RedisError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from sessionhub import BackendError, BackendUnavailable, Expiry, SessionHubError
from sessionhub.backend_tools import to_micros
from sessionhub_redis import _codec
from sessionhub_redis._driver import ConnectionCache, run_script, run_script_beside
from sessionhub_redis._keys import KeyLayout, app_member
from sessionhub_redis._protocol import (
    APP_DELTA,
    GET,
    STATE,
    AppDeltaArgs,
    GetArgs,
    Script,
    ScriptArgs,
    StateArgs,
)

__all__ = ["ACL_RULES", "CLUSTER_ACL_RULES", "Cluster", "SingleNode", "Topology", "failure"]

logger = logging.getLogger("sessionhub.redis")

_FAILURES = (RedisError, RedisClusterException, OSError, asyncio.TimeoutError)
_UNREACHABLE = (
    RedisConnectionError,  # refused, reset, closed, authentication, loading
    RedisTimeoutError,
    ClusterDownError,  # the cluster says it cannot serve the slot
    RedisClusterException,  # no node of the cluster could be reached
    OSError,
    asyncio.TimeoutError,
)


ACL_RULES = "~<key_prefix>* resetchannels +@read +@write +@scripting +@transaction +ping"
"""The Redis ACL rules a user needs to run this backend (the whole conformance suite passes)."""
CLUSTER_ACL_RULES = "+cluster|slots +command"
"""What a user needs besides ``ACL_RULES`` on Redis Cluster (redis-py maps slots and keys)."""


def failure(exc: BaseException, where: str) -> SessionHubError:
    """The one rule mapping a redis-py failure to sessionhub's error.

    Unreachable or timed out is ``BackendUnavailable``; an answer that is an
    error (WRONGTYPE, OOM, a script's error, ...) is ``BackendError`` quoting it,
    saying where to point the url when a read-only replica refused a write, and
    which ACL the user needs when the server refused it a command or a key.
    """
    detail = str(exc).rstrip(".")
    if isinstance(exc, NoPermissionError):
        return BackendError(
            f"Redis at {where} refused the user: {detail}. Give it the ACL this backend "
            f"needs: {ACL_RULES} (with key_prefix in place of <key_prefix>; on Redis Cluster "
            f"also {CLUSTER_ACL_RULES})."
        )
    if isinstance(exc, ReadOnlyError):
        return BackendError(
            f"Redis at {where} is a read-only replica: {detail}. Point the url at the primary, "
            "or use a redis+sentinel:// url, which follows the primary through failovers."
        )
    if isinstance(exc, _UNREACHABLE):
        # A Cluster user whose ACL refuses CLUSTER SLOTS looks like a node out of cluster mode.
        acl = (
            f" A user whose ACL lacks {CLUSTER_ACL_RULES} fails this way too."
            if isinstance(exc, RedisClusterException)
            else ""
        )
        return BackendUnavailable(
            f"Redis at {where} failed: {type(exc).__name__}: {detail}. Check that the server "
            f"is running and reachable, and the url, password and timeouts.{acl}"
        )
    return BackendError(
        f"Redis at {where} answered with an error: {type(exc).__name__}: {detail}. The "
        "server is reachable; the error is its own (e.g. another program's value at one of "
        "this backend's keys, memory full, a command refused)."
    )


class Topology:
    """What a backend sends, and how, on one deployment shape.

    :class:`SingleNode` or :class:`Cluster`, chosen by the client's type when
    the backend opens. The methods here behave as on a single node (everything
    in the session's script); :class:`Cluster` overrides the ones that differ.
    """

    reads_beside = False
    """Whether :meth:`get_beside` is there: a long window read by a plain ``LRANGE``."""

    def __init__(self, client: Redis | RedisCluster, keys: KeyLayout, where: str) -> None:
        self.client = client
        self.keys = keys
        self.where = where

    async def ready(self) -> Redis | RedisCluster:
        """The client, ready to send."""
        return self.client

    async def close(self) -> None:
        """Forget state bound to the event loop; the client is closed by its owner."""

    def _send(self, script: Script, keys: list[str], argv: list[Any]) -> Awaitable[Any]:
        return self._through_client(script, keys, argv)

    async def _through_client(self, script: Script, keys: list[str], argv: list[Any]) -> Any:
        client = await self.ready()
        try:
            return await client.evalsha(script.sha, len(keys), *keys, *argv)
        except NoScriptError:
            return await client.eval(script.source, len(keys), *keys, *argv)

    async def run(self, script: Script, args: ScriptArgs) -> Any:
        """Run ``script`` with ``args``; raise sessionhub's error if the server fails."""
        keys, argv = args.to_keys_argv()
        try:
            return await self._send(script, keys, argv)
        except _FAILURES as exc:
            raise failure(exc, self.where) from exc

    async def get_beside(self, args: GetArgs, start: int) -> tuple[Any, list[bytes]]:
        """GET's reply and the events list from ``start``, in one transaction.

        Only where :attr:`reads_beside` says so (:class:`SingleNode`).
        """
        raise NotImplementedError

    async def command(self, *args: Any) -> Any:
        """Send one command; raise sessionhub's error if the server fails."""
        try:
            return await (await self.ready()).execute_command(*args)
        except _FAILURES as exc:
            raise failure(exc, self.where) from exc

    async def read_state(
        self, key: str, expires_at: datetime | None, expiry: Expiry, *, refresh: bool
    ) -> dict[str, Any]:
        """A user or app state; ``refresh`` slides its expiry to ``expires_at``."""
        if refresh:
            exp, ttl = _codec.expiry(expires_at, expiry.now)
            args = StateArgs(
                state=key, now=to_micros(expiry.now), mode="refresh", exp=exp, ttl=ttl, delta={},
                user_id="", app_name="",
            )  # fmt: skip
            flat = await self.run(STATE, args)
        else:
            flat = await self.command("HGETALL", key)
        if isinstance(flat, dict):  # redis-py turns a plain HGETALL reply into a dict
            flat = [item for pair in flat.items() for item in pair]
        return _codec.state(flat, to_micros(expiry.now))

    # --- what differs -----------------------------------------------------------------

    def app_state_key(self, app_name: str) -> str | None:
        """The app state's key for a session script, or None if it cannot take it."""
        return self.keys.app_state(app_name)

    def app_delta(self, delta: Mapping[str, Any]) -> Mapping[str, Any]:
        """What of an app delta a session script applies itself."""
        return delta

    async def app_users_key(self, app_name: str, user_id: str) -> str | None:
        """The app's user index for a script to record ``user_id`` in, or None.

        None: the user was recorded already, by a command of its own.
        """
        return self.keys.app_users(app_name)

    async def app_clock(self, app_name: str, needed: bool) -> int | str:
        """The app clock's reading for a write with app deltas (``needed``), or ''."""
        return ""

    def app_index_key(self, app_name: str) -> str | None:
        """The app's index of every user's sessions for a session script, or None."""
        return self.keys.app_sessions(app_name)

    async def apps_key(self, app_name: str) -> str | None:
        """The index of apps for a script to record ``app_name`` in, or None.

        None: the app was recorded already, by a command of its own.
        """
        return self.keys.apps

    async def app_index_before(
        self, key: tuple[str, str, str], updated_us: int, *, restored: bool = False
    ) -> None:
        """Before a create or a restore: put the session in the app's index, if no script will.

        ``key`` is (app, user, session). An entry the script then does not back
        (the id was taken, the write failed) is mended by the next listing.
        """

    async def app_index_after(self, key: tuple[str, str, str], updated_us: int | None) -> None:
        """After a script moved (or, ``updated_us`` None, removed) a session: its index entry."""

    async def hashes(self, keys: list[str]) -> list[list[Any]]:
        """Each hash's fields as a flat list (empty for a missing one), in one pipeline."""
        client = await self.ready()
        try:
            pipe = client.pipeline(transaction=False)
            for name in keys:
                pipe.hgetall(name)
            replies = await pipe.execute()
        except _FAILURES as exc:
            raise failure(exc, self.where) from exc
        return [
            [item for pair in reply.items() for item in pair] if isinstance(reply, dict) else reply
            for reply in replies
        ]

    async def app_written(
        self,
        app_name: str,
        delta: Mapping[str, Any],
        expiry: Expiry,
        what: str,
        *,
        stamp: int | None,
        writer: str,
        fields: list[Any] | None,
    ) -> dict[str, Any] | None:
        """After a session script: apply what is left of ``delta``; return the app state.

        The state comes from the script's ``fields`` (or is read); None when
        ``fields`` is None.
        """
        return None if fields is None else _codec.state(fields, to_micros(expiry.now))

    async def get(
        self, args: GetArgs, app_name: str, expiry: Expiry, *, refresh: bool
    ) -> tuple[Any, dict[str, Any] | None]:
        """GET's raw reply, and the app state when it is not in the reply."""
        return await self.run(GET, args), None


class SingleNode(Topology):
    """One server or a Sentinel master: every script through ``cache`` when there is one."""

    reads_beside = True

    def __init__(
        self,
        client: Redis | RedisCluster,
        keys: KeyLayout,
        where: str,
        cache: ConnectionCache | None,
    ) -> None:
        super().__init__(client, keys, where)
        self.cache = cache

    def _send(self, script: Script, keys: list[str], argv: list[Any]) -> Awaitable[Any]:
        if self.cache is None:
            return self._through_client(script, keys, argv)
        return self.cache.call(
            lambda connection: run_script(connection, script.sha, script.source, keys, argv)
        )

    async def get_beside(self, args: GetArgs, start: int) -> tuple[Any, list[bytes]]:
        """GET's reply, and ``LRANGE event_list start -1``, run in one ``MULTI``/``EXEC``.

        For a long window: Redis turns a script's reply into its answer at about
        1 µs an element more than a command's (5,000 events of 530 bytes: 7.9 ms
        in GET's reply, 2.6 ms beside it). ``args`` should ask GET for no events;
        nothing runs between the two, so the list is the one the script saw.
        """
        keys, argv = args.to_keys_argv()
        command = ("LRANGE", args.event_list, start, -1)
        try:
            if self.cache is None:
                replies = await self._beside_through_client(keys, argv, command)
            else:
                replies = await self.cache.call(
                    lambda connection: run_script_beside(
                        connection, GET.sha, GET.source, keys, argv, command
                    )
                )
        except _FAILURES as exc:
            raise failure(exc, self.where) from exc
        return replies[0], replies[1]

    async def _beside_through_client(
        self, keys: list[str], argv: list[Any], command: tuple[Any, ...]
    ) -> list[Any]:
        client = await self.ready()
        for call in (("EVALSHA", GET.sha), ("EVAL", GET.source)):
            pipe = client.pipeline(transaction=True)
            pipe.execute_command(*call, len(keys), *keys, *argv)
            pipe.execute_command(*command)
            try:
                replies: list[Any] = await pipe.execute()
            except NoScriptError:
                continue
            return replies
        raise NoScriptError("the server refused the script's source")  # pragma: no cover


class Cluster(Topology):
    """Redis Cluster: the app's keys in their own slot, reached by commands of their own."""

    def __init__(self, client: RedisCluster, keys: KeyLayout, where: str) -> None:
        super().__init__(client, keys, where)
        self.cluster = client
        self._initialized = False
        self._lock: asyncio.Lock | None = None

    async def ready(self) -> Redis | RedisCluster:
        """The client, its topology discovered once.

        redis-py races when many first commands trigger its discovery at once.
        """
        if not self._initialized:
            if self._lock is None:
                self._lock = asyncio.Lock()
            async with self._lock:
                if not self._initialized:
                    await self.cluster.initialize()
                    self._initialized = True
        return self.cluster

    async def close(self) -> None:
        """Forget the discovery and its lock (bound to one event loop)."""
        self._initialized = False
        self._lock = None

    def app_state_key(self, app_name: str) -> str | None:
        """None: the app state is in another slot."""
        return None

    def app_delta(self, delta: Mapping[str, Any]) -> Mapping[str, Any]:
        """Nothing: app deltas go to the app's slot in APP_DELTA."""
        return {}

    async def app_users_key(self, app_name: str, user_id: str) -> str | None:
        """Record the user now, before the user's own write; None for the script."""
        await self.command("ZADD", self.keys.app_users(app_name), 0, user_id)
        return None

    def app_index_key(self, app_name: str) -> str | None:
        """None: the app's index is in another slot (see :meth:`app_index_after`)."""
        return None

    async def apps_key(self, app_name: str) -> str | None:
        """Record the app now, before the write; None for the script."""
        await self.command("ZADD", self.keys.apps, 0, app_name)
        return None

    async def app_index_before(
        self, key: tuple[str, str, str], updated_us: int, *, restored: bool = False
    ) -> None:
        """Put the session in the app's index at ``updated_us`` before its own script.

        Only ever later (``GT``: commands of two writes may arrive in either order),
        unless ``restored`` sets an exported time. A failure raises: nothing is
        written yet.
        """
        app_name, user_id, session_id = key
        index, member = self.keys.app_sessions(app_name), app_member(user_id, session_id)
        if restored:
            await self.command("ZADD", index, updated_us, member)
        else:
            await self.command("ZADD", index, "GT", updated_us, member)

    async def app_index_after(self, key: tuple[str, str, str], updated_us: int | None) -> None:
        """Move the session's entry in the app's index to ``updated_us`` (None: remove it).

        The session's write is done: a failure here is logged, not raised. The
        entry stays where it was, and a listing that meets it mends it.
        """
        app_name, user_id, session_id = key
        index, member = self.keys.app_sessions(app_name), app_member(user_id, session_id)
        try:
            if updated_us is None:
                await self.command("ZREM", index, member)
            else:
                await self.command("ZADD", index, "GT", updated_us, member)
        except (BackendUnavailable, BackendError) as exc:
            logger.warning(
                "Session %r of user %r was written, but its entry in the index of app %r was "
                "not moved (%s); a listing of every user's sessions mends it when it meets it.",
                session_id,
                user_id,
                app_name,
                exc,
            )

    async def app_clock(self, app_name: str, needed: bool) -> int | str:
        """Tick the app's write clock before a write with app deltas begins."""
        if not needed:
            return ""
        return int(await self.command("HINCRBY", self.keys.app_stamps(app_name), "clock", 1))

    async def app_written(
        self,
        app_name: str,
        delta: Mapping[str, Any],
        expiry: Expiry,
        what: str,
        *,
        stamp: int | None,
        writer: str,
        fields: list[Any] | None,
    ) -> dict[str, Any] | None:
        """Apply ``delta`` in the app's slot (APP_DELTA), or read the app state if asked."""
        if delta and stamp is not None:
            return await self.app_write(app_name, delta, expiry, what, stamp=stamp, writer=writer)
        if fields is None:
            return None
        return await self.read_state(
            self.keys.app_state(app_name), expiry.app, expiry, refresh=False
        )

    async def app_write(
        self,
        app_name: str,
        delta: Mapping[str, Any],
        expiry: Expiry,
        what: str,
        *,
        stamp: int,
        writer: str,
    ) -> dict[str, Any]:
        """Apply a write's app delta, each key unless a later write set it.

        ``stamp`` is what the session's script made of the app clock; ``writer``
        (the session hash's key) orders equal stamps.
        """
        exp, ttl = _codec.expiry(expiry.app, expiry.now)
        args = AppDeltaArgs(
            app_state=self.keys.app_state(app_name),
            app_stamps=self.keys.app_stamps(app_name),
            now=to_micros(expiry.now),
            exp=exp,
            ttl=ttl,
            stamp=stamp,
            writer=writer,
            delta=delta,
        )
        try:
            flat = await self.run(APP_DELTA, args)
        except (BackendUnavailable, BackendError) as exc:
            raise type(exc)(
                f"{what} was stored, but its app: state delta was not applied: {exc}"
            ) from exc.__cause__
        return _codec.state(flat, to_micros(expiry.now))

    async def get(
        self, args: GetArgs, app_name: str, expiry: Expiry, *, refresh: bool
    ) -> tuple[Any, dict[str, Any] | None]:
        """GET's reply and the app state, read side by side."""
        app_key = self.keys.app_state(app_name)
        reply, app_state = await asyncio.gather(
            self.run(GET, args), self.read_state(app_key, expiry.app, expiry, refresh=refresh)
        )
        return reply, app_state
