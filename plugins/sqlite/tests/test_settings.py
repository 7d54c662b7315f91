"""Where the database is: URLs, paths, settings, and how the plugin registers."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from sessionhub import ConfigError, SessionHistoryService
from sessionhub.testing import assert_backend_registered
from sessionhub_sqlite.backend import (
    DEFAULT_PATH,
    MEMORY,
    SQLiteBackend,
    SQLiteSettings,
    database_path,
)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///relative.db", "relative.db"),
        ("sqlite:///dir/relative.db", "dir/relative.db"),
        ("sqlite:////abs/path.db", "/abs/path.db"),
        ("sqlite+aiosqlite:///relative.db", "relative.db"),
        ("sqlite+aiosqlite:////abs/path.db", "/abs/path.db"),
        ("SQLITE:///upper.db", "upper.db"),
        ("sqlite:///with%20space.db", "with space.db"),
        ("sqlite://:memory:", MEMORY),
        ("sqlite:///:memory:", MEMORY),
        ("sqlite://", DEFAULT_PATH),
        ("sqlite:///", DEFAULT_PATH),
    ],
)
def test_url_names_the_database(url, expected):
    assert database_path(url) == expected
    assert SQLiteBackend(SQLiteSettings(url=url)).path == expected


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("sqlite://host/x.db", "host"),
        ("sqlite:///x.db?mode=ro", "query"),
        ("redis://localhost/0", "sqlite://"),
    ],
)
def test_bad_urls_are_config_errors(url, complaint):
    with pytest.raises(ConfigError, match=complaint):
        database_path(url)


def test_bad_url_in_settings_is_a_validation_error():
    with pytest.raises(ValidationError, match="host"):
        SQLiteSettings(url="sqlite://host/x.db")


def test_default_is_sessionhub_db_in_working_directory():
    assert SQLiteBackend().path == "sessionhub.db"


def test_path_setting_and_argument(tmp_path):
    assert SQLiteBackend(SQLiteSettings(path=tmp_path / "a.db")).path == str(tmp_path / "a.db")
    settings = SQLiteSettings(path=tmp_path / "a.db")
    assert SQLiteBackend(settings, path=tmp_path / "b.db").path == str(tmp_path / "b.db")
    assert SQLiteBackend(path=str(tmp_path / "c.db")).path == str(tmp_path / "c.db")


def test_url_and_path_together_are_refused(tmp_path):
    with pytest.raises(ValidationError, match="either url or path"):
        SQLiteSettings(url="sqlite:///a.db", path=tmp_path / "b.db")


def test_settings_defaults_and_limits():
    settings = SQLiteSettings()
    assert (settings.synchronous, settings.busy_timeout) == ("NORMAL", 30.0)
    assert settings.create_if_missing is True
    with pytest.raises(ValidationError):
        SQLiteSettings(synchronous="OFF")
    with pytest.raises(ValidationError):
        SQLiteSettings(busy_timeout=0)
    with pytest.raises(ValidationError):
        SQLiteSettings(journal_mode="DELETE")


def test_entry_point_registers_backend():
    info = assert_backend_registered("sqlite", schemes=("sqlite", "sqlite+aiosqlite"))
    assert info.distribution == "sessionhub-sqlite"


def test_plugin_module_does_not_import_the_driver():
    code = (
        "import sys, sessionhub_sqlite\n"
        "sessionhub_sqlite.sessionhub_register_backends()\n"
        "assert 'aiosqlite' not in sys.modules, 'aiosqlite imported'\n"
        "assert 'sessionhub_sqlite.backend' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.asyncio
@pytest.mark.parametrize("scheme", ["sqlite", "sqlite+aiosqlite"])
async def test_service_selects_backend_by_url(tmp_path, monkeypatch, scheme):
    monkeypatch.chdir(tmp_path)
    async with SessionHistoryService(url=f"{scheme}:///chosen.db", purge_interval=None) as svc:
        assert isinstance(svc.backend, SQLiteBackend)
        await svc.create_session("alice", "s1")
    assert (tmp_path / "chosen.db").is_file()


@pytest.mark.asyncio
async def test_nested_settings_reach_the_connection(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SESSIONHUB_SQLITE__SYNCHRONOUS", "FULL")
    monkeypatch.setenv("SESSIONHUB_SQLITE__BUSY_TIMEOUT", "2.5")
    monkeypatch.setenv("SESSIONHUB_SQLITE__PATH", os.fspath(tmp_path / "env.db"))
    async with SessionHistoryService(backend="sqlite", purge_interval=None) as svc:
        backend = svc.backend
        assert isinstance(backend, SQLiteBackend)
        assert backend.path == os.fspath(tmp_path / "env.db")
        assert await _pragma(backend, "synchronous") == 2  # FULL
        assert await _pragma(backend, "busy_timeout") == 2500


async def _pragma(backend: SQLiteBackend, name: str):
    assert backend._connection is not None
    async with backend._connection.execute(f"PRAGMA {name}") as cursor:
        row = await cursor.fetchone()
    assert row is not None
    return row[0]
