"""Input rules checked by the service before anything reaches a backend.

Identifiers are 1-256 printable characters; everything stored is JSON; state
keys follow the scope-prefix rules. Each failure is an ``InvalidInput`` that
names the field (a dotted path) and the rule.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from sessionhub._event_slots import assign
from sessionhub.backend import StateDeltas
from sessionhub.errors import InvalidInput
from sessionhub.models import (
    APP_PREFIX,
    TEMP_PREFIX,
    USER_PREFIX,
    DataPart,
    Event,
    Part,
    TextPart,
    ToolCallPart,
    ToolResultPart,
)

MAX_ID_LENGTH = 256
_MAX_DEPTH = 64

MAX_COUNT = 2**53 - 1
"""The largest ``last_n`` / ``after_seq``: what every store (and a Lua number) holds exactly."""
EARLIEST_TIME = datetime(1700, 1, 1, tzinfo=timezone.utc)
"""The earliest event timestamp or ``after_time`` accepted."""
LATEST_TIME = datetime(2250, 1, 1, tzinfo=timezone.utc)
"""The latest event timestamp or ``after_time`` accepted (exclusive).

Stores keep times as microseconds since 1970; within about 285 years of it those
fit a double exactly (Redis scores, Lua numbers), so times compare the same in
every backend.
"""


def check_identifier(value: object, field: str) -> str:
    """Return ``value`` if it is a valid identifier, else raise ``InvalidInput``."""
    if (
        type(value) is str
        and 0 < len(value) <= MAX_ID_LENGTH
        and value.isascii()
        and value.isprintable()
        and not value.isspace()
    ):
        return value  # the common case, decided without encoding
    if not isinstance(value, str):
        raise InvalidInput(field, f"must be a string, got {type(value).__name__}")
    if not value or value.isspace():
        raise InvalidInput(field, "must not be empty or blank")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidInput(field, f"must be at most {MAX_ID_LENGTH} characters, got {len(value)}")
    if not value.isprintable():
        raise InvalidInput(field, "must contain printable characters only (no control characters)")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput(field, "must be valid Unicode (no lone surrogates)") from exc
    return value


ROLE_RULE = (
    "must be a non-empty string: the message's role (user, assistant, system, tool) or an "
    "author name; keep a framework's own author string, even an empty one, in metadata"
)


def check_role(value: object, field: str) -> str:
    """Return ``value`` if it is a valid role (an identifier), else raise ``InvalidInput``.

    An empty or blank role names no speaker; the error says which mapping to use instead.
    """
    if isinstance(value, str) and value and not value.isspace():
        return check_identifier(value, field)
    if value is None or isinstance(value, str):
        raise InvalidInput(field, ROLE_RULE)
    return check_identifier(value, field)


def is_json(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` is a JSON value: the fast check behind :func:`check_json`."""
    kind = type(value)
    if kind is str:
        return value.isascii() or _encodable(value)
    if kind is int or kind is bool or value is None:
        return True
    if kind is float:
        return math.isfinite(value)
    if depth >= _MAX_DEPTH:
        return False
    if kind is dict:
        for key in value:
            if type(key) is not str or not (key.isascii() or _encodable(key)):
                return False
        items = value.values()
    elif kind is list or kind is tuple:
        items = value
    else:
        return False  # subclasses and everything else: let check_json decide and explain
    # Atoms inside a container are checked in line: most values are flat.
    for item in items:
        if type(item) is str:
            if not (item.isascii() or _encodable(item)):
                return False
        elif not (
            type(item) is int or type(item) is bool or item is None or is_json(item, depth + 1)
        ):
            return False
    return True


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_json(value: Any, field: str, depth: int = 0) -> None:
    """Raise ``InvalidInput`` unless ``value`` is a JSON value (str keys, finite numbers)."""
    if depth == 0 and is_json(value):
        return
    if value is None or isinstance(value, (str, bool, int)):
        if isinstance(value, str):
            _check_text(value, field)
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInput(
                field, f"{value} is not a JSON number (NaN and infinity are not allowed)"
            )
        return
    if depth >= _MAX_DEPTH:
        raise InvalidInput(field, f"nests deeper than {_MAX_DEPTH} levels")
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidInput(
                    field, f"has a key {key!r} of type {type(key).__name__}; JSON keys are strings"
                )
            _check_text(key, f"{field} key {key!r}")
            check_json(item, f"{field}.{key}", depth + 1)
        return
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            check_json(item, f"{field}[{index}]", depth + 1)
        return
    raise InvalidInput(
        field,
        f"a value of type {type(value).__name__} is not JSON; store str, int, float, bool, None, "
        "list or dict (encode bytes as base64 text, datetimes as ISO 8601 strings)",
    )


def _check_text(value: str, field: str) -> None:
    if value.isascii():
        return
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput(field, "contains a lone surrogate, which is not valid Unicode") from exc


def check_part(part: Part, field: str) -> None:
    """Check the JSON values of a content part (its fields of type ``Any`` and any extras)."""
    if isinstance(part, TextPart):
        if type(part.text) is not str:  # only a model built without validation gets here
            raise InvalidInput(f"{field}.text", f"must be a string, got {type(part.text).__name__}")
        _check_text(part.text, f"{field}.text")
    elif isinstance(part, ToolCallPart):
        check_json(part.arguments, f"{field}.arguments")
    elif isinstance(part, ToolResultPart):
        check_json(part.output, f"{field}.output")
    elif isinstance(part, DataPart):
        check_json(part.data, f"{field}.data")
    else:
        check_json(part.model_dump(), field)


def check_mapping(value: object, field: str) -> Mapping[str, Any]:
    """Check ``value`` is a JSON object and return it."""
    if type(value) is dict and not value:
        return value
    if not isinstance(value, Mapping):
        raise InvalidInput(field, f"must be a dict, got {type(value).__name__}")
    check_json(value, field)
    return value


def check_event(event: Event, field: str) -> StateDeltas:
    """Check an event's id, role, content, metadata, timestamp and state delta.

    Return the split delta. A timestamp is set to its UTC form.
    """
    try:
        return _checked_event(event)
    except InvalidInput as error:  # the field's full name is built for an error only
        raise InvalidInput(f"{field}.{error.field}", error.rule) from error.__cause__


def _checked_event(event: Event) -> StateDeltas:
    """``check_event`` naming fields from the event (``id``, ``content[0].text``)."""
    check_identifier(event.id, "id")
    check_role(event.role, "role")
    for number, part in enumerate(event.content):
        try:
            check_part(part, "")
        except InvalidInput as error:
            raise InvalidInput(f"content[{number}]{error.field}", error.rule) from error.__cause__
    check_mapping(event.metadata, "metadata")
    if event.timestamp is not None:
        assign(event, "timestamp", check_time(event.timestamp, "timestamp"))
    if event.state_delta or type(event.state_delta) is not dict:
        check_mapping(event.state_delta, "state_delta")
        return split_delta(event.state_delta, "state_delta")
    return StateDeltas()


def split_delta(delta: Mapping[str, Any], field: str) -> StateDeltas:
    """Split a state delta by scope prefix; drop ``temp:`` keys. ``delta`` must be checked JSON."""
    deltas = StateDeltas()
    for key, value in delta.items():
        if not key:
            raise InvalidInput(field, "state keys must not be empty")
        if key.startswith(TEMP_PREFIX):
            continue
        if key.startswith(APP_PREFIX):
            target, bare = deltas.app, key[len(APP_PREFIX) :]
        elif key.startswith(USER_PREFIX):
            target, bare = deltas.user, key[len(USER_PREFIX) :]
        else:
            target, bare = deltas.session, key
        if not bare:
            raise InvalidInput(f"{field}.{key}", "a scope prefix must be followed by a key name")
        target[bare] = value
    return deltas


def scope_delta(delta: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """Check a direct app or user state delta; return it with ``prefix`` and ``temp:`` keys gone."""
    check_mapping(delta, "delta")
    clean: dict[str, Any] = {}
    for key, value in delta.items():
        bare = key[len(prefix) :] if key.startswith(prefix) else key
        if not bare:
            raise InvalidInput(f"delta.{key}", "state keys must not be empty")
        if not key.startswith("temp:"):
            clean[bare] = value
    return clean


def without_temp(delta: dict[str, Any]) -> dict[str, Any]:
    """``delta`` without its ``temp:`` keys (the same object when it has none)."""
    if any(key.startswith(TEMP_PREFIX) for key in delta):
        return {k: v for k, v in delta.items() if not k.startswith(TEMP_PREFIX)}
    return delta


def check_count(value: object, field: str, *, minimum: int, maximum: int = MAX_COUNT) -> int:
    """Check an integer argument lies in range."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(field, f"must be an integer, got {type(value).__name__}")
    if value < minimum or value > maximum:
        raise InvalidInput(field, f"must be between {minimum} and {maximum}, got {value}")
    return value


def check_time(value: object, field: str) -> datetime:
    """Return ``value`` as a UTC datetime (naive is taken as UTC) if it is in the accepted range."""
    if (
        type(value) is datetime
        and value.tzinfo is timezone.utc
        and EARLIEST_TIME <= value < LATEST_TIME
    ):
        return value  # the common case: a time from the service's clock
    if not isinstance(value, datetime):
        raise InvalidInput(field, f"must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    if not EARLIEST_TIME <= value < LATEST_TIME:
        raise InvalidInput(
            field,
            f"{value.isoformat()} is outside the times sessionhub stores "
            f"({EARLIEST_TIME:%Y-%m-%d} to {LATEST_TIME:%Y-%m-%d} UTC)",
        )
    return value if value.tzinfo is timezone.utc else value.astimezone(timezone.utc)
