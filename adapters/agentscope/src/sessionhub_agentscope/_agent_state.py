"""``AgentStateStore``: an AgentScope 2.x agent's state and message history in sessionhub.

AgentScope 2.x has no session module: an agent holds a pydantic ``AgentState``
(its context, summary, reply, permission, tool and task contexts) and an app
keeps a message log beside it. Here one sessionhub session (keyed by the user
and the state's ``session_id``) holds both: the state as one session state
value under ``agent_state:<name>`` (its JSON text, which sessionhub stores and
returns without walking every message of the context), the log as events, one
per ``Msg``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from agentscope.message import Msg
from agentscope.state import AgentState

from sessionhub import InvalidInput, SessionExists, SessionNotFound
from sessionhub_agentscope._messages import event_to_msg, msg_to_event_input
from sessionhub_agentscope._store import ServiceStore, write_state

__all__ = ["AgentStateStore", "STATE_PREFIX"]

STATE_PREFIX = "agent_state:"
"""Session state keys holding an ``AgentState`` as JSON text: ``agent_state:<name>``."""


class AgentStateStore(ServiceStore):
    """AgentScope 2.x agent states and message logs on any sessionhub backend.

    ``AgentStateStore(url="sqlite:///agents.db")`` builds its own service
    (``close()`` closes it); ``AgentStateStore(service)`` uses yours. One store
    serves every user and session. The sessionhub session id is the state's
    ``session_id``; ``name`` (default ``"agent"``) tells several agents of one
    session apart.
    """

    async def save_state(self, user_id: str, state: AgentState, *, name: str = "agent") -> None:
        """Store ``state`` (whole) as the session's ``name`` state, replacing the last one.

        One atomic state write; the session ``state.session_id`` is created on
        first use. Concurrent saves never mix: the last one applied wins.
        """
        if not isinstance(state, AgentState):
            raise TypeError(f"expected an agentscope.state.AgentState, got {type(state).__name__}")
        delta = {STATE_PREFIX + _name(name): state.model_dump_json()}
        await write_state(self._open(), user_id, state.session_id, delta)

    async def load_state(
        self, user_id: str, session_id: str, *, name: str = "agent"
    ) -> AgentState | None:
        """The ``AgentState`` last saved for the session, equal to it; ``None`` if none was."""
        session = await self._open().get_session(user_id, session_id, last_n=0)
        if session is None:
            return None
        stored = session.state.get(STATE_PREFIX + _name(name))
        if stored is None:
            return None
        if isinstance(stored, str):
            return AgentState.model_validate_json(stored)
        return AgentState.model_validate(stored)  # written as a JSON object by another tool

    async def append_messages(
        self, user_id: str, session_id: str, messages: Msg | Sequence[Msg]
    ) -> None:
        """Add messages to the session's log in one atomic append (session created if missing).

        Each message's ``id`` is its event's id: appending a message again is a
        no-op, and a changed message under a stored id raises ``ConflictError``
        (the log is append-only; ``replace_messages`` rewrites it).
        """
        batch = [
            msg_to_event_input(m) for m in ([messages] if isinstance(messages, Msg) else messages)
        ]
        if not batch:
            return
        service = self._open()
        try:
            await service.append((user_id, session_id), batch)
        except SessionNotFound:
            with contextlib.suppress(SessionExists):  # a concurrent writer created it first
                await service.create_session(user_id, session_id)
            await service.append((user_id, session_id), batch)

    async def replace_messages(
        self, user_id: str, session_id: str, messages: Sequence[Msg]
    ) -> None:
        """Swap the session's whole log for ``messages`` atomically (the state stays).

        Needs a backend with the ``replace_events`` capability (every first-party one).
        """
        batch = [msg_to_event_input(m) for m in messages]
        service = self._open()
        with contextlib.suppress(SessionExists):
            await service.create_session(user_id, session_id)
        await service.replace_events(user_id, session_id, batch)

    async def load_messages(
        self, user_id: str, session_id: str, *, last_n: int | None = None
    ) -> list[Msg]:
        """The session's messages, oldest first: all, or only the newest ``last_n`` (read alone).

        Empty for a session never written.
        """
        session = await self._open().get_session(user_id, session_id, last_n=last_n)
        return [] if session is None else [event_to_msg(event) for event in session.events]

    async def delete(self, user_id: str, session_id: str) -> bool:
        """Delete the session: its states and messages. Idempotent; ``False`` if it was absent."""
        return await self._open().delete_session(user_id, session_id)


def _name(name: Any) -> str:
    if not isinstance(name, str) or not name:
        raise InvalidInput("name", "must be a non-empty string naming the agent")
    return name
