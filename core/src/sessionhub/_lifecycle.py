"""How a service gets its backend and keeps it open: building, wrapping, event loops, the sweep.

``build_backend`` turns settings into the selected backend, wrapped by every
``sessionhub_wrap_backend`` hook. ``BackendRunner`` opens that backend on the
running event loop when first needed, reopens it when the service is used on a
new loop after the old one ended (a second ``asyncio.run()``), refuses two
running loops at once, and runs the expiry sweep for stores without native TTL.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from sessionhub.backend import Backend
from sessionhub.errors import ConfigError
from sessionhub.plugins import each_implementation
from sessionhub.registry import BackendRegistry

if TYPE_CHECKING:
    import pluggy

    from sessionhub.settings import SessionHubSettings

__all__ = ["build_backend", "wrap_backend", "BackendRunner"]

logger = logging.getLogger("sessionhub")


def build_backend(settings: SessionHubSettings, plugin_manager: pluggy.PluginManager) -> Backend:
    """Build the backend the settings select, with the factory its plugin registered."""
    registry = BackendRegistry.from_plugin_manager(plugin_manager)
    info, config = registry.configure(settings)
    backend = registry.factory(info)(config)
    if not isinstance(backend, Backend):
        raise ConfigError(
            f"The factory of backend {info.name!r} returned a {type(backend).__name__}, "
            "not a sessionhub Backend. Fix the plugin's BackendInfo.factory."
        )
    return backend


def wrap_backend(
    backend: Backend, settings: SessionHubSettings, plugin_manager: pluggy.PluginManager
) -> Backend:
    """Pass ``backend`` through every ``sessionhub_wrap_backend`` hook, in call order."""
    for plugin_name, call in each_implementation(plugin_manager, "sessionhub_wrap_backend"):
        for wrapped in call(backend=backend, settings=settings):
            if not isinstance(wrapped, Backend):
                if inspect.iscoroutine(wrapped):
                    wrapped.close()
                raise ConfigError(
                    f"Plugin {plugin_name!r}: sessionhub_wrap_backend must return a Backend "
                    f"or None (synchronously), got {type(wrapped).__name__}."
                )
            backend = wrapped
    return backend


class BackendRunner:
    """Keeps one backend open on the event loop that uses it, and sweeps expired records.

    :param backend: The backend to open and close.
    :param owner: Names the service in messages (its ``repr``).
    :param sweep_interval: Seconds between sweeps, or ``None`` for no sweep.
    :param purge: Reclaims expired records once; called by the sweep.
    """

    def __init__(
        self,
        backend: Backend,
        owner: str,
        sweep_interval: float | None,
        purge: Callable[[], Awaitable[int]],
    ) -> None:
        self.backend = backend
        """The backend this runner opens and closes."""
        self._owner = owner
        self._sweep_interval = sweep_interval
        self._purge = purge
        self.loop: asyncio.AbstractEventLoop | None = None
        """The event loop the backend was opened on; ``None`` while stopped."""
        self._start_lock: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None
        self.purge_task: asyncio.Task[None] | None = None
        """The running sweep, if any."""

    def open_here(self) -> bool:
        """Whether the backend is open on the running loop (``ready`` would do nothing)."""
        return self.loop is asyncio.get_running_loop()

    async def ready(self) -> None:
        """Open the backend on the running loop unless it is open there already."""
        if not self.open_here():
            await self.start()

    async def start(self) -> None:
        """Open the backend on the running loop (reopen it after a loop change). Idempotent."""
        loop = asyncio.get_running_loop()
        if self._start_lock is None or self._start_lock[0] is not loop:
            self._start_lock = (loop, asyncio.Lock())
        async with self._start_lock[1]:
            if self.loop is loop:
                return
            if self.loop is not None:
                await self._leave(self.loop)
            await self.backend.open()
            self.loop = loop
            if self._sweep_interval:
                self.purge_task = asyncio.create_task(self._sweep_forever(self._sweep_interval))

    async def stop(self) -> None:
        """Stop the sweep and close the backend. Idempotent."""
        loop = self.loop
        if loop is not None and loop is not asyncio.get_running_loop():
            await self._leave(loop)
            return
        if self.purge_task is not None:
            self.purge_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.purge_task
            self.purge_task = None
        self.loop = None
        await self.backend.close()

    async def _leave(self, old: asyncio.AbstractEventLoop) -> None:
        """Close what was opened on another loop, from this one, as far as that is possible."""
        if old.is_running():
            raise ConfigError(
                f"{self._owner} is in use on another running event loop (another thread). A "
                "service and its connections belong to one event loop: create one service per "
                "loop."
            )
        task, self.purge_task = self.purge_task, None
        if task is not None and not old.is_closed():
            task.cancel()
        self.loop = None
        try:
            await self.backend.close()
        except Exception:  # connections of an ended loop often cannot be closed from another
            logger.debug("Closing connections opened on an ended event loop failed", exc_info=True)

    async def _sweep_forever(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                removed = await self._purge()
            except Exception:  # the sweep must outlive a failed round
                logger.exception("Reclaiming expired sessions failed; retrying in %ss", interval)
            else:
                logger.debug("Reclaimed %d expired records", removed)
