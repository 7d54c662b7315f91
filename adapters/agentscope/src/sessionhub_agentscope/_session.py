"""``SessionHubSession``: AgentScope 1.x's ``SessionBase`` on any sessionhub backend.

A save stores what is new since the last one, not the whole history: the
entries of every ``InMemoryMemory`` among the saved modules are sessionhub
events tagged with the memory's path (``"agent.memory"``), one per entry a
save adds, batches of entries when a memory is written whole; the rest of
``{module name: state_dict()}`` is JSON text in the state value
``STATE_KEY``, beside an index of the memories (``MEMORIES_KEY``). Each save is
one atomic ``append`` with compare-and-set: the entries added since the last
save (or, when an earlier entry changed, a reset of that memory and all its
entries in batches), then a marker event carrying the new state. So
concurrent saves never mix, and the last one applied wins. Each object
remembers, for its 64 most recently saved sessions, the last seq and the
entries it stored, which a save compares the memories' entries with; on a
first save it reads them back, and when another writer moved the session on,
it reads the events added since. After conflicts that keep recurring, a save
appends every entry after a reset, without compare-and-set, which is right
whatever came before. The layout of the stored values and events is
``sessionhub_agentscope._memory_log``'s.

With ``append_only_memories=True`` a save neither serialises nor compares
the entries it stored: the object remembers (for 4,096 sessions) each
memory's entry count and last ``Msg`` after a save or a load, and serialises
only the messages after it (``sessionhub_agentscope._split``).

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentscope.memory import InMemoryMemory
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
    batch_events,
    entry_events,
    index_counts,
    json_copy,
    memory_entries,
    reset_event,
    restore_memories,
    save_event,
)
from sessionhub_agentscope._split import MemoryPart, Split, module_at, own_state, split_snapshot
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
_REMEMBERED_APPEND_ONLY = 4096
"""The same with ``append_only_memories``, which keeps no entries: a few hundred bytes each."""
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
class _Tail:
    """What a save stored of an append-only memory: its entry count, last entry, own state."""

    count: int
    last: Any
    """The ``Msg`` stored last, compared by identity (AgentScope rebuilds the pairs)."""
    marks: tuple[Any, ...]
    """Its marks then."""
    own: str

    @classmethod
    def of(cls, pairs: Sequence[Any], own: str) -> _Tail:
        msg, marks = pairs[-1] if pairs else (None, ())
        return cls(len(pairs), msg, tuple(marks), own)

    def continues(self, part: MemoryPart) -> bool:
        """Whether ``part`` holds these entries and more, by what is cheap to see.

        Not a comparison: an entry edited in place, or the marks of one before
        the last changed without the memory's own state changing, go unnoticed.
        """
        pairs = part.pairs
        if pairs is None or part.own != self.own or len(pairs) < self.count:
            return False
        if self.count == 0:
            return True
        msg, marks = pairs[self.count - 1]
        return msg is self.last and tuple(marks) == self.marks


@dataclass(frozen=True)
class _Saved:
    """What a session holds after a save: its last seq and each memory's entries.

    ``log.found`` has the entries of the memories saved exactly (JSON copies,
    never changed nor handed out); an append-only memory has a ``tails`` item
    instead. ``log.held`` and ``log.dead`` count the events of both.
    """

    last_seq: int
    log: Entries
    tails: Mapping[str, _Tail] = field(default_factory=dict)


@dataclass(frozen=True)
class _Loaded:
    """What a load read: the module states, with their memories' entries put back."""

    states: dict[str, Any]
    stored: _Saved | None = None
    """When memories are kept as events: the session's seq and events (no entries)."""
    memories: Mapping[str, tuple[list[str], int]] = field(default_factory=dict)
    """Each memory kept as events: its keys and entry count."""


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

    By default a save is exact whatever the application did to its memories:
    it serialises every entry (``state_dict()``) and compares them with those
    it stored, which grows with the history (20 to 30 ms at 10,000 messages).
    ``append_only_memories=True`` is for applications whose memories only grow
    between saves, as a ``ReActAgent``'s do: a save then serialises only the
    messages added since the last save or load through this object, whatever
    the history's length. It checks what is cheap to see (the memory got
    shorter, its last saved message is no longer in its place, or its own
    state, such as the summary AgentScope's compression writes, changed) and
    then writes that memory whole; an entry edited in place or re-marked by
    other means is not seen, and its stored copy stays as it was.

    :param append_only_memories: Trust that saved memory entries never change
        (see above); other state is saved exactly either way.
    """

    def __init__(
        self,
        service: SessionHistoryService | None = None,
        *,
        url: str | None = None,
        settings: SessionHubSettings | None = None,
        app_name: str | None = None,
        append_only_memories: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(service, url=url, settings=settings, app_name=app_name, **options)
        self._append_only = append_only_memories
        self._remembered = _REMEMBERED_APPEND_ONLY if append_only_memories else _REMEMBERED
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
        # The modules as they are when called.
        split = split_snapshot(state_modules_mapping, set_aside=self._append_only)
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
        if len(self._locks) >= 2 * self._remembered:  # forget the idle ones
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
                events, log, tails = _planned(saved, split)
                try:
                    stored = await service.append(key, events, expected_last_seq=saved.last_seq)
                except (ConflictError, SessionNotFound):  # another writer moved it on
                    self._saved.pop(key, None)
                    # What it added (all of it when the entries it stored are not at hand).
                    saved = await _read_saved(service, *key, None if saved.tails else saved)
                    continue
                await self._saved_as(service, key, _Saved(stored[-1].seq, log, tails), split)
                return
        # Every memory reset and rewritten: right after whatever the session holds.
        events, _, _ = _planned(_Saved(0, Entries({}, {}, 0)), split)
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
        loaded = await _loaded_states(service, user, session_id)
        if loaded is None:
            if allow_not_exist:
                return
            raise SessionStateNotFound(service.app_name, user, session_id)
        # The events are gone by now: the modules' loads, which build as many objects
        # again, do not pay the collector's walks over them too.
        for name, module in state_modules_mapping.items():
            if name in loaded.states:
                module.load_state_dict(loaded.states[name])
        if self._append_only and loaded.stored is not None:
            key = (user, session_id)
            self._remember_loaded(key, loaded.stored, loaded.memories, state_modules_mapping)

    def _remember_loaded(
        self,
        key: tuple[str, str],
        stored: _Saved,
        memories: Mapping[str, tuple[list[str], int]],
        modules: Mapping[str, StateModule],
    ) -> None:
        """After a load, append-only saves continue the loaded memories from their length.

        Only when every stored memory was loaded into an ``InMemoryMemory``;
        otherwise the next save reads the session first.
        """
        tails: dict[str, _Tail] = {}
        for path, (keys, count) in memories.items():
            memory = module_at(modules, keys)
            if (
                not isinstance(memory, InMemoryMemory)
                or type(memory).state_dict is not InMemoryMemory.state_dict
                or len(memory.content) != count
            ):
                return
            tails[path] = _Tail.of(memory.content, own_state(memory))
        self._remember(key, _Saved(stored.last_seq, stored.log, tails), replace_equal=True)

    async def _saved_as(
        self, service: SessionHistoryService, key: tuple[str, str], saved: _Saved, split: Split
    ) -> None:
        """Remember ``saved``; compact the history first if it gathered enough dead events."""
        found, tails = saved.log.found, saved.tails
        live = sum(map(len, found.values())) + sum(tail.count for tail in tails.values())
        if saved.log.dead > _COMPACT_AFTER + live // 16 and _capable(service, "replace_events"):
            events: list[dict[str, Any]] = []
            held: dict[str, int] = {}
            for path in [*found, *tails]:
                if path in found:
                    entries = found[path]
                else:  # an append-only memory: its entries as this save had them
                    entries, _ = json_copy(split.memories[path].entries(), path)
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
            saved = _Saved(last_seq, Entries(found, held, len(held)), tails)
        self._remember(key, saved)

    def _remember(
        self, key: tuple[str, str], saved: _Saved, *, replace_equal: bool = False
    ) -> None:
        current = self._saved.get(key)
        if (
            current is None
            or current.last_seq < saved.last_seq
            or (replace_equal and current.last_seq == saved.last_seq)
        ):
            self._saved[key] = saved
            self._saved.move_to_end(key)
            while len(self._saved) > self._remembered:
                self._saved.popitem(last=False)


def _planned(saved: _Saved, split: Split) -> tuple[list[dict[str, Any]], Entries, dict[str, _Tail]]:
    """The events of a save after ``saved``, and what the session holds then."""
    events: list[dict[str, Any]] = []
    found: dict[str, list[Any]] = {}
    held: dict[str, int] = {}
    tails: dict[str, _Tail] = {}
    log = saved.log
    dead = log.dead + sum(count for path, count in log.held.items() if path not in split.memories)
    for path, part in split.memories.items():
        start = _stored_prefix(part, saved.tails.get(path), log.found.get(path))
        if start is not None:
            fresh, _ = json_copy(part.entries(start), path)
            held[path] = log.held.get(path, 0) + len(fresh)
            events.extend(entry_events(path, fresh))
            if part.pairs is None:
                old = log.found[path]
                found[path] = [*old, *fresh] if fresh else old
        else:  # new here, or an earlier entry changed: this path starts again, in batches
            entries, sizes = json_copy(part.entries(), path)
            batches = batch_events(path, entries, sizes)
            events += [reset_event(path), *batches]
            dead += 1 + log.held.get(path, 0)
            held[path] = len(batches)
            if part.pairs is None:
                found[path] = entries
        if part.pairs is not None:
            tails[path] = _Tail.of(part.pairs, part.own)
    # The state rides on a marker of its own: entries stay small, compaction drops markers.
    events.append(
        {**save_event(), "state_delta": {STATE_KEY: split.text, MEMORIES_KEY: split.index()}}
    )
    return events, Entries(found, held, dead + 1), tails


def _stored_prefix(part: MemoryPart, tail: _Tail | None, old: list[Any] | None) -> int | None:
    """How many of ``part``'s entries the session holds already; ``None``: write it whole.

    An append-only memory's last save is trusted for what its tail shows;
    otherwise the entries are compared with those stored.
    """
    if tail is not None:
        return tail.count if tail.continues(part) else None
    if old is None:
        return None
    entries = part.entries()
    return len(old) if len(entries) >= len(old) and entries[: len(old)] == old else None


async def _loaded_states(
    service: SessionHistoryService, user: str, session_id: str
) -> _Loaded | None:
    """The saved module states with their memories' entries back; ``None`` if no session."""
    for _ in range(_LOAD_READS):
        session = await service.get_session(user, session_id)
        if session is None:
            return None
        states = _saved_states(session.state)
        index = session.state.get(MEMORIES_KEY)
        counts = index_counts(index) if isinstance(session.state.get(STATE_KEY), str) else None
        if counts is None or not isinstance(index, dict):  # the snapshot holds everything
            return _Loaded(states)
        log = memory_entries(session.events)
        if all(len(log.found.get(path, ())) == count for path, count in counts.items()):
            return _Loaded(
                restore_memories(states, index, log.found),
                _Saved(session.last_seq, Entries({}, log.held, log.dead)),
                {path: (index[path]["keys"], count) for path, count in counts.items()},
            )
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
