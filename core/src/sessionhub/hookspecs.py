"""Every hook a sessionhub plugin can implement; each docstring is the hook's reference.

Hooks register things and observe or rewrite what passes through the service;
ordinary async classes (backends) do the storage work. Every call goes through
pluggy, so ``PluginManager.add_hookcall_monitoring`` and ``enable_tracing``
see it. Implementations of the hooks in ``AWAITED_HOOKS`` may be plain
functions or ``async def``: each one's body runs in pluggy's call order (last
registered first, adjusted by ``tryfirst`` / ``trylast``), after the ones
before it finished, awaited if it is a coroutine. They cannot be
``wrapper=True`` / ``hookwrapper=True`` implementations (a wrapper could not
wait for them), nor can ``sessionhub_wrap_backend``'s; a plugin that tries is
refused when it is registered, with an error naming it and the hook.
``sessionhub_operation_wrapper`` is synchronous and returns a function the
service calls as each operation starts; it refuses wrappers and ``async def`` too.

Implement a hook with the marker::

    from sessionhub import hookimpl

    @hookimpl
    def sessionhub_register_backends():
        return BackendInfo(name="acme", factory="sessionhub_acme.backend:AcmeBackend")
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from sessionhub.backend import Backend, BackendInfo
    from sessionhub.models import Event, Session
    from sessionhub.service import SessionHistoryService
    from sessionhub.settings import SessionHubSettings

__all__ = [
    "PROJECT_NAME",
    "AWAITED_HOOKS",
    "hookspec",
    "hookimpl",
    "AppendContext",
    "Operation",
]

PROJECT_NAME = "sessionhub"
"""The pluggy project name and the entry point group plugins register under."""

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
"""Marker for hook specifications (used only in this module)."""
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
"""Marker for hook implementations: ``@hookimpl`` on a ``sessionhub_*`` function."""

AWAITED_HOOKS: frozenset[str] = frozenset(
    {
        "sessionhub_before_append",
        "sessionhub_after_append",
        "sessionhub_session_created",
        "sessionhub_session_deleted",
    }
)
"""The hooks whose implementations may be ``async def``: the service awaits them."""


@dataclass
class AppendContext:
    """What ``sessionhub_before_append`` receives; rewrite ``events`` in place."""

    app_name: str
    """The app the session belongs to."""
    user_id: str
    """The session's owner."""
    session_id: str
    """The session being appended to."""
    events: list[Event]
    """The events about to be stored, in order; ids and timestamps are already set."""


class Operation:
    """A service operation, as an ``sessionhub_operation_wrapper`` function sees it.

    One is made per call of a public operation of ``SessionHistoryService``
    while some plugin implements that hook. ``arguments`` are the caller's,
    as given (event content included): an observer that exports what it sees
    should pick what it needs and leave content out.
    """

    __slots__ = ("_arguments", "_method", "args", "kwargs", "name", "result", "service")

    def __init__(
        self,
        name: str,
        service: SessionHistoryService,
        method: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        self.name: str = name
        """The operation: the service method's name (``"append"``, ``"get_session"``...)."""
        self.service: SessionHistoryService = service
        """The service running it: its ``app_name``, ``backend`` and ``settings``."""
        self.args: tuple[Any, ...] = args
        """The positional arguments as the caller passed them."""
        self.kwargs: dict[str, Any] = kwargs
        """The keyword arguments as the caller passed them."""
        self.result: Any = None
        """What the operation returned; set just before the context managers exit
        (``None`` until then, and when it raised)."""
        self._method = method
        self._arguments: Mapping[str, Any] | None = None

    @property
    def arguments(self) -> Mapping[str, Any]:
        """Every argument by parameter name, defaults filled in (read-only, computed once)."""
        if self._arguments is None:
            positional, defaults, names, var_keyword = _parameters(self._method)
            values = dict(defaults)
            values.update(zip(positional, self.args, strict=False))
            extra = {}
            for key, value in self.kwargs.items():
                if key in names:
                    values[key] = value
                else:
                    extra[key] = value
            if var_keyword is not None:
                values[var_keyword] = extra
            self._arguments = MappingProxyType(values)
        return self._arguments

    def __repr__(self) -> str:
        return f"<Operation {self.name} app={self.service.app_name!r}>"


@functools.cache
def _parameters(
    method: Callable[..., Any],
) -> tuple[tuple[str, ...], dict[str, Any], frozenset[str], str | None]:
    """A service method's positional names, defaults, named parameters and ``**`` name.

    ``self`` is left out. ``inspect.Signature.bind`` would do, at ten times the cost.
    """
    kinds = inspect.Parameter
    parameters = list(inspect.signature(method).parameters.values())[1:]
    positional = tuple(
        p.name for p in parameters if p.kind in (kinds.POSITIONAL_ONLY, kinds.POSITIONAL_OR_KEYWORD)
    )
    defaults = {p.name: p.default for p in parameters if p.default is not kinds.empty}
    names = frozenset(p.name for p in parameters if p.kind is not kinds.VAR_KEYWORD)
    var_keyword = next((p.name for p in parameters if p.kind is kinds.VAR_KEYWORD), None)
    return positional, defaults, names, var_keyword


# --- registration -------------------------------------------------------------


@hookspec
def sessionhub_register_backends() -> BackendInfo | Sequence[BackendInfo] | None:
    """Return the storage backends this plugin provides.

    Called when a plugin manager is built, to fill the backend registry.
    ``factory`` and ``settings_model`` of each ``BackendInfo``
    may be ``"package.module:Name"`` strings so that the driver is imported only
    when the backend is selected. Two plugins registering the same name is an
    error that names both.

    :returns: One ``BackendInfo``, a sequence of them, or ``None``.
    """


@hookspec
def sessionhub_wrap_backend(backend: Backend, settings: SessionHubSettings) -> Backend | None:
    """Return a backend that wraps ``backend`` (encryption at rest, metrics, tracing), or None.

    Called once when a service is built, after the backend is selected. Wrappers
    apply in call order: each receives what the previous one returned.

    :param backend: The backend built so far.
    :param settings: The resolved settings of the service being built.
    :returns: A ``Backend``, or ``None`` to leave it as it is.
    """


# --- around operations --------------------------------------------------------


@hookspec
def sessionhub_operation_wrapper(
    service: SessionHistoryService,
) -> Callable[[Operation], AbstractContextManager[Any] | None] | None:
    """Return a function to call as each operation of ``service`` starts (tracing, metrics).

    Called through pluggy when ``service`` runs its first operation, and again
    if the hook's implementations change (each ``for_app`` view is a service of
    its own). The function returned is called with the ``Operation`` when each
    public operation starts (every name in ``sessionhub.OPERATIONS``), before
    its input is checked. It returns a context manager to run around the
    operation, or ``None`` to leave it alone; it runs on every operation, so it
    must be cheap when it has nothing to do.

    The context managers are entered at once, in call order, and exited in
    reverse order when the operation returns (``operation.result`` is set
    first) or raises (the exception is passed to ``__exit__``, which cannot
    suppress it: its return value is ignored). Everything runs in the caller's
    task and context, so a context variable set on entering (the current span)
    is seen by the backend and by the operations an operation is built from
    (``clear_events`` runs ``replace_events``, ``delete_session`` runs
    ``list_sessions``): theirs nest inside it.

    An implementation with nothing to do yet (an observer whose application set
    no provider) returns ``None``: while every implementation does, the hook is
    asked again at most every ``sessionhub.ASK_AGAIN`` seconds (1), and an
    operation costs one clock read. A function once returned is kept.

    :param service: The service whose operations the function will see.
    :returns: A function of one ``Operation``, or ``None`` to see none for now.
    """


@hookspec
def sessionhub_before_append(ctx: AppendContext) -> Awaitable[None] | None:
    """Inspect, rewrite or reject events before they are stored (redaction, enrichment).

    Called by ``append`` after the input is normalised and before it is
    validated and stored. Rewrite ``ctx.events`` in place (change an event, or
    replace, add or remove list items); raise ``InvalidInput``
    to reject the whole append, in which case nothing is written. The events
    are deep copies: the caller's own objects never change.

    :param ctx: The ``AppendContext`` of this append.
    """


@hookspec
def sessionhub_after_append(session: Session, events: Sequence[Event]) -> Awaitable[None] | None:
    """Observe events just stored.

    Called by ``append`` after the backend committed the events.

    :param session: The session after the append, without its events.
    :param events: The stored events, with their ``seq``.
    """


@hookspec
def sessionhub_session_created(session: Session) -> Awaitable[None] | None:
    """Observe a session just created (by ``create_session``, ``spawn_child``, ...).

    :param session: The new session.
    """


@hookspec
def sessionhub_session_deleted(
    app_name: str, user_id: str, session_id: str
) -> Awaitable[None] | None:
    """Observe a session just deleted (once per session, children included).

    :param app_name: The app the session belonged to.
    :param user_id: The session's owner.
    :param session_id: The deleted session's id.
    """
