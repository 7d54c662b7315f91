"""Taking connections from the backend's own asyncpg pool, and handing them back as they are."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

__all__ = ["acquire", "keep_session", "open_connection"]

_TIMEOUT = getattr(asyncio, "timeout", None)  # Python 3.11+


async def keep_session(connection: Any) -> None:
    """Release a connection to the backend's own pool as it is.

    asyncpg's default reset costs a round trip on every release (``RESET ALL``,
    ``UNLISTEN *``...); the backend changes no session state (every name is
    qualified, no ``SET``, only transaction-scoped advisory locks), and asyncpg
    still rolls back a transaction left open before calling this.
    """


async def acquire(pool: Any, timeout: float | None) -> Any:
    """A connection from ``pool``, waiting at most ``timeout`` seconds for a free one.

    asyncpg's own ``acquire(timeout=...)`` wraps the wait in a new task (one more
    event-loop turn per call); ``asyncio.timeout`` (Python 3.11+) bounds it in place.
    """
    if _TIMEOUT is None or timeout is None:
        return await pool.acquire(timeout=timeout)
    async with _TIMEOUT(timeout):
        return await pool.acquire()


def open_connection(connection: Any) -> bool:
    """Whether a pooled connection the backend holds is still open.

    When the server closes a connection (an idle timeout, a restart), asyncpg hands
    it back to its pool at once, and the backend's reference then refuses every
    call with ``InterfaceError``, before sending anything.
    """
    try:
        return not connection.is_closed()
    except asyncpg.InterfaceError:  # released back to the pool as it closed
        return False
