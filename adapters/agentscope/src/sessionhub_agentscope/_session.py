"""``SessionHubSession``: AgentScope 1.x's ``SessionBase`` on any sessionhub backend.

A save stores what ``JSONSession`` writes to its file, ``{module name:
state_dict()}`` as JSON text, in one session state value (``STATE_KEY``): one
atomic write that replaces the whole snapshot, so concurrent saves never mix
and the last one applied wins. Kept as text, the snapshot is stored and read
back without sessionhub walking every message in it (a 5,000-message memory
saves several times faster than as a nested value). Sessions that hold
per-module ``snapshot:<name>`` values instead (``sessionhub import --format
agentscope``, ``SessionHistoryService.save_state``) load too.
"""

from __future__ import annotations

import json
from typing import Any

from agentscope.module import StateModule
from agentscope.session import SessionBase

from sessionhub import InvalidInput, SessionNotFound
from sessionhub_agentscope._store import ServiceStore, write_state

__all__ = [
    "SessionHubSession",
    "SessionStateNotFound",
    "DEFAULT_USER_ID",
    "STATE_KEY",
    "SNAPSHOT_PREFIX",
]

DEFAULT_USER_ID = "default"
"""The sessionhub user of a save or load with AgentScope's default ``user_id=""``."""

STATE_KEY = "agentscope_session"
"""The session state key holding the saved modules' states as JSON text."""

SNAPSHOT_PREFIX = "snapshot:"
"""Per-module snapshot keys (imported files, ``save_state``), read without ``STATE_KEY``."""


class SessionStateNotFound(SessionNotFound, ValueError):
    """``load_session_state(..., allow_not_exist=False)`` found no saved session.

    A ``ValueError``, as ``JSONSession`` and ``RedisSession`` raise, and a
    sessionhub ``SessionNotFound``.
    """

    def __str__(self) -> str:
        return (
            f"Failed to load session state: no session {self.session_id!r} for user "
            f"{self.user_id!r} in app {self.app_name!r} (save_session_state creates it)"
        )


class SessionHubSession(ServiceStore, SessionBase):
    """An AgentScope 1.x session whose snapshots live in a sessionhub backend.

    A drop-in for ``JSONSession`` / ``RedisSession``: one object serves every
    session id, ``SessionHubSession(url="redis://localhost:6379/0")`` stores in
    that backend (``close()`` closes its connections), ``SessionHubSession(service)``
    uses a service you own. With neither, the configured store
    (``SESSIONHUB_*`` variables, ``sessionhub.toml``; default SQLite in the
    working directory).

    AgentScope's ``user_id=""`` (its default) is sessionhub's ``"default"`` user.
    Module names must be non-empty; each ``state_dict()`` must be JSON (as for
    ``JSONSession``), else ``InvalidInput`` names the module and nothing is saved.
    """

    async def save_session_state(
        self,
        session_id: str,
        user_id: str = "",
        **state_modules_mapping: StateModule,
    ) -> None:
        """Save each module's ``state_dict()`` as the session's snapshot, replacing the last.

        One atomic state write (the session is created on first save): a
        concurrent load sees the previous snapshot or this one, never a mix.
        Modules saved before but not named now are gone, as ``JSONSession``
        rewrites its file.
        """
        service = self._open()
        user = _user(user_id)
        entries = [  # what JSONSession writes: json.dumps of {name: state_dict()}
            f"{json.dumps(_module_name(name), ensure_ascii=False)}: {_state_json(name, module)}"
            for name, module in state_modules_mapping.items()
        ]
        snapshot = "{" + ", ".join(entries) + "}"
        await write_state(service, user, session_id, {STATE_KEY: snapshot})

    async def load_session_state(
        self,
        session_id: str,
        user_id: str = "",
        allow_not_exist: bool = True,
        **state_modules_mapping: StateModule,
    ) -> None:
        """Load each named module from the saved snapshot with ``load_state_dict``.

        A module with nothing saved under its name is left as it is. A missing
        session is skipped when ``allow_not_exist`` (the default), else
        ``SessionStateNotFound`` (a ``ValueError``, as ``JSONSession`` raises).
        """
        service = self._open()
        user = _user(user_id)
        session = await service.get_session(user, session_id, last_n=0)
        if session is None:
            if allow_not_exist:
                return
            raise SessionStateNotFound(service.app_name, user, session_id)
        states = _saved_states(session.state)
        for name, module in state_modules_mapping.items():
            if name in states:
                module.load_state_dict(states[name])


def _saved_states(state: dict[str, Any]) -> dict[str, Any]:
    """The module states a session holds: this adapter's snapshot, else per-module ones."""
    snapshot = state.get(STATE_KEY)
    if isinstance(snapshot, str):
        loaded: dict[str, Any] = json.loads(snapshot)
        return loaded
    return {
        key.removeprefix(SNAPSHOT_PREFIX): value
        for key, value in state.items()
        if key.startswith(SNAPSHOT_PREFIX)
    }


def _state_json(name: str, module: StateModule) -> str:
    try:
        return json.dumps(module.state_dict(), ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(
            f"{name}.state_dict()", f"must be JSON to be saved, as for JSONSession: {exc}"
        ) from exc


def _user(user_id: str) -> str:
    if not isinstance(user_id, str):
        raise InvalidInput("user_id", f"must be a string, got {type(user_id).__name__}")
    return user_id or DEFAULT_USER_ID


def _module_name(name: str) -> str:
    if not name:
        raise InvalidInput("state_modules_mapping", "a state module needs a non-empty name")
    return name
