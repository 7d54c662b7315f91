"""Redis, MongoDB and PostgreSQL servers for the run, got the same way the tests get them.

Order: the plugins' own test helpers (``sessionhub_redis.testing.redis_server()``,
``sessionhub_mongodb.testing.mongodb_server()`` and
``sessionhub_postgres.testing.postgres_server()``, context managers yielding a
URL, which themselves honour ``SESSIONHUB_TEST_REDIS_URL`` /
``SESSIONHUB_TEST_MONGODB_URL`` / ``SESSIONHUB_TEST_POSTGRES_URL``,
testcontainers and a private or the machine's server); when a
helper is not importable, the environment variable; else no server, and the
rows that need one read "n/a (no server)". The shared Redis on the default
port 6379 of this host is never used; on a shared PostgreSQL every subject
works in a schema of the run's own, dropped at its end.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["Server", "start_redis", "start_mongodb", "start_postgres", "HELPER_FAILED"]

REDIS_ENV = "SESSIONHUB_TEST_REDIS_URL"
MONGODB_ENV = "SESSIONHUB_TEST_MONGODB_URL"
POSTGRES_ENV = "SESSIONHUB_TEST_POSTGRES_URL"
_SHARED_REDIS_PORT = 6379
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1", ""})
HELPER_FAILED = "could not start a server"
"""In :attr:`Server.source` when the tests' helper exists but failed (not merely absent)."""


@dataclass(frozen=True)
class Server:
    """A server URL and where it came from, or why there is none (``url`` is ``None``)."""

    url: str | None
    source: str

    @property
    def missing(self) -> str | None:
        """The table text for rows that need this server when there is none."""
        return None if self.url else f"n/a (no server: {self.source})"


def _is_failure_to_start(exc: BaseException) -> bool:
    """True for an ordinary error or a pytest skip/fail raised by a test helper."""
    return isinstance(exc, Exception) or type(exc).__module__.startswith("_pytest")


def _start(
    stack: ExitStack, module: str, function: str, env_var: str, *, refuse_port: int | None = None
) -> Server:
    helper: Callable[[], AbstractContextManager[str]] | None = None
    with contextlib.suppress(ImportError, AttributeError):
        helper = getattr(importlib.import_module(module), function)
    failure = ""
    server: Server | None = None
    if helper is not None:
        try:
            server = Server(str(stack.enter_context(helper())), f"{module}.{function}()")
        except BaseException as exc:
            if not _is_failure_to_start(exc):
                raise
            failure = f"{module}.{function}() {HELPER_FAILED}: {type(exc).__name__}: {exc}; "
    if server is None and os.environ.get(env_var):
        server = Server(os.environ[env_var], env_var)
    if server is None:
        return Server(None, f"{failure}{env_var} is not set")
    if refuse_port is not None and _is_local_port(server.url or "", refuse_port):
        return Server(None, f"refusing the shared server on port {refuse_port} ({server.source})")
    return server


def _is_local_port(url: str, port: int) -> bool:
    parts = urlsplit(url)
    try:
        url_port = parts.port or port
    except ValueError:
        return False
    return url_port == port and (parts.hostname or "") in _LOOPBACK


def start_redis(stack: ExitStack) -> Server:
    """A Redis server for the run (closed with ``stack``), never the shared one on port 6379."""
    return _start(
        stack, "sessionhub_redis.testing", "redis_server", REDIS_ENV, refuse_port=_SHARED_REDIS_PORT
    )


def start_mongodb(stack: ExitStack) -> Server:
    """A MongoDB server for the run (closed with ``stack``)."""
    return _start(stack, "sessionhub_mongodb.testing", "mongodb_server", MONGODB_ENV)


def start_postgres(stack: ExitStack) -> Server:
    """A PostgreSQL server for the run (closed with ``stack``)."""
    return _start(stack, "sessionhub_postgres.testing", "postgres_server", POSTGRES_ENV)
