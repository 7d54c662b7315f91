"""One span per operation, with the database client attributes, nested under the caller's span."""

from __future__ import annotations

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from sessionhub import OPERATIONS, SessionNotFound

pytestmark = pytest.mark.asyncio


class Module:
    """A StateModule: what save_state and load_state keep."""

    def state_dict(self):
        return {"step": 1}

    def load_state_dict(self, state):
        self.state = state


async def every_operation(svc) -> None:
    """Call each name of ``OPERATIONS`` once, in an order where each one works."""
    await svc.health()
    session = await svc.create_session("alice", "s1")
    await svc.spawn_child(session, "child")
    await svc.append(session, ["one", "two", "three"])
    await svc.get_session("alice", "s1")
    await svc.update_session("alice", "s1", state={"k": 1})
    await svc.list_sessions("alice")
    await svc.list_users()
    await svc.list_apps()
    await svc.pop_event("alice", "s1")
    await svc.replace_events("alice", "s1", ["summary"])
    await svc.clear_events("alice", "s1")
    await svc.update_app_state({"theme": "dark"})
    await svc.get_app_state()
    await svc.update_user_state("alice", {"lang": "en"})
    await svc.get_user_state("alice")
    await svc.save_state("alice", "s1", agent=Module())
    await svc.load_state("alice", "s1", agent=Module())
    await svc.purge_expired()
    await svc.delete_session("alice", "s1")


def by_name(spans):
    found = {}
    for span in spans:
        found.setdefault(span.name, []).append(span)
    return found


async def test_each_operation_has_a_client_span_named_after_it(service, telemetry, url):
    await every_operation(service)
    spans = by_name(telemetry.spans())
    assert set(spans) == set(OPERATIONS)
    system = url.partition(":")[0]
    for name, found in spans.items():
        for span in found:
            assert span.kind is SpanKind.CLIENT
            assert span.attributes["db.system.name"] == system
            assert span.attributes["db.operation.name"] == name
            assert span.attributes["db.namespace"] == "default"
            assert "server.address" not in span.attributes  # neither store has a server
            assert span.status.status_code is StatusCode.UNSET
    top = {span.name: span.attributes for span in telemetry.spans() if span.parent is None}
    assert top["append"]["sessionhub.session.id"] == "s1"
    assert top["append"]["sessionhub.events.appended"] == 3
    assert top["get_session"]["db.response.returned_rows"] == 3
    assert top["pop_event"]["db.response.returned_rows"] == 1
    assert top["replace_events"]["sessionhub.events.appended"] == 1
    assert top["list_sessions"]["db.response.returned_rows"] == 2
    assert top["list_users"]["db.response.returned_rows"] == 1


async def test_operations_built_from_others_are_parents_of_theirs(service, telemetry):
    await service.create_session("alice", "s1")
    telemetry.exporter.clear()
    await service.clear_events("alice", "s1")
    replace, clear = telemetry.spans()  # a child ends first
    assert (replace.name, clear.name) == ("replace_events", "clear_events")
    assert replace.parent.span_id == clear.context.span_id
    assert clear.parent is None


async def test_spans_nest_under_the_callers_current_span(service, telemetry):
    tracer = telemetry.tracer_provider.get_tracer("agent")
    with tracer.start_as_current_span("agent run") as run:
        await service.create_session("alice", "s1")
        await service.append(("alice", "s1"), "hello")
    create, append, agent = telemetry.spans()
    assert agent is not None and agent.name == "agent run"
    for span in (create, append):
        assert span.parent.span_id == run.get_span_context().span_id
        assert span.context.trace_id == run.get_span_context().trace_id


async def test_a_failed_operation_is_an_error_span_with_the_sessionhub_error_type(
    service, telemetry
):
    with pytest.raises(SessionNotFound):
        await service.append(("alice", "missing"), "hello")
    (span,) = telemetry.spans()
    assert span.name == "append"
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "SessionNotFound"
    assert span.attributes["sessionhub.session.id"] == "missing"
    assert "sessionhub.events.appended" not in span.attributes
    assert not span.events  # no exception event: its message names ids and values


async def test_a_generated_session_id_is_on_the_create_span(service, telemetry):
    session = await service.create_session("alice")
    (span,) = telemetry.spans()
    assert span.attributes["sessionhub.session.id"] == session.id


async def test_server_address_and_port_come_from_the_url_without_credentials(
    make_service, telemetry
):
    async with make_service("memory://reader:hunter2@db.example.com:6380/0") as svc:
        await svc.get_app_state()
    (span,) = telemetry.spans()
    assert span.attributes["server.address"] == "db.example.com"
    assert span.attributes["server.port"] == 6380
