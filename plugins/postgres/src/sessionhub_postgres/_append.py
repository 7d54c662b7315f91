"""An append as the backend sends it, and a batch reusing stored ids compared before it writes.

The usual batch (new ids, no trim, no user or app delta) is one plain statement
(``Statements.append_plain``, or ``append_one`` for one event); any other one call
of the ``append`` function. A batch holding an id stored already makes either
write nothing (they raise ``STORED_IDS``, rolling themselves back); it is sent
again in check mode, which returns the stored events of the batch without
writing. They are compared with the requested ones (``check_retry``:
``ConflictError``, nothing written, if one differs), and the next call writes
the new events, provided the stored ones are still those compared.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Container, Sequence
from typing import Any

from sessionhub import (
    AppendRequest,
    AppendResult,
    ConflictError,
    Event,
    SessionKey,
    SessionNotFound,
)
from sessionhub.backend_tools import check_retry, event_from_json
from sessionhub_postgres._codec import encode_delta, event_columns
from sessionhub_postgres._statements import Statements

__all__ = ["STORED_MET", "VERIFY_ROUNDS", "Send", "append", "moved_on"]

STORED_MET: Any = object()
"""What ``Send`` returns when the statement met a stored id (and so wrote nothing)."""

VERIFY_ROUNDS = 5
"""How often an append compares stored events before giving up: each further round
means another writer popped, replaced or trimmed them in between."""

Send = Callable[[str, tuple[Any, ...]], Awaitable[Any]]
"""Sends a statement with its arguments; returns its row, ``None`` (no row) or ``STORED_MET``."""

_NOT_FOUND, _MOVED_ON, _UNCOMPARED = 1, 2, 3  # the function's r_status besides 0


def moved_on(key: SessionKey, expected: int | None, last_seq: int) -> str:
    """The message of a compare-and-set that found the session moved on."""
    return (
        f"session {key.session_id!r} of user {key.user_id!r} moved on: expected last_seq "
        f"{expected}, it is {last_seq}. Re-read it and retry."
    )


Delta = dict[str, Any]


def _merged_deltas(request: AppendRequest, stored: Container[int]) -> tuple[Delta, Delta, Delta]:
    """The session, user and app deltas of the events written (not at ``stored`` positions).

    Merged in order: a later event's value for a key wins; ``None`` deletes.
    """
    session: Delta = {}
    user: Delta = {}
    app: Delta = {}
    for position, deltas in enumerate(request.deltas, start=1):
        if position not in stored:
            session.update(deltas.session)
            user.update(deltas.user)
            app.update(deltas.app)
    return session, user, app


def _compared(
    events: Sequence[Event], positions: list[int], seqs: list[int], texts: list[str]
) -> dict[int, int]:
    """The stored events' positions in the batch and seqs, each checked equal to the requested one.

    Raises ``ConflictError`` (nothing was written) for one stored with other content.
    """
    for position, text in zip(positions, texts, strict=True):
        check_retry(events[position - 1], event_from_json(text))
    return dict(zip(positions, seqs, strict=True))


async def append(send: Send, sql: Statements, request: AppendRequest) -> AppendResult:
    """Append ``request`` through ``send``: the events as stored, the session's new counters."""
    key, expiry = request.key, request.expiry
    ids, times, texts = event_columns(request.events, expiry.now)
    if request.event_limit is None and not any(d.user or d.app for d in request.deltas):
        session = _merged_deltas(request, ())[0]
        columns: tuple[Any, ...]
        if len(ids) == 1:
            statement, columns = sql.append_one, (ids[0], times[0], texts[0])
        else:
            statement, columns = sql.append_plain, (ids, times, texts)
        row = await send(
            statement,
            (
                *(key.app_name, key.user_id, key.session_id, expiry.now, expiry.session),
                *(request.expected_last_seq, *columns, *encode_delta(session)),
            ),
        )
        if row is not None and row is not STORED_MET:
            last_seq, event_count = row
            for seq, event in enumerate(request.events, start=last_seq - len(ids) + 1):
                event.seq = seq
            return AppendResult(
                events=list(request.events),
                last_seq=last_seq,
                event_count=event_count,
                updated_at=expiry.now,
                expires_at=expiry.session,
            )
        check = True  # absent, expired, moved on, or holding stored ids: the function says
    else:
        check = False
    head: tuple[Any, ...] = (key.app_name, key.user_id, key.session_id, expiry.now)
    head += (expiry.session, expiry.user, expiry.app, ids, times, texts)
    stored: dict[int, int] = {}  # positions (from 1) compared equal -> their seqs
    for _ in range(VERIFY_ROUNDS):
        deltas = _merged_deltas(request, stored)
        row = await send(
            sql.append,
            (
                *head,
                *(part for delta in deltas for part in encode_delta(delta)),
                request.event_limit,
                request.expected_last_seq,
                check,
                list(stored),
                list(stored.values()),
            ),
        )
        check = True
        if row is STORED_MET:
            continue  # stored ids met on the fast path: look them up
        status, last_seq, event_count, updated_at, expires_at, old_pos, old_seq, old_data = row
        if status == _UNCOMPARED:
            stored = _compared(request.events, old_pos, old_seq, old_data)
            continue
        break
    else:
        raise ConflictError(
            f"Session {key.session_id!r} kept changing while this append compared its "
            "stored events; nothing was written. Retry the append."
        )
    if status == _NOT_FOUND:
        raise SessionNotFound(key.app_name, key.user_id, key.session_id)
    if status == _MOVED_ON:
        raise ConflictError(moved_on(key, request.expected_last_seq, last_seq))
    stored_before = {
        pos: (seq, data) for pos, seq, data in zip(old_pos, old_seq, old_data, strict=True)
    }
    next_seq = last_seq - (len(ids) - len(stored_before)) + 1
    events: list[Event] = []
    for position, event in enumerate(request.events, start=1):
        found = stored_before.get(position)
        if found is None:
            event.seq = next_seq
            next_seq += 1
        else:
            event = event_from_json(found[1])
            event.seq = found[0]
        events.append(event)
    return AppendResult(
        events=events,
        last_seq=last_seq,
        event_count=event_count,
        updated_at=updated_at,
        expires_at=expires_at,
    )
