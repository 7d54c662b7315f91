"""The jsonfiles backend: one append-only JSON-lines log per session and per state scope.

Each line of a log is a record ``{"header": {...}, "events": [...]}``: the
session's header (ids, times, state, counters) after a change, plus the events
that change stored. The last complete line holds the current header; the
events of every line, from ``first_seq`` on, are the history.

Every primitive runs without awaiting, so tasks of one process never
interleave inside one; ``fcntl.flock`` makes processes queue on a file.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

from sessionhub import (
    AppendRequest,
    AppendResult,
    Backend,
    BackendSettings,
    BackendUnavailable,
    Capabilities,
    Event,
    EventWindow,
    Expiry,
    ListCursor,
    Scope,
    Session,
    SessionExists,
    SessionKey,
    SessionNotFound,
    StateDeltas,
    StoredSession,
)
from sessionhub.backend_tools import apply_delta, check_restorable

__all__ = ["JsonFilesBackend", "JsonFilesSettings"]


class JsonFilesSettings(BackendSettings):
    """Options of the jsonfiles backend (``[jsonfiles]``)."""

    path: str = "sessionhub-data"
    """The directory holding the logs (``url = "jsonfiles://<directory>"`` also sets it)."""


def _digest(*parts: str) -> str:
    """A path-safe, collision-free file name for a tuple of ids."""
    hasher = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8")
        hasher.update(
            len(data).to_bytes(4, "big") + data
        )  # length prefix: ("a","bc") != ("ab","c")
    return hasher.hexdigest()


def _expired(header: Mapping[str, Any], now: datetime) -> bool:
    expires_at = header.get("expires_at")
    return expires_at is not None and datetime.fromisoformat(expires_at) <= now


class _Log:
    """One JSON-lines file: read every complete record, append one record atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def records(self) -> list[dict[str, Any]]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        complete = data[: data.rfind(b"\n") + 1]  # a line cut short by a crash is not a record
        return [json.loads(line) for line in complete.splitlines() if line]

    def last(self) -> dict[str, Any] | None:
        records = self.records()
        return records[-1] if records else None

    @contextmanager
    def locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "ab") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def append(self, record: Mapping[str, Any]) -> None:
        """Write one record as one line and fsync it; call with the lock held."""
        line = (json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n").encode()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            size = os.fstat(fd).st_size
            if size:
                os.lseek(fd, max(0, size - 1), os.SEEK_SET)
                if os.read(fd, 1) != b"\n":  # drop the torn tail of a crashed write
                    data = self.path.read_bytes()
                    os.ftruncate(fd, data.rfind(b"\n") + 1)
            os.lseek(fd, 0, os.SEEK_END)
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    def replace(self, record: Mapping[str, Any]) -> None:
        """Start the log over with one record; call with the lock held."""
        os.truncate(self.path, 0)
        self.append(record)


class JsonFilesBackend(Backend):
    """Sessions as JSON-lines files in a directory."""

    name: ClassVar[str] = "jsonfiles"
    capabilities: ClassVar[Capabilities] = Capabilities(
        persistent=True, shared_store=True, multi_process=True
    )

    def __init__(
        self, settings: JsonFilesSettings | None = None, *, path: str | Path | None = None
    ) -> None:
        settings = settings or JsonFilesSettings()
        if path is None and settings.url is not None:
            parts = urlsplit(settings.url.get_secret_value())
            path = parts.netloc + parts.path
        self.root = Path(path or settings.path)

    async def open(self) -> None:
        """Create the directory."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BackendUnavailable(
                f"Cannot use {str(self.root)!r} as a jsonfiles directory: {exc}"
            ) from exc

    async def ping(self) -> None:
        """Check the directory is writable."""
        if not os.access(self.root, os.W_OK):
            raise BackendUnavailable(f"The jsonfiles directory {str(self.root)!r} is not writable.")

    # --- where things live ----------------------------------------------------------

    def _user_dir(self, app_name: str, user_id: str) -> Path:
        return self.root / "sessions" / _digest(app_name, user_id)

    def _session_log(self, key: SessionKey) -> _Log:
        return _Log(self._user_dir(key.app_name, key.user_id) / f"{_digest(key.session_id)}.jsonl")

    def _state_log(self, scope: Scope, app_name: str, user_id: str | None) -> _Log:
        ids = (app_name,) if scope is Scope.APP else (app_name, user_id or "")
        return _Log(self.root / "state" / f"{scope.value}-{_digest(*ids)}.jsonl")

    # --- sessions ----------------------------------------------------------------

    def _live_header(self, log: _Log, now: datetime) -> dict[str, Any] | None:
        last = log.last()
        if last is None or _expired(last["header"], now):
            return None
        header: dict[str, Any] = last["header"]
        return header

    def _stored(
        self,
        key: SessionKey,
        header: Mapping[str, Any],
        events: list[Event],
        expiry: Expiry,
        *,
        refresh: bool,
    ) -> StoredSession:
        session = Session.model_validate({**header, "events": events})
        app = self._state(Scope.APP, key.app_name, None, expiry, refresh=refresh)
        user = self._state(Scope.USER, key.app_name, key.user_id, expiry, refresh=refresh)
        return StoredSession(session, app, user)

    async def create_session(
        self, session: Session, deltas: StateDeltas, expiry: Expiry
    ) -> StoredSession:
        """Start the session's log with its header."""
        key = SessionKey(session.app_name, session.user_id, session.id)
        log = self._session_log(key)
        with log.locked():
            if self._live_header(log, expiry.now) is not None:
                raise SessionExists(key.app_name, key.user_id, key.session_id)
            header = session.model_dump(mode="json", exclude={"events"})
            header["first_seq"] = 1
            log.replace({"header": header, "events": []})
        self._update_scopes(key, deltas, expiry)
        return self._stored(key, header, [], expiry, refresh=False)

    async def get_session(
        self, key: SessionKey, window: EventWindow, expiry: Expiry, *, refresh: bool
    ) -> StoredSession | None:
        """Replay the log and return the window of events."""
        log = self._session_log(key)
        records = log.records()
        if not records or _expired(records[-1]["header"], expiry.now):
            return None
        header = records[-1]["header"]
        if refresh:
            with log.locked():
                header = {**header, "expires_at": _iso(expiry.session)}
                log.append({"header": header, "events": []})
        events = [
            Event.model_validate(raw)
            for record in records
            for raw in record["events"]
            if raw["seq"] >= header["first_seq"]
        ]
        return self._stored(key, header, _window(events, window), expiry, refresh=refresh)

    async def list_sessions(
        self,
        app_name: str,
        user_id: str,
        *,
        limit: int,
        after: ListCursor | None,
        parent_id: str | None,
        now: datetime,
    ) -> list[Session]:
        """Read the header of every log of the user, then sort and page."""
        user_dir = self._user_dir(app_name, user_id)
        headers = []
        for path in user_dir.glob("*.jsonl") if user_dir.is_dir() else []:
            last = _Log(path).last()
            if last is None or _expired(last["header"], now):
                continue
            if parent_id is None or last["header"]["parent_id"] == parent_id:
                headers.append(Session.model_validate(last["header"]))
        headers.sort(key=lambda s: (s.updated_at, s.id), reverse=True)
        if after is not None:
            headers = [
                s for s in headers if (s.updated_at, s.id) < (after.updated_at, after.session_id)
            ]
        return headers[:limit]

    async def append(self, request: AppendRequest) -> AppendResult:
        """Write the new events and the new header as one line."""
        key = request.key
        log = self._session_log(key)
        with log.locked():
            records = log.records()
            if not records or _expired(records[-1]["header"], request.expiry.now):
                raise SessionNotFound(key.app_name, key.user_id, key.session_id)
            header = dict(records[-1]["header"])
            known = {
                raw["id"]: raw
                for record in records
                for raw in record["events"]
                if raw["seq"] >= header["first_seq"]
            }
            stored: list[Event] = []
            fresh: list[dict[str, Any]] = []
            state = dict(header["state"])
            for event, delta in zip(request.events, request.deltas, strict=True):
                if event.id in known:
                    stored.append(Event.model_validate(known[event.id]))
                    continue
                header["last_seq"] += 1
                saved = event.model_copy(update={"seq": header["last_seq"]})
                known[saved.id] = saved.model_dump(mode="json")
                fresh.append(known[saved.id])
                stored.append(saved)
                apply_delta(state, delta.session)
                self._update_scopes(
                    key, StateDeltas(app=delta.app, user=delta.user), request.expiry
                )
            if not fresh:  # every event was stored already: a no-op, no times move
                unchanged = Session.model_validate(header)
                return AppendResult(
                    events=stored,
                    last_seq=unchanged.last_seq,
                    event_count=unchanged.event_count,
                    updated_at=unchanged.updated_at,
                    expires_at=unchanged.expires_at,
                )
            count = header["last_seq"] - header["first_seq"] + 1
            if request.event_limit is not None and count > request.event_limit:
                header["first_seq"] = header["last_seq"] - request.event_limit + 1
            header.update(
                state=state,
                updated_at=_iso(request.expiry.now),
                expires_at=_iso(request.expiry.session),
                event_count=header["last_seq"] - header["first_seq"] + 1,
            )
            log.append({"header": header, "events": fresh})
        return AppendResult(
            events=stored,
            last_seq=header["last_seq"],
            event_count=header["event_count"],
            updated_at=request.expiry.now,
            expires_at=request.expiry.session,
        )

    async def update_session(
        self, key: SessionKey, deltas: StateDeltas, metadata: Mapping[str, Any], expiry: Expiry
    ) -> StoredSession:
        """Write a header with the deltas applied."""
        log = self._session_log(key)
        with log.locked():
            header = self._live_header(log, expiry.now)
            if header is None:
                raise SessionNotFound(key.app_name, key.user_id, key.session_id)
            header = {
                **header,
                "state": apply_delta(dict(header["state"]), deltas.session),
                "metadata": apply_delta(dict(header["metadata"]), metadata),
                "updated_at": _iso(expiry.now),
                "expires_at": _iso(expiry.session),
            }
            log.append({"header": header, "events": []})
        self._update_scopes(key, deltas, expiry)
        return self._stored(key, header, [], expiry, refresh=False)

    async def delete_session(self, key: SessionKey, now: datetime) -> bool:
        """Remove the session's log; whether the session was live."""
        log = self._session_log(key)
        with log.locked():
            live = self._live_header(log, now) is not None
            log.path.unlink()
        return live

    async def list_users(self, app_name: str, *, limit: int, after: str | None) -> list[str]:
        """Read one header per user directory and every user-state log's owner."""
        users: set[str] = set()
        for user_dir in (self.root / "sessions").glob("*"):
            for path in user_dir.glob("*.jsonl"):
                last = _Log(path).last()
                if last is not None:
                    if last["header"]["app_name"] == app_name:
                        users.add(last["header"]["user_id"])
                    break
        for path in (self.root / "state").glob("user-*.jsonl"):
            last = _Log(path).last()
            if last is not None and last["header"].get("app_name") == app_name:
                users.add(last["header"]["user_id"])
        return sorted(u for u in users if after is None or u > after)[:limit]

    async def restore_session(self, session: Session, events: list[Event], expiry: Expiry) -> None:
        """Start the session's log over with exactly this content, as one line."""
        check_restorable(session, events)
        key = SessionKey(session.app_name, session.user_id, session.id)
        log = self._session_log(key)
        header = session.model_dump(mode="json", exclude={"events"})
        header.update(first_seq=session.last_seq - len(events) + 1, event_count=len(events))
        with log.locked():
            log.replace({"header": header, "events": [e.model_dump(mode="json") for e in events]})

    # --- app and user state -----------------------------------------------------------

    def _state(
        self, scope: Scope, app_name: str, user_id: str | None, expiry: Expiry, *, refresh: bool
    ) -> dict[str, Any]:
        log = self._state_log(scope, app_name, user_id)
        last = log.last()
        if last is None or _expired(last["header"], expiry.now):
            return {}
        state: dict[str, Any] = last["header"]["state"]
        if refresh:
            with log.locked():
                log.append(_state_record(state, scope, app_name, user_id, expiry))
        return state

    def _update_state(
        self,
        scope: Scope,
        app_name: str,
        user_id: str | None,
        delta: Mapping[str, Any],
        expiry: Expiry,
    ) -> dict[str, Any]:
        log = self._state_log(scope, app_name, user_id)
        with log.locked():
            state = apply_delta(self._state(scope, app_name, user_id, expiry, refresh=False), delta)
            log.append(_state_record(state, scope, app_name, user_id, expiry))
        return state

    def _update_scopes(self, key: SessionKey, deltas: StateDeltas, expiry: Expiry) -> None:
        if deltas.app:
            self._update_state(Scope.APP, key.app_name, None, deltas.app, expiry)
        if deltas.user:
            self._update_state(Scope.USER, key.app_name, key.user_id, deltas.user, expiry)

    async def get_state(
        self, scope: Scope, app_name: str, user_id: str | None, expiry: Expiry, *, refresh: bool
    ) -> dict[str, Any]:
        """Return the app or user state."""
        return self._state(scope, app_name, user_id, expiry, refresh=refresh)

    async def update_state(
        self,
        scope: Scope,
        app_name: str,
        user_id: str | None,
        delta: Mapping[str, Any],
        expiry: Expiry,
    ) -> dict[str, Any]:
        """Apply a delta to the app or user state."""
        return self._update_state(scope, app_name, user_id, delta, expiry)

    async def purge_expired(self, now: datetime) -> int:
        """Delete every log whose last header has expired."""
        removed = 0
        for path in sorted(self.root.glob("**/*.jsonl")):
            log = _Log(path)
            with log.locked():
                last = log.last()
                if last is not None and _expired(last["header"], now):
                    path.unlink()
                    removed += 1
        return removed


def _state_record(
    state: dict[str, Any], scope: Scope, app_name: str, user_id: str | None, expiry: Expiry
) -> dict[str, Any]:
    header = {"state": state, "app_name": app_name, "user_id": user_id}
    return {"header": {**header, "expires_at": _iso(_scope_expiry(scope, expiry))}}


def _scope_expiry(scope: Scope, expiry: Expiry) -> datetime | None:
    return expiry.app if scope is Scope.APP else expiry.user


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _window(events: list[Event], window: EventWindow) -> list[Event]:
    if window.after_seq is not None:
        events = [e for e in events if e.seq > window.after_seq]
    if window.after_time is not None:
        after = window.after_time
        events = [e for e in events if e.timestamp is not None and e.timestamp > after]
    if window.last_n is not None:
        events = events[-window.last_n :] if window.last_n else []
    return events
