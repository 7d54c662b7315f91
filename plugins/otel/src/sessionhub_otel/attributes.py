"""The names of every attribute and metric the plugin reports, and what each holds.

Attributes of spans and metric points (OpenTelemetry semantic conventions for
database clients where one fits):

===========================  ====================================================
``db.system.name``           the backend (``postgres`` reports ``postgresql``)
``db.operation.name``        the service operation (``append``, ``get_session``...)
``db.namespace``             the service's app name
``server.address``           host of the configured URL (never the URL itself)
``server.port``              port of the configured URL, when it names one
``error.type``               a failed operation's error class (``SessionNotFound``)
===========================  ====================================================

Spans only: ``sessionhub.session.id`` (the session the operation names),
``sessionhub.events.appended`` (events stored) and ``db.response.returned_rows``
(events, sessions or names returned by a read).
"""

from __future__ import annotations

__all__ = [
    "DB_SYSTEM_NAME",
    "DB_OPERATION_NAME",
    "DB_NAMESPACE",
    "SERVER_ADDRESS",
    "SERVER_PORT",
    "ERROR_TYPE",
    "SESSION_ID",
    "EVENTS_APPENDED",
    "RETURNED_ROWS",
    "DURATION_METRIC",
    "APPENDED_METRIC",
    "READ_METRIC",
    "ERRORS_METRIC",
]

DB_SYSTEM_NAME = "db.system.name"
"""The backend's name; ``postgresql`` for the ``postgres`` backend."""
DB_OPERATION_NAME = "db.operation.name"
"""The service operation, as named in ``sessionhub.OPERATIONS``; also the span's name."""
DB_NAMESPACE = "db.namespace"
"""The app the operation works on (``SessionHistoryService.app_name``)."""
SERVER_ADDRESS = "server.address"
"""The host of the URL in the settings (the backend's table, else ``url``)."""
SERVER_PORT = "server.port"
"""The port of that URL, when it names one."""
ERROR_TYPE = "error.type"
"""A sessionhub error's class name, else the exception's qualified class name."""
SESSION_ID = "sessionhub.session.id"
"""The id of the session the operation names (spans only)."""
EVENTS_APPENDED = "sessionhub.events.appended"
"""Events stored by ``append`` or ``replace_events`` (spans only)."""
RETURNED_ROWS = "db.response.returned_rows"
"""Events (``get_session``, ``pop_event``), sessions or names (listings) returned (spans only)."""

DURATION_METRIC = "db.client.operation.duration"
"""Histogram, seconds (``s``): how long each operation took, failed ones included."""
APPENDED_METRIC = "sessionhub.events.appended"
"""Counter, ``{event}``: events stored by ``append`` and ``replace_events``."""
READ_METRIC = "sessionhub.events.read"
"""Counter, ``{event}``: events returned by ``get_session``."""
ERRORS_METRIC = "sessionhub.operation.errors"
"""Counter, ``{error}``: operations that raised, with ``error.type``."""
