"""Writers killed mid-append (concurrent processes: the suite's multi_process test)."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from sessionhub import Session, SessionKey, StateDeltas
from sessionhub.backend import EventWindow, Expiry
from sessionhub_sqlite.backend import SQLiteBackend

pytestmark = pytest.mark.asyncio

WRITER = Path(__file__).parent / "writer_process.py"
KEY = SessionKey("default", "writer", "shared")


def _writer(*args: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WRITER), *map(str, args)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def _create_session(path: Path) -> None:
    now = datetime.now(timezone.utc)
    session = Session(
        id=KEY.session_id,
        app_name=KEY.app_name,
        user_id=KEY.user_id,
        root_id=KEY.session_id,
        created_at=now,
        updated_at=now,
    )
    async with SQLiteBackend(path=path) as backend:
        await backend.create_session(session, StateDeltas(), Expiry(now=now))


async def _read_all(path: Path):
    async with SQLiteBackend(path=path) as backend:
        stored = await backend.get_session(
            KEY, EventWindow(), Expiry(now=datetime.now(timezone.utc)), refresh=False
        )
    assert stored is not None
    return stored.session


def _integrity(path: Path) -> list[tuple[str]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("PRAGMA integrity_check").fetchall()
    finally:
        conn.close()


async def test_killed_writer_loses_no_acknowledged_event(db_path):
    """SIGKILL a writer at a random moment, 20 times: every acknowledged append is intact."""
    await _create_session(db_path)
    chance = random.Random(os.environ.get("SESSIONHUB_TEST_SEED", "sqlite-crash"))
    acknowledged = 0
    for _ in range(20):
        writer = _writer("forever", db_path, KEY.session_id)
        assert writer.stdout is not None and writer.stderr is not None
        try:
            for _ in range(chance.randint(1, 60)):
                line = writer.stdout.readline()
                assert line, writer.stderr.read()
                acknowledged = int(line)
        finally:
            writer.send_signal(signal.SIGKILL)
            # Read what is left through the same buffered reader: lines it has
            # already pulled from the pipe are acknowledgements too.
            rest = writer.stdout.read()
            writer.communicate()
        acknowledged = max([acknowledged, *map(int, rest.split())])
        assert writer.returncode == -signal.SIGKILL

        session = await _read_all(db_path)
        # The append in flight at the kill may have committed, unacknowledged.
        assert acknowledged <= session.last_seq <= acknowledged + 1
        acknowledged = session.last_seq
        assert [e.seq for e in session.events] == list(range(1, session.last_seq + 1))
        assert [e.id for e in session.events] == [f"e{e.seq}" for e in session.events]
        assert all(e.state_delta == {"counter": e.seq} for e in session.events)
        assert session.state == {"counter": session.last_seq}
        assert session.event_count == session.last_seq
        assert _integrity(db_path) == [("ok",)]
