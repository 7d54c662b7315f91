"""Fixtures: the OpenTelemetry SDK's in-memory exporter and reader behind a plugin of our own."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from sessionhub import SessionHistoryService, SessionHubSettings, get_plugin_manager
from sessionhub_otel import OpenTelemetryPlugin


class Telemetry:
    """What the plugin recorded: finished spans and the metric points, by metric name."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.plugin = OpenTelemetryPlugin(
            tracer_provider=self.tracer_provider, meter_provider=self.meter_provider
        )

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def metrics(self) -> dict[str, tuple[str, list]]:
        """``{name: (unit, data points)}`` of everything recorded so far."""
        found: dict[str, tuple[str, list]] = {}
        data = self.reader.get_metrics_data()
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    found[metric.name] = (metric.unit, list(metric.data.data_points))
        return found


@pytest.fixture
def telemetry() -> Telemetry:
    return Telemetry()


@pytest.fixture(params=["memory", "sqlite"])
def url(request, tmp_path) -> str:
    return "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'otel.db'}"


@pytest.fixture
def make_service(telemetry) -> Callable[..., SessionHistoryService]:
    def make(url: str, **settings) -> SessionHistoryService:
        pm = get_plugin_manager(load=None, disable=["otel"])  # the installed one uses globals
        pm.register(telemetry.plugin, name="otel-under-test")
        return SessionHistoryService(
            settings=SessionHubSettings.isolated(url=url, purge_interval=None, **settings),
            plugin_manager=pm,
        )

    return make


@pytest_asyncio.fixture
async def service(make_service, url) -> AsyncIterator[SessionHistoryService]:
    async with make_service(url) as svc:
        yield svc
