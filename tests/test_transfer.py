"""Data tools: export, import, migrate and the importers of other tools' files."""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
import pytest_asyncio

from sessionhub import (
    Backend,
    InvalidInput,
    SessionHistoryService,
    SessionHubSettings,
    get_plugin_manager,
)
from sessionhub.transfer import (
    count_sessions,
    export_records,
    import_records,
    migrate,
    parse_lines,
    read_agentscope_sessions,
    read_history_files,
)
from sessionhub_memory.backend import MemoryBackend
from sessionhub_sqlite.backend import SQLiteBackend

FIXTURES = Path(__file__).parent / "fixtures"
SESSIONHUB = str(Path(sys.executable).with_name("sessionhub"))


def service(backend) -> SessionHistoryService:
    return SessionHistoryService(
        backend,
        settings=SessionHubSettings.isolated(),
        plugin_manager=get_plugin_manager(entry_points=False),
    )


async def fill(svc: SessionHistoryService, sessions: int = 200) -> None:
    await svc.update_app_state({"version": 3, "flags": {"beta": True}})
    for n in range(sessions):
        user = f"user-{n % 7}"
        parent = None
        if n % 5 == 4:
            parent = f"s{n - 1}"
            user = f"user-{(n - 1) % 7}"
        s = await svc.create_session(
            user,
            f"s{n}",
            state={"n": n, "user:seen": n},
            metadata={"title": f"chat {n}", "tags": ["x", n]},
            parent=parent,
        )
        await svc.append(
            s,
            [
                {"role": "user", "content": f"question {n}", "state_delta": {"asked": True}},
                {
                    "role": "assistant",
                    "content": [
                        {
                            "type": "tool_call",
                            "id": f"c{n}",
                            "name": "search",
                            "arguments": {"q": n},
                        }
                    ],
                },
                {
                    "role": "tool",
                    "content": [{"type": "tool_result", "call_id": f"c{n}", "output": [n]}],
                },
            ][: 1 + n % 3],
        )


async def dump(svc: SessionHistoryService) -> list[dict]:
    return [r async for r in export_records(svc) if r["kind"] != "header"]


@pytest.mark.asyncio
async def test_the_count_pass_predicts_what_a_migration_copies():
    source = service(MemoryBackend())
    await fill(source, 60)
    sessions, events = await count_sessions(source)
    report = await migrate(source, service(MemoryBackend()))
    assert (sessions, events) == (report.sessions, report.events) == (60, 120)
    assert await count_sessions(source, user_ids=["user-1"]) == (
        sum(r["session"]["user_id"] == "user-1" for r in await dump(source) if "session" in r),
        sum(
            len(r["events"])
            for r in await dump(source)
            if "session" in r and r["session"]["user_id"] == "user-1"
        ),
    )


@pytest.mark.asyncio
async def test_round_trip_through_memory_and_sqlite_is_exact(tmp_path):
    source = service(MemoryBackend())
    await fill(source)
    original = await dump(source)
    assert sum(r["kind"] == "session" for r in original) == 200
    assert any(r["session"]["parent_id"] for r in original if r["kind"] == "session")

    sqlite = service(SQLiteBackend(path=tmp_path / "a.db"))
    report = await migrate(source, sqlite)
    assert (report.sessions, report.app_states, report.user_states) == (200, 1, 7)
    assert report.events == sum(len(r["events"]) for r in original if r["kind"] == "session")
    assert await dump(sqlite) == original

    back = service(MemoryBackend())
    await migrate(sqlite, back)
    assert await dump(back) == original
    again = await migrate(source, sqlite)  # idempotent
    assert again.sessions == 200
    assert await dump(sqlite) == original
    await sqlite.stop()


@pytest.mark.asyncio
async def test_histories_with_seq_gaps_migrate_exactly(tmp_path):
    """Popped and replaced histories (seqs with gaps) copy memory -> sqlite -> memory unchanged."""
    source = service(MemoryBackend())
    await source.create_session("u", "popped")
    await source.append(("u", "popped"), ["a", "b", "c"])
    await source.pop_event("u", "popped")
    await source.append(("u", "popped"), "d")
    await source.create_session("u", "compacted")
    await source.append(("u", "compacted"), ["a", "b"])
    await source.replace_events("u", "compacted", ["summary"])
    original = await dump(source)
    seqs = {r["session"]["id"]: [e["seq"] for e in r["events"]] for r in original if "events" in r}
    assert seqs == {"popped": [1, 2, 4], "compacted": [3]}

    sqlite = service(SQLiteBackend(path=tmp_path / "gaps.db"))
    assert (await migrate(source, sqlite)).sessions == 2
    assert await dump(sqlite) == original
    back = service(MemoryBackend())
    await migrate(sqlite, back)
    assert await dump(back) == original
    await sqlite.stop()

    class ReadsByPosition(MemoryBackend):  # an older backend: no pop, no replace
        pop_event = Backend.pop_event
        replace_events = Backend.replace_events

    with pytest.raises(InvalidInput, match=r"seqs have gaps.*neither pop_event nor replace_events"):
        await migrate(source, service(ReadsByPosition()))


@pytest.mark.asyncio
async def test_export_filters():
    svc = service(MemoryBackend())
    await fill(svc, 30)
    only = [r async for r in export_records(svc, user_ids=["user-1"])]
    assert {r["session"]["user_id"] for r in only if r["kind"] == "session"} == {"user-1"}
    assert not any(r["kind"] == "app_state" for r in only)
    times = sorted(r["session"]["updated_at"] for r in await dump(svc) if r["kind"] == "session")
    cut = datetime.fromisoformat(times[20])
    newer = [r async for r in export_records(svc, updated_after=cut)]
    assert len([r for r in newer if r["kind"] == "session"]) == 9
    older = [r async for r in export_records(svc, updated_before=cut)]
    assert len([r for r in older if r["kind"] == "session"]) == 21


def lines(*records) -> list[str]:
    return [json.dumps(r) if isinstance(r, dict) else r for r in records]


def session_record(session_id: str, seqs=(1, 2)) -> dict:
    return {
        "kind": "session",
        "session": {
            "id": session_id,
            "user_id": "u",
            "app_name": "x",
            "root_id": session_id,
            "created_at": "2025-01-01T00:00:00+00:00",
            "updated_at": "2025-01-02T00:00:00+00:00",
            "last_seq": max(seqs),
        },
        "events": [
            {
                "id": f"e{s}",
                "seq": s,
                "role": "user",
                "content": [{"type": "text", "text": str(s)}],
                "timestamp": "2025-01-01T00:00:00+00:00",
            }
            for s in seqs
        ],
    }


@pytest.mark.asyncio
async def test_a_malformed_line_names_file_and_line():
    svc = service(MemoryBackend())
    records = parse_lines(
        lines(session_record("good"), "{not json", session_record("later")), "dump.jsonl"
    )
    with pytest.raises(InvalidInput) as info:
        await import_records(svc, records)
    assert str(info.value).startswith("Invalid dump.jsonl:2: not JSON")
    assert await svc.get_session("u", "good") is not None
    assert await svc.get_session("u", "later") is None


@pytest.mark.asyncio
async def test_a_bad_session_is_not_half_imported_and_keep_going_reports_it():
    svc = service(MemoryBackend())
    bad = session_record("unordered", seqs=(2, 1))
    records = parse_lines(lines(bad, session_record("fine"), "[1, 2]"), "dump.jsonl")
    report = await import_records(svc, records, keep_going=True)
    assert report.sessions == 1
    assert await svc.get_session("u", "unordered") is None
    assert await svc.get_session("u", "fine") is not None
    assert report.skipped == [
        "Invalid dump.jsonl:1: events[1].seq: must be above the seq before it (2), got 1: "
        "events go oldest first",
        "Invalid dump.jsonl:3: a line must be a JSON object",
    ]


@pytest.mark.asyncio
async def test_agentscope_json_session_files():
    svc = service(MemoryBackend())
    paths = sorted((FIXTURES / "agentscope").glob("*.json"))
    report = await import_records(svc, read_agentscope_sessions(paths, user_id="ada"))
    assert report.sessions == 2
    chat = await svc.get_session("ada", "chat-1")
    assert [(e.seq, e.role) for e in chat.events] == [
        (1, "user"),
        (2, "assistant"),
        (3, "system"),
        (4, "assistant"),
    ]
    assert chat.events[0].text == "What's 2+2?"
    assert chat.events[1].tool_calls[0].arguments == {"expr": "2+2"}
    assert chat.events[2].content[0].output == "4"
    assert chat.events[3].text == "It is 4." and chat.events[3].metadata["name"] == "Friday"
    assert chat.state["snapshot:settings"] == {"temperature": 0.2}

    class Settings:
        def load_state_dict(self, state, strict=True):
            self.loaded = state

        def state_dict(self):
            return {}

    settings = Settings()
    await svc.load_state("ada", "chat-1", settings=settings)
    assert settings.loaded == {"temperature": 0.2}
    empty = await svc.get_session("ada", "empty-agent")
    assert empty.events == [] and empty.state["snapshot:planner"]["plan"] == ["a", "b"]


@pytest.mark.asyncio
async def test_agentscope_1_0_21_files_with_marked_memory_and_a_user_prefix():
    """A ReActAgent's file as JSONSession 1.0.21 writes it: memory holds [message, marks] pairs."""
    svc = service(MemoryBackend())
    paths = sorted((FIXTURES / "agentscope-1.0.21").glob("*.json"))
    report = await import_records(svc, read_agentscope_sessions(paths, user_id="alice"))
    assert report.sessions == 1
    chat = await svc.get_session("alice", "chat-7")  # alice_chat-7.json: the user prefix goes
    assert [e.role for e in chat.events] == ["user", "assistant", "system", "assistant"]
    assert chat.events[0].text == "2+3?"
    assert chat.events[1].tool_calls[0].arguments == {"a": 2, "b": 3}
    assert chat.events[2].content[0].call_id == "call-1"
    assert chat.events[3].text == "5" and chat.events[3].metadata["name"] == "Friday"
    saved = json.loads((FIXTURES / "agentscope-1.0.21" / "alice_chat-7.json").read_text())
    assert chat.state["snapshot:agent"] == saved["agent"]
    bobs = service(MemoryBackend())
    await import_records(bobs, read_agentscope_sessions(paths, user_id="bob"))
    assert await bobs.get_session("bob", "alice_chat-7") is not None  # not bob's prefix: kept


@pytest.mark.asyncio
async def test_history_list_files():
    svc = service(MemoryBackend())
    report = await import_records(
        svc, read_history_files(sorted((FIXTURES / "history").glob("*.json")))
    )
    assert report.sessions == 2 and report.events == 4
    root = await svc.get_session("ada", "root-1")
    child = await svc.get_session("ada", "child-1")
    assert (root.parent_id, root.depth, root.metadata) == (None, 0, {"channel": "web"})
    assert (child.parent_id, child.root_id, child.depth) == ("root-1", "root-1", 1)
    assert [e.text for e in child.events] == [
        "Find flights BER-LIS on 12 June",
        "TP 531 at 09:40, 189 EUR.",
    ]
    assert child.updated_at.isoformat() == "2025-05-01T09:04:00+00:00"
    # Messages without ids get them from their place: the same file imports the same ids.
    assert [e.id for e in child.events] == ["imported-1", "imported-2"]
    assert [s.id for s in (await svc.list_sessions("ada", parent_id="root-1")).items] == ["child-1"]


@pytest_asyncio.fixture(params=["memory", "sqlite", "redis", "mongodb", "postgres"])
async def any_service(request, tmp_path):
    """An empty service on each backend (Redis, MongoDB and PostgreSQL from fixtures)."""
    import uuid

    namespace = uuid.uuid4().hex[:10]
    cleanup = None
    if request.param == "memory":
        backend = MemoryBackend()
    elif request.param == "sqlite":
        backend = SQLiteBackend(path=tmp_path / "any.db")
    elif request.param == "redis":
        from sessionhub_redis.backend import RedisBackend, RedisSettings

        redis_url, _ = request.getfixturevalue("servers")
        backend = RedisBackend(RedisSettings(url=redis_url, key_prefix=f"import-{namespace}:"))
    elif request.param == "postgres":
        from sessionhub_postgres.backend import PostgresBackend, PostgresSettings
        from sessionhub_postgres.testing import drop_schema

        url = request.getfixturevalue("postgres_url")
        schema = f"import_{namespace}"
        backend = PostgresBackend(PostgresSettings(url=url, schema=schema))
        cleanup = functools.partial(drop_schema, url, schema)
    else:
        from sessionhub_mongodb.backend import MongoBackend, MongoSettings

        _, mongodb_url = request.getfixturevalue("servers")
        backend = MongoBackend(MongoSettings(url=mongodb_url, database=f"import_{namespace}"))
    svc = service(backend)
    yield svc
    await svc.stop()
    if cleanup is not None:
        await cleanup()


@pytest.mark.asyncio
async def test_imported_records_are_checked_like_an_append(any_service):
    """A bad record is InvalidInput naming line and field, nothing of it is written, and
    keep_going goes on: on every backend, as an append would refuse it."""
    records = {
        "no-time": session_record("no-time"),
        "blank-role": session_record("blank-role"),
        "nul-parent": session_record("nul-parent"),
        "negative-depth": session_record("negative-depth"),
        "fine": session_record("fine"),
    }
    del records["no-time"]["events"][1]["timestamp"]
    records["blank-role"]["events"][0]["role"] = ""
    records["nul-parent"]["session"]["parent_id"] = "\x00" * 300
    records["negative-depth"]["session"]["depth"] = -5
    text = lines(*records.values())
    with pytest.raises(InvalidInput, match=re.escape("dump.jsonl:1: events[1].timestamp")):
        await import_records(any_service, parse_lines(text, "dump.jsonl"))
    report = await import_records(any_service, parse_lines(text, "dump.jsonl"), keep_going=True)
    assert [line.split(":", 3)[:3] for line in report.skipped] == [
        ["Invalid dump.jsonl", "1", " events[1].timestamp"],
        ["Invalid dump.jsonl", "2", " events[0].role"],
        ["Invalid dump.jsonl", "3", " session.parent_id"],
        ["Invalid dump.jsonl", "4", " session.depth"],
    ]
    assert report.sessions == 1
    for session_id in ("no-time", "blank-role", "nul-parent", "negative-depth"):
        assert await any_service.get_session("u", session_id) is None
    cut = datetime.fromisoformat("2024-12-31T00:00:00+00:00")
    fine = await any_service.get_session("u", "fine", after_time=cut)
    assert [event.seq for event in fine.events] == [1, 2]


def cli(*args, cwd, env=None):
    full = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONHUB_")}
    full.update(env or {})
    return subprocess.run(
        [SESSIONHUB, *args], cwd=cwd, env=full, capture_output=True, text=True, timeout=300
    )


def test_cli_export_import_and_session_commands(tmp_path):
    env = {"SESSIONHUB_URL": f"sqlite:///{tmp_path / 'a.db'}"}
    assert cli("demo", "--user", "ada", cwd=tmp_path, env=env).returncode == 0
    listed = json.loads(
        cli("sessions", "list", "--user", "ada", "--json", cwd=tmp_path, env=env).stdout
    )
    [item] = listed["items"]
    shown = cli("sessions", "show", item["id"], "--user", "ada", cwd=tmp_path, env=env)
    assert "get_weather" in shown.stdout
    assert cli("export", "-o", "dump.jsonl", cwd=tmp_path, env=env).returncode == 0
    other = {"SESSIONHUB_URL": f"sqlite:///{tmp_path / 'b.db'}"}
    result = cli("import", "dump.jsonl", cwd=tmp_path, env=other)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("1 sessions, 5 events, 1 user states")
    a = cli("export", cwd=tmp_path, env=env).stdout.splitlines()[1:]
    b = cli("export", cwd=tmp_path, env=other).stdout.splitlines()[1:]
    assert a == b and len(a) == 2
    deleted = cli(
        "sessions", "delete", item["id"], "--user", "ada", "--json", cwd=tmp_path, env=other
    )
    assert json.loads(deleted.stdout) == {"deleted": True}
    (tmp_path / "bad.jsonl").write_text('{"kind": "session"}\n')
    failed = cli("import", "bad.jsonl", cwd=tmp_path, env=other)
    assert failed.returncode == 2 and "bad.jsonl:1" in failed.stderr


def count(db: Path, table: str) -> int:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    finally:
        conn.close()


KILLED_AFTER_50_SESSIONS = """
import os, signal, sys
from sessionhub.cli import main
from sessionhub_sqlite.backend import SQLiteBackend

restore = SQLiteBackend.restore_session
restored = 0

async def restore_then_crash(self, *args):
    global restored
    await restore(self, *args)
    restored += 1
    if restored == 50:
        os.kill(os.getpid(), signal.SIGKILL)  # a crash half-way, right after a commit

SQLiteBackend.restore_session = restore_then_crash
sys.exit(main(sys.argv[1:]))
"""


def test_an_interrupted_migration_finishes_on_rerun(tmp_path):
    source_db, target_db = tmp_path / "source.db", tmp_path / "target.db"

    async def prepare():
        source = service(SQLiteBackend(path=source_db))
        await fill(source, 400)
        await source.stop()

    asyncio.run(prepare())
    args = (
        "migrate",
        "--from",
        f"sqlite:///{source_db}",
        "--to",
        f"sqlite:///{target_db}",
        "--json",
    )
    crashed = subprocess.run(
        [sys.executable, "-c", KILLED_AFTER_50_SESSIONS, *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert count(target_db, "sessions") == 50
    result = cli(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["sessions"] == 400

    async def compare():
        source, target = (
            service(SQLiteBackend(path=source_db)),
            service(SQLiteBackend(path=target_db)),
        )
        try:
            assert await dump(target) == await dump(source)
        finally:
            await source.stop()
            await target.stop()

    asyncio.run(compare())
    assert count(target_db, "events") == count(source_db, "events")


@pytest.fixture(scope="module")
def servers():
    """A Redis and a MongoDB from the plugins' own test helpers (CI=true: they must exist)."""
    from contextlib import ExitStack

    from sessionhub_mongodb.testing import ServerUnavailable as NoMongo
    from sessionhub_mongodb.testing import mongodb_server
    from sessionhub_redis.testing import ServerUnavailable as NoRedis
    from sessionhub_redis.testing import redis_server

    with ExitStack() as stack:
        try:
            yield stack.enter_context(redis_server()), stack.enter_context(mongodb_server())
        except (NoRedis, NoMongo) as exc:
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail(f"CI=true but {exc}", pytrace=False)
            pytest.skip(str(exc))


@pytest.fixture(scope="module")
def postgres_url():
    """A PostgreSQL from the plugin's own test helper (CI=true: it must exist)."""
    from sessionhub_postgres.testing import ServerUnavailable, postgres_server

    try:
        with postgres_server() as url:
            yield url
    except ServerUnavailable as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but {exc}", pytrace=False)
        pytest.skip(str(exc))


@pytest_asyncio.fixture
async def postgres_schema(postgres_url):
    """``(url, schema)``: a schema of the test's own on that server, dropped afterwards."""
    from sessionhub_postgres.testing import drop_schema, scratch_schema

    schema = scratch_schema()
    yield postgres_url, schema
    await drop_schema(postgres_url, schema)


@pytest.mark.asyncio
async def test_round_trip_through_every_backend(tmp_path, servers, postgres_schema):
    """memory -> sqlite -> redis -> mongodb -> postgres -> sqlite: 200 sessions end identical."""
    import uuid

    from sessionhub_mongodb.backend import MongoBackend, MongoSettings
    from sessionhub_postgres.backend import PostgresBackend, PostgresSettings
    from sessionhub_redis.backend import RedisBackend, RedisSettings

    redis_url, mongodb_url = servers
    postgres_url, schema = postgres_schema
    namespace = uuid.uuid4().hex[:10]
    chain = [
        service(MemoryBackend()),
        service(SQLiteBackend(path=tmp_path / "first.db")),
        service(RedisBackend(RedisSettings(url=redis_url, key_prefix=f"roundtrip-{namespace}:"))),
        service(MongoBackend(MongoSettings(url=mongodb_url, database=f"roundtrip_{namespace}"))),
        service(PostgresBackend(PostgresSettings(url=postgres_url, schema=schema))),
        service(SQLiteBackend(path=tmp_path / "last.db")),
    ]
    await fill(chain[0], 200)
    original = await dump(chain[0])
    for source, target in itertools.pairwise(chain):
        report = await migrate(source, target)
        assert report.sessions == 200
    assert await dump(chain[-1]) == original
    for svc in chain:
        await svc.stop()
