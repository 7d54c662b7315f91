"""Finding a real server for a backend's tests: a URL given, a container, or a local one.

``find_server`` yields a server's URL, trying in order: the URL in an environment
variable; a testcontainers container when a Docker engine answers (and the
testcontainers package is installed); a server of the machine's own. When none
can be had it raises ``ServerUnavailable``, which ``missing`` turns into a skip,
or a failure with ``CI=true``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, NoReturn

import pytest

__all__ = ["ServerUnavailable", "docker_answers", "in_ci", "missing", "find_server"]


class ServerUnavailable(RuntimeError):
    """No server can be had for the tests; the message says what to install or set."""


def docker_answers() -> bool:
    """Whether a Docker engine answers (so testcontainers can start a server)."""
    if not (os.environ.get("DOCKER_HOST") or Path("/var/run/docker.sock").exists()):
        return False
    docker = shutil.which("docker")
    if docker is None:
        return True  # a socket without the CLI: let testcontainers try
    try:
        done = subprocess.run([docker, "info"], capture_output=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def in_ci() -> bool:
    """Whether ``CI`` is set to true (``1``, ``true`` or ``yes``): a missing server fails."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def missing(reason: str) -> NoReturn:
    """Skip the test for lack of a server, or fail it in CI, saying why."""
    if in_ci():
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


@contextmanager
def _started(container: Any, url: Callable[[Any], str]) -> Iterator[str]:
    with container as running:
        yield url(running)


@contextmanager
def find_server(
    *,
    env: str,
    container: Callable[[], Any],
    container_url: Callable[[Any], str],
    local: Callable[[], AbstractContextManager[str] | None],
    unavailable: str,
) -> Iterator[str]:
    """Yield a server's URL: ``$env``, else a container if Docker answers, else ``local()``.

    ``container`` builds the testcontainers container (importing testcontainers:
    an ``ImportError`` skips it) and ``container_url`` reads the started one's URL.
    ``local`` returns a context manager yielding the URL of a server of the machine's
    own, or ``None`` when it has none. ``unavailable`` is the message of the
    ``ServerUnavailable`` raised when none answers: what to set or install.
    """
    url = os.environ.get(env)
    if url:
        yield url
        return
    started: AbstractContextManager[str] | None = None
    if docker_answers():
        try:
            started = _started(container(), container_url)
        except ImportError:
            started = None
    if started is None:
        started = local()
    if started is None:
        raise ServerUnavailable(unavailable)
    with started as found:
        yield found
