"""Running ``sessionhub_wrap_operation`` around each public operation of the service.

``@operation`` marks a service method as an operation. While no plugin
implements the hook, the method runs as it is, after one look at pluggy's list
of implementations; otherwise the hook is called through pluggy and the
context managers it returns are run around the method.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, Protocol, TypeVar, cast

from sessionhub.errors import ConfigError
from sessionhub.hookspecs import Operation

if TYPE_CHECKING:
    import pluggy

    from sessionhub.service import SessionHistoryService

__all__ = ["OPERATIONS", "operation"]

OPERATIONS: tuple[str, ...] = (
    "health",
    "create_session",
    "spawn_child",
    "get_session",
    "update_session",
    "delete_session",
    "list_sessions",
    "list_users",
    "list_apps",
    "append",
    "pop_event",
    "replace_events",
    "clear_events",
    "get_app_state",
    "get_user_state",
    "update_app_state",
    "update_user_state",
    "save_state",
    "load_state",
    "purge_expired",
)
"""The service methods ``sessionhub_wrap_operation`` runs around, by name."""


class _HasPlugins(Protocol):
    plugin_manager: pluggy.PluginManager


_S = TypeVar("_S")
_P = ParamSpec("_P")
_R = TypeVar("_R")


def operation(
    method: Callable[Concatenate[_S, _P], Awaitable[_R]],
) -> Callable[Concatenate[_S, _P], Coroutine[Any, Any, _R]]:
    """Mark a service method as an operation the ``sessionhub_wrap_operation`` hook wraps."""
    name = method.__name__
    if name not in OPERATIONS:
        raise ValueError(f"{name} is not listed in sessionhub._operations.OPERATIONS")

    @functools.wraps(method)
    async def run(self: _S, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        hook = cast("_HasPlugins", self).plugin_manager.hook.sessionhub_wrap_operation
        if not hook.get_hookimpls():
            return await method(self, *args, **kwargs)
        service = cast("SessionHistoryService", self)
        return await _around(hook, Operation(name, service, method, args, kwargs), method)

    return run


async def _around(
    hook: pluggy.HookCaller, operation: Operation, method: Callable[..., Awaitable[_R]]
) -> _R:
    managers = hook(operation=operation)
    if not managers:
        return await method(operation.service, *operation.args, **operation.kwargs)
    for manager in managers:
        _check_manager(hook, manager)
    with contextlib.ExitStack() as stack:
        for manager in managers:
            type(manager).__enter__(manager)
            stack.push(_exit_without_suppressing(manager))
        result = await method(operation.service, *operation.args, **operation.kwargs)
        operation.result = result
        return result


def _exit_without_suppressing(manager: Any) -> Callable[..., bool]:
    exit_method = type(manager).__exit__

    def exit_(*exc_info: Any) -> bool:
        exit_method(manager, *exc_info)
        return False  # an observer must not turn a failed operation into a None result

    return exit_


def _check_manager(hook: pluggy.HookCaller, manager: object) -> None:
    if hasattr(type(manager), "__enter__") and hasattr(type(manager), "__exit__"):
        return
    if inspect.iscoroutine(manager):
        manager.close()
    plugins = ", ".join(impl.plugin_name for impl in hook.get_hookimpls())
    raise ConfigError(
        f"A sessionhub_wrap_operation implementation returned a {type(manager).__name__}, "
        f"not a context manager or None (plugins implementing it: {plugins}). Return an "
        "object with __enter__ and __exit__ from a plain function, or disable the plugin "
        "with SESSIONHUB_DISABLE_PLUGINS."
    )
