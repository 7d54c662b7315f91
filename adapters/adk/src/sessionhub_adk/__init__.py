"""sessionhub as a Google ADK session service.

``SessionHubSessionService`` is an ADK ``BaseSessionService`` over any
sessionhub backend; ``register()`` adds ``sessionhub+<scheme>://`` URIs to
ADK's service registry, for ``adk web --session_service_uri``.
"""

from __future__ import annotations

from sessionhub_adk._events import ADK_EVENT_KEY, to_adk_event, to_sessionhub_event
from sessionhub_adk._registry import register, session_service_schemes
from sessionhub_adk._service import SessionHubSessionService, sessionhub_url

__all__ = [
    "SessionHubSessionService",
    "register",
    "session_service_schemes",
    "sessionhub_url",
    "to_sessionhub_event",
    "to_adk_event",
    "ADK_EVENT_KEY",
]
