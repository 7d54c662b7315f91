"""Moving data: export to JSON lines, import from it (and from other tools' files), migrate.

The export format is JSON lines, one record per line: a ``header``, the
``app_state``, then per user a ``user_state`` and one ``session`` record per
session with all its events. A session is imported in one atomic step
(``Backend.restore_session``), exactly as exported (ids, seqs, times,
counters), replacing a session with the same key: a re-run after an
interruption duplicates nothing and misses nothing.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from sessionhub import _validate
from sessionhub._conversation import SNAPSHOT_PREFIX
from sessionhub._normalize import to_event
from sessionhub.backend import EventWindow, Expiry, SessionKey, StateKey
from sessionhub.backend_tools import check_restorable
from sessionhub.errors import ConfigError, InvalidInput
from sessionhub.models import Event, Session
from sessionhub.service import SessionHistoryService

__all__ = [
    "EXPORT_FORMAT",
    "EXPORT_VERSION",
    "Record",
    "TransferReport",
    "count_sessions",
    "export_records",
    "import_records",
    "migrate",
    "read_export",
    "read_agentscope_sessions",
    "read_history_files",
]

EXPORT_FORMAT = "sessionhub-export"
EXPORT_VERSION = 1
PAGE = 500

Record = dict[str, Any]
"""One line of an export: ``{"kind": "header" | "app_state" | "user_state" | "session", ...}``."""


@dataclass
class Located:
    """A record and where it came from, for error messages; or why none could be read there."""

    record: Record
    source: str
    line: int | None = None
    error: str | None = None
    """Set when the file or line could not be read as a record (``record`` is then empty)."""

    @property
    def where(self) -> str:
        """``file:line`` (or just the file)."""
        return self.source if self.line is None else f"{self.source}:{self.line}"


@dataclass
class TransferReport:
    """What an import or migration did."""

    sessions: int = 0
    events: int = 0
    user_states: int = 0
    app_states: int = 0
    skipped: list[str] = field(default_factory=list)
    """One line per record skipped with ``keep_going``: where it was and why."""


Progress = Callable[[str, int], None]
"""Called with ``("sessions", 1)`` or ``("events", n)`` as work is done."""


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _no_refresh(now: datetime) -> Expiry:
    return Expiry(now=now)


def _require(service: SessionHistoryService, capability: str, what: str, instead: str) -> None:
    """Raise ``ConfigError`` unless the service's backend declares ``capability``."""
    backend = service.backend
    if not getattr(backend.capabilities, capability):
        raise ConfigError(
            f"The {backend.name!r} backend cannot {what} (it does not declare the "
            f"{capability!r} capability): {instead}."
        )


# --- export ------------------------------------------------------------------------


async def export_records(
    service: SessionHistoryService,
    *,
    user_ids: Sequence[str] | None = None,
    updated_after: datetime | None = None,
    updated_before: datetime | None = None,
) -> AsyncIterator[Record]:
    """Stream the app's data as export records, one session at a time.

    Reads never extend TTLs. With ``user_ids``, only those users' data;
    ``updated_after`` / ``updated_before`` keep sessions updated in that window.
    """
    await service.start()
    backend = service.backend
    app = service.app_name
    yield {
        "kind": "header",
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "app_name": app,
        "exported_at": _now().isoformat(),
    }
    expiry = _no_refresh(_now())
    app_state = await backend.read_state(StateKey.app(app), expiry, refresh=False)
    if app_state and user_ids is None:
        yield {"kind": "app_state", "state": app_state}
    async for user_id in _users(service, user_ids):
        user_state = await backend.read_state(StateKey.user(app, user_id), expiry, refresh=False)
        if user_state:
            yield {"kind": "user_state", "user_id": user_id, "state": user_state}
        async for session in _sessions_of(service, user_id, expiry.now):
            if updated_after is not None and session.updated_at <= updated_after:
                continue
            if updated_before is not None and session.updated_at > updated_before:
                continue
            stored = await backend.get_session(
                SessionKey(app, user_id, session.id), EventWindow(), expiry, refresh=False
            )
            if stored is None:  # deleted or expired since it was listed
                continue
            full = stored.session
            yield {
                "kind": "session",
                "session": full.model_dump(mode="json", exclude={"events"}),
                "events": [event.model_dump(mode="json") for event in full.events],
            }


async def _users(
    service: SessionHistoryService, user_ids: Sequence[str] | None
) -> AsyncIterator[str]:
    if user_ids is not None:
        for user_id in user_ids:
            yield _validate.check_identifier(user_id, "user_id")
        return
    _require(
        service,
        "list_users",
        "list the users of an app",
        "name the users to export or migrate with --user (user_ids= in Python)",
    )
    after: str | None = None
    while True:
        page = await service.backend.list_users(service.app_name, limit=PAGE, after=after)
        for user_id in page:
            yield user_id
        if len(page) < PAGE:
            return
        after = page[-1]


async def _sessions_of(
    service: SessionHistoryService, user_id: str, now: datetime
) -> AsyncIterator[Session]:
    cursor: str | None = None
    while True:
        page = await service.list_sessions(user_id, limit=PAGE, cursor=cursor)
        for session in page.items:
            yield session
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


# --- reading files ------------------------------------------------------------------


def read_export(path: Path | str) -> Iterator[Located]:
    """Read an export file (``-`` is not accepted here; pass lines to ``parse_lines``).

    A file that cannot be read, or holds no record, becomes one error naming it.
    """
    source = str(path)
    try:
        with Path(path).open("rb") as handle:
            found = False
            for located in parse_lines(handle, source):
                found = True
                yield located
    except OSError as exc:
        yield Located({}, source, error=f"cannot be read ({exc.strerror or exc})")
        return
    if not found:
        yield Located({}, source, error="holds no records (an export starts with a header line)")


def parse_lines(lines: Iterable[str | bytes], source: str) -> Iterator[Located]:
    """Parse JSON lines; a malformed line becomes an ``InvalidInput`` naming source and line.

    Lines given as bytes must be UTF-8 (a binary file fails line by line).
    """
    for number, line in enumerate(lines, start=1):
        if isinstance(line, bytes):
            try:
                line = line.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield Located(
                    {}, source, number, f"not UTF-8 text ({exc.reason} at byte {exc.start})"
                )
                continue
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            yield Located({}, source, number, f"not JSON ({exc})")
            continue
        if not isinstance(record, dict):
            yield Located({}, source, number, "a line must be a JSON object")
            continue
        yield Located(record, source, number)


# --- import ------------------------------------------------------------------------


async def import_records(
    service: SessionHistoryService,
    records: Iterable[Located] | AsyncIterator[Located],
    *,
    keep_going: bool = False,
    progress: Progress | None = None,
) -> TransferReport:
    """Store records into the service's app; each session atomically and idempotently.

    A bad record raises ``InvalidInput`` naming where it came from, before
    anything of it is written; with ``keep_going`` it is skipped and reported.
    """
    _require(
        service,
        "restore_session",
        "store sessions exactly as exported",
        "nothing can be imported or migrated into it; use a backend that declares it",
    )
    await service.start()
    report = TransferReport()
    async for located in _aiter(records):
        try:
            await _import_one(service, located, report)
        except InvalidInput as exc:
            if not keep_going:
                raise
            report.skipped.append(str(exc))
            continue
        if progress is not None and located.record.get("kind") == "session":
            progress("sessions", 1)
            progress("events", len(located.record.get("events", [])))
    return report


async def _aiter(records: Iterable[Located] | AsyncIterator[Located]) -> AsyncIterator[Located]:
    if isinstance(records, AsyncIterator):
        async for item in records:
            yield item
    else:
        for item in records:
            yield item


async def _import_one(
    service: SessionHistoryService, located: Located, report: TransferReport
) -> None:
    record = located.record
    kind = record.get("kind")
    backend = service.backend
    app = service.app_name
    expiry = _no_refresh(_now())
    if located.error is not None:
        raise InvalidInput(located.where, located.error)
    if kind == "header":
        if record.get("format") != EXPORT_FORMAT or record.get("version") != EXPORT_VERSION:
            raise InvalidInput(
                located.where,
                f"not a {EXPORT_FORMAT} version {EXPORT_VERSION} header "
                f"(format={record.get('format')!r}, version={record.get('version')!r})",
            )
        return
    if kind == "app_state":
        state = _state_of(record, located)
        await backend.write_state(StateKey.app(app), state, expiry)
        report.app_states += 1
        return
    if kind == "user_state":
        user_id = _checked(
            lambda: _validate.check_identifier(record.get("user_id"), "user_id"), located
        )
        state = _state_of(record, located)
        await backend.write_state(StateKey.user(app, user_id), state, expiry)
        report.user_states += 1
        return
    if kind == "session":
        session, events = _session_of(record, located, app)
        caps = backend.capabilities
        if _has_gaps(session, events) and not (caps.pop_event or caps.replace_events):
            raise InvalidInput(
                f"{located.where}: events",
                f"the seqs have gaps (a popped or replaced history), which the "
                f"{backend.name!r} backend cannot store: it declares neither pop_event nor "
                "replace_events",
            )
        await backend.restore_session(session, events, expiry)
        report.sessions += 1
        report.events += len(events)
        return
    found = "no record kind" if kind is None else f"unknown record kind {kind!r}"
    raise InvalidInput(
        located.where,
        f"{found}: a line of an export is a header, app_state, user_state or session record",
    )


def _has_gaps(session: Session, events: list[Event]) -> bool:
    """Whether the seqs skip a number (trimming only drops the oldest: that is no gap)."""
    if not events:
        return False
    return events[-1].seq != session.last_seq or events[-1].seq - events[0].seq + 1 != len(events)


def _checked(check: Callable[[], Any], located: Located, field: str = "") -> Any:
    try:
        return check()
    except InvalidInput as exc:
        raise InvalidInput(f"{located.where}: {exc.field}", exc.rule) from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join([field, *map(str, first["loc"])] if field else map(str, first["loc"]))
        raise InvalidInput(f"{located.where}: {where}", first["msg"]) from exc
    except OverflowError as exc:  # a time beyond what datetime holds once converted to UTC
        raise InvalidInput(
            f"{located.where}: {field or 'record'}", f"out of range ({exc})"
        ) from exc


def _state_of(record: Record, located: Located) -> dict[str, Any]:
    state = record.get("state")
    _checked(lambda: _validate.check_mapping(state, "state"), located)
    return dict(state)  # type: ignore[arg-type]


def _session_of(record: Record, located: Located, app: str) -> tuple[Session, list[Event]]:
    raw = record.get("session")
    if not isinstance(raw, dict):
        raise InvalidInput(located.where, "a session record needs a 'session' object")
    session: Session = _checked(
        lambda: Session.model_validate({**raw, "app_name": app, "events": []}), located, "session"
    )
    raw_events = record.get("events") or []
    if not isinstance(raw_events, list):
        raise InvalidInput(f"{located.where}: events", "must be a list of events")
    events: list[Event] = [
        _checked(partial(Event.model_validate, item), located, f"events[{index}]")
        for index, item in enumerate(raw_events)
    ]
    _checked(lambda: check_restorable(session, events), located)
    session.event_count = len(events)
    return session, events


# --- migrate -----------------------------------------------------------------------


async def count_sessions(
    service: SessionHistoryService, *, user_ids: Sequence[str] | None = None
) -> tuple[int, int]:
    """Count the sessions and events an export or a migration of the app would copy.

    Reads session headers only (no events), without extending TTLs; the totals a
    progress display needs for an estimate of the time left.
    """
    await service.start()
    now = _now()
    sessions = events = 0
    async for user_id in _users(service, user_ids):
        async for session in _sessions_of(service, user_id, now):
            sessions += 1
            events += session.event_count
    return sessions, events


async def migrate(
    source: SessionHistoryService,
    target: SessionHistoryService,
    *,
    user_ids: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> TransferReport:
    """Copy every session (with events and state) of ``source``'s app into ``target``.

    Streams one session at a time; idempotent, so an interrupted run can simply
    be run again.
    """

    async def located() -> AsyncIterator[Located]:
        async for record in export_records(source, user_ids=user_ids):
            yield Located(record, "source")

    return await import_records(target, located(), progress=progress)


# --- other tools' files ---------------------------------------------------------------


def read_agentscope_sessions(paths: Iterable[Path], *, user_id: str) -> Iterator[Located]:
    """Read AgentScope 1.0 ``JSONSession`` files (``<session_id>.json``) as session records.

    Each module's state is kept under the session state key ``snapshot:<name>``
    (what ``save_state`` writes, so ``load_state`` restores it); messages found
    in a module's ``memory.content`` become the session's events.
    """
    for path in paths:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            yield Located({}, str(path), error=f"not a JSON file ({exc})")
            continue
        if not isinstance(data, dict):
            yield Located({}, str(path), error="expected an object of state modules")
            continue
        try:
            messages = [
                to_event(message, f"{name}.memory.content[{i}]")
                for name, module in data.items()
                for i, message in enumerate(_memory_messages(module))
            ]
        except InvalidInput as exc:
            yield Located({}, str(path), error=str(exc))
            continue
        stamp = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)
        sources = [m for module in data.values() for m in _memory_messages(module)]
        events = [
            _numbered(event, seq, source)
            for seq, (event, source) in enumerate(zip(messages, sources, strict=True), start=1)
        ]
        session = _session_dict(
            path.stem, user_id, stamp, stamp, {SNAPSHOT_PREFIX + k: v for k, v in data.items()}, {}
        )
        yield Located(_session_record(session, events), str(path))


def _memory_messages(module: Any) -> list[Any]:
    if not isinstance(module, dict):
        return []
    memory = module.get("memory")
    if isinstance(memory, dict) and isinstance(memory.get("content"), list):
        return list(memory["content"])
    return []


def read_history_files(paths: Iterable[Path]) -> Iterator[Located]:
    """Read "history list + metadata" session files as session records.

    Each file holds ``session_id``, ``user_id``, ``parent_session_id``,
    ``root_session_id``, ``created_at``, ``last_active``, ``metadata`` and
    ``history: [{role, content, timestamp}]``. Depths follow the parent chain.
    """
    loaded: list[tuple[Path, dict[str, Any]]] = []
    for path in paths:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or "session_id" not in data:
                raise ValueError("expected an object with session_id and history")
        except (OSError, ValueError) as exc:
            yield Located({}, str(path), error=f"not a history file ({exc})")
            continue
        loaded.append((path, data))
    parents = {str(d["session_id"]): d.get("parent_session_id") for _, d in loaded}

    def depth(session_id: str) -> int:
        seen, steps, parent = {session_id}, 0, parents.get(session_id)
        while parent and parent not in seen:
            seen.add(parent)
            steps += 1
            parent = parents.get(parent)
        return steps

    for path, data in loaded:
        try:
            events = [
                _numbered(to_event(item, f"history[{i}]"), i + 1, item)
                for i, item in enumerate(data.get("history") or [])
            ]
        except InvalidInput as exc:
            yield Located({}, str(path), error=str(exc))
            continue
        session_id = str(data["session_id"])
        first = events[0].timestamp if events else None
        created = data.get("created_at") or (first or _now()).isoformat()
        session = _session_dict(
            session_id,
            str(data.get("user_id") or "default"),
            created,
            data.get("last_active") or created,
            {},
            data.get("metadata") or {},
            parent_id=data.get("parent_session_id"),
            root_id=data.get("root_session_id") or session_id,
            depth=depth(session_id),
        )
        yield Located(_session_record(session, events), str(path))


def _numbered(event: Event, seq: int, source: Any) -> Event:
    # A message the file gives no id gets one from its place, so importing the
    # same file again yields the same ids (normalising alone would mint new ones).
    if not (isinstance(source, dict) and source.get("id")):
        event.id = f"imported-{seq}"
    event.seq = seq
    return event


def _session_dict(
    session_id: str,
    user_id: str,
    created_at: Any,
    updated_at: Any,
    state: dict[str, Any],
    metadata: dict[str, Any],
    *,
    parent_id: str | None = None,
    root_id: str | None = None,
    depth: int = 0,
) -> dict[str, Any]:
    return {
        "id": session_id,
        "user_id": user_id,
        "app_name": "",
        "parent_id": parent_id,
        "root_id": root_id or session_id,
        "depth": depth,
        "created_at": created_at.isoformat() if isinstance(created_at, datetime) else created_at,
        "updated_at": updated_at.isoformat() if isinstance(updated_at, datetime) else updated_at,
        "state": state,
        "metadata": metadata,
    }


def _session_record(session: dict[str, Any], events: list[Event]) -> Record:
    for event in events:
        if event.timestamp is None:
            event.timestamp = datetime.fromisoformat(
                str(session["created_at"]).replace("Z", "+00:00")
            )
    session["last_seq"] = len(events)
    return {
        "kind": "session",
        "session": session,
        "events": [event.model_dump(mode="json") for event in events],
    }
