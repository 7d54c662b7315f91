"""Fixtures and helpers shared by every area of the conformance suite."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import pytest
import pytest_asyncio

from sessionhub.backend import Backend, Capabilities
from sessionhub.plugins import get_plugin_manager
from sessionhub.service import SessionHistoryService
from sessionhub.settings import SessionHubSettings

__all__ = [
    "BackendFactory",
    "ConformanceFixtures",
    "FakeClock",
    "requires",
    "Connect",
    "MakeService",
]

F = TypeVar("F", bound=Callable[..., Any])

MakeService = Callable[..., SessionHistoryService]
"""Builds a service over the test's backend: ``make_service(event_limit=5, clock=...)``."""

Connect = Callable[[], Awaitable[Backend]]
"""Opens another backend on the same store as the ``backend`` fixture."""

BackendFactory = Callable[[], Backend]
"""Builds (unopened) a backend on the same store, in another process; must pickle."""


class FakeClock:
    """A clock the tests move by hand; each reading advances it by one millisecond.

    It starts at the real current time (whole milliseconds), so stores whose own
    expiry runs on the real clock never see expiry times in the past.
    """

    def __init__(self, start: datetime | None = None) -> None:
        now = start or datetime.now(timezone.utc)
        self.now = now.replace(microsecond=now.microsecond // 1000 * 1000)

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self.now += timedelta(seconds=seconds)


def requires(capability: str) -> Callable[[F], F]:
    """Mark a suite test as needing a declared capability; it is skipped otherwise.

    Stack it to need several: ``@requires("restore_session")`` over ``@requires("pop_event")``.
    """
    if capability not in Capabilities.__dataclass_fields__:
        raise ValueError(f"unknown capability {capability!r}")

    def mark(test: F) -> F:
        needed = getattr(test, "_sessionhub_requires", ())
        test._sessionhub_requires = (*needed, capability)  # type: ignore[attr-defined]
        return test

    return mark


class ConformanceFixtures:
    """The fixtures of the suite. Override ``backend`` (required) and ``connect`` (optional)."""

    @pytest_asyncio.fixture
    async def backend(self) -> Backend:
        """Yield an opened, EMPTY backend; close and clean up after the yield. Override this."""
        raise NotImplementedError(
            "Override the 'backend' fixture in your BackendConformance subclass: it must "
            "yield an opened, empty Backend."
        )

    @pytest_asyncio.fixture
    async def connect(self, backend: Backend) -> AsyncIterator[Connect | None]:
        """Yield a function opening a second backend on the same store, or ``None``.

        Needed by the ``shared_store`` and ``persistent`` tests. The suite closes
        what it opens.
        """
        yield None

    @pytest.fixture
    def backend_factory(self, backend: Backend) -> BackendFactory | None:
        """Return a picklable callable building a backend on the same store, or ``None``.

        Needed by the ``multi_process`` test, which calls it in other processes
        (started with ``spawn``): a ``functools.partial`` of the backend class with
        its settings is the usual form. The child opens and closes what it builds.
        """
        return None

    @pytest.fixture
    def clock(self) -> FakeClock:
        """The clock every service of a test uses."""
        return FakeClock()

    @pytest.fixture
    def make_service(self, backend: Backend, clock: FakeClock) -> MakeService:
        """Build a started-on-demand service over the test's backend with given settings."""
        test_clock = clock

        def make(
            target: Backend | None = None,
            *,
            clock: Callable[[], datetime] | None = None,
            **settings: Any,
        ) -> SessionHistoryService:
            settings.setdefault("purge_interval", None)
            return SessionHistoryService(
                target or backend,
                settings=SessionHubSettings.isolated(**settings),
                plugin_manager=get_plugin_manager(entry_points=False),
                clock=clock or test_clock,
            )

        return make

    @pytest_asyncio.fixture
    async def service(self, make_service: MakeService) -> AsyncIterator[SessionHistoryService]:
        """A service with default settings (no TTL, no event limit)."""
        svc = make_service()
        await svc.start()
        yield svc

    @pytest.fixture(autouse=True)
    def _check_capability(self, request: pytest.FixtureRequest) -> None:
        needed = getattr(request.function, "_sessionhub_requires", ())
        if not needed:
            return
        backend: Backend = request.getfixturevalue("backend")
        for capability in needed:
            if not getattr(backend.capabilities, capability):
                pytest.skip(
                    f"{type(backend).__name__} does not declare the {capability!r} capability"
                )
