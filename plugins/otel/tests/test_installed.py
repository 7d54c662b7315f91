"""The installed plugin: found by its entry point, disabled by settings, idle with no provider."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from opentelemetry import metrics, trace

from sessionhub import SessionHistoryService, SessionHubSettings, get_plugin_manager
from sessionhub_otel import plugin


def run_python(code: str, tmp_path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SESSIONHUB_", "OTEL_"))}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
        check=True,
    )


def test_installing_registers_it_and_the_plugin_settings_disable_it(monkeypatch):
    monkeypatch.delenv("SESSIONHUB_DISABLE_PLUGINS", raising=False)
    pm = get_plugin_manager(load=None, disable=[])
    assert pm.records["otel"].distribution == "sessionhub-otel"
    assert pm.get_plugin("otel") is plugin
    hooks = [caller.name for caller in pm.get_hookcallers(plugin) or []]
    assert hooks == ["sessionhub_operation_wrapper"]
    for name in ("otel", "sessionhub-otel"):
        monkeypatch.setenv("SESSIONHUB_DISABLE_PLUGINS", name)
        assert "otel" not in get_plugin_manager().records


@pytest.mark.asyncio
async def test_without_a_provider_the_installed_plugin_records_nothing():
    if not type(trace.get_tracer_provider()).__module__.startswith("opentelemetry.trace") or (
        not type(metrics.get_meter_provider()).__module__.startswith("opentelemetry.metrics")
    ):
        pytest.skip("a global OpenTelemetry provider is set in this process")
    svc = SessionHistoryService(settings=SessionHubSettings.isolated(url="memory://"))
    assert svc.plugin_manager.get_plugin("otel") is plugin
    async with svc:
        await svc.create_session("alice", "s1")
        assert plugin.sessionhub_operation_wrapper(svc) is None


def test_a_process_that_never_imports_opentelemetry_does_not_import_it(tmp_path):
    result = run_python(
        """
        import asyncio, sys
        from sessionhub import SessionHistoryService

        async def main():
            async with SessionHistoryService(url="memory://") as svc:
                assert svc.plugin_manager.get_plugin("otel") is not None
                await svc.create_session("alice", "s1")
                await svc.append(("alice", "s1"), "hello")
            print(sorted(name for name in sys.modules if name.startswith("opentelemetry")))

        asyncio.run(main())
        """,
        tmp_path,
    )
    assert result.stdout.strip() == "[]"


def test_the_global_providers_the_application_sets_are_used(tmp_path):
    result = run_python(
        """
        import asyncio, json
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from sessionhub import SessionHistoryService

        service = SessionHistoryService(url="memory://")  # built before the provider is set
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)

        async def main():
            async with service as svc:
                await svc.create_session("alice", "s1")
                await svc.append(("alice", "s1"), "hello")

        asyncio.run(main())
        spans = exporter.get_finished_spans()
        print(json.dumps([[s.name, s.attributes["db.system.name"]] for s in spans]))
        """,
        tmp_path,
    )
    assert json.loads(result.stdout) == [["create_session", "memory"], ["append", "memory"]]


def test_the_docs_console_example_prints_the_nested_spans_and_the_metrics(tmp_path):
    page = (Path(__file__).parents[3] / "docs" / "observability.md").read_text()
    example = page.split("<!-- docs-test: own-process:", 1)[1].split("```python\n", 1)[1]
    result = run_python(example.split("```", 1)[0], tmp_path)
    spans = [json.loads(text) for text in re.findall(r"^\{\n.*?^\}$", result.stdout, re.M | re.S)]
    by_name = {span["name"]: span for span in spans if "context" in span}
    assert set(by_name) == {"agent run", "create_session", "append", "get_session"}
    run_id = by_name["agent run"]["context"]["span_id"]
    assert all(by_name[name]["parent_id"] == run_id for name in ("create_session", "append"))
    assert by_name["append"]["attributes"]["sessionhub.events.appended"] == 2
    for metric in OPERATION_METRICS:
        assert f'"name": "{metric}"' in result.stdout


OPERATION_METRICS = (
    "db.client.operation.duration",
    "sessionhub.events.appended",
    "sessionhub.events.read",
)
