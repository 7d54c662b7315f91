"""Registering ``sessionhub+<scheme>://`` URIs with ADK's service registry.

ADK's CLI (``adk web``, ``adk api_server``, ``adk run``) builds its session
service from ``--session_service_uri`` through
``google.adk.cli.service_registry``; it loads ``services.py`` from the agents
directory before doing so, and that file calls ``register()``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sessionhub import BackendRegistry, get_plugin_manager

if TYPE_CHECKING:
    from google.adk.cli.service_registry import ServiceRegistry

    from sessionhub_adk._service import SessionHubSessionService

__all__ = ["register", "session_service_schemes"]


def session_service_schemes() -> list[str]:
    """``sessionhub`` and ``sessionhub+<s>`` for every URL scheme of the installed backends."""
    registry = BackendRegistry.from_plugin_manager(get_plugin_manager())
    schemes = {scheme for info in registry.infos() for scheme in info.url_schemes}
    return ["sessionhub", *(f"sessionhub+{scheme}" for scheme in sorted(schemes))]


def _factory(uri: str, **kwargs: Any) -> SessionHubSessionService:
    from sessionhub_adk._service import SessionHubSessionService

    return SessionHubSessionService(uri=uri, **kwargs)


def register(registry: ServiceRegistry | None = None) -> list[str]:
    """Add the sessionhub session-service URI schemes to ADK's registry; return them.

    With no argument, ADK's global registry (what ``adk web`` uses).
    """
    if registry is None:
        from google.adk.cli.service_registry import get_service_registry

        registry = get_service_registry()
    schemes = session_service_schemes()
    for scheme in schemes:
        registry.register_session_service(scheme, _factory)
    return schemes
