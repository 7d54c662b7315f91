"""What ``save_state`` / ``load_state`` and ``conversation()`` hand to applications.

``StateModule`` is AgentScope's state-module protocol; a snapshot of each
module lives in the session state under ``snapshot:<name>``. ``Conversation``
is the session being worked on inside ``svc.conversation(...)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from sessionhub import _validate
from sessionhub.errors import InvalidInput

if TYPE_CHECKING:
    from sessionhub.models import Event, Session
    from sessionhub.service import EventInput, SessionHistoryService

__all__ = ["StateModule", "Conversation", "SNAPSHOT_PREFIX", "snapshot_delta", "restore_modules"]

SNAPSHOT_PREFIX = "snapshot:"
"""Session state keys holding a module's ``state_dict()`` start with this."""


class StateModule(Protocol):
    """AgentScope's state-module protocol, as used by ``save_state`` / ``load_state``."""

    def state_dict(self) -> dict[str, Any]:
        """Return the module's state (nested modules included) as JSON values."""
        ...

    def load_state_dict(self, state_dict: dict[str, Any], strict: bool = True) -> None:
        """Restore the module from what ``state_dict`` returned."""
        ...


def snapshot_delta(modules: Mapping[str, StateModule]) -> dict[str, Any]:
    """The session state delta that stores each module's ``state_dict()``."""
    if not modules:
        raise InvalidInput(
            "modules", "pass at least one module, e.g. save_state(u, s, agent=agent)"
        )
    delta = {}
    for name, module in modules.items():
        snapshot = module.state_dict()
        _validate.check_mapping(snapshot, f"{name}.state_dict()")
        delta[SNAPSHOT_PREFIX + name] = snapshot
    return delta


def restore_modules(state: Mapping[str, Any], modules: Mapping[str, StateModule]) -> None:
    """Load each module's saved snapshot from ``state``; a module without one is left as it is."""
    for name, module in modules.items():
        snapshot = state.get(SNAPSHOT_PREFIX + name)
        if snapshot is not None:
            module.load_state_dict(snapshot)


class Conversation:
    """A session being worked on: its ``history`` and an ``append`` that keeps it current."""

    def __init__(self, service: SessionHistoryService, session: Session) -> None:
        self.service = service
        """The service the conversation stores into."""
        self.session = session
        """The session, updated in place by ``append``."""

    @property
    def history(self) -> list[Event]:
        """The events loaded or appended so far, oldest first."""
        return self.session.events

    @property
    def state(self) -> dict[str, Any]:
        """The merged state view of the session."""
        return self.session.state

    async def append(self, *events: EventInput) -> list[Event]:
        """Append events (see ``SessionHistoryService.append``) and add them to ``history``."""
        return await self.service.append(self.session, list(events))
