"""sessionhub for AgentScope, 1.x and 2.x (whichever is installed).

- AgentScope 1.x: ``SessionHubSession``, a ``SessionBase`` like ``JSONSession``:
  ``await session.save_session_state("chat-1", agent=agent)``.
- AgentScope 2.x: ``AgentStateStore``, which saves and loads an agent's
  ``AgentState`` and its ``Msg`` log: ``await store.save_state("alice", agent.state)``.

Each name is imported on first use, so the package imports under either
version; a name of the other version raises ``ImportError`` saying which
AgentScope it needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # each version's modules are type-checked in that version's environment
    from sessionhub_agentscope._agent_state import STATE_PREFIX, AgentStateStore
    from sessionhub_agentscope._messages import MSG_KEY, event_to_msg, msg_to_event_input
    from sessionhub_agentscope._session import (
        DEFAULT_USER_ID,
        MEMORIES_KEY,
        SNAPSHOT_PREFIX,
        STATE_KEY,
        SessionHubSession,
        SessionStateNotFound,
    )

__all__ = [
    # AgentScope 1.x
    "SessionHubSession",
    "SessionStateNotFound",
    "DEFAULT_USER_ID",
    "STATE_KEY",
    "MEMORIES_KEY",
    "SNAPSHOT_PREFIX",
    # AgentScope 2.x
    "AgentStateStore",
    "STATE_PREFIX",
    "MSG_KEY",
    "msg_to_event_input",
    "event_to_msg",
]

_MODULES = {
    "SessionHubSession": "_session",
    "SessionStateNotFound": "_session",
    "DEFAULT_USER_ID": "_session",
    "STATE_KEY": "_session",
    "MEMORIES_KEY": "_session",
    "SNAPSHOT_PREFIX": "_session",
    "AgentStateStore": "_agent_state",
    "STATE_PREFIX": "_agent_state",
    "MSG_KEY": "_messages",
    "msg_to_event_input": "_messages",
    "event_to_msg": "_messages",
}
_NEEDS = {"_session": "1.x", "_agent_state": "2.x", "_messages": "2.x"}


def __getattr__(name: str) -> Any:
    module_name = _MODULES.get(name)
    if module_name is None:
        raise AttributeError(f"module 'sessionhub_agentscope' has no attribute {name!r}")
    try:
        module = importlib.import_module(f"sessionhub_agentscope.{module_name}")
    except ImportError as exc:
        needed = _NEEDS[module_name]
        raise ImportError(
            f"sessionhub_agentscope.{name} needs AgentScope {needed} ({_installed()}); "
            + (
                'pip install "sessionhub-agentscope[agentscope1]", or on 2.x use AgentStateStore'
                if needed == "1.x"
                else 'pip install "sessionhub-agentscope[agentscope2]", or on 1.x use '
                "SessionHubSession"
            )
        ) from exc
    return getattr(module, name)


def _installed() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"installed: agentscope {version('agentscope')}"
    except PackageNotFoundError:
        return "agentscope is not installed"
