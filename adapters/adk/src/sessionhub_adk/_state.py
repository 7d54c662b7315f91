"""ADK state values as sessionhub stores them, and the adapter's own state key.

ADK stores a ``None`` state value as JSON null; sessionhub's state deltas
delete a key whose value is ``None``. So a top-level ``None`` is written as
``{NONE_MARKER: None}``, a dict that itself has the marker key is wrapped in
``{NONE_MARKER: value}``, and reads unwrap one level: the mapping is injective,
and nested values are stored as they are.

The session's ADK ``last_update_time`` (a float epoch, exact) is kept in the
session state under ``LAST_UPDATE_KEY``, written in the same atomic append as
the event that sets it; ADK callers never see that key.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from pydantic_core import to_jsonable_python

__all__ = ["NONE_MARKER", "LAST_UPDATE_KEY", "encode_delta", "decode_state", "json_safe"]

logger = logging.getLogger("sessionhub_adk")

NONE_MARKER = "__sessionhub_adk__"
"""The key of the one-key object that stands for a stored ``None`` (or wraps a value)."""

LAST_UPDATE_KEY = "sessionhub_adk:last_update_time"
"""Session-state key holding the session's ADK ``last_update_time``."""


def json_safe(state: Mapping[str, Any]) -> dict[str, Any]:
    """The state as JSON values, as ADK's own stores convert it (bytes to text, models to dicts).

    A value with no JSON form (a function, say) is stored as its ``str``, with a
    warning, as ADK's database service does.
    """
    try:
        converted = to_jsonable_python(dict(state))
    except Exception:  # pydantic raises several types for an unserialisable value
        logger.warning(
            "Some session state values are not JSON-serialisable (e.g. callables); "
            "they are stored as their string representation.",
            exc_info=True,
        )
        converted = to_jsonable_python(dict(state), fallback=str)
    assert isinstance(converted, dict)
    return converted


def _encode(value: Any) -> Any:
    if value is None or (isinstance(value, dict) and NONE_MARKER in value):
        return {NONE_MARKER: value}
    return value


def encode_delta(delta: Mapping[str, Any]) -> dict[str, Any]:
    """A state delta (JSON values) as sessionhub must store it so that ``None`` stays a value."""
    return {key: _encode(value) for key, value in delta.items()}


def decode_state(state: Mapping[str, Any]) -> dict[str, Any]:
    """The stored state as ADK sees it: values decoded, the adapter's own key left out."""
    # Unwrap one level (see the module docstring); inline, as a listing decodes every value.
    return {
        key: value[NONE_MARKER] if isinstance(value, dict) and NONE_MARKER in value else value
        for key, value in state.items()
        if key != LAST_UPDATE_KEY
    }
