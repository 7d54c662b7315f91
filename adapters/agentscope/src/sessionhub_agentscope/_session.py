"""``SessionHubSession``: AgentScope 1.x's ``SessionBase`` on any sessionhub backend.

A save costs what is new since the last one, not the whole history: the
entries of every ``InMemoryMemory`` among the saved modules are sessionhub
events tagged with the memory's path (``"agent.memory"``), one per entry a
save adds, batches of entries when a memory is written whole; the
rest of ``{module name: state_dict()}`` is JSON text in the state value
``STATE_KEY``, beside an index of the memories (``MEMORIES_KEY``). Each save is
one atomic ``append`` with compare-and-set: the entries added since the last
save (or, when an earlier entry changed, a reset of that memory and all its
entries in batches), then a marker event carrying the new state. So concurrent saves never
mix, and the last one applied wins. Each object remembers, for its 64 most
recently saved sessions, the last seq and the entries it stored; on a first
save it reads them back, and when another writer moved the session on, it
reads the events added since. After
conflicts that keep recurring, a save appends every entry after a reset,
without compare-and-set, which is right whatever came before. The layout of
the stored values and events is ``sessionhub_agentscope._memory_log``'s.

Sessions saved before memories were events (the whole snapshot in
``STATE_KEY``) and those holding per-module ``snapshot:<name>`` values
(``sessionhub import --format agentscope``, ``SessionHistoryService.save_state``)
load too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from agentscope.module import StateModule
from agentscope.session import SessionBase

from sessionhub import (
    BackendError,
    ConflictError,
    InvalidInput,
    SessionExists,
    SessionHistoryService,
    SessionHubSettings,
    SessionNotFound,
)
from sessionhub_agentscope._memory_log import (
    MEMORIES_KEY,
    STATE_KEY,
    Entries,
    Split,
    batch_events,
    entry_events,
    index_counts,
    json_copy,
    memory_entries,
    reset_event,
    restore_memories,
    save_event,
    split_snapshot,
)
from sessionhub_agentscope._store import ServiceStore

__all__ = [
    "SessionHubSession",
    "SessionStateNotFound",
    "DEFAULT_USER_ID",
    "STATE_KEY",
    "MEMORIES_KEY",
    "SNAPSHOT_PREFIX",
]

DEFAULT_USER_ID = "default"
"""The sessionhub user of a save or load with AgentScope's default ``user_id=""``."""

SNAPSHOT_PREFIX = "snapshot:"
"""Per-module snapshot keys (imported files, ``save_state``), read without ``STATE_KEY``."""

_TRIES = 5
"""Compare-and-set appends a save tries before it appends every entry without it."""
_REMEMBERED = 64
"""Sessions whose last save an object remembers (least recently saved forgotten first)."""
_COMPACT_AFTER = 32
"""Events holding no live entry (markers, resets, replaced entries) a session may gather,
beyond a sixteenth of its live entries, before a save compacts its history."""
_LOAD_READS = 3
"""Reads a load makes before an index that its events do not match is an error."""


class SessionStateNotFound(SessionNotFound, ValueError):
    """``load_session_state(..., allow_not_exist=False)`` found no saved session.

    A ``ValueError``, as ``JSONSession`` and ``RedisSession`` raise, and a
    sessionhub ``SessionNotFound``.
    """

    def __str__(self) -> str:
        return (
            f"Failed to load session state: no session {self.session_id!r} for user "
            f"{self.user_id!r} in app {self.app_name!r} (save_session_state creates it)"
        )


@dataclass(frozen=True)
class _Saved:
    """What a session holds after a save: its last seq and each memory's entries."""

    last_seq: int
    log: Entries  # JSON copies, never changed nor handed out


class SessionHubSession(ServiceStore, SessionBase):
    """An AgentScope 1.x session whose snapshots live in a sessionhub backend.

    A drop-in for ``JSONSession`` / ``RedisSession``: one object serves every
    session id, ``SessionHubSession(url="redis://localhost:6379/0")`` stores in
    that backend (``close()`` closes its connections), ``SessionHubSession(service)``
    uses a service you own. With neither, the configured store
    (``SESSIONHUB_*`` variables, ``sessionhub.toml``; default SQLite in the
    working directory).

    AgentScope's ``user_id=""`` (its default) is sessionhub's ``"default"`` user.
    Module names must be non-empty; each ``state_dict()`` must be JSON (as for
    ``JSONSession``), else ``InvalidInput`` names the module and nothing is saved.
    """

    def __init__(
        self,
        service: SessionHistoryService | None = None,
        *,
        url: str | None = None,
        settings: SessionHubSettings | None = None,
        app_name: str | None = None,
        **options: Any,
    ) -> None:
        super().__init__(service, url=url, settings=settings, app_name=app_name, **options)
        self._saved: OrderedDict[tuple[str, str], _Saved] = OrderedDict()
        self._locks: dict[tuple[str, str], tuple[asyncio.Lock, asyncio.AbstractEventLoop]] = {}

    async def save_session_state(
        self,
        session_id: str,
        user_id: str = "",
        **state_modules_mapping: StateModule,
    ) -> None:
        """Save each module's ``state_dict()`` as the session's snapshot, replacing the last.

        One atomic append (the session is created on first save): a concurrent
        load sees the previous snapshot or this one, never a mix. Modules saved
        before but not named now are gone, as ``JSONSession`` rewrites its file.
        """
        service = self._open()
        user = _user(user_id)
        if service.settings.event_limit is not None:
            raise InvalidInput(
                "event_limit",
                "SessionHubSession keeps memories as events, which event_limit would drop: "
                "use a service without event_limit",
            )
        split = split_snapshot(state_modules_mapping)  # the modules as they are when called
        key = (user, session_id)
        async with self._lock(key):  # this object's saves of a session wait for each other
            await self._save(service, key, split)

    def _lock(self, key: tuple[str, str]) -> asyncio.Lock:
        """The lock of ``key``'s saves in the running event loop.

        Forgetting a lock in use costs only a retry: saves stay compare-and-set.
        """
        loop = asyncio.get_running_loop()
        held = self._locks.get(key)
        if held is not None and held[1] is loop:
            return held[0]
        if len(self._locks) >= 2 * _REMEMBERED:  # forget the idle ones
            self._locks = {k: v for k, v in self._locks.items() if v[0].locked()}
        lock = asyncio.Lock()
        self._locks[key] = (lock, loop)
        return lock

    async def _save(
        self, service: SessionHistoryService, key: tuple[str, str], split: Split
    ) -> None:
        if _capable(service, "compare_and_set"):
            saved = self._saved.get(key) or await _read_saved(service, *key)
            for _ in range(_TRIES):
                events, log = _planned(saved.log, split)
                try:
                    stored = await service.append(key, events, expected_last_seq=saved.last_seq)
                except (ConflictError, SessionNotFound):  # another writer moved it on
                    self._saved.pop(key, None)
                    saved = await _read_saved(service, *key, saved)  # what it added
                    continue
                await self._saved_as(service, key, _Saved(stored[-1].seq, log))
                return
        # Every memory reset and rewritten: right after whatever the session holds.
        events, _ = _planned(Entries({}, {}, 0), split)
        try:
            await service.append(key, events)
        except SessionNotFound:
            await _created(service, *key)
            await service.append(key, events)
        self._saved.pop(key, None)  # what came before is unknown: the next save re-reads

    async def load_session_state(
        self,
        session_id: str,
        user_id: str = "",
        allow_not_exist: bool = True,
        **state_modules_mapping: StateModule,
    ) -> None:
        """Load each named module from the saved snapshot with ``load_state_dict``.

        One read of the session and its events. A module with nothing saved
        under its name is left as it is. A missing session is skipped when
        ``allow_not_exist`` (the default), else ``SessionStateNotFound`` (a
        ``ValueError``, as ``JSONSession`` raises).
        """
        service = self._open()
        user = _user(user_id)
        states = await _loaded_states(service, user, session_id)
        if states is None:
            if allow_not_exist:
                return
            raise SessionStateNotFound(service.app_name, user, session_id)
        # The events are gone by now: the modules' loads, which build as many objects
        # again, do not pay the collector's walks over them too.
        for name, module in state_modules_mapping.items():
            if name in states:
                module.load_state_dict(states[name])

    async def _saved_as(
        self, service: SessionHistoryService, key: tuple[str, str], saved: _Saved
    ) -> None:
        """Remember ``saved``; compact the history first if it gathered enough dead events."""
        found = saved.log.found
        live = sum(len(entries) for entries in found.values())
        if saved.log.dead > _COMPACT_AFTER + live // 16 and _capable(service, "replace_events"):
            events: list[dict[str, Any]] = []
            held: dict[str, int] = {}
            for path, entries in found.items():
                batches = batch_events(path, entries)
                events += [reset_event(path), *batches]
                held[path] = len(batches)
            try:
                stored = await service.replace_events(
                    *key, events, expected_last_seq=saved.last_seq
                )
            except (ConflictError, SessionNotFound):  # a racing save won; it compacts later
                self._saved.pop(key, None)
                return
            last_seq = stored[-1].seq if stored else saved.last_seq
            saved = _Saved(last_seq, Entries(found, held, len(found)))
        current = self._saved.get(key)
        if current is None or current.last_seq < saved.last_seq:
            self._saved[key] = saved
            self._saved.move_to_end(key)
            while len(self._saved) > _REMEMBERED:
                self._saved.popitem(last=False)


def _planned(saved: Entries, split: Split) -> tuple[list[dict[str, Any]], Entries]:
    """The events of a save after ``saved``, and what the session holds then."""
    events: list[dict[str, Any]] = []
    found: dict[str, list[Any]] = {}
    held: dict[str, int] = {}
    dead = saved.dead + sum(
        saved.held.get(path, 0) for path in saved.found if path not in split.memories
    )
    for path, (_, entries) in split.memories.items():
        old = saved.found.get(path)
        if old is not None and len(entries) >= len(old) and entries[: len(old)] == old:
            fresh, _ = json_copy(entries[len(old) :], path)
            found[path] = [*old, *fresh] if fresh else old
            held[path] = saved.held.get(path, 0) + len(fresh)
            events.extend(entry_events(path, fresh))
        else:  # new here, or an earlier entry changed: this path starts again, in batches
            found[path], sizes = json_copy(entries, path)
            batches = batch_events(path, found[path], sizes)
            events += [reset_event(path), *batches]
            dead += 1 + saved.held.get(path, 0)
            held[path] = len(batches)
    # The state rides on a marker of its own: entries stay small, compaction drops markers.
    events.append(
        {**save_event(), "state_delta": {STATE_KEY: split.text, MEMORIES_KEY: split.index()}}
    )
    return events, Entries(found, held, dead + 1)


async def _loaded_states(
    service: SessionHistoryService, user: str, session_id: str
) -> dict[str, Any] | None:
    """The saved module states with their memories' entries back; ``None`` if no session."""
    for _ in range(_LOAD_READS):
        session = await service.get_session(user, session_id)
        if session is None:
            return None
        states = _saved_states(session.state)
        index = session.state.get(MEMORIES_KEY)
        counts = index_counts(index) if isinstance(session.state.get(STATE_KEY), str) else None
        if counts is None:  # no memory kept as events: the snapshot holds everything
            return states
        entries = memory_entries(session.events).found
        if all(len(entries.get(path, ())) == count for path, count in counts.items()):
            return restore_memories(states, session.state[MEMORIES_KEY], entries)
    raise BackendError(
        f"session {session_id!r} of user {user!r}: the stored memories do not match "
        "their index (events removed outside SessionHubSession?); save it again"
    )


async def _read_saved(
    service: SessionHistoryService, user: str, session_id: str, known: _Saved | None = None
) -> _Saved:
    """What the session holds now (created empty if it is new).

    With ``known`` (what this object saved before another writer moved the
    session on), only the events after its seq are read, unless they do not
    add up to the stored index (the session was replaced or rewritten).
    """
    after = known.last_seq if known is not None else None
    session = await service.get_session(user, session_id, after_seq=after)
    if session is None:
        await _created(service, user, session_id)
        return _Saved(0, Entries({}, {}, 0))
    if known is not None and session.last_seq < known.last_seq:
        return await _read_saved(service, user, session_id)  # deleted and created again
    # The service's events are decoded afresh on every read: their entries are ours to keep.
    log = memory_entries(session.events, known.log if known else None)
    counts = index_counts(session.state.get(MEMORIES_KEY)) or {}
    found = {path: got for path, got in log.found.items() if counts.get(path) == len(got)}
    if known is not None and len(found) != len(counts):
        return await _read_saved(service, user, session_id)
    dead = log.dead + sum(log.held.get(path, 0) for path in log.found if path not in found)
    return _Saved(session.last_seq, Entries(found, {path: log.held[path] for path in found}, dead))


async def _created(service: SessionHistoryService, user: str, session_id: str) -> None:
    with contextlib.suppress(SessionExists):  # a concurrent writer created it first
        await service.create_session(user, session_id)


def _capable(service: SessionHistoryService, capability: str) -> bool:
    return bool(getattr(service.backend.capabilities, capability, False))


def _saved_states(state: dict[str, Any]) -> dict[str, Any]:
    """The module states a session holds: this adapter's snapshot, else per-module ones."""
    snapshot = state.get(STATE_KEY)
    if isinstance(snapshot, str):
        loaded: dict[str, Any] = json.loads(snapshot)
        return loaded
    return {
        key.removeprefix(SNAPSHOT_PREFIX): value
        for key, value in state.items()
        if key.startswith(SNAPSHOT_PREFIX)
    }


def _user(user_id: str) -> str:
    if not isinstance(user_id, str):
        raise InvalidInput("user_id", f"must be a string, got {type(user_id).__name__}")
    return user_id or DEFAULT_USER_ID
