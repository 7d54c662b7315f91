"""Telling a retry from a reuse of an event id for another event.

An append returns, for an id already stored, the event as stored. A retry
carries the same content; anything else reuses the id and must not pass
silently.
"""

from __future__ import annotations

import json
from typing import Any

from sessionhub.errors import ConflictError
from sessionhub.models import Event

__all__ = ["check_retries", "check_retry"]


def check_retries(requested: list[Event], stored: list[Event]) -> None:
    """Raise ``ConflictError`` if an id this append carried was stored with other content.

    A retry returns the stored event; only its ``seq`` and a timestamp may differ.
    """
    for mine, theirs in zip(requested, stored, strict=True):
        if mine is not theirs:
            check_retry(mine, theirs)


def check_retry(requested: Event, stored: Event) -> None:
    """Raise ``ConflictError`` unless ``stored`` has ``requested``'s role, content and dicts.

    A backend declaring ``atomic_conflicts`` calls it, before writing anything, for each
    id of an append that it finds stored. Content is compared as JSON, which is what the
    store kept (a tuple comes back a list); ``seq`` and the timestamp are not compared.
    """
    if (
        requested.content == stored.content
        and requested.role == stored.role
        and requested.state_delta == stored.state_delta
        and requested.metadata == stored.metadata
    ) or _content_json(requested) == _content_json(stored):
        return
    raise ConflictError(
        f"Event id {requested.id!r} is already stored in this session with other content "
        "(role, content, state_delta or metadata): an event id names one event. "
        "Give the new event another id (or none, to get a generated one)."
    )


_CONTENT_FIELDS: set[str] = {"role", "content", "state_delta", "metadata"}


def _content_json(event: Event) -> Any:
    return json.loads(event.model_dump_json(include=_CONTENT_FIELDS))
