"""``SessionHubSession``: AgentScope 1.x's ``SessionBase`` on any sessionhub backend.

A save stores each state module's ``state_dict()`` in the sessionhub session's
state under ``snapshot:<name>``: the layout ``SessionHistoryService.save_state``
writes and ``sessionhub import --format agentscope`` produces from ``JSONSession``
files, so an imported session loads here unchanged. The whole snapshot goes in
one atomic state write, so concurrent saves never mix: the last one applied wins.
"""

from __future__ import annotations

from typing import Any

from agentscope.module import StateModule
from agentscope.session import SessionBase

from sessionhub import InvalidInput, SessionExists, SessionHistoryService, SessionNotFound
from sessionhub_agentscope._store import ServiceStore

__all__ = ["SessionHubSession", "SessionStateNotFound", "DEFAULT_USER_ID", "SNAPSHOT_PREFIX"]

DEFAULT_USER_ID = "default"
"""The sessionhub user of a save or load with AgentScope's default ``user_id=""``."""

SNAPSHOT_PREFIX = "snapshot:"
"""Session state keys holding a module's ``state_dict()``: ``snapshot:<module name>``."""


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
    Module names must be non-empty; each snapshot must be JSON (as for
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
        Modules saved before but not named now are dropped, as ``JSONSession``
        rewrites its file.
        """
        service = self._open()
        user = _user(user_id)
        snapshot = {
            SNAPSHOT_PREFIX + _module_name(name): module.state_dict()
            for name, module in state_modules_mapping.items()
        }
        stale = await _stale_snapshot_keys(service, user, session_id, snapshot)
        delta: dict[str, Any] = {**dict.fromkeys(stale), **snapshot}
        try:
            await service.update_session(user, session_id, state=delta)
        except SessionNotFound:
            try:
                await service.create_session(user, session_id, state=snapshot)
            except SessionExists:  # a concurrent save created it first: write over it
                await service.update_session(user, session_id, state=delta)

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
        for name, module in state_modules_mapping.items():
            snapshot = session.state.get(SNAPSHOT_PREFIX + name)
            if snapshot is not None:
                module.load_state_dict(snapshot)


async def _stale_snapshot_keys(
    service: SessionHistoryService, user_id: str, session_id: str, snapshot: dict[str, Any]
) -> list[str]:
    """The snapshot keys of an earlier save that this one does not write."""
    session = await service.get_session(user_id, session_id, last_n=0)
    if session is None:
        return []
    return [k for k in session.state if k.startswith(SNAPSHOT_PREFIX) and k not in snapshot]


def _user(user_id: str) -> str:
    if not isinstance(user_id, str):
        raise InvalidInput("user_id", f"must be a string, got {type(user_id).__name__}")
    return user_id or DEFAULT_USER_ID


def _module_name(name: str) -> str:
    if not name:
        raise InvalidInput("state_modules_mapping", "a state module needs a non-empty name")
    return name
