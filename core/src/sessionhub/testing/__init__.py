"""The conformance suite: every rule of the sessionhub contract as ordinary pytest tests.

A backend author subclasses ``BackendConformance`` and overrides one
fixture, ``backend``, which yields an opened, EMPTY backend (and cleans up
after the ``yield``)::

    import pytest_asyncio
    from sessionhub.testing import BackendConformance

    class TestAcmeConformance(BackendConformance):
        @pytest_asyncio.fixture
        async def backend(self, tmp_path):
            async with AcmeBackend(path=tmp_path / "acme") as backend:
                yield backend

Install with ``pip install "sessionhub[testing]"``. Tests of a capability the
backend does not declare are skipped with that reason. Overriding a suite test
is allowed only with ``@pytest.mark.xfail(reason=...)``.
"""

from __future__ import annotations

import pytest

# Failing suite assertions should show values, as in the author's own test files.
pytest.register_assert_rewrite("sessionhub.testing._suite")

from sessionhub.testing._base import ConformanceFixtures, FakeClock, requires
from sessionhub.testing._helpers import assert_backend_registered
from sessionhub.testing._suite.concurrency import ConcurrencyTests
from sessionhub.testing._suite.data import DataTests
from sessionhub.testing._suite.events import EventTests
from sessionhub.testing._suite.history import HistoryTests
from sessionhub.testing._suite.inputs import InputTests
from sessionhub.testing._suite.isolation import CallerObjectTests, IsolationTests
from sessionhub.testing._suite.lifecycle import LifecycleTests
from sessionhub.testing._suite.limits import LimitTests
from sessionhub.testing._suite.listing import ListingTests
from sessionhub.testing._suite.sessions import SessionTests
from sessionhub.testing._suite.state import StateTests
from sessionhub.testing._suite.ttl import TTLTests
from sessionhub.testing._suite.values import ValueTests

__all__ = [
    "BackendConformance",
    "ConformanceFixtures",
    "FakeClock",
    "requires",
    "assert_backend_registered",
]


class BackendConformance(
    LifecycleTests,
    SessionTests,
    ListingTests,
    EventTests,
    HistoryTests,
    StateTests,
    TTLTests,
    LimitTests,
    IsolationTests,
    CallerObjectTests,
    InputTests,
    ConcurrencyTests,
    DataTests,
    ValueTests,
    ConformanceFixtures,
):
    """The whole contract. Subclass it and override the ``backend`` fixture."""
