"""The sessionhub service an AgentScope store writes through: passed in, or built and owned.

``SessionHubSession`` (AgentScope 1.x) and ``AgentStateStore`` (2.x) are each one
object for every session of an application, as AgentScope's own ``JSONSession``
and storages are, so each holds one service: the caller's (never stopped here),
or one built from a URL, settings or the configured store, which ``close`` stops.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sessionhub import (
    InvalidInput,
    SessionExists,
    SessionHistoryService,
    SessionHubSettings,
    SessionNotFound,
)

if TYPE_CHECKING:
    from types import TracebackType

    from typing_extensions import Self

__all__ = ["ServiceStore", "write_state"]


class ServiceStore:
    """Holds the service an adapter stores through, and closes it if it built it.

    :param service: A service to store through; the caller starts and stops it.
    :param url: A storage URL selecting the backend (``memory://``, ``sqlite:///path``,
        ``redis://…``, ``mongodb://…``); ignored with ``service``.
    :param settings: Resolved sessionhub settings to build the service from.
    :param app_name: The sessionhub app (default: the service's, from its settings).
    :param options: Further sessionhub settings for the built service
        (``session_ttl="7d"``…), above ``url`` and ``settings``.
    """

    def __init__(
        self,
        service: SessionHistoryService | None = None,
        *,
        url: str | None = None,
        settings: SessionHubSettings | None = None,
        app_name: str | None = None,
        **options: Any,
    ) -> None:
        if service is not None and (url is not None or settings is not None or options):
            raise InvalidInput(
                "service", "pass either a service or url=/settings/options to build one, not both"
            )
        self._owned = service is None
        base = service or SessionHistoryService(url=url, settings=settings, **options)
        self._base = base
        self._service = base.for_app(app_name) if app_name is not None else base
        self._closed = False

    @property
    def service(self) -> SessionHistoryService:
        """The sessionhub service this store writes through."""
        return self._service

    async def close(self) -> None:
        """Stop using the store. Idempotent; closes the service only if this store built it."""
        if self._closed:
            return
        self._closed = True
        if self._owned:
            await self._base.stop()

    async def __aenter__(self) -> Self:
        self._open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def _open(self) -> SessionHistoryService:
        if self._closed:
            raise RuntimeError(f"{type(self).__name__} is closed; build a new one to use it again")
        return self._service

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} app={self._service.app_name!r} "
            f"backend={self._service.backend.name!r}>"
        )


async def write_state(
    service: SessionHistoryService, user_id: str, session_id: str, delta: dict[str, Any]
) -> None:
    """Apply ``delta`` to the session's state in one atomic write, creating the session if new."""
    try:
        await service.update_session(user_id, session_id, state=delta)
    except SessionNotFound:
        try:
            await service.create_session(user_id, session_id, state=delta)
        except SessionExists:  # a concurrent writer created it first: write over it
            await service.update_session(user_id, session_id, state=delta)
