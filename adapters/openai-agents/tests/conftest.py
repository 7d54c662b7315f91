"""Every test of the adapter runs on each first-party backend, on real stores, offline.

The stores are ``sessionhub.testing.stores``' fixtures: memory, SQLite (a file in
the test's directory), and Redis and MongoDB from the plugins' own test servers
(an environment URL, a container, or a private ``redis-server`` / SecantusDB
process). With ``CI=true`` a missing server fails the run; otherwise those tests
skip, saying why. No test reaches a network or
needs an API key: the model is the SDK's own ``agents.testing.ScriptedModel``
and tracing is off.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from agents import set_tracing_disabled

from sessionhub import SessionHistoryService
from sessionhub.testing.stores import mongodb_url, redis_url, service, store
from sessionhub_openai_agents import SessionHubSession

__all__ = ["mongodb_url", "redis_url", "service", "store"]  # the fixtures, for pytest

set_tracing_disabled(True)  # traces would be exported to OpenAI's servers


@pytest.fixture
def make_session(service: SessionHistoryService) -> Callable[..., SessionHubSession]:
    """Build ``SessionHubSession`` objects on the test's service."""

    def make(session_id: str = "conversation", **options: Any) -> SessionHubSession:
        return SessionHubSession(session_id, service, **options)

    return make


@pytest.fixture
def require(service: SessionHistoryService) -> Callable[[str], None]:
    """Skip the test, saying why, when the backend lacks a capability it exercises."""

    def check(capability: str) -> None:
        if not getattr(service.backend.capabilities, capability):
            pytest.skip(f"the {service.backend.name} backend does not declare {capability!r}")

    return check
