"""Writers killed mid-append (concurrent processes: the suite's multi_process test)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from sessionhub import Scope, Session, SessionKey, StateDeltas
from sessionhub.backend import EventWindow, Expiry
from sessionhub_mongodb.backend import MongoBackend

pytestmark = pytest.mark.asyncio

WRITER = Path(__file__).parent / "writer_process.py"
KEY = SessionKey("default", "writer", "shared")


def _writer(target, *args: object) -> subprocess.Popen[str]:
    mode, *rest = args
    return subprocess.Popen(
        [
            sys.executable,
            str(WRITER),
            str(mode),
            target.url,
            target.database,
            target.transactions,
            *map(str, rest),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def _create_session(target) -> None:
    now = datetime.now(timezone.utc)
    session = Session(
        id=KEY.session_id,
        app_name=KEY.app_name,
        user_id=KEY.user_id,
        root_id=KEY.session_id,
        created_at=now,
        updated_at=now,
    )
    async with MongoBackend(target.settings()) as backend:
        await backend.create_session(session, StateDeltas(), Expiry(now=now))


async def _read_all(target):
    async with MongoBackend(target.settings()) as backend:
        expiry = Expiry(now=datetime.now(timezone.utc))
        stored = await backend.get_session(KEY, EventWindow(), expiry, refresh=False)
        user_state = await backend.get_state(
            Scope.USER, KEY.app_name, KEY.user_id, expiry, refresh=False
        )
    assert stored is not None
    return stored.session, user_state


async def test_killed_writer_loses_no_acknowledged_event(target):
    """SIGKILL a writer at a random moment, again and again: every acknowledged append is intact.

    Each event's delta sets the session's and the user's "counter" to its seq.
    The next writer takes over what a killed one left (its lease, its unpublished
    events, its unapplied user-scope delta) and carries on from the last
    published seq.
    """
    await _create_session(target)
    chance = random.Random(os.environ.get("SESSIONHUB_TEST_SEED", "mongodb-crash"))
    acknowledged = 0
    # With transactions, the server aborts a killed writer's transaction only
    # after transactionLifetimeLimitSeconds: a few rounds show the recovery.
    for _ in range(3 if target.scheme == "transactions" else 8):
        writer = _writer(target, "forever", KEY.session_id)
        assert writer.stdout is not None
        try:
            for _ in range(chance.randint(1, 40)):
                line = writer.stdout.readline()
                assert line, writer.stderr.read() if writer.stderr else ""
                acknowledged = int(line)
        finally:
            writer.send_signal(signal.SIGKILL)
            out, _ = writer.communicate()
        acknowledged = max([acknowledged, *map(int, out.split())])
        assert writer.returncode == -signal.SIGKILL

        session, user_state = await _read_all(target)
        # The append in flight at the kill may have been published, unacknowledged.
        assert acknowledged <= session.last_seq <= acknowledged + 1
        acknowledged = session.last_seq
        assert [e.seq for e in session.events] == list(range(1, session.last_seq + 1))
        assert [e.id for e in session.events] == [f"e{e.seq}" for e in session.events]
        assert session.state == {"counter": session.last_seq}
        assert session.event_count == session.last_seq
        # Without transactions, a writer killed between publishing its events and
        # applying their user-scope delta leaves that delta to the next writer.
        assert user_state["counter"] in (session.last_seq, session.last_seq - 1)

    # One more (clean) writer run: whatever a killed writer left is reclaimed.
    writer = _writer(target, "forever", KEY.session_id)
    assert writer.stdout is not None
    try:
        assert writer.stdout.readline()
    finally:
        writer.send_signal(signal.SIGTERM)
        writer.communicate()
    session, user_state = await _read_all(target)
    assert [e.seq for e in session.events] == list(range(1, session.last_seq + 1))
    assert user_state["counter"] >= session.last_seq - 1
