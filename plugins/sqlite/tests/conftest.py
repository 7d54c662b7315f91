"""Fixtures of the SQLite backend's own tests: real files under tmp_path, no mocks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sessionhub import SessionHistoryService
from sessionhub.plugins import get_plugin_manager
from sessionhub.settings import SessionHubSettings
from sessionhub_sqlite.backend import SQLiteBackend


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "sessions.db"


@pytest.fixture
def make_service(db_path: Path) -> Callable[..., SessionHistoryService]:
    """Build a service over a new SQLiteBackend on ``db_path`` (or the backend given)."""

    def make(
        backend: SQLiteBackend | None = None, *, clock: Any = None, **settings: Any
    ) -> SessionHistoryService:
        settings.setdefault("purge_interval", None)
        return SessionHistoryService(
            backend or SQLiteBackend(path=db_path),
            settings=SessionHubSettings.isolated(**settings),
            plugin_manager=get_plugin_manager(entry_points=False),
            clock=clock,
        )

    return make
