"""The suite guards itself: overrides need xfail, capabilities skip, broken backends fail."""

from __future__ import annotations

import pytest

HEADER = """
import pytest
import pytest_asyncio
from sessionhub_memory.backend import MemoryBackend
from sessionhub.testing import BackendConformance
"""

FIXTURE = """
    @pytest_asyncio.fixture
    async def backend(self):
        async with {backend}() as backend:
            yield backend
"""


def run(pytester, *args: str, module: str = "", backend: str = "MemoryBackend", body: str = ""):
    """Write a conformance subclass (plus ``module`` code and a class ``body``) and run pytest."""
    pytester.makepyfile(
        test_suite=HEADER
        + module
        + "\n\nclass TestSuite(BackendConformance):\n"
        + FIXTURE.format(backend=backend)
        + body,
    )
    return pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "-o",
        "asyncio_mode=strict",
        "-o",
        "asyncio_default_fixture_loop_scope=function",
        *args,
    )


def test_overriding_a_test_without_xfail_fails(pytester):
    body = "\n    async def test_last_n(self, service):\n        pass\n"
    result = run(pytester, "-k", "DO_NOT_OVERRIDE or test_last_n", body=body)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*test_last_n is overridden without @pytest.mark.xfail(reason=...)*"]
    )


def test_overriding_with_xfail_and_a_reason_is_allowed(pytester):
    body = """
    @pytest.mark.xfail(reason="this store cannot window reads yet", strict=True)
    async def test_last_n(self, service):
        raise NotImplementedError
"""
    result = run(pytester, "-k", "DO_NOT_OVERRIDE or test_last_n", body=body)
    result.assert_outcomes(passed=1, xfailed=1)


def test_undeclared_capabilities_are_skipped_with_the_reason(pytester):
    result = run(pytester, "-k", "survives_reopening", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*MemoryBackend does not declare the 'persistent' capability*"])


def test_the_backend_fixture_must_be_overridden(pytester):
    pytester.makepyfile(test_suite=HEADER + "\n\nclass TestSuite(BackendConformance):\n    pass\n")
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "-k",
        "test_last_n",
        "-o",
        "asyncio_mode=strict",
        "-o",
        "asyncio_default_fixture_loop_scope=function",
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*Override the 'backend' fixture*"])


BROKEN_BACKENDS = {
    "forgets_expiry": (
        """
class Broken(MemoryBackend):
    def _live(self, key, now):
        return self.store.sessions.get(key)
""",
        "test_expired_session_is_invisible_at_once",
    ),
    "ignores_event_limit": (
        """
class Broken(MemoryBackend):
    async def append(self, request):
        request.event_limit = None
        return await super().append(request)
""",
        "test_only_the_newest_events_are_kept",
    ),
    "loses_concurrent_updates": (
        """
import asyncio

class Broken(MemoryBackend):
    async def write_state(self, key, delta, expiry):
        current = self._state(key, expiry, refresh=False)
        await asyncio.sleep(0)  # a read-modify-write that yields: updates get lost
        current.update(delta)
        from sessionhub.backend_tools import dump_json
        from sessionhub_memory.backend import _State, _state_slot
        self.store.states[_state_slot(key)] = _State(dump_json(current), None)
        return current
""",
        "test_concurrent_direct_state_updates",
    ),
    "leaks_other_users": (
        """
class Broken(MemoryBackend):
    async def list_sessions(self, app_name, user_id, **kwargs):
        rows = []
        for (app, user), _ in list(self.store.by_user.items()):
            rows += await super().list_sessions(app, user, **kwargs)
        return rows
""",
        "test_other_users_session_is_invisible",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN_BACKENDS))
def test_a_broken_backend_fails_the_suite(pytester, case):
    source, test_name = BROKEN_BACKENDS[case]
    result = run(pytester, "-k", test_name, module=source, backend="Broken")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) >= 1, result.stdout.str()


CLAIMS_MULTI_PROCESS = """
import functools
from dataclasses import replace

class Broken(MemoryBackend):
    # Claims multi_process, but every process has a store of its own.
    capabilities = replace(MemoryBackend.capabilities, multi_process=True)
"""


def test_processes_that_do_not_share_a_store_fail_the_multi_process_test(pytester):
    body = """
    @pytest.fixture
    def backend_factory(self):
        return functools.partial(Broken)
"""
    result = run(
        pytester,
        "-k",
        "processes_append",
        module=CLAIMS_MULTI_PROCESS,
        backend="Broken",
        body=body,
    )
    assert result.parseoutcomes().get("failed", 0) == 1, result.stdout.str()
    result.stdout.fnmatch_lines(["*a writer process failed*", "*SessionNotFound*"])


def test_multi_process_needs_a_backend_factory(pytester):
    result = run(pytester, "-k", "processes_append", module=CLAIMS_MULTI_PROCESS, backend="Broken")
    assert result.parseoutcomes().get("failed", 0) == 1, result.stdout.str()
    result.stdout.fnmatch_lines(["*declare multi_process only with a 'backend_factory' fixture*"])


def test_a_test_needing_two_capabilities_runs_only_with_both(pytester):
    module = """
from sessionhub import Backend


class CannotReplace(MemoryBackend):
    replace_events = Backend.replace_events
"""
    test = "event_limit_counts_events_across_gaps"  # needs pop_event and replace_events
    result = run(pytester, "-k", test, "-rs", module=module, backend="CannotReplace")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(
        ["*CannotReplace does not declare the 'replace_events' capability*"]
    )
    run(pytester, "-k", test).assert_outcomes(passed=1)
