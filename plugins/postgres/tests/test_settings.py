"""Where the server is: URLs, settings, secrets kept out of messages, how the plugin registers."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from sessionhub import BackendUnavailable, ConfigError, SessionHistoryService
from sessionhub.testing import assert_backend_registered
from sessionhub_postgres._settings import driver_dsn
from sessionhub_postgres.backend import PostgresBackend, PostgresSettings
from sessionhub_postgres.testing import free_port

SECRET = "pa55-w0rd-secret"


@pytest.mark.parametrize(
    ("url", "dsn"),
    [
        ("postgres://u:pw@h:5433/db", "postgresql://u:pw@h:5433/db"),
        ("postgresql://u@h/db?sslmode=require", "postgresql://u@h/db?sslmode=require"),
        ("postgresql+asyncpg://u:pw@h/db", "postgresql://u:pw@h/db"),
        ("POSTGRESQL://h/db", "postgresql://h/db"),
    ],
)
def test_urls_reach_the_driver_as_postgresql(url, dsn):
    assert driver_dsn(url) == dsn


def test_another_scheme_is_a_one_line_error_without_the_password():
    with pytest.raises(ValidationError) as caught:
        PostgresSettings(url=f"mysql://root:{SECRET}@h/db")
    message = str(caught.value)
    assert "postgresql+asyncpg://" in message and SECRET not in message
    with pytest.raises(ConfigError, match="postgres://"):
        driver_dsn("redis://h")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("schema", "bad-name"),
        ("schema", "1st"),
        ("schema", "pg_sessions"),  # PostgreSQL refuses to create it
        ("schema", "s" * 64),  # PostgreSQL would cut it to 63
        ("table_prefix", "a b"),
        ("table_prefix", "x" * 50),
    ],
)
def test_names_must_be_plain_sql_names(field, value):
    with pytest.raises(ValidationError, match=field):
        PostgresSettings(**{field: value})


def test_settings_defaults_and_limits():
    settings = PostgresSettings()
    assert (settings.db_schema, settings.table_prefix) == ("public", "sessionhub_")
    assert (settings.min_pool_size, settings.max_pool_size, settings.statement_cache_size) == (
        1,
        10,
        100,
    )
    with pytest.raises(ValidationError, match="min_pool_size"):
        PostgresSettings(min_pool_size=5, max_pool_size=2)
    with pytest.raises(ValidationError):
        PostgresSettings(pool_size=3)


def test_repr_masks_the_password():
    backend = PostgresBackend(PostgresSettings(url=f"postgresql://u:{SECRET}@h/db"))
    assert SECRET not in repr(backend) and "***" in repr(backend)


@pytest.mark.asyncio
async def test_an_unreachable_server_is_unavailable_and_names_no_password():
    url = f"postgresql://u:{SECRET}@127.0.0.1:{free_port()}/db"
    backend = PostgresBackend(PostgresSettings(url=url, connect_timeout=2))
    with pytest.raises(BackendUnavailable) as caught:
        await backend.open()
    message = str(caught.value)
    assert SECRET not in message and "127.0.0.1" in message and "\n" not in message
    await backend.close()


@pytest.mark.asyncio
async def test_tls_is_taken_from_the_url(postgres_url, schema):
    """sslmode=require against a server without TLS fails: the URL's TLS options are used."""
    if "sslmode" in postgres_url:
        pytest.skip("the test server's URL sets sslmode already")
    sep = "&" if "?" in postgres_url else "?"
    for mode, works in (("disable", True), ("require", False)):
        backend = PostgresBackend(
            PostgresSettings(url=f"{postgres_url}{sep}sslmode={mode}", schema=schema)
        )
        try:
            if works:
                await backend.open()
                await backend.ping()
            else:
                with pytest.raises(BackendUnavailable, match=r"(?i)ssl"):
                    await backend.open()
        finally:
            await backend.close()


def test_entry_point_registers_backend():
    info = assert_backend_registered(
        "postgres", schemes=("postgres", "postgresql", "postgresql+asyncpg")
    )
    assert info.distribution == "sessionhub-postgres"


def test_plugin_module_does_not_import_the_driver():
    code = (
        "import sys, sessionhub_postgres\n"
        "sessionhub_postgres.sessionhub_register_backends()\n"
        "from sessionhub_postgres import _settings\n"
        "assert 'asyncpg' not in sys.modules, 'asyncpg imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.asyncio
@pytest.mark.parametrize("scheme", ["postgres", "postgresql", "postgresql+asyncpg"])
async def test_service_selects_backend_by_url(postgres_url, schema, monkeypatch, scheme):
    monkeypatch.setenv("SESSIONHUB_POSTGRES__SCHEMA", schema)
    url = scheme + postgres_url[postgres_url.index("://") :]
    async with SessionHistoryService(url=url, purge_interval=None) as svc:
        assert isinstance(svc.backend, PostgresBackend)
        assert svc.backend.names.schema == schema
        await svc.create_session("alice", "s1")
