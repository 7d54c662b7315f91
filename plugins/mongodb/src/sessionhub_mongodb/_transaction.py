"""Running a multi-document transaction: start, body, commit, and retries with backoff."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pymongo.errors import PyMongoError
from pymongo.read_concern import ReadConcern
from pymongo.read_preferences import Primary

from sessionhub import ConflictError
from sessionhub_mongodb import _driver
from sessionhub_mongodb._store import Store

__all__ = ["Retry", "run_transaction", "backoff", "CONTENTION_DEADLINE_S", "BACKOFF_FIRST_S"]

T = TypeVar("T")

CONTENTION_DEADLINE_S = 120.0
"""How long a write keeps retrying against concurrent writers before ConflictError."""

BACKOFF_FIRST_S = 0.0005
_BACKOFF_LONGEST_S = 0.01


class Retry(Exception):
    """A transaction's conditional write found the session changed: re-read and retry."""


async def backoff(delay: float) -> float:
    """Sleep about ``delay`` (jittered); return the next, longer delay."""
    await asyncio.sleep(delay * (0.5 + random.random()))
    return min(delay * 2, _BACKOFF_LONGEST_S)


async def run_transaction(store: Store, body: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``body(session)`` in a transaction, retrying transient failures with backoff."""
    deadline = time.monotonic() + CONTENTION_DEADLINE_S
    delay = BACKOFF_FIRST_S
    while True:
        session = await _driver.start_session(store.client)
        async with session:
            await _driver.start_transaction(
                session,
                read_concern=ReadConcern("majority"),
                write_concern=store.write_concern(),
                read_preference=Primary(),
            )
            try:
                result = await body(session)
            except BaseException as exc:
                with contextlib.suppress(PyMongoError):
                    await session.abort_transaction()
                # A network error inside a transaction is labelled transient,
                # but the driver already waited server_selection_timeout_ms
                # for a server: report it instead of retrying for minutes.
                retry = isinstance(exc, Retry) or (
                    _driver.is_transient(exc) and not _driver.is_connection_error(exc)
                )
                if not retry:
                    raise
                if time.monotonic() > deadline:
                    raise ConflictError(
                        "A MongoDB transaction kept conflicting with concurrent writes for "
                        f"{CONTENTION_DEADLINE_S:.0f}s; retry later."
                    ) from exc
            else:
                try:
                    await _commit(session)
                except PyMongoError as exc:
                    if (
                        not _driver.is_transient(exc)
                        or _driver.is_connection_error(exc)
                        or time.monotonic() > deadline
                    ):
                        raise
                else:
                    return result
        delay = await backoff(delay)


async def _commit(session: Any) -> None:
    for attempt in range(3):
        try:
            await session.commit_transaction()
            return
        except PyMongoError as exc:
            if not _driver.is_unknown_commit(exc) or attempt == 2:
                raise
