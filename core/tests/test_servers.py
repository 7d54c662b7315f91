"""sessionhub.testing.servers: which server a backend's tests get, in which order."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import pytest

from sessionhub.testing.servers import ServerUnavailable, find_server, in_ci


def _no_testcontainers() -> Any:
    raise ImportError("testcontainers")


def _find(local: Any) -> Any:
    return find_server(
        env="SESSIONHUB_TEST_ACME_URL",
        container=_no_testcontainers,
        container_url=str,
        local=local,
        unavailable="no Acme: set SESSIONHUB_TEST_ACME_URL",
    )


def test_the_environment_url_comes_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSIONHUB_TEST_ACME_URL", "acme://given")
    with _find(lambda: nullcontext("acme://local")) as url:
        assert url == "acme://given"


def test_without_testcontainers_the_local_server_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SESSIONHUB_TEST_ACME_URL", raising=False)
    with _find(lambda: nullcontext("acme://local")) as url:
        assert url == "acme://local"


def test_no_server_raises_saying_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SESSIONHUB_TEST_ACME_URL", raising=False)
    with (
        pytest.raises(ServerUnavailable, match="set SESSIONHUB_TEST_ACME_URL"),
        _find(lambda: None),
    ):
        pass


@pytest.mark.parametrize(("value", "expected"), [("true", True), ("1", True), ("", False)])
def test_ci_is_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: bool
) -> None:
    monkeypatch.setenv("CI", value)
    assert in_ci() is expected
