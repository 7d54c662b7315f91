"""Running the ``sessionhub_operation_wrapper`` functions around each public service operation.

``@operation`` marks a service method as an operation. The hook is called
through pluggy once per service (again if its implementations change), and the
functions it returns are kept on the service. While there are none, an
operation costs one cached look-up (``has_implementations``); otherwise each
function gets the ``Operation`` and may return a context manager to run
around it.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar

from sessionhub.errors import ConfigError
from sessionhub.hookspecs import Operation
from sessionhub.plugins import each_implementation, has_implementations

__all__ = ["ASK_AGAIN", "OPERATIONS", "operation"]

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
"""The service methods the ``sessionhub_operation_wrapper`` functions see, by name."""

ASK_AGAIN = 1.0
"""Seconds after which implementations that all answered ``None`` are asked again."""

_Wrapper = Callable[[Operation], Any]
_HOOK = "sessionhub_operation_wrapper"


_S = TypeVar("_S")
_P = ParamSpec("_P")
_R = TypeVar("_R")


def operation(
    method: Callable[Concatenate[_S, _P], Awaitable[_R]],
) -> Callable[Concatenate[_S, _P], Coroutine[Any, Any, _R]]:
    """Mark a service method as an operation the ``sessionhub_operation_wrapper`` functions see."""
    name = method.__name__
    if name not in OPERATIONS:
        raise ValueError(f"{name} is not listed in sessionhub._operations.OPERATIONS")

    @functools.wraps(method)
    async def run(self: _S, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        wrappers = _wrappers(self)
        if not wrappers:
            return await method(self, *args, **kwargs)
        operation = Operation(name, self, method, args, kwargs)  # type: ignore[arg-type]
        managers = []
        for wrap in wrappers:
            manager = wrap(operation)
            if manager is not None:
                _check_manager(wrap, manager)
                managers.append(manager)
        if not managers:
            return await method(self, *args, **kwargs)
        with contextlib.ExitStack() as stack:
            for manager in managers:
                type(manager).__enter__(manager)
                stack.push(_exit_without_suppressing(manager))
            result = await method(self, *args, **kwargs)
            operation.result = result
            return result

    return run


def _wrappers(service: Any) -> Sequence[_Wrapper]:
    """The service's functions from the hook, asked for again when its implementations change.

    While the implementations answered ``None`` (an observer with nothing to
    record yet), they are asked again at most every ``ASK_AGAIN`` seconds, so an
    idle observer costs an operation one clock read. ``service`` is a
    ``SessionHistoryService`` (typed ``Any``: the operations are defined on its
    base classes, and a ``cast`` on this path would cost a call per operation).
    """
    pm = service.plugin_manager
    if not has_implementations(pm, _HOOK):
        return ()
    # What the functions were asked for with: the manager's change count, else its list.
    asked: object = getattr(pm, "changes", None)
    if asked is None:
        asked = getattr(pm.hook, _HOOK).get_hookimpls()
    known: tuple[object, Sequence[_Wrapper], float] | None = service._operation_wrappers
    if known is not None and known[0] == asked and (known[1] or time.monotonic() < known[2]):
        return known[1]
    wrappers: list[_Wrapper] = []
    for plugin_name, call in each_implementation(service.plugin_manager, _HOOK):
        for wrapper in call(service=service):
            if not callable(wrapper):
                raise ConfigError(
                    f"Plugin {plugin_name!r}: {_HOOK} must return a function of one Operation "
                    f"or None (synchronously), got {type(wrapper).__name__}. Fix the plugin, or "
                    f"disable it with SESSIONHUB_DISABLE_PLUGINS={plugin_name}."
                )
            wrappers.append(wrapper)
    service._operation_wrappers = (asked, wrappers, time.monotonic() + ASK_AGAIN)
    return wrappers


def _exit_without_suppressing(manager: Any) -> Callable[..., bool]:
    exit_method = type(manager).__exit__

    def exit_(*exc_info: Any) -> bool:
        exit_method(manager, *exc_info)
        return False  # an observer must not turn a failed operation into a None result

    return exit_


def _check_manager(wrap: _Wrapper, manager: object) -> None:
    if hasattr(type(manager), "__enter__") and hasattr(type(manager), "__exit__"):
        return
    if inspect.iscoroutine(manager):
        manager.close()
    name = getattr(wrap, "__qualname__", repr(wrap))
    raise ConfigError(
        f"{name}, a function from a {_HOOK} hook, returned a {type(manager).__name__}, not "
        "a context manager or None (synchronously). Fix the plugin that returned it, or "
        "disable it with SESSIONHUB_DISABLE_PLUGINS."
    )
