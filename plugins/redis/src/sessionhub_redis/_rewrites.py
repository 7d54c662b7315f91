"""The primitives that rewrite a session's history rather than add to it: pop, replace, restore.

``HistoryRewrites`` is a base class of :class:`~sessionhub_redis.RedisBackend`;
each primitive is one script on the session's slot (POP, REPLACE, RESTORE in
:mod:`._scripts`), so it is atomic on a single node and on Redis Cluster alike.

Seqs are never reused, so a pop leaves the stored seqs short of ``last_seq``
and a restore may bring seqs with gaps. A session hash carries ``gap`` while
its stored seqs may not be the run ending at ``last_seq``: reads and appends
then find an event's list position by counting ids in the id index (whose
scores are the seqs, one entry per stored event) instead of computing it from
the seq. A replace numbers its events after ``last_seq``, which closes the gap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sessionhub import (
    AppendResult,
    ConflictError,
    Event,
    Expiry,
    ReplaceRequest,
    Session,
    SessionKey,
    SessionNotFound,
)
from sessionhub.backend_tools import check_restorable, event_from_json, event_to_json, to_micros
from sessionhub_redis import _codec
from sessionhub_redis._keys import escape
from sessionhub_redis._protocol import (
    POP,
    REPLACE,
    RESTORE,
    PopArgs,
    ReplaceArgs,
    ReplacedEvent,
    RestoreArgs,
    RestoredEvent,
    or_blank,
)
from sessionhub_redis._replies import (
    MovedOn,
    decode_pop,
    decode_replace,
)

if TYPE_CHECKING:
    from sessionhub_redis._keys import KeyLayout
    from sessionhub_redis._topology import Topology

__all__ = ["HistoryRewrites", "moved_on"]


def moved_on(key: SessionKey, expected: int, last_seq: int) -> ConflictError:
    """The error of a compare and set whose session moved on: it names both seqs."""
    return ConflictError(
        f"session {key.session_id!r} of user {key.user_id!r} moved on: expected last_seq "
        f"{expected}, it is {last_seq}. Re-read it and retry."
    )


class HistoryRewrites:
    """Pop, replace and restore; a base of ``RedisBackend``, which provides the rest."""

    keys: KeyLayout

    def _open(self) -> Topology:
        raise NotImplementedError

    def _key_fields(self, key: SessionKey) -> dict[str, Any]:
        raise NotImplementedError

    def _write_fields(self, key: SessionKey, expiry: Expiry) -> dict[str, Any]:
        """The fields of :class:`SessionWriteArgs` for a write to ``key`` at ``expiry.now``."""
        exp, ttl = _codec.expiry(expiry.session, expiry.now)
        return {
            **self._key_fields(key),
            "app_sessions": self._open().app_index_key(key.app_name),
            "now": to_micros(expiry.now),
            "exp": exp,
            "ttl": ttl,
            "base": self.keys.user(key.app_name, key.user_id).base,
            "session_id": key.session_id,
        }

    async def pop_event(self, key: SessionKey, expiry: Expiry) -> Event | None:
        """Remove the newest event in one script; ``last_seq`` stays."""
        args = PopArgs(**self._write_fields(key, expiry))
        topology = self._open()
        reply = decode_pop(await topology.run(POP, args))
        if reply is None:
            raise SessionNotFound(key.app_name, key.user_id, key.session_id)
        if reply.event is not None:
            await topology.app_index_after(_parts(key), to_micros(expiry.now))
        return None if reply.event is None else event_from_json(reply.event)

    async def replace_events(self, request: ReplaceRequest) -> AppendResult:
        """Swap every event for ``request.events`` in one script, after the expectation check."""
        key, expiry = request.key, request.expiry
        expected = request.expected_last_seq
        args = ReplaceArgs(
            **self._write_fields(key, expiry),
            expected_last_seq=or_blank(expected),
            event_limit=or_blank(request.event_limit),
            new_events=[
                ReplacedEvent(
                    id=event.id,
                    json=_codec.event_json(event),
                    time=_codec.time_key(event.timestamp or expiry.now),
                )
                for event in request.events
            ],
        )
        topology = self._open()
        reply = decode_replace(await topology.run(REPLACE, args))
        if reply is None:
            raise SessionNotFound(key.app_name, key.user_id, key.session_id)
        if isinstance(reply, MovedOn):
            raise moved_on(key, expected or 0, reply.last_seq)
        await topology.app_index_after(_parts(key), to_micros(expiry.now))
        first = reply.last_seq - len(request.events) + 1
        for seq, event in enumerate(request.events, start=first):
            event.seq = seq
        return AppendResult(
            events=request.events,
            last_seq=reply.last_seq,
            event_count=reply.event_count,
            updated_at=expiry.now,
            expires_at=expiry.session,
        )

    async def restore_session(self, session: Session, events: list[Event], expiry: Expiry) -> None:
        """Replace the session with exactly this content, in one script.

        Seqs may have gaps (events popped before an export): such a session is
        stored with ``gap`` set, and read by counting ids as after a pop.
        """
        check_restorable(session, events)
        topology = self._open()
        key = SessionKey(session.app_name, session.user_id, session.id)
        fields = _codec.session_fields(session, last_seq=session.last_seq, count=len(events))
        fields += ["ct", ""]
        times = [_codec.time_key(event.timestamp or session.updated_at) for event in events]
        if times:
            fields += ["tnew", times[-1]]
        if times != sorted(times):
            fields += ["tuno", 1]
        first = session.last_seq - len(events) + 1
        if [event.seq for event in events] != list(range(first, session.last_seq + 1)):
            fields += ["gap", 1]
        exp, ttl = _codec.expiry(session.expires_at, expiry.now)
        await topology.app_index_before(_parts(key), to_micros(session.updated_at), restored=True)
        args = RestoreArgs(
            **self._key_fields(key),
            app_users=await topology.app_users_key(session.app_name, session.user_id),
            app_sessions=topology.app_index_key(session.app_name),
            apps=await topology.apps_key(session.app_name),
            now=to_micros(expiry.now),
            exp=exp,
            ttl=ttl,
            updated_at=to_micros(session.updated_at),
            base=self.keys.user(key.app_name, key.user_id).base,
            session_id=session.id,
            parent_escaped=escape(session.parent_id) if session.parent_id is not None else "",
            fields=fields,
            restored_events=[
                RestoredEvent(id=event.id, seq=event.seq, time=time, json=event_to_json(event))
                for event, time in zip(events, times, strict=True)
            ],
            user_id=session.user_id,
            app_name=session.app_name,
        )
        await topology.run(RESTORE, args)


def _parts(key: SessionKey) -> tuple[str, str, str]:
    return key.app_name, key.user_id, key.session_id
