"""What the otel plugin adds to ``append``: installed without a provider, and recording in memory.

    python -m benchmarks.otel_overhead [--backend memory|sqlite] [--rounds 300] [--appends 20]

Each mode runs in a process of its own and alternates its subject with the
baseline (the same service with the plugin disabled) round by round, so both
see the same machine load; it prints the median microseconds per append of
each and the median of the rounds' with/without ratios. Times are the process's
CPU time, so waiting for a busy machine's cores is left out. Modes:

- ``not-imported``: the plugin installed, OpenTelemetry never imported by the
  application (no provider can be set);
- ``imported``: the application imported the OpenTelemetry API but set no provider;
- ``in-memory``: the SDK's providers with an in-memory span exporter and metric
  reader, so every span and metric point is really recorded;
- ``control``: the baseline against itself, which shows the method's noise;
- ``bare``: no hook plugin at all; ``append`` against the method it wraps
  (``__wrapped__``), on the same service: what marking it an operation costs.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

MODES = ("control", "bare", "not-imported", "imported", "in-memory")


def _service(url: str, plugin_manager: Any) -> Any:
    from sessionhub import SessionHistoryService, SessionHubSettings

    settings = SessionHubSettings.isolated(url=url, purge_interval=None)
    return SessionHistoryService(settings=settings, plugin_manager=plugin_manager)


def _subjects(mode: str) -> dict[str, Callable[[], Any]]:
    from sessionhub import get_plugin_manager

    def without() -> Any:
        return get_plugin_manager(load=None, disable=["otel"], entry_points=mode != "bare")

    if mode == "bare":  # no plugin implements the hook: only the operation wrapper is added

        def bare() -> Any:
            return get_plugin_manager(load=["memory", "sqlite"], builtins=False)

        return {"without": bare, "with": bare}
    if mode == "imported":
        import opentelemetry.metrics
        import opentelemetry.trace  # noqa: F401 -- imported, no provider set
    if mode == "control":  # the baseline against itself: the noise floor of the method
        return {"without": without, "with": without}
    if mode != "in-memory":
        return {"without": without, "with": lambda: get_plugin_manager(load=None, disable=[])}

    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from sessionhub_otel import OpenTelemetryPlugin

    class _DroppingExporter(InMemorySpanExporter):
        """Keeps the last spans only, so a long run does not grow memory."""

        def export(self, spans: Any) -> Any:
            self.clear()
            return super().export(spans)

    def recording() -> Any:
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(_DroppingExporter()))
        meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
        pm = without()
        pm.register(
            OpenTelemetryPlugin(tracer_provider=tracer_provider, meter_provider=meter_provider)
        )
        return pm

    return {"without": without, "with": recording}


async def _measure(mode: str, url: str, rounds: int, appends: int) -> dict[str, list[float]]:
    services = {name: _service(url, make()) for name, make in _subjects(mode).items()}
    samples: dict[str, list[float]] = {name: [] for name in services}
    appenders: dict[str, Callable[..., Any]] = {name: svc.append for name, svc in services.items()}
    if mode == "bare":  # the same service, its append with and without the operation wrapper
        services["without"] = services["with"]
        appenders["without"] = functools.partial(
            type(services["with"]).append.__wrapped__, services["with"]
        )
    sessions = {}
    for name, svc in services.items():
        await svc.start()
        sessions[name] = await svc.create_session("bench", name)
    try:
        for round_number in range(rounds + 1):  # round 0 warms up and is not kept
            order = list(services) if round_number % 2 else list(reversed(services))
            for name in order:
                append, session = appenders[name], sessions[name]
                began = time.process_time()  # CPU time: the shared machine's queue is left out
                for index in range(appends):
                    await append(session, f"message {index}")
                elapsed = time.process_time() - began
                if round_number:
                    samples[name].append(elapsed / appends * 1e6)
    finally:
        for svc in services.values():
            await svc.stop()
    return samples


def _run_mode(mode: str, backend: str, rounds: int, appends: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        url = "memory://" if backend == "memory" else f"sqlite:///{Path(directory) / 'bench.db'}"
        samples = asyncio.run(_measure(mode, url, rounds, appends))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    line = ", ".join(f"{name} {value:.1f} us" for name, value in medians.items())
    if "with" in samples:
        # Each round's two batches ran back to back: their ratio cancels the machine's drift.
        paired = [a / b for a, b in zip(samples["with"], samples["without"], strict=True)]
        line += f", median paired ratio {statistics.median(paired):.3f}"
        # The fastest batch of each is the one the machine disturbed least.
        line += (
            f", ratio of the fastest batches {min(samples['with']) / min(samples['without']):.3f}"
        )
    print(f"{backend} append, {mode}: {line}", flush=True)


def main(argv: list[str] | None = None) -> None:
    """Run the modes asked for (default: all), each in a process of its own."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["memory", "sqlite"], default="memory")
    parser.add_argument("--mode", choices=MODES, action="append")
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--appends", type=int, default=20)
    parser.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    modes = args.mode or list(MODES)
    if args.in_process:
        _run_mode(modes[0], args.backend, args.rounds, args.appends)
        return
    for mode in modes:
        subprocess.run(
            [sys.executable, "-m", "benchmarks.otel_overhead", "--in-process", "--mode", mode,
             "--backend", args.backend, "--rounds", str(args.rounds),
             "--appends", str(args.appends)],
            check=True,
        )  # fmt: skip


if __name__ == "__main__":
    main()
