"""One sessionhub service per storage URL, shared by every session built from that URL.

An agent server makes a ``SessionHubSession`` per conversation; each opening its
own connection pool would exhaust the store. ``SharedServices`` hands out one
``SessionHistoryService`` per (URL, settings) and counts its users: the last
``release`` stops it, closing the connections.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from sessionhub import SessionHistoryService, SessionHubSettings

__all__ = ["SharedServices", "shared_services"]

_Key = tuple[str | None, int | None, str]


class SharedServices:
    """Services keyed by URL and settings, counted by the sessions that use them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._services: dict[_Key, tuple[SessionHistoryService, int]] = {}

    def acquire(
        self,
        url: str | None,
        options: dict[str, Any],
        settings: SessionHubSettings | None = None,
    ) -> SessionHistoryService:
        """The service for ``url``, ``options`` and ``settings`` (built on first use).

        ``release`` it when done. With neither ``url`` nor ``settings``, the configured
        store (``SESSIONHUB_*`` variables, ``sessionhub.toml``, defaults). Sessions built
        from the same ``SessionHubSettings`` object share its service.
        """
        key = (
            url,
            None if settings is None else id(settings),  # alive while its service is cached
            json.dumps(options, sort_keys=True, default=str),
        )
        with self._lock:
            found = self._services.get(key)
            if found is None:
                service = SessionHistoryService(url=url, settings=settings, **options)
                self._services[key] = (service, 1)
                return service
            service, users = found
            self._services[key] = (service, users + 1)
            return service

    async def release(self, service: SessionHistoryService) -> None:
        """One user fewer; the last one stops the service and forgets it."""
        with self._lock:
            key = next((k for k, (s, _) in self._services.items() if s is service), None)
            if key is None:
                return
            _, users = self._services[key]
            if users > 1:
                self._services[key] = (service, users - 1)
                return
            del self._services[key]
        await service.stop()

    def __len__(self) -> int:
        return len(self._services)


shared_services = SharedServices()
"""The process-wide cache ``SessionHubSession(url=...)`` draws from."""
