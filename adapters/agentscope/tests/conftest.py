"""Every test of the adapter runs on each first-party backend, on real stores, offline.

The stores are ``sessionhub.testing.stores``' fixtures: memory, SQLite, and Redis
and MongoDB from the plugins' own test servers (with ``CI=true`` a missing server
fails the run; otherwise those tests skip, saying why).

AgentScope 1.x and 2.x cannot be installed together: ``test_v1_*`` modules run
under 1.x (``nox -s "adapter(adapter='agentscope1')"``), ``test_v2_*`` under 2.x.
No test reaches a network: models are scripted stubs of AgentScope's base class.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from sessionhub.testing.stores import mongodb_url, redis_url, service, store

__all__ = ["mongodb_url", "redis_url", "service", "store"]  # the fixtures, for pytest

try:
    AGENTSCOPE = version("agentscope")
except PackageNotFoundError:
    AGENTSCOPE = None
_MAJOR = AGENTSCOPE.partition(".")[0] if AGENTSCOPE else None

# The other major's tests cannot import; with no AgentScope, nothing runs.
collect_ignore_glob = [f"test_v{major}_*.py" for major in ("1", "2") if major != _MAJOR]
if _MAJOR is None:
    collect_ignore_glob.append("test_examples.py")


def pytest_report_header() -> str:
    return f"agentscope: {AGENTSCOPE or 'not installed'}"
