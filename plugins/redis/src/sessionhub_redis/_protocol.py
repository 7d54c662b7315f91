"""What each Lua script takes and returns, by name: one argument class and one decoder per script.

An argument class is a dataclass whose fields are the script's KEYS and ARGV,
in the order the script's header comment lists them (``tests/test_protocol.py``
compares the two). :meth:`ScriptArgs.to_keys_argv` lays the fields out in that
order; a field's kind says how:

- :func:`key`, :func:`optional_key`: one of KEYS (an optional key, ``?`` in the
  header, is left out when None; optional keys come last, and a call passes
  all of a script's optional keys or none);
- a plain field: one ARGV entry;
- :func:`delta` (``*``): a count, then (key, JSON text, or '' to delete) pairs;
- :func:`pairs` (``*``): a count, then (name, value) pairs from a flat list;
- :func:`records` (``*``): a count, then each record's fields (a record is an
  argument class without keys, listed in the header under its field's name).

A decoder turns a script's reply into named fields, so no caller reads a reply
by index.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from sessionhub.backend_tools import dump_json
from sessionhub_redis import _rewrite_scripts, _scripts
from sessionhub_redis._codec import text

__all__ = [
    "AppDeltaArgs",
    "AppendArgs",
    "AppendReply",
    "AppendedEvent",
    "CreateArgs",
    "CreateReply",
    "DeleteArgs",
    "GetArgs",
    "GetReply",
    "ListArgs",
    "ListReply",
    "MovedOn",
    "PopArgs",
    "PopReply",
    "ReplaceArgs",
    "ReplaceReply",
    "ReplacedEvent",
    "RestoreArgs",
    "RestoredEvent",
    "SCRIPTS",
    "Script",
    "ScriptArgs",
    "SessionArgs",
    "SessionKeysArgs",
    "SessionWriteArgs",
    "StateArgs",
    "UpdateArgs",
    "UpdateReply",
    "delta",
    "key",
    "optional_key",
    "pairs",
    "or_blank",
    "records",
]

KEY, OPTIONAL_KEY, ARG, DELTA, PAIRS, RECORDS = "key", "key?", "arg", "delta", "pairs", "records"
"""The kinds of field (``field.metadata["kind"]``; a field without one is an ARG)."""


def key() -> Any:
    """A field that is one of KEYS."""
    return field(metadata={"kind": KEY})


def optional_key() -> Any:
    """A field that is one of KEYS when not None (only after every other key)."""
    return field(default=None, metadata={"kind": OPTIONAL_KEY})


def delta() -> Any:
    """A mapping sent as a count, then (key, JSON text or '' to delete) pairs."""
    return field(metadata={"kind": DELTA})


def pairs() -> Any:
    """A flat list ``[name, value, ...]`` sent as a count, then the pairs."""
    return field(metadata={"kind": PAIRS})


def records() -> Any:
    """A list of records (argument classes without keys) sent as a count, then each one."""
    return field(metadata={"kind": RECORDS})


def or_blank(number: int | None) -> int | str:
    """An optional number as a script takes it: '' for None (no limit, no check)."""
    return "" if number is None else number


class ScriptArgs:
    """Base of the argument classes: lays their fields out as KEYS and ARGV."""

    __slots__ = ()
    _plan: ClassVar[tuple[tuple[str, str], ...] | None] = None

    @classmethod
    def plan(cls) -> tuple[tuple[str, str], ...]:
        """The fields as (name, kind), in order."""
        if cls.__dict__.get("_plan") is None:
            cls._plan = tuple((f.name, f.metadata.get("kind", ARG)) for f in fields(cls))  # type: ignore[arg-type]
        assert cls._plan is not None
        return cls._plan

    def to_keys_argv(self) -> tuple[list[str], list[Any]]:
        """KEYS and ARGV of a call, in the order of the fields."""
        keys: list[str] = []
        argv: list[Any] = []
        self._encode(keys, argv)
        return keys, argv

    def _encode(self, keys: list[str], argv: list[Any]) -> None:
        for name, kind in self.plan():
            value = getattr(self, name)
            if kind == ARG:
                argv.append(value)
            elif kind == DELTA:
                argv.append(len(value))
                for item, new in value.items():
                    argv.append(item)
                    argv.append("" if new is None else dump_json(new))
            elif kind == KEY or (kind == OPTIONAL_KEY and value is not None):
                keys.append(value)
            elif kind == PAIRS:
                argv.append(len(value) // 2)
                argv.extend(value)
            elif kind == RECORDS:
                argv.append(len(value))
                for record in value:
                    record._encode(keys, argv)


@dataclass(slots=True, kw_only=True)
class SessionKeysArgs(ScriptArgs):
    """The keys every script on one session takes first: the session's own, the user's index."""

    session_hash: str = key()
    event_list: str = key()
    id_index: str = key()
    time_list: str = key()
    user_index: str = key()


@dataclass(slots=True, kw_only=True)
class SessionArgs(SessionKeysArgs):
    """What APPEND, CREATE, GET and UPDATE take first: they also read or write user state."""

    user_state: str = key()
    app_state: str | None = optional_key()
    """Single node only: the app's state, written in the same script."""
    now: int
    exp: str
    ttl: str
    user_exp: str
    user_ttl: str
    app_exp: str
    app_ttl: str
    base: str
    session_id: str


@dataclass(slots=True, kw_only=True)
class AppendedEvent(ScriptArgs):
    """One event of an append, with its deltas (the app delta is empty on Cluster)."""

    id: str
    json: bytes
    time: str
    session_delta: Mapping[str, Any] = delta()
    user_delta: Mapping[str, Any] = delta()
    app_delta: Mapping[str, Any] = delta()


@dataclass(slots=True, kw_only=True)
class AppendArgs(SessionArgs):
    """APPEND: store events with their deltas, trim, refresh the TTLs and the indexes."""

    event_limit: int | str
    app_clock: int | str
    """Cluster, when an event has an app delta: the app clock's reading; else ''."""
    app_sessions: str | None = optional_key()
    """Single node: the app's index of every user's sessions, updated in the same script."""
    expected_last_seq: int | str
    """Compare and set: the ``last_seq`` the session must have, unless every id is stored
    already; '' for no check."""
    new_events: Sequence[AppendedEvent] = records()


@dataclass(slots=True, kw_only=True)
class CreateArgs(SessionArgs):
    """CREATE: store a new session (replacing an expired one) with its user and app deltas."""

    app_users: str | None = optional_key()
    app_sessions: str | None = optional_key()
    apps: str | None = optional_key()
    create_token: str
    parent_escaped: str
    fields: Sequence[Any] = pairs()
    user_delta: Mapping[str, Any] = delta()
    app_delta: Mapping[str, Any] = delta()
    user_id: str
    app_name: str


@dataclass(slots=True, kw_only=True)
class GetArgs(SessionArgs):
    """GET: read the session and one window of its events; slide the TTLs on ``refresh``."""

    refresh: str
    after_seq: int
    last_n: int | str
    after_time: str


@dataclass(slots=True, kw_only=True)
class UpdateArgs(SessionArgs):
    """UPDATE: apply state and metadata deltas without an event."""

    app_sessions: str | None = optional_key()
    app_clock: int | str
    session_delta: Mapping[str, Any] = delta()
    metadata_delta: Mapping[str, Any] = delta()
    user_delta: Mapping[str, Any] = delta()
    app_delta: Mapping[str, Any] = delta()


@dataclass(slots=True, kw_only=True)
class ListArgs(ScriptArgs):
    """LIST: up to ``limit`` live sessions of an index after a cursor; examines <= ``budget``."""

    index: str = key()
    now: int
    limit: int
    budget: int
    after_updated: int | str
    after_id: str
    base: str
    parent_id: str


@dataclass(slots=True, kw_only=True)
class DeleteArgs(SessionKeysArgs):
    """DELETE: remove the session's keys and index entries."""

    app_sessions: str | None = optional_key()
    base: str
    session_id: str
    now: int
    user_id: str


@dataclass(slots=True, kw_only=True)
class StateArgs(ScriptArgs):
    """STATE: update (``mode`` 'update') or slide the expiry of ('refresh') a user or app state."""

    state: str = key()
    apps: str | None = optional_key()
    """Single node, writing a state: the index of apps, to record the app."""
    app_users: str | None = optional_key()
    """Single node, writing a user's state: the app's user index, to record the user."""
    now: int
    mode: str
    exp: str
    ttl: str
    delta: Mapping[str, Any] = delta()
    user_id: str
    app_name: str


@dataclass(slots=True, kw_only=True)
class AppDeltaArgs(ScriptArgs):
    """APP_DELTA (Cluster): apply a write's app delta, each key unless a later write set it."""

    app_state: str = key()
    app_stamps: str = key()
    now: int
    exp: str
    ttl: str
    stamp: int
    writer: str
    delta: Mapping[str, Any] = delta()


@dataclass(slots=True, kw_only=True)
class RestoredEvent(ScriptArgs):
    """One event of a restored session, as stored."""

    id: str
    seq: int
    time: str
    json: str


@dataclass(slots=True, kw_only=True)
class RestoreArgs(SessionKeysArgs):
    """RESTORE: replace the session with exactly the given one."""

    app_users: str | None = optional_key()
    app_sessions: str | None = optional_key()
    apps: str | None = optional_key()
    now: int
    exp: str
    ttl: str
    updated_at: int
    base: str
    session_id: str
    parent_escaped: str
    fields: Sequence[Any] = pairs()
    restored_events: Sequence[RestoredEvent] = records()
    user_id: str
    app_name: str


@dataclass(slots=True, kw_only=True)
class SessionWriteArgs(SessionKeysArgs):
    """What POP and REPLACE take first: the session's keys, the clock, its new expiry."""

    app_sessions: str | None = optional_key()
    """Single node: the app's index of every user's sessions, updated in the same script."""
    now: int
    exp: str
    ttl: str
    base: str
    session_id: str


@dataclass(slots=True, kw_only=True)
class PopArgs(SessionWriteArgs):
    """POP: remove the newest event; ``last_seq`` stays."""


@dataclass(slots=True, kw_only=True)
class ReplacedEvent(ScriptArgs):
    """One event of a new history (no deltas: a replace does not touch state)."""

    id: str
    json: bytes
    time: str


@dataclass(slots=True, kw_only=True)
class ReplaceArgs(SessionWriteArgs):
    """REPLACE: swap every event for new ones numbered after ``last_seq``."""

    expected_last_seq: int | str
    """The ``last_seq`` the session must have; '' for no check."""
    event_limit: int | str
    new_events: Sequence[ReplacedEvent] = records()


@dataclass(slots=True, kw_only=True)
class IndexFix(ScriptArgs):
    """An app index entry found stale: removed (``score`` '') or moved, if still at ``seen``."""

    member: str
    seen: str
    score: int | str


@dataclass(slots=True, kw_only=True)
class AppPageArgs(ScriptArgs):
    """APP_PAGE: apply fixes to an app's index, then read the entries after a position."""

    app_sessions: str = key()
    after_updated: int | str
    after_member: str
    count: int
    oldest: int
    fixes: Sequence[IndexFix] = records()


class Script:
    """A Lua script: its source, its SHA1 for ``EVALSHA``, the class of its arguments."""

    def __init__(self, name: str, source: str, args: type[ScriptArgs]) -> None:
        self.name = name
        self.source = source
        self.args = args
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    def __repr__(self) -> str:
        return f"Script({self.name!r})"


APPEND = Script("append", _scripts.APPEND, AppendArgs)
CREATE = Script("create", _scripts.CREATE, CreateArgs)
GET = Script("get", _scripts.GET, GetArgs)
UPDATE = Script("update", _scripts.UPDATE, UpdateArgs)
LIST = Script("list", _scripts.LIST, ListArgs)
DELETE = Script("delete", _scripts.DELETE, DeleteArgs)
STATE = Script("state", _scripts.STATE, StateArgs)
APP_DELTA = Script("app_delta", _scripts.APP_DELTA, AppDeltaArgs)
APP_PAGE = Script("app_page", _scripts.APP_PAGE, AppPageArgs)
RESTORE = Script("restore", _rewrite_scripts.RESTORE, RestoreArgs)
POP = Script("pop", _rewrite_scripts.POP, PopArgs)
REPLACE = Script("replace", _rewrite_scripts.REPLACE, ReplaceArgs)
SCRIPTS = (
    APPEND,
    CREATE,
    GET,
    UPDATE,
    LIST,
    DELETE,
    STATE,
    APP_DELTA,
    APP_PAGE,
    RESTORE,
    POP,
    REPLACE,
)
"""Every script, for the test that compares their headers with their argument classes."""


# --- replies ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AppendReply:
    """APPEND's reply.

    ``stored``, per event: None if stored now, the JSON stored earlier for an id
    already there, or b'' if the id is recorded but its event is not.
    """

    last_seq: int
    event_count: int
    app_stamp: int | None
    seqs: list[int]
    stored: list[bytes | None]


@dataclass(frozen=True, slots=True)
class MovedOn:
    """The reply of a compare and set (APPEND, REPLACE) whose session moved on: nothing written."""

    last_seq: int
    """The session's ``last_seq``, which was not the one expected."""


def decode_append(reply: list[Any]) -> AppendReply | MovedOn | None:
    """APPEND's reply, :class:`MovedOn`, or None if the session is absent or expired."""
    if reply[0] == 0:
        return None
    if reply[0] == 2:
        return MovedOn(reply[1])
    stamp = reply[3]
    return AppendReply(
        last_seq=reply[1],
        event_count=reply[2],
        app_stamp=int(stamp) if stamp else None,
        seqs=reply[4::2],
        stored=reply[5::2],
    )


@dataclass(frozen=True, slots=True)
class CreateReply:
    """CREATE's reply: ``status`` 0 (the id is taken), 1 (created), 2 (this create ran before)."""

    status: int
    user_state: list[Any]
    app_state: list[Any]


def decode_create(reply: Sequence[Any]) -> CreateReply:
    """CREATE's reply."""
    if reply[0] == 0:
        return CreateReply(status=0, user_state=[], app_state=[])
    return CreateReply(status=reply[0], user_state=reply[1], app_state=reply[2])


@dataclass(frozen=True, slots=True)
class GetReply:
    """GET's reply; ``windowed`` False: the caller must still apply after_time and last_n."""

    session: list[Any]
    events: list[bytes]
    user_state: list[Any]
    app_state: list[Any]
    windowed: bool


def decode_get(reply: Sequence[Any]) -> GetReply | None:
    """GET's reply, or None if the session is absent or expired."""
    if reply[0] == 0:
        return None
    return GetReply(
        session=reply[1],
        events=reply[2],
        user_state=reply[3],
        app_state=reply[4],
        windowed=bool(reply[5]),
    )


@dataclass(frozen=True, slots=True)
class UpdateReply:
    """UPDATE's reply."""

    session: list[Any]
    user_state: list[Any]
    app_state: list[Any]
    app_stamp: int | None


def decode_update(reply: Sequence[Any]) -> UpdateReply | None:
    """UPDATE's reply, or None if the session is absent or expired."""
    if reply[0] == 0:
        return None
    stamp = reply[4]
    return UpdateReply(
        session=reply[1],
        user_state=reply[2],
        app_state=reply[3],
        app_stamp=int(stamp) if stamp else None,
    )


@dataclass(frozen=True, slots=True)
class ListReply:
    """LIST's reply: the sessions found, and where to go on if the budget ran out first."""

    sessions: list[list[Any]]
    next_updated: str | None
    """None: the page is full or the index ends; else the ``after_updated`` to call again with."""
    next_id: str


def decode_list(reply: Sequence[Any]) -> ListReply:
    """LIST's reply."""
    sessions, updated, after = reply
    if updated in (b"", ""):
        return ListReply(sessions=sessions, next_updated=None, next_id="")
    return ListReply(sessions=sessions, next_updated=text(updated), next_id=text(after))


@dataclass(frozen=True, slots=True)
class PopReply:
    """POP's reply."""

    event: bytes | None
    """The removed event's stored JSON; None if the session held no events."""


def decode_pop(reply: Sequence[Any]) -> PopReply | None:
    """POP's reply, or None if the session is absent or expired."""
    if reply[0] == 0:
        return None
    return PopReply(event=reply[1] if len(reply) > 1 else None)


@dataclass(frozen=True, slots=True)
class ReplaceReply:
    """REPLACE's reply."""

    last_seq: int
    event_count: int


def decode_replace(reply: Sequence[Any]) -> ReplaceReply | MovedOn | None:
    """REPLACE's reply, :class:`MovedOn`, or None if the session is absent or expired."""
    if reply[0] == 0:
        return None
    if reply[0] == 2:
        return MovedOn(reply[1])
    return ReplaceReply(last_seq=reply[1], event_count=reply[2])


@dataclass(frozen=True, slots=True)
class AppPageReply:
    """APP_PAGE's reply: ``(member, score)`` entries after the position, and the oldest ones."""

    entries: list[tuple[str, int]]
    oldest: list[tuple[str, int]]


def _entries(flat: Sequence[Any]) -> list[tuple[str, int]]:
    return [(text(flat[j]), int(float(text(flat[j + 1])))) for j in range(0, len(flat), 2)]


def decode_app_page(reply: Sequence[Any]) -> AppPageReply:
    """APP_PAGE's reply."""
    entries, oldest = reply
    return AppPageReply(entries=_entries(entries), oldest=_entries(oldest))
