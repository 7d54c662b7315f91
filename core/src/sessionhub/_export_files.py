"""Reading records: export files (JSON lines), and other tools' session files as records.

What ``sessionhub import`` reads before :func:`sessionhub.transfer.import_records`
stores it: each record comes ``Located`` (its file and line), or as the reason
none could be read there. Import these names from ``sessionhub.transfer``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sessionhub._conversation import SNAPSHOT_PREFIX
from sessionhub._normalize import to_event
from sessionhub.errors import InvalidInput
from sessionhub.models import Event

__all__ = [
    "Record",
    "Located",
    "read_export",
    "parse_lines",
    "read_agentscope_sessions",
    "read_history_files",
]


def _now() -> datetime:
    return datetime.now(timezone.utc)


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


# --- other tools' files ---------------------------------------------------------------


def read_agentscope_sessions(paths: Iterable[Path], *, user_id: str) -> Iterator[Located]:
    """Read AgentScope 1.0 ``JSONSession`` files (``<session_id>.json``) as session records.

    Each module's state is kept under the session state key ``snapshot:<name>``
    (what ``save_state`` writes, so ``load_state`` restores it); messages found
    in a module's ``memory.content`` become the session's events. A file
    ``JSONSession`` saved with a user id is named ``<user_id>_<session_id>.json``:
    for ``user_id``'s own files, the session id drops that prefix.
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
            _agentscope_session_id(path.stem, user_id),
            user_id,
            stamp,
            stamp,
            {SNAPSHOT_PREFIX + k: v for k, v in data.items()},
            {},
        )
        yield Located(_session_record(session, events), str(path))


def _agentscope_session_id(stem: str, user_id: str) -> str:
    """``JSONSession``'s file stem without its ``<user_id>_`` prefix, if it has one."""
    prefix = f"{user_id}_"
    return stem[len(prefix) :] if stem.startswith(prefix) and len(stem) > len(prefix) else stem


def _memory_messages(module: Any) -> list[Any]:
    if not isinstance(module, dict):
        return []
    memory = module.get("memory")
    if isinstance(memory, dict) and isinstance(memory.get("content"), list):
        return [_unmarked(entry) for entry in memory["content"]]
    return []


def _unmarked(entry: Any) -> Any:
    """A memory entry's message: ``InMemoryMemory`` stores ``[message, marks]`` pairs since 1.0."""
    if isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], dict):
        return entry[0]
    return entry


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
