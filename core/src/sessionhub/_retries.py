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

__all__ = ["check_retries"]


def check_retries(requested: list[Event], stored: list[Event]) -> None:
    """Raise ``ConflictError`` if an id this append carried was stored with other content.

    A retry returns the stored event; only its ``seq`` and a timestamp may differ.
    Content is compared as JSON, which is what the store kept.
    """
    for mine, theirs in zip(requested, stored, strict=True):
        if mine is theirs or (
            mine.content == theirs.content
            and mine.role == theirs.role
            and mine.state_delta == theirs.state_delta
            and mine.metadata == theirs.metadata
        ):
            continue
        if _content_json(mine) != _content_json(theirs):  # e.g. a tuple stored as a list
            raise ConflictError(
                f"Event id {mine.id!r} is already stored in this session with other content "
                "(role, content, state_delta or metadata): an event id names one event. "
                "Give the new event another id (or none, to get a generated one)."
            )


_CONTENT_FIELDS: set[str] = {"role", "content", "state_delta", "metadata"}


def _content_json(event: Event) -> Any:
    return json.loads(event.model_dump_json(include=_CONTENT_FIELDS))
