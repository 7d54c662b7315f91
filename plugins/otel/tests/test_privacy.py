"""No secret and no event content reaches any attribute, span event or metric point."""

from __future__ import annotations

import pytest

from sessionhub import ConflictError, InvalidInput

pytestmark = pytest.mark.asyncio

PASSWORD = "hunter2-s3cret"
TEXT = "my card is 4111 1111 1111 1111"


def every_value(telemetry) -> list[str]:
    values: list[str] = []
    for span in telemetry.spans():
        values += [span.name, span.status.description or ""]
        values += [f"{k}={v}" for k, v in span.attributes.items()]
        for event in span.events:
            values += [event.name, *(f"{k}={v}" for k, v in event.attributes.items())]
    for _, found in telemetry.metrics().values():
        for point in found:
            values += [f"{k}={v}" for k, v in point.attributes.items()]
    return values


async def test_no_password_or_event_text_in_anything_recorded(make_service, telemetry, tmp_path):
    url = f"memory://admin:{PASSWORD}@db.internal:7000/?token={PASSWORD}"
    async with make_service(url) as svc:
        session = await svc.create_session("alice", "s1", state={"secret": PASSWORD})
        stored = await svc.append(session, [TEXT, {"role": "assistant", "content": TEXT}])
        await svc.get_session("alice", "s1")
        await svc.update_app_state({"api_key": PASSWORD})
        with pytest.raises(ConflictError):  # an error whose message could quote content
            await svc.append(session, [stored[0].model_copy(update={"content": []})])
        await svc.replace_events("alice", "s1", [TEXT])
        with pytest.raises(InvalidInput):
            await svc.replace_events("alice", "s1", [{"content": TEXT, "state_delta": {"k": TEXT}}])
    values = every_value(telemetry)
    assert any("error.type=ConflictError" in v for v in values)
    assert any("error.type=InvalidInput" in v for v in values)
    assert any("server.address=db.internal" in v for v in values)
    leaked = [v for v in values if PASSWORD in v or "4111" in v or "alice" in v]
    assert not leaked
