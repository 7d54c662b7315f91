"""Spans and metrics of one operation, on the providers the plugin found.

``Telemetry`` holds the tracer and the instruments once a real provider is set
(the API's own proxy and no-op providers record nothing, so until the
application sets one, ``recording`` returns ``None``). ``Recording`` is the
context manager the service runs around an operation. Attributes follow the
OpenTelemetry semantic conventions for database clients; what they may hold
is listed in ``attributes.py`` and nothing else is exported: no URL, no user
id, no event content, no error message.
"""

from __future__ import annotations

import importlib.metadata
import time
import weakref
from types import TracebackType
from typing import TYPE_CHECKING, Any

from opentelemetry import context, metrics, trace

from sessionhub import Backend, Operation, SessionHubError
from sessionhub_otel import attributes as attr
from sessionhub_otel._address import server_of

if TYPE_CHECKING:
    from opentelemetry.metrics import Meter, MeterProvider
    from opentelemetry.trace import Span, Tracer, TracerProvider

__all__ = ["Telemetry", "Recording", "Instruments"]

SCOPE = "sessionhub_otel"
"""The instrumentation scope of every span and instrument."""

DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0)
"""The bucket boundaries the semantic conventions advise for ``db.client.operation.duration``."""

LOOK_INTERVAL = 1.0
"""Seconds between two looks for a global provider while one is missing.

Asking the API for the global provider reads the environment each time it is
unset, which would cost more than the operation's other work; a provider the
application sets is used from the next operation after at most this long.
"""

_SYSTEM_NAMES = {"postgres": "postgresql"}
"""Backend names whose store has another well-known ``db.system.name``."""

try:
    _VERSION: str | None = importlib.metadata.version("sessionhub-otel")
except importlib.metadata.PackageNotFoundError:  # pragma: no cover -- run from a source tree
    _VERSION = None


_API_PACKAGES = ("opentelemetry.trace", "opentelemetry.metrics")


def _records(provider: object) -> bool:
    """Whether a provider records: the API's own (proxy until one is set, no-op) do not."""
    return not type(provider).__module__.startswith(
        ("opentelemetry.trace", "opentelemetry.metrics")
    )


class Instruments:
    """The plugin's metric instruments on one meter (names and units: ``attributes.py``)."""

    def __init__(self, meter: Meter) -> None:
        self.duration = meter.create_histogram(
            attr.DURATION_METRIC,
            unit="s",
            description="Duration of sessionhub operations.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        """Seconds each operation took, failed ones included (with ``error.type``)."""
        self.appended = meter.create_counter(
            attr.APPENDED_METRIC, unit="{event}", description="Events stored by append."
        )
        """Events stored by ``append`` and ``replace_events``."""
        self.read = meter.create_counter(
            attr.READ_METRIC, unit="{event}", description="Events returned by get_session."
        )
        """Events returned by ``get_session``."""
        self.errors = meter.create_counter(
            attr.ERRORS_METRIC, unit="{error}", description="Failed sessionhub operations."
        )
        """Operations that raised, by ``error.type``."""


class Telemetry:
    """The tracer and instruments of one plugin, found on its providers or the global ones."""

    def __init__(
        self, tracer_provider: TracerProvider | None, meter_provider: MeterProvider | None
    ) -> None:
        self._tracer_provider = tracer_provider
        self._meter_provider = meter_provider
        self.tracer: Tracer | None = None
        """The tracer, once a recording tracer provider is set."""
        self.instruments: Instruments | None = None
        """The instruments, once a recording meter provider is set."""
        self._settled = False
        self._next_look = 0.0
        self._attributes: weakref.WeakKeyDictionary[Backend, dict[tuple[str, str], Any]] = (
            weakref.WeakKeyDictionary()
        )

    def records(self) -> bool:
        """Whether a tracer or meter provider records (looked for once per ``LOOK_INTERVAL``)."""
        if not self._settled:
            now = time.monotonic()
            if now >= self._next_look:
                self._next_look = now + LOOK_INTERVAL
                self._look_for_providers()
        return self.tracer is not None or self.instruments is not None

    def recording(self, operation: Operation) -> Recording:
        """A context manager recording ``operation`` (and looking for a provider still missing)."""
        if not self._settled:
            self.records()
        return Recording(self, operation)

    def _look_for_providers(self) -> None:
        # A global provider can be set once only: once both record, there is nothing to re-check.
        if self.tracer is None:
            tracer_provider = self._tracer_provider or trace.get_tracer_provider()
            if _records(tracer_provider):
                self.tracer = tracer_provider.get_tracer(SCOPE, _VERSION)
        if self.instruments is None:
            meter_provider = self._meter_provider or metrics.get_meter_provider()
            if _records(meter_provider):
                self.instruments = Instruments(meter_provider.get_meter(SCOPE, _VERSION))
        self._settled = self.tracer is not None and self.instruments is not None

    def attributes(self, operation: Operation) -> dict[str, Any]:
        """The attributes every span and metric point of ``operation`` carries (do not change)."""
        service = operation.service
        backend = service.backend
        try:
            per_backend = self._attributes.setdefault(backend, {})
        except TypeError:  # a backend with __slots__ and no __weakref__: no cache
            per_backend = {}
        key = (service.app_name, operation.name)
        found = per_backend.get(key)
        if found is None:
            found = {
                attr.DB_SYSTEM_NAME: _SYSTEM_NAMES.get(backend.name, backend.name),
                attr.DB_OPERATION_NAME: operation.name,
                attr.DB_NAMESPACE: service.app_name,
            }
            address, port = server_of(service.settings, backend.name)
            if address is not None:
                found[attr.SERVER_ADDRESS] = address
            if port is not None:
                found[attr.SERVER_PORT] = port
            per_backend[key] = found
        return found


class Recording:
    """Records one operation: a span around it (current while it runs) and its metrics."""

    __slots__ = ("_attributes", "_began", "_operation", "_span", "_telemetry", "_token")

    def __init__(self, telemetry: Telemetry, operation: Operation) -> None:
        self._telemetry = telemetry
        self._operation = operation
        self._attributes: dict[str, Any] = {}
        self._span: Span | None = None
        self._token: object = None
        self._began = 0.0

    def __enter__(self) -> Recording:
        operation = self._operation
        self._attributes = self._telemetry.attributes(operation)
        tracer = self._telemetry.tracer
        if tracer is not None:
            span_attributes = dict(self._attributes)
            session_id = _session_id(operation)
            if session_id:
                span_attributes[attr.SESSION_ID] = session_id
            self._span = tracer.start_span(
                operation.name, kind=trace.SpanKind.CLIENT, attributes=span_attributes
            )
            self._token = context.attach(trace.set_span_in_context(self._span))
        self._began = time.perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        elapsed = time.perf_counter() - self._began
        operation, span = self._operation, self._span
        if self._token is not None:
            context.detach(self._token)  # type: ignore[arg-type]
        attributes = self._attributes
        appended = read = returned = None
        if exc is not None:
            attributes = {**attributes, attr.ERROR_TYPE: error_type(exc)}
        else:
            appended, read, returned = _counts(operation.name, operation.result)
        instruments = self._telemetry.instruments
        if instruments is not None:
            instruments.duration.record(elapsed, attributes)
            if exc is not None:
                instruments.errors.add(1, attributes)
            if appended:
                instruments.appended.add(appended, attributes)
            if read:
                instruments.read.add(read, attributes)
        if span is not None:
            if exc is not None:
                span.set_attribute(attr.ERROR_TYPE, attributes[attr.ERROR_TYPE])
                span.set_status(trace.StatusCode.ERROR)
            if appended is not None:
                span.set_attribute(attr.EVENTS_APPENDED, appended)
            if returned is not None:
                span.set_attribute(attr.RETURNED_ROWS, returned)
            if operation.name == "create_session" and exc is None:
                span.set_attribute(attr.SESSION_ID, operation.result.id)
            span.end()


def error_type(exc: BaseException) -> str:
    """``error.type`` of an exception: a sessionhub error's class name, else the qualified one."""
    cls = type(exc)
    if isinstance(exc, SessionHubError) or cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def _session_id(operation: Operation) -> str | None:
    arguments = operation.arguments
    session_id = arguments.get("session_id")
    if isinstance(session_id, str) and session_id.strip():
        return session_id
    session = arguments.get("session")
    if isinstance(session, tuple) and len(session) == 2 and isinstance(session[1], str):
        return session[1]
    found = getattr(session, "id", None)
    return found if isinstance(found, str) else None


def _counts(name: str, result: Any) -> tuple[int | None, int | None, int | None]:
    """Events appended, events read and rows returned by a successful operation."""
    if name in ("append", "replace_events"):
        return len(result), None, None
    if name == "get_session":
        read = 0 if result is None else len(result.events)
        return None, read, read
    if name in ("list_sessions", "list_users", "list_apps"):
        return None, None, len(result.items)
    if name == "pop_event":
        return None, None, 0 if result is None else 1
    return None, None, None
