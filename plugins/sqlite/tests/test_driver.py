"""The aiosqlite internals behind sessionhub_sqlite._driver: still there, still doing their job.

If an aiosqlite release renames one, these fail before any user sees it.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import weakref

import aiosqlite
import pytest

from sessionhub_sqlite._driver import INTERNALS, Connection, run_on_thread
from sessionhub_sqlite.backend import SQLiteBackend

pytestmark = pytest.mark.asyncio


async def test_the_aiosqlite_internals_the_driver_uses_exist(db_path):
    connection = Connection(str(db_path), 1.0, uri=False)
    await connection
    try:
        for owner, name in INTERNALS:
            target = connection if owner is aiosqlite.Connection else owner
            assert hasattr(target, name), f"aiosqlite {aiosqlite.__version__} has no {name}"
        threads = await run_on_thread(connection, lambda raw: threading.current_thread())
        assert threads is not threading.current_thread()
    finally:
        await connection.close()


async def test_the_worker_thread_is_a_daemon_and_ends_when_an_open_backend_is_dropped(db_path):
    before = set(threading.enumerate())
    backend = SQLiteBackend(path=db_path)
    await backend.open()
    (worker,) = set(threading.enumerate()) - before
    assert worker.daemon
    del backend
    gc.collect()
    await asyncio.to_thread(worker.join, 30)
    assert not worker.is_alive()


async def test_the_worker_thread_keeps_no_result_once_it_is_handed_over(db_path):
    """A read's result is the caller's alone: dropping it frees it (the thread keeps none)."""

    class Result:
        pass

    connection = Connection(str(db_path), 1.0, uri=False)
    await connection
    try:
        result = await run_on_thread(connection, lambda raw: Result())
        released = weakref.ref(result)
        del result
        assert released() is None  # freed by reference counting, no collection needed
    finally:
        await connection.close()
