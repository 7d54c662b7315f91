"""The backend's only use of aiosqlite internals, kept here and nowhere else.

Why: aiosqlite runs every call of a connection on that connection's own thread,
and each call is a hand-over (wake the thread, then wake the event loop with the
answer) that costs more than a short SQLite statement. :func:`run_on_thread`
hands a whole transaction to the thread at once through
``Connection._execute``, for which aiosqlite has no public equivalent. Measured
on a two-core VM (three runs of 2,000 appends, each timed beside a public-API
``BEGIN IMMEDIATE; INSERT; COMMIT`` on a file of its own): the same append
issued statement by statement through the public API took 2.3-3.0x as long
(186-294 us against 70-97 us); so did every other primitive, in proportion to
its statements.

:class:`Connection` also makes the worker thread a daemon and, when it is
dropped unclosed (a service never stopped), closes the database on its thread
with nobody waiting for the answer. aiosqlite's own finaliser sends that answer
to the event loop of the moment, which may close first; the thread then dies
printing a traceback, and a thread that is not a daemon keeps the process from
exiting. No public API does either.

These internals are those of aiosqlite 0.22 (the bound in ``pyproject.toml``);
``tests/test_driver.py`` fails if a release renames them.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aiosqlite
import aiosqlite.core

__all__ = ["Connection", "run_on_thread", "wait_stopped", "INTERNALS"]

T = TypeVar("T")

INTERNALS = (
    (aiosqlite.Connection, "_execute"),
    (aiosqlite.Connection, "_connection"),
    (aiosqlite.Connection, "_tx"),
    (aiosqlite.Connection, "_thread"),
    (aiosqlite.core, "_STOP_RUNNING_SENTINEL"),
)
"""Every private name of aiosqlite used here, as ``(owner, name)``.

Instance attributes are checked on an instance."""


class Connection(aiosqlite.Connection):
    """aiosqlite's connection with a daemon thread, safe to drop unclosed."""

    def __init__(self, database: str, busy_timeout: float, *, uri: bool) -> None:
        super().__init__(
            lambda: sqlite3.connect(database, isolation_level=None, timeout=busy_timeout, uri=uri),
            iter_chunk_size=64,
        )
        self._thread.daemon = True

    def __del__(self) -> None:
        raw, self._connection = self._connection, None
        if raw is not None:
            self._tx.put_nowait((None, lambda: _close_and_stop(raw)))


def _close_and_stop(raw: sqlite3.Connection) -> object:
    raw.close()
    return aiosqlite.core._STOP_RUNNING_SENTINEL  # ends the worker thread's loop


async def run_on_thread(
    connection: aiosqlite.Connection, work: Callable[[sqlite3.Connection], T]
) -> T:
    """Run ``work(raw_connection)`` on the connection's own thread, in one hand-over.

    The result comes back in a box emptied here: aiosqlite's thread keeps its last
    result in a local variable until the next call arrives, which would keep a read's
    whole history alive after the caller dropped it (and have the garbage collector
    walk it again).
    """
    raw = connection._connection
    if raw is None:
        raise ValueError("no active connection")
    box: list[T] = []

    def boxed(conn: sqlite3.Connection) -> list[T]:
        box.append(work(conn))
        return box

    pending: Awaitable[list[T]] = connection._execute(boxed, raw)  # type: ignore[no-untyped-call]
    return (await pending).pop()


async def wait_stopped(connection: aiosqlite.Connection, timeout: float) -> None:
    """Wait for the thread of a connection that failed to connect to end.

    aiosqlite stops it without waiting; a thread still finishing when the event
    loop closes raises in that thread.
    """
    await asyncio.to_thread(connection._thread.join, timeout)
