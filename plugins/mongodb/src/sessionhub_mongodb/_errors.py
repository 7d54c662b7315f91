"""The one rule turning what the driver raises into sessionhub errors.

- no answer (unreachable, connection lost, a timeout) -> ``BackendUnavailable``;
- a document over 16 MiB -> ``InvalidInput`` (nothing was stored);
- the server answered with an error, or a stored record is not in the shape
  this backend writes (written by something else, or damaged) ->
  ``BackendError``, quoting the server's message or what was wrong.

The driver's exception is always chained as ``__cause__``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, Protocol, TypeVar

from bson.errors import InvalidDocument
from pymongo.errors import PyMongoError

from sessionhub import BackendUnavailable, InvalidInput, SessionHubError
from sessionhub.errors import BackendError
from sessionhub_mongodb import _driver

__all__ = ["translate", "translated"]

P = ParamSpec("P")
T = TypeVar("T")

_UNREADABLE = (KeyError, TypeError, ValueError)
"""What decoding a stored document raises when a field is missing or of the wrong type."""


class _Located(Protocol):
    @property
    def _location(self) -> str: ...


def translate(exc: BaseException, location: str, operation: str) -> SessionHubError:
    """The sessionhub error for ``exc``, raised by ``operation`` against ``location``."""
    if _driver.is_too_large(exc):
        return InvalidInput(
            "events",
            "make a document larger than MongoDB's 16 MiB limit; store big payloads "
            "elsewhere and keep a FilePart with their URI",
        )
    if _driver.is_connection_error(exc) or _driver.is_timeout(exc):
        return BackendUnavailable(
            f"{location} did not answer during {operation}: {_driver.summary(exc)}. Check "
            "that the server is running and reachable from here, and the url setting "
            "(server_selection_timeout_ms bounds how long each operation waits)."
        )
    if isinstance(exc, (PyMongoError, InvalidDocument)):
        return BackendError(
            f"{location} answered {operation} with an error: {_driver.summary(exc)}"
        )
    return BackendError(
        f"{location}: {operation} found a stored record it cannot read ({type(exc).__name__}: "
        f"{exc}). It was written by something other than this backend, or damaged; fix or "
        "delete that document."
    )


def translated(
    method: Callable[P, Coroutine[Any, Any, T]],
) -> Callable[P, Coroutine[Any, Any, T]]:
    """Turn driver errors escaping a backend primitive into sessionhub errors (cause chained)."""

    @functools.wraps(method)
    async def run(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await method(*args, **kwargs)
        except SessionHubError:
            raise
        except (PyMongoError, InvalidDocument, *_UNREADABLE) as exc:
            backend: _Located = args[0]  # type: ignore[assignment]
            raise translate(exc, backend._location, method.__name__) from exc

    return run
