"""Metrics: duration, events appended and read, errors by type, per backend and operation."""

from __future__ import annotations

import pytest

from sessionhub import SessionExists

pytestmark = pytest.mark.asyncio


def points(telemetry, name):
    unit, found = telemetry.metrics()[name]
    return unit, {
        (p.attributes["db.operation.name"], p.attributes.get("error.type")): p for p in found
    }


async def test_duration_is_a_histogram_in_seconds_per_backend_and_operation(
    service, telemetry, url
):
    await service.create_session("alice", "s1")
    for _ in range(3):
        await service.append(("alice", "s1"), "hello")
    await service.get_session("alice", "s1")
    unit, found = points(telemetry, "db.client.operation.duration")
    assert unit == "s"
    assert set(found) == {("create_session", None), ("append", None), ("get_session", None)}
    append = found[("append", None)]
    assert append.count == 3 and 0 < append.sum < 60
    assert append.attributes["db.system.name"] == url.partition(":")[0]
    assert append.attributes["db.namespace"] == "default"
    assert list(append.explicit_bounds) == [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0]


async def test_events_appended_and_read_are_counted(service, telemetry):
    await service.create_session("alice", "s1")
    await service.append(("alice", "s1"), ["a", "b"])
    await service.append(("alice", "s1"), "c")
    await service.get_session("alice", "s1")
    await service.get_session("alice", "s1", last_n=1)
    await service.replace_events("alice", "s1", ["summary"])
    unit, appended = points(telemetry, "sessionhub.events.appended")
    assert unit == "{event}"
    assert {key: p.value for key, p in appended.items()} == {
        ("append", None): 3,
        ("replace_events", None): 1,
    }
    unit, read = points(telemetry, "sessionhub.events.read")
    assert unit == "{event}"
    assert {key: p.value for key, p in read.items()} == {("get_session", None): 4}


async def test_errors_are_counted_by_type_and_timed(service, telemetry):
    await service.create_session("alice", "s1")
    for _ in range(2):
        with pytest.raises(SessionExists):
            await service.create_session("alice", "s1")
    unit, errors = points(telemetry, "sessionhub.operation.errors")
    assert unit == "{error}"
    assert {key: p.value for key, p in errors.items()} == {("create_session", "SessionExists"): 2}
    _, durations = points(telemetry, "db.client.operation.duration")
    assert durations[("create_session", "SessionExists")].count == 2
    assert durations[("create_session", None)].count == 1
