"""App and user state: one document each in ``state``, read and updated atomically."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import PyMongoError

from sessionhub import ConflictError, Expiry, SessionKey, StateKey
from sessionhub.backend_tools import to_micros
from sessionhub_mongodb import _driver
from sessionhub_mongodb._documents import NEVER, decode_map, map_delta, state_id, ttl_date
from sessionhub_mongodb._expiry import expiry_fields
from sessionhub_mongodb._store import WRITE_RETRIES, Store, update_of

__all__ = ["read_state", "read_states", "apply_state", "apply_scopes", "fill_states"]

States = tuple[dict[str, Any] | None, dict[str, Any] | None]


async def read_state(
    store: Store, key: StateKey, expiry: Expiry, *, refresh: bool
) -> dict[str, Any]:
    """The app or user state (``{}`` if absent or expired); with ``refresh``, slide its expiry."""
    now_us = to_micros(expiry.now)
    if refresh:
        sets: dict[str, Any] = {}
        unsets: dict[str, str] = {}
        expiry_fields(key.expires_at(expiry), sets, unsets)
        document = await store.state.find_one_and_update(
            {"_id": state_id(key.app_name, key.user_id), "expires_us": {"$gt": now_us}},
            update_of(sets, unsets),
            return_document=ReturnDocument.AFTER,
        )
    else:
        # By _id alone (a point lookup on any server); expiry is judged here.
        document = await store.state.find_one({"_id": state_id(key.app_name, key.user_id)})
    return _live_state(document, now_us)


async def read_states(
    store: Store, key: SessionKey, now_us: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The app and user state of ``key``'s app and user, in one ``find`` by ``_id``."""
    app_id, user_id = state_id(key.app_name, None), state_id(key.app_name, key.user_id)
    rows = await store.state.find({"_id": {"$in": [app_id, user_id]}}).to_list(None)
    found = {row["_id"]: row for row in rows}
    return _live_state(found.get(app_id), now_us), _live_state(found.get(user_id), now_us)


def _live_state(document: Mapping[str, Any] | None, now_us: int) -> dict[str, Any]:
    """The state a stored document holds: ``{}`` if there is none or it has expired."""
    if document is None or not document.get("expires_us", 0) > now_us:
        return {}
    return decode_map(document.get("state"))


async def apply_state(
    store: Store, key: StateKey, delta: Mapping[str, Any], expiry: Expiry, session: Any
) -> dict[str, Any]:
    """Apply ``delta`` in one atomic update; an expired state starts again empty."""
    app_name, user = key.app_name, key.user_id
    expires = key.expires_at(expiry)
    sets: dict[str, Any] = {}
    unsets: dict[str, str] = {}
    map_delta("state", delta, sets, unsets)
    fields: dict[str, str] = {}
    expires_us = expiry_fields(expires, fields, {})
    live = {"$gt": [{"$ifNull": ["$expires_us", 0]}, to_micros(expiry.now)]}
    pipeline: list[dict[str, Any]] = [
        {"$set": {"state": {"$cond": [live, {"$ifNull": ["$state", {}]}, {}]}}},
    ]
    if sets:
        pipeline.append({"$set": {path: {"$literal": text} for path, text in sets.items()}})
    if unsets:
        pipeline.append({"$unset": list(unsets)})
    tail: dict[str, Any] = {"app": app_name, "user": user, "expires_us": expires_us}
    if expires_us != NEVER:
        tail["expires_at"] = ttl_date(expires_us)
    pipeline.append({"$set": tail})
    if expires_us == NEVER:
        pipeline.append({"$unset": ["expires_at"]})
    for attempt in range(WRITE_RETRIES):
        try:
            document = await store.state.find_one_and_update(
                {"_id": state_id(app_name, user)},
                pipeline,
                upsert=True,
                return_document=ReturnDocument.AFTER,
                session=session,
            )
        except PyMongoError as exc:
            # Two first writers of one state upsert at once: one insert wins,
            # the other must run again as an update.
            if session is not None or not _driver.is_duplicate_key(exc):
                raise
            document = None
        if document is not None:
            return decode_map(document.get("state"))
        if session is not None or attempt == WRITE_RETRIES - 1:
            break
    raise ConflictError(
        f"The {key.scope.value} state of app {app_name!r} could not be written: concurrent "
        "first writes kept colliding; retry."
    )


async def apply_scopes(
    store: Store,
    key: SessionKey,
    app_delta: Mapping[str, Any],
    user_delta: Mapping[str, Any],
    expiry: Expiry,
    session: Any,
) -> States:
    """Apply the ``app:`` and ``user:`` parts of a write; the new states (None: untouched)."""
    app_state = user_state = None
    if app_delta:
        app_state = await apply_state(store, StateKey.app(key.app_name), app_delta, expiry, session)
    if user_delta:
        user_state = await apply_state(
            store, StateKey.user(key.app_name, key.user_id), user_delta, expiry, session
        )
    return app_state, user_state


async def fill_states(
    store: Store,
    key: SessionKey,
    expiry: Expiry,
    app_state: dict[str, Any] | None,
    user_state: dict[str, Any] | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Both states of the session's app and user, reading the ones a write did not return."""
    app_key, user_key = StateKey.app(key.app_name), StateKey.user(key.app_name, key.user_id)

    async def read(state_key: StateKey) -> dict[str, Any]:
        return await read_state(store, state_key, expiry, refresh=False)

    if app_state is None and user_state is None:
        app_state, user_state = await read_states(store, key, to_micros(expiry.now))
    elif app_state is None:
        app_state = await read(app_key)
    elif user_state is None:
        user_state = await read(user_key)
    assert app_state is not None and user_state is not None
    return app_state, user_state
