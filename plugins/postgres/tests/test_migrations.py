"""Schema versions: every older deployment upgrades in place, keeps its data, and only once."""

from __future__ import annotations

from pathlib import Path

import pytest

from sessionhub import BackendError, ConfigError, ConflictError, Event
from sessionhub_postgres._functions import APPEND_ARGUMENTS
from sessionhub_postgres._schema import SCHEMA_VERSION
from sessionhub_postgres.backend import PostgresBackend
from sessionhub_postgres.testing import drop_schema, scratch_schema

pytestmark = pytest.mark.asyncio

FIXTURES = Path(__file__).parent / "fixtures"


OLDER_VERSIONS = list(range(1, SCHEMA_VERSION))
"""Each has a frozen fixture, ``fixtures/schema_v<N>.sql``, holding the same data."""


async def _load(raw, schema: str, version: int) -> None:
    fixture = FIXTURES / f"schema_v{version}.sql"
    await raw.execute(fixture.read_text().replace("@SCHEMA@", schema))


async def test_every_older_version_has_a_frozen_fixture():
    assert sorted(FIXTURES.glob("schema_v*.sql")) == [
        FIXTURES / f"schema_v{version}.sql" for version in OLDER_VERSIONS
    ]


async def _shape(raw, schema: str) -> dict[str, object]:
    """Columns, indexes, constraints and functions, with the schema's name taken out."""

    def plain(rows):
        return sorted(tuple(str(v).replace(schema, "S") for v in row) for row in rows)

    return {
        "columns": plain(
            await raw.fetch(
                "SELECT table_name, column_name, data_type, is_nullable, column_default, "
                "collation_name FROM information_schema.columns WHERE table_schema = $1",
                schema,
            )
        ),
        "indexes": plain(
            await raw.fetch(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = $1", schema
            )
        ),
        "constraints": plain(
            await raw.fetch(
                "SELECT conname, pg_get_constraintdef(c.oid) FROM pg_constraint c "
                "JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname = $1",
                schema,
            )
        ),
        "functions": plain(
            await raw.fetch(
                "SELECT p.oid::regprocedure::text, pg_get_functiondef(p.oid) FROM pg_proc p "
                "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1",
                schema,
            )
        ),
    }


async def _versions(raw, schema: str) -> list[int]:
    rows = await raw.fetch(f'SELECT version FROM "{schema}".sessionhub_schema_version ORDER BY 1')
    return [row[0] for row in rows]


@pytest.mark.parametrize("version", OLDER_VERSIONS)
async def test_an_older_version_upgrades_and_keeps_data(
    raw, schema, pg_settings, make_service, version
):
    await _load(raw, schema, version)
    assert await _versions(raw, schema) == list(range(1, version + 1))
    async with make_service(PostgresBackend(pg_settings())) as svc:
        chat = await svc.get_session("alice", "chat")
        assert chat is not None
        assert [(e.seq, e.id, e.text) for e in chat.events] == [
            (2, "e2", "Will it rain?"),
            (3, "e3", "No."),
        ]
        assert (chat.event_count, chat.last_seq) == (2, 3)
        assert chat.state == {
            "topic": "weather",
            "big": 1e100,
            "nul\x00key": "a\x00b",
            "app:greeting": "hello",
            "user:name": "Alice",
        }
        assert isinstance(chat.state["big"], float)
        assert chat.metadata == {"source": "v1"}
        children = await svc.list_sessions("alice", parent_id="chat")
        assert [s.id for s in children.items] == ["child"]
        stored = await svc.append(("alice", "chat"), "And tomorrow?")
        assert stored[0].seq == 4
        # The current append, conflicts included: a reused id writes nothing of its batch.
        with pytest.raises(ConflictError, match="'e3'"):
            await svc.append(("alice", "chat"), ["Then?", Event(id="e3", role="user")])
        again = await svc.get_session("alice", "chat")
        assert again is not None and (again.event_count, again.last_seq) == (3, 4)

    assert await _versions(raw, schema) == list(range(1, SCHEMA_VERSION + 1))
    indexes = {
        row[0]
        for row in await raw.fetch("SELECT indexname FROM pg_indexes WHERE schemaname = $1", schema)
    }
    assert {"sessionhub_sessions_by_parent", "sessionhub_sessions_by_expiry"} <= indexes
    signatures = [
        row[0]
        for row in await raw.fetch(
            "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n "
            "ON n.oid = p.pronamespace WHERE n.nspname = $1 AND p.proname = 'sessionhub_append'",
            schema,
        )
    ]
    # Only the current append is left: the older one, with its other signature, is gone.
    assert len(signatures) == 1 and signatures[0].count(",") + 1 == APPEND_ARGUMENTS


@pytest.mark.parametrize("version", OLDER_VERSIONS)
async def test_migrating_twice_is_a_no_op(raw, schema, pg_settings, version):
    await _load(raw, schema, version)
    async with PostgresBackend(pg_settings()):
        pass
    once = await _shape(raw, schema)
    versions = await raw.fetch(f'SELECT * FROM "{schema}".sessionhub_schema_version')
    async with PostgresBackend(pg_settings()):
        pass
    assert await _shape(raw, schema) == once
    assert await raw.fetch(f'SELECT * FROM "{schema}".sessionhub_schema_version') == versions


@pytest.mark.parametrize("version", OLDER_VERSIONS)
async def test_new_deployment_gets_the_same_schema_as_a_migrated_one(
    raw, schema, pg_settings, postgres_url, version
):
    await _load(raw, schema, version)
    async with PostgresBackend(pg_settings()):
        pass
    fresh = scratch_schema()
    try:
        async with PostgresBackend(pg_settings(schema=fresh)):
            pass
        assert await _shape(raw, fresh) == await _shape(raw, schema)
    finally:
        await drop_schema(postgres_url, fresh)


async def test_a_newer_schema_is_refused_in_one_line(raw, schema, pg_settings):
    async with PostgresBackend(pg_settings()):
        pass
    newer = SCHEMA_VERSION + 1
    await raw.execute(f'INSERT INTO "{schema}".sessionhub_schema_version VALUES ({newer})')
    with pytest.raises(ConfigError) as caught:
        await PostgresBackend(pg_settings()).open()
    message = str(caught.value)
    assert "\n" not in message
    assert f"schema version {newer}" in message and "pip install -U sessionhub-postgres" in message
    assert await _versions(raw, schema) == [*range(1, SCHEMA_VERSION + 1), newer]


async def test_failed_migration_leaves_version_1_intact(raw, schema, pg_settings):
    await _load(raw, schema, 1)
    # A table with the name of an index migration 2 creates makes it fail half-way through.
    await raw.execute(f'CREATE TABLE "{schema}".sessionhub_sessions_by_expiry (x int)')
    before = await _shape(raw, schema)
    rows = await raw.fetch(f'SELECT * FROM "{schema}".sessionhub_sessions ORDER BY pk')
    with pytest.raises(BackendError, match="sessionhub_sessions_by_expiry"):
        await PostgresBackend(pg_settings()).open()
    assert await _shape(raw, schema) == before
    assert await _versions(raw, schema) == [1]
    assert await raw.fetch(f'SELECT * FROM "{schema}".sessionhub_sessions ORDER BY pk') == rows
