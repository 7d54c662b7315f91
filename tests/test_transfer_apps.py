"""Export, import and migrate across apps; the apps command; listing every user's sessions."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sessionhub import Backend, SessionHistoryService, SessionHubSettings, get_plugin_manager
from sessionhub.transfer import count_sessions, export_records, import_records, migrate, read_export
from sessionhub_memory.backend import MemoryBackend
from sessionhub_sqlite.backend import SQLiteBackend

SESSIONHUB = str(Path(sys.executable).with_name("sessionhub"))


def service(backend: Backend, app: str = "default") -> SessionHistoryService:
    return SessionHistoryService(
        backend,
        settings=SessionHubSettings.isolated(app_name=app),
        plugin_manager=get_plugin_manager(entry_points=False),
    )


def cli(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONHUB_")}
    full.update(env)
    return subprocess.run(
        [SESSIONHUB, *args], cwd=cwd, env=full, capture_output=True, text=True, timeout=120
    )


async def two_apps(svc: SessionHistoryService) -> None:
    """Data under "default" and under "elsewhere": sessions, user state, app state."""
    await svc.create_session("alice", "a1", state={"user:name": "Alice"})
    other = svc.for_app("elsewhere")
    await other.update_app_state({"plan": "pro"})
    await other.create_session("bob", "b1")
    await other.append(("bob", "b1"), ["one", "two"])


class WithoutAppListing(MemoryBackend):
    list_apps = Backend.list_apps


@pytest.mark.asyncio
async def test_migrate_copies_every_app_into_the_same_app_by_default():
    source, target = service(MemoryBackend()), service(MemoryBackend(), app="unrelated")
    await two_apps(source)
    assert await count_sessions(source) == (2, 2)
    report = await migrate(source, target)
    assert (report.sessions, report.events, report.app_states, report.user_states) == (2, 2, 1, 1)
    assert report.apps == ["default", "elsewhere"]
    copied = target.for_app("elsewhere")
    got = await copied.get_session("bob", "b1")
    assert got is not None and [e.text for e in got.events] == ["one", "two"]
    assert await copied.get_app_state() == {"plan": "pro"}
    assert await target.for_app("default").get_user_state("alice") == {"name": "Alice"}
    assert (await target.list_sessions(None)).items == []  # nothing went to its own app

    narrowed = await migrate(source, service(MemoryBackend()), apps=["elsewhere"])
    assert (narrowed.sessions, narrowed.apps) == (1, ["elsewhere"])
    await source.stop()
    await target.stop()


@pytest.mark.asyncio
async def test_without_list_apps_only_the_configured_app_is_copied_with_a_note():
    source = service(WithoutAppListing())
    await two_apps(source)
    notes: list[str] = []
    records = [r async for r in export_records(source, note=notes.append)]
    assert {r["app_name"] for r in records if r["kind"] == "session"} == {"default"}
    [note] = notes
    assert "'list_apps' capability" in note and "--app" in note and "\n" not in note
    assert await count_sessions(source, apps=["elsewhere"]) == (1, 2)


@pytest.mark.asyncio
async def test_an_export_records_each_app_and_an_old_export_lands_in_the_importing_app(tmp_path):
    source = service(MemoryBackend())
    await two_apps(source)
    records = [r async for r in export_records(source)]
    assert records[0]["version"] == 2 and records[0]["apps"] == ["default", "elsewhere"]
    assert all(r["app_name"] == r.get("session", r)["app_name"] for r in records[1:])
    path = tmp_path / "v2.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    target = service(MemoryBackend(), app="importer")
    await import_records(target, read_export(path))
    assert [s.id for s in (await target.for_app("elsewhere").list_sessions(None)).items] == ["b1"]

    old = [{**records[0], "version": 1}] + [
        {k: v for k, v in r.items() if k != "app_name"} for r in records[1:]
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in old))
    version_1 = service(MemoryBackend(), app="importer")
    report = await import_records(version_1, read_export(path))
    assert report.sessions == 2
    listed = await version_1.list_sessions(None)
    assert sorted((s.user_id, s.app_name) for s in listed.items) == [
        ("alice", "importer"),
        ("bob", "importer"),
    ]


def test_cli_apps_export_migrate_and_listing_every_user(tmp_path):
    db = tmp_path / "source.db"

    async def prepare() -> None:
        async with service(SQLiteBackend(path=db), app="default") as svc:
            await two_apps(svc)
            await svc.create_session("carol", "c1", metadata={"title": "third"})

    asyncio.run(prepare())
    env = {"SESSIONHUB_URL": f"sqlite:///{db}"}
    apps = cli("apps", cwd=tmp_path, env=env)
    assert (apps.returncode, apps.stdout) == (0, "default\nelsewhere\n")

    listed = cli("sessions", "list", "--limit", "1", cwd=tmp_path, env=env)
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()[:2]
    assert header.split()[:2] == ["USER", "SESSION"] and row.split()[:2] == ["carol", "c1"]
    assert "more: sessionhub sessions list --cursor " in listed.stdout
    cursor = listed.stdout.rsplit("--cursor ", 1)[1].strip()
    rest = cli("sessions", "list", "--cursor", cursor, "--json", cwd=tmp_path, env=env)
    assert [i["user_id"] for i in json.loads(rest.stdout)["items"]] == ["alice"]
    mixed = cli("sessions", "list", "--user", "alice", "--cursor", cursor, cwd=tmp_path, env=env)
    assert mixed.returncode == 2 and "list_sessions(None)" in mixed.stderr
    children = cli("sessions", "list", "--parent", "a1", cwd=tmp_path, env=env)
    assert children.returncode == 2 and children.stderr.count("\n") == 1

    target = f"sqlite:///{tmp_path / 'target.db'}"
    moved = cli(
        "migrate", "--from", env["SESSIONHUB_URL"], "--to", target, "--json", cwd=tmp_path, env={}
    )
    assert moved.returncode == 0, moved.stderr
    assert json.loads(moved.stdout)["sessions"] == 3
    assert json.loads(moved.stdout)["apps"] == ["default", "elsewhere"]
    copied = cli("apps", cwd=tmp_path, env={"SESSIONHUB_URL": target})
    assert copied.stdout == "default\nelsewhere\n"

    nothing = cli("export", "--app", "typo", "-o", "out.jsonl", cwd=tmp_path, env=env)
    assert nothing.returncode == 0
    assert nothing.stderr == (
        "note: 0 sessions found in app(s): typo; the store holds apps: default, elsewhere\n"
    )
    empty = cli(
        "migrate", "--from", env["SESSIONHUB_URL"], "--to", "memory://", "--app", "typo",
        cwd=tmp_path, env={},
    )  # fmt: skip
    assert "0 sessions found in app(s): typo; the store holds apps: default, elsewhere" in (
        empty.stderr
    )
