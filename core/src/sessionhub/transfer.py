"""Moving data: export to JSON lines, import from it (and from other tools' files), migrate.

The export format is JSON lines, one record per line: a ``header``, then per
app its ``app_state``, and per user a ``user_state`` and one ``session``
record per session with all its events. Since version 2 every record after
the header names its ``app_name``, and an import restores it into that app; a
version 1 file (one app, no ``app_name`` on its records) is imported into the
importing service's app. A session is imported in one atomic step
(``Backend.restore_session``), exactly as exported (ids, seqs, times,
counters), replacing a session with the same key: a re-run after an
interruption duplicates nothing and misses nothing.

Export and migrate copy every app of the store by default (``apps=`` narrows);
a backend without the ``list_apps`` capability copies the service's app only.
The files other tools write are read by :mod:`sessionhub._export_files`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from typing import Any

from pydantic import ValidationError

from sessionhub import _validate
from sessionhub._export_files import (
    Located,
    Record,
    parse_lines,
    read_agentscope_sessions,
    read_export,
    read_history_files,
)
from sessionhub.backend import EventWindow, Expiry, SessionKey, StateKey
from sessionhub.backend_tools import check_restorable
from sessionhub.errors import ConfigError, InvalidInput
from sessionhub.models import Event, Session
from sessionhub.service import SessionHistoryService

__all__ = [
    "EXPORT_FORMAT",
    "EXPORT_VERSION",
    "Located",
    "Record",
    "TransferReport",
    "apps_to_copy",
    "count_sessions",
    "export_records",
    "import_records",
    "migrate",
    "parse_lines",
    "read_export",
    "read_agentscope_sessions",
    "read_history_files",
]

EXPORT_FORMAT = "sessionhub-export"
EXPORT_VERSION = 2
"""The version export writes; import reads it and version 1 (files of one app)."""
PAGE = 500

Note = Callable[[str], None]
"""Receives a one-line note for the person running a transfer (the CLI prints it on stderr)."""


@dataclass
class TransferReport:
    """What an import or migration did."""

    sessions: int = 0
    events: int = 0
    user_states: int = 0
    app_states: int = 0
    skipped: list[str] = field(default_factory=list)
    """One line per record skipped with ``keep_going``: where it was and why."""
    apps: list[str] = field(default_factory=list)
    """The apps a migration copied (all it found, or those it was given)."""


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


async def apps_to_copy(
    service: SessionHistoryService, apps: Sequence[str] | None = None, *, note: Note | None = None
) -> list[str]:
    """The apps an export or a migration copies: ``apps`` if given, else every app of the store.

    A backend without the ``list_apps`` capability gives the service's app
    only, and ``note`` hears why.
    """
    if apps is not None:
        return [_validate.check_identifier(app, "app") for app in apps]
    if not service.backend.capabilities.list_apps:
        if note is not None:
            note(
                f"the {service.backend.name!r} backend cannot list the apps of a store (no "
                f"'list_apps' capability): copying app {service.app_name!r} only; name others "
                "with --app"
            )
        return [service.app_name]
    await service.start()
    found: list[str] = []
    after: str | None = None
    while True:
        page = await service.backend.list_apps(limit=PAGE, after=after)
        found += page
        if len(page) < PAGE:
            return found
        after = page[-1]


async def export_records(
    service: SessionHistoryService,
    *,
    apps: Sequence[str] | None = None,
    user_ids: Sequence[str] | None = None,
    updated_after: datetime | None = None,
    updated_before: datetime | None = None,
    note: Note | None = None,
) -> AsyncIterator[Record]:
    """Stream the store's data as export records, one session at a time.

    Every app of the store (see :func:`apps_to_copy`), or those of ``apps``.
    Reads never extend TTLs. With ``user_ids``, only those users' data (and
    no app state); ``updated_after`` / ``updated_before`` keep sessions
    updated in that window.
    """
    await service.start()
    chosen = await apps_to_copy(service, apps, note=note)
    yield {
        "kind": "header",
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "app_name": service.app_name,
        "apps": chosen,
        "exported_at": _now().isoformat(),
    }
    for app in chosen:
        async for record in _app_records(
            service.for_app(app), user_ids, updated_after, updated_before
        ):
            yield {"kind": record["kind"], "app_name": app, **record}


async def _app_records(
    service: SessionHistoryService,
    user_ids: Sequence[str] | None,
    updated_after: datetime | None,
    updated_before: datetime | None,
) -> AsyncIterator[Record]:
    backend = service.backend
    app = service.app_name
    expiry = _no_refresh(_now())
    app_state = await backend.read_state(StateKey.app(app), expiry, refresh=False)
    if app_state and user_ids is None:
        yield {"kind": "app_state", "state": app_state}
    async for user_id in _users(service, user_ids):
        user_state = await backend.read_state(StateKey.user(app, user_id), expiry, refresh=False)
        if user_state:
            yield {"kind": "user_state", "user_id": user_id, "state": user_state}
        async for session in _sessions_of(service, user_id):
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


async def _sessions_of(service: SessionHistoryService, user_id: str) -> AsyncIterator[Session]:
    cursor: str | None = None
    while True:
        page = await service.list_sessions(user_id, limit=PAGE, cursor=cursor)
        for session in page.items:
            yield session
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


# --- import ------------------------------------------------------------------------


async def import_records(
    service: SessionHistoryService,
    records: Iterable[Located] | AsyncIterator[Located],
    *,
    keep_going: bool = False,
    progress: Progress | None = None,
) -> TransferReport:
    """Store records, each session atomically and idempotently.

    A record of a version 2 export goes to the app it names; one of a version 1
    export (or of another tool's file) to the service's app. A bad record
    raises ``InvalidInput`` naming where it came from, before anything of it
    is written; with ``keep_going`` it is skipped and reported.
    """
    _require(
        service,
        "restore_session",
        "store sessions exactly as exported",
        "nothing can be imported or migrated into it; use a backend that declares it",
    )
    await service.start()
    report = TransferReport()
    version = 1  # until a header says otherwise; other tools' files have none
    async for located in _aiter(records):
        try:
            version = await _import_one(service, located, report, version)
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
    service: SessionHistoryService, located: Located, report: TransferReport, version: int
) -> int:
    """Store one record; return the export version the records after it follow."""
    record = located.record
    kind = record.get("kind")
    backend = service.backend
    expiry = _no_refresh(_now())
    if located.error is not None:
        raise InvalidInput(located.where, located.error)
    if kind == "header":
        found = record.get("version")
        if record.get("format") != EXPORT_FORMAT or found not in (1, EXPORT_VERSION):
            raise InvalidInput(
                located.where,
                f"not a {EXPORT_FORMAT} header of version 1 to {EXPORT_VERSION} "
                f"(format={record.get('format')!r}, version={found!r})",
            )
        return int(found)
    app = service.app_name
    if version >= 2 and kind in ("app_state", "user_state", "session"):
        app = _checked(
            lambda: _validate.check_identifier(record.get("app_name"), "app_name"), located
        )
    if kind == "app_state":
        state = _state_of(record, located)
        await backend.write_state(StateKey.app(app), state, expiry)
        report.app_states += 1
        return version
    if kind == "user_state":
        user_id = _checked(
            lambda: _validate.check_identifier(record.get("user_id"), "user_id"), located
        )
        state = _state_of(record, located)
        await backend.write_state(StateKey.user(app, user_id), state, expiry)
        report.user_states += 1
        return version
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
        return version
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
    service: SessionHistoryService,
    *,
    apps: Sequence[str] | None = None,
    user_ids: Sequence[str] | None = None,
) -> tuple[int, int]:
    """Count the sessions and events an export or a migration would copy.

    Of every app, or those of ``apps`` (see :func:`apps_to_copy`). Reads session
    headers only (no events), without extending TTLs; the totals a progress
    display needs for an estimate of the time left.
    """
    await service.start()
    sessions = events = 0
    for app in await apps_to_copy(service, apps):
        view = service.for_app(app)
        async for user_id in _users(view, user_ids):
            async for session in _sessions_of(view, user_id):
                sessions += 1
                events += session.event_count
    return sessions, events


async def migrate(
    source: SessionHistoryService,
    target: SessionHistoryService,
    *,
    apps: Sequence[str] | None = None,
    user_ids: Sequence[str] | None = None,
    progress: Progress | None = None,
    note: Note | None = None,
) -> TransferReport:
    """Copy every session (with events and state) of ``source`` into ``target``, app by app.

    Every app of the store, or those of ``apps`` (see :func:`apps_to_copy`);
    each into the app of the same name. Streams one session at a time;
    idempotent, so an interrupted run can simply be run again. The report
    names the apps copied.
    """
    copied: list[str] = []

    async def located() -> AsyncIterator[Located]:
        async for record in export_records(source, apps=apps, user_ids=user_ids, note=note):
            if record["kind"] == "header":
                copied.extend(record["apps"])
            yield Located(record, "source")

    report = await import_records(target, located(), progress=progress)
    report.apps = copied
    return report
