"""sessionhub-otel: report every sessionhub operation through the OpenTelemetry API.

Installing the distribution registers ``plugin`` (entry point ``otel``), which
uses the global tracer and meter providers the application sets. Import-light
on purpose: nothing of OpenTelemetry is imported until an operation runs while
the application has imported it (or names a provider in the environment), so a
process that does not use OpenTelemetry pays a clock read per operation.
Disable it with ``SESSIONHUB_DISABLE_PLUGINS=otel``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from sessionhub import Operation, SessionHistoryService, hookimpl

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

    from sessionhub_otel._telemetry import Telemetry

__all__ = ["OpenTelemetryPlugin", "plugin"]

_PROVIDER_VARIABLES = ("OTEL_PYTHON_TRACER_PROVIDER", "OTEL_PYTHON_METER_PROVIDER")


class OpenTelemetryPlugin:
    """The hook plugin: a span and metrics for each operation of every service.

    :param tracer_provider: Record spans here instead of the global provider.
    :param meter_provider: Record metrics here instead of the global provider.

    The installed ``plugin`` uses the global providers. To use others, register an
    instance of your own (and disable the installed one)::

        pm = get_plugin_manager(disable=["otel"])
        pm.register(OpenTelemetryPlugin(tracer_provider=tp, meter_provider=mp))
        service = SessionHistoryService(plugin_manager=pm)
    """

    def __init__(
        self,
        *,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        self._tracer_provider = tracer_provider
        self._meter_provider = meter_provider
        self._telemetry: Telemetry | None = None
        self._may_have_providers = (
            tracer_provider is not None
            or meter_provider is not None
            or any(name in os.environ for name in _PROVIDER_VARIABLES)
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} id={id(self):#x}>"

    @hookimpl
    def sessionhub_operation_wrapper(
        self, service: SessionHistoryService
    ) -> Callable[[Operation], AbstractContextManager[Any] | None] | None:
        """The recording of every operation, or ``None`` while no provider records.

        ``None`` costs the service's operations one clock read: the service asks
        again about a second later (``sessionhub.ASK_AGAIN``).
        """
        telemetry = self._telemetry
        if telemetry is None:
            if (
                not self._may_have_providers
                and "opentelemetry.trace" not in sys.modules
                and "opentelemetry.metrics" not in sys.modules
            ):
                return None  # the application never imported OpenTelemetry: no provider is set
            from sessionhub_otel._telemetry import Telemetry

            telemetry = self._telemetry = Telemetry(self._tracer_provider, self._meter_provider)
        return telemetry.recording if telemetry.records() else None


plugin = OpenTelemetryPlugin()
"""The installed plugin (entry point ``otel``): the global tracer and meter providers."""
