"""The storage format of ``SessionHubSession``: memories as events, the rest as JSON text.

A save splits the modules' states (``sessionhub_agentscope._split``): the
entries of every ``InMemoryMemory`` among them become sessionhub events, one
per entry, tagged with the memory's path (``"agent.memory"``); the states with
those memories' ``content`` emptied are the snapshot text (``STATE_KEY``), and
``MEMORIES_KEY`` indexes each path (its keys and entry count). A ``reset``
event of a path drops that path's earlier events: a memory is its path's
entries after the last reset. A save adding entries writes one event per
entry; a path written whole (new, reset or compacted) is written in batches,
one event per ``BATCH_BYTES`` of entries, so a load decodes a few long events
rather than one short event per message (each event's read and decoding cost
more than its entry's share of a batch). This module builds those events and
puts the entries back for a load; when and how they are appended is
``sessionhub_agentscope._session``'s job.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sessionhub import Event, InvalidInput

__all__ = [
    "STATE_KEY",
    "MEMORIES_KEY",
    "PATH_KEY",
    "ENTRY_KEY",
    "ENTRIES_KEY",
    "BATCH_BYTES",
    "RESET_KEY",
    "Entries",
    "entry_events",
    "batch_events",
    "reset_event",
    "save_event",
    "memory_entries",
    "index_counts",
    "restore_memories",
    "json_copy",
]

STATE_KEY = "agentscope_session"
"""The session state key holding the saved modules' states as JSON text."""

MEMORIES_KEY = "agentscope_memories"
"""The session state key indexing the memories kept as events: path -> keys and count."""

PATH_KEY = "agentscope_memory"
"""Event metadata: the path of the memory an entry or reset belongs to."""

ENTRY_KEY = "agentscope_entry"
"""Event metadata: the memory entry as ``state_dict()`` gives it (``[msg, marks]``)."""

ENTRIES_KEY = "agentscope_entries"
"""Event metadata: a batch of consecutive memory entries (a list of what ``ENTRY_KEY`` holds)."""

BATCH_BYTES = 1 << 20
"""The JSON size a batch event's entries stay under (a single larger entry is a batch alone)."""

RESET_KEY = "agentscope_reset"
"""Event metadata: ``True`` on a reset, after which the path's earlier events are dropped."""

SAVE_KEY = "agentscope_save"
"""Event metadata: ``True`` on the marker of a save that added no entry."""

_MARKER_ROLE = "agentscope"


def json_copy(entries: Sequence[Any], path: str) -> tuple[list[Any], list[int]]:
    """What a store and load give back for ``entries`` (their JSON round trip), and their sizes.

    Each entry's size is the length of its JSON text, what ``batch_events`` weighs.
    """
    try:
        texts = [json.dumps(entry, ensure_ascii=False) for entry in entries]
    except (TypeError, ValueError) as exc:
        raise InvalidInput(
            f"{path}.content", f"must be JSON to be saved, as for JSONSession: {exc}"
        ) from exc
    copied: list[Any] = json.loads("[" + ",".join(texts) + "]")
    return copied, [len(text) for text in texts]


def entry_events(path: str, entries: Sequence[Any]) -> list[dict[str, Any]]:
    """One event per memory entry: the entry in metadata, the message's role and name.

    The message's text and tool blocks are not copied into the event's content:
    a load would decode them a second time beside the entry (a fifth of its
    cost, measured), and the entry already holds them. Events are ``append``
    inputs without ids, so each gets a new one: a message saved again after a
    reset is a new event, never taken for a retry.
    """
    return [_entry_event(path, entry) for entry in entries]


def _entry_event(path: str, entry: Any) -> dict[str, Any]:
    metadata = {PATH_KEY: path, ENTRY_KEY: entry}
    message = entry[0] if isinstance(entry, list) and entry else entry
    if isinstance(message, dict) and isinstance(message.get("role"), str) and message["role"]:
        event = {"role": message["role"], "metadata": metadata}
        if isinstance(message.get("name"), str):
            event["name"] = message["name"]  # the core keeps it as metadata "name"
        return event
    return {"role": _MARKER_ROLE, "metadata": metadata}


def batch_events(
    path: str, entries: Sequence[Any], sizes: Sequence[int] | None = None
) -> list[dict[str, Any]]:
    """``entries`` in as few events as keep each under ``BATCH_BYTES`` of JSON.

    ``sizes``: each entry's JSON length, as ``json_copy`` gives them (measured if not given).
    """
    if sizes is None:
        sizes = [len(json.dumps(entry, ensure_ascii=False)) for entry in entries]
    events: list[dict[str, Any]] = []
    start, size = 0, 0
    for end, length in enumerate(sizes):
        if size + length > BATCH_BYTES and end > start:
            events.append(_batch_event(path, entries[start:end]))
            start, size = end, 0
        size += length
    if start < len(entries):
        events.append(_batch_event(path, entries[start:]))
    return events


def _batch_event(path: str, entries: Sequence[Any]) -> dict[str, Any]:
    return {"role": _MARKER_ROLE, "metadata": {PATH_KEY: path, ENTRIES_KEY: list(entries)}}


def reset_event(path: str) -> dict[str, Any]:
    """The event dropping ``path``'s earlier entries."""
    return {"role": _MARKER_ROLE, "metadata": {PATH_KEY: path, RESET_KEY: True}}


def save_event() -> dict[str, Any]:
    """The event of a save that adds no entry: it carries the save's state delta."""
    return {"role": _MARKER_ROLE, "metadata": {SAVE_KEY: True}}


@dataclass
class Entries:
    """Each path's live entries, the events holding them, and the events holding none."""

    found: dict[str, list[Any]]
    """Path -> its entries after its last reset."""
    held: dict[str, int]
    """Path -> the events holding those entries (one per entry, or per batch)."""
    dead: int
    """Events holding no live entry (markers, resets, replaced entries and batches)."""


def memory_entries(events: Iterable[Event], known: Entries | None = None) -> Entries:
    """Each path's entries after its last reset, the events holding them, and the others.

    With ``known`` (what the events before ``events`` held), the events
    continue it: a path without a reset among ``events`` extends its known
    entries (new lists; ``known``'s are never changed), and the events a reset
    drops count as dead.
    """
    found: dict[str, list[Any]] = dict(known.found) if known else {}
    held: dict[str, int] = dict(known.held) if known else {}
    dead = known.dead if known else 0
    fresh: set[str] = set()  # paths whose list is this call's own
    for event in events:
        metadata = event.metadata
        path = metadata.get(PATH_KEY)
        if not isinstance(path, str):
            dead += 1
            continue
        if metadata.get(RESET_KEY):
            dead += 1 + held.get(path, 0)
            found[path], held[path] = [], 0
            fresh.add(path)
            continue
        if ENTRY_KEY in metadata:
            added = [metadata[ENTRY_KEY]]
        elif isinstance(metadata.get(ENTRIES_KEY), list):
            added = metadata[ENTRIES_KEY]
        else:
            dead += 1
            continue
        if path not in fresh:
            found[path] = list(found.get(path, ()))
            fresh.add(path)
        found[path].extend(added)
        held[path] = held.get(path, 0) + 1
    return Entries(found, held, dead)


def index_counts(index: Any) -> dict[str, int] | None:
    """``{path: count}`` of a stored ``MEMORIES_KEY`` value; ``None`` if it is not one."""
    if not isinstance(index, dict):
        return None
    counts: dict[str, int] = {}
    for path, info in index.items():
        if not isinstance(info, dict) or not isinstance(info.get("count"), int):
            return None
        counts[path] = info["count"]
    return counts


def restore_memories(
    states: dict[str, Any], index: Mapping[str, Any], entries: Mapping[str, list[Any]]
) -> dict[str, Any]:
    """``states`` with each indexed memory's ``content`` put back from ``entries``."""
    for path, info in index.items():
        keys = info["keys"]
        target: Any = states
        for key in keys:
            target = target.get(key) if isinstance(target, dict) else None
        if isinstance(target, dict):
            target["content"] = entries.get(path, [])
    return states
