"""A service used from several event loops, or never stopped, on every first-party backend.

Each case runs in a fresh interpreter, because what matters happens at process
exit: the process must end by itself (the timeout only guards against a hang),
print no traceback, and warn about a service that was never stopped.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Iterator

import pytest

from sessionhub import ConfigError, SessionHistoryService
from sessionhub_memory.backend import MemoryBackend

HANG_GUARD = 120  # seconds; a run that needs this long has hung

TWO_RUNS = """
    import asyncio, sys
    from sessionhub import SessionHistoryService

    service = SessionHistoryService(purge_interval=None)

    async def first():
        await service.create_session("alice", "s1")
        await service.append(("alice", "s1"), "from the first loop")

    async def second():
        await service.append(("alice", "s1"), "from the second loop")
        got = await service.get_session("alice", "s1")
        print([event.text for event in got.events])

    asyncio.run(first())
    asyncio.run(second())
    # never stopped: the process must still exit
"""

NEVER_STOPPED = """
    import asyncio
    from sessionhub import SessionHistoryService

    async def main():
        service = SessionHistoryService(purge_interval=None)
        await service.create_session("alice", "s1")
        print("created")

    asyncio.run(main())
"""

STOPPED_ON_ANOTHER_LOOP = """
    import asyncio
    from sessionhub import SessionHistoryService

    service = SessionHistoryService(purge_interval=None)
    asyncio.run(service.create_session("alice", "s1"))
    asyncio.run(service.stop())
    print("stopped")
"""


def _missing(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    from sessionhub_redis.testing import ServerUnavailable, redis_server

    try:
        with redis_server() as url:
            yield url
    except ServerUnavailable as exc:
        _missing(str(exc))


@pytest.fixture(scope="module")
def mongodb_url() -> Iterator[str]:
    from sessionhub_mongodb.testing import ServerUnavailable, mongodb_server

    try:
        with mongodb_server() as url:
            yield url
    except ServerUnavailable as exc:
        _missing(str(exc))


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    from sessionhub_postgres.testing import ServerUnavailable, postgres_server

    try:
        with postgres_server() as url:
            yield url
    except ServerUnavailable as exc:
        _missing(str(exc))


@pytest.fixture(params=["memory", "sqlite", "redis", "mongodb", "postgres"])
def backend_env(request: pytest.FixtureRequest, tmp_path) -> Iterator[dict[str, str]]:
    """The environment selecting one backend, on a store no other test uses."""
    namespace = uuid.uuid4().hex[:12]
    if request.param == "memory":
        yield {"SESSIONHUB_URL": "memory://"}
    elif request.param == "sqlite":
        yield {"SESSIONHUB_URL": f"sqlite:///{tmp_path / 'loops.db'}"}
    elif request.param == "redis":
        yield {
            "SESSIONHUB_URL": request.getfixturevalue("redis_url"),
            "SESSIONHUB_REDIS__KEY_PREFIX": f"loops-{namespace}:",
        }
    elif request.param == "postgres":
        from sessionhub_postgres.testing import drop_schema

        url = request.getfixturevalue("postgres_url")
        schema = f"loops_{namespace}"
        yield {"SESSIONHUB_URL": url, "SESSIONHUB_POSTGRES__SCHEMA": schema}
        asyncio.run(drop_schema(url, schema))
    else:
        yield {
            "SESSIONHUB_URL": request.getfixturevalue("mongodb_url"),
            "SESSIONHUB_MONGODB__DATABASE": f"loops_{namespace}",
        }


def run(script: str, env: dict[str, str], *options: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONHUB_")}
    environment.update(env)
    return subprocess.run(
        [sys.executable, *options, "-c", textwrap.dedent(script)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=HANG_GUARD,
        check=False,
    )


def test_a_service_works_across_two_asyncio_runs_and_exits(backend_env):
    """The second asyncio.run() reopens the backend; the unstopped process still exits."""
    done = run(TWO_RUNS, backend_env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["['from the first loop', 'from the second loop']"]
    assert "Traceback" not in done.stderr, done.stderr


def test_a_service_never_stopped_warns_and_prints_no_traceback(backend_env):
    """Dropped while started: a ResourceWarning naming the fix, no thread traceback, exit 0."""
    done = run(NEVER_STOPPED, backend_env, "-W", "always::ResourceWarning")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["created"]
    assert "was started and never stopped" in done.stderr
    assert "await service.stop()" in done.stderr
    assert "Traceback" not in done.stderr, done.stderr


def test_a_service_can_be_stopped_from_a_later_loop(backend_env):
    """stop() in a later asyncio.run() releases what it can and returns."""
    done = run(STOPPED_ON_ANOTHER_LOOP, backend_env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["stopped"]
    assert "Traceback" not in done.stderr, done.stderr


def test_a_service_in_use_on_a_running_loop_refuses_another_loop():
    """Two running loops at once (two threads) cannot share a service: ConfigError says so."""
    service = SessionHistoryService(MemoryBackend(), purge_interval=None)
    started, release = threading.Event(), threading.Event()

    async def hold() -> None:
        await service.create_session("alice", "s1")
        started.set()
        await asyncio.to_thread(release.wait)
        await service.stop()

    thread = threading.Thread(target=asyncio.run, args=(hold(),))
    thread.start()
    try:
        assert started.wait(HANG_GUARD)
        with pytest.raises(ConfigError, match="another running event loop"):
            asyncio.run(service.get_session("alice", "s1"))
    finally:
        release.set()
        thread.join(HANG_GUARD)
    assert not thread.is_alive()
