"""Stored ADK events rebuilt without validation are the objects validation would give.

Every kind of event the adapter stores is dumped as the adapter dumps it and
rebuilt both ways; the two must match in every field, type, set of fields set
and private attribute. Dumps the fast path does not cover fall back to
validation, errors included. Events stored by earlier versions of the adapter
(``STORED_TODAY`` below) still read back.
"""

from __future__ import annotations

import copy
import enum
from typing import Any

import pydantic
import pytest
from fastapi.openapi.models import APIKey, APIKeyIn
from google.adk.auth.auth_credential import AuthCredential, AuthCredentialTypes
from google.adk.auth.auth_tool import AuthConfig
from google.adk.events.event import Event
from google.adk.events.event_actions import EventActions, EventCompaction
from google.adk.models.cache_metadata import CacheMetadata
from google.adk.sessions.session import Session as AdkSession
from google.adk.tools.tool_confirmation import ToolConfirmation
from google.genai import types

from sessionhub.backend_tools import event_from_json
from sessionhub_adk import to_adk_event, to_sessionhub_event
from sessionhub_adk._rebuild import construct, rebuild


def _events() -> list[Event]:
    call = types.FunctionCall(id="call-1", name="get_weather", args={"city": "Paris", "n": [1, 2]})
    response = types.FunctionResponse(id="call-1", name="get_weather", response={"temp_c": 21.5})
    return [
        Event(author="user", content=types.Content(role="user", parts=[types.Part(text="hi")])),
        Event(
            invocation_id="inv-1",
            author="agent",
            timestamp=1_795_000_000.123_456_7,
            content=types.Content(
                role="model",
                parts=[
                    types.Part(text="thinking", thought=True, thought_signature=b"sig\xff\x00"),
                    types.Part(function_call=call, thought_signature=b"\x01\x02"),
                ],
            ),
            long_running_tool_ids={"call-1", "call-2"},
            branch="root.agent",
        ),
        Event(
            author="agent",
            timestamp=1_700_000_000,  # an int epoch: a float after validation
            content=types.Content(role="user", parts=[types.Part(function_response=response)]),
            actions=EventActions(
                state_delta={"k": {"nested": [1, None]}, "n": None},
                artifact_delta={"file": 0},
                transfer_to_agent="other",
                escalate=True,
                skip_summarization=True,
                requested_tool_confirmations={
                    "call-1": ToolConfirmation(hint="sure?", payload={"a": 1})
                },
                requested_auth_configs={
                    "call-1": AuthConfig(
                        auth_scheme=APIKey(**{"in": APIKeyIn.header}, name="key"),
                        credential_key="weather-key",
                        raw_auth_credential=AuthCredential(
                            auth_type=AuthCredentialTypes.API_KEY, api_key="k"
                        ),
                    )
                },
                compaction=EventCompaction(
                    start_timestamp=1.0,
                    end_timestamp=2.0,
                    compacted_content=types.Content(role="model", parts=[types.Part(text="sum")]),
                ),
            ),
        ),
        Event(
            author="user",
            content=types.Content(
                role="user",
                parts=[
                    types.Part.from_bytes(data=b"\x89PNG\x00", mime_type="image/png"),
                    types.Part(file_data=types.FileData(file_uri="gs://b/f", mime_type="x/y")),
                ],
            ),
            grounding_metadata=types.GroundingMetadata(
                web_search_queries=["q"],
                search_entry_point=types.SearchEntryPoint(sdk_blob=b"blob"),
            ),
        ),
        Event(
            author="agent",
            turn_complete=True,
            partial=False,
            interrupted=True,
            error_code="E",
            error_message="boom",
            finish_reason=types.FinishReason.STOP,
            usage_metadata=types.GenerateContentResponseUsageMetadata(
                prompt_token_count=1,
                candidates_token_count=1,
                total_token_count=2,
                prompt_tokens_details=[
                    types.ModalityTokenCount(modality=types.MediaModality.TEXT, token_count=1)
                ],
            ),
            citation_metadata=types.CitationMetadata(
                citations=[types.Citation(uri="https://x", start_index=0, end_index=3)]
            ),
            cache_metadata=CacheMetadata(fingerprint="f", contents_count=2),
            custom_metadata={"custom": {"deep": True}},
            input_transcription=types.Transcription(text="in", finished=True),
            output_transcription=types.Transcription(text="out", finished=False),
            avg_logprobs=-0.5,
        ),
    ]


def _shape(value: Any) -> Any:
    """Everything equality leaves out: exact types, the fields set, private attributes."""
    if isinstance(value, pydantic.BaseModel):
        return (
            type(value),
            sorted(value.model_fields_set),
            value.__pydantic_private__,
            value.__pydantic_extra__,
            {key: _shape(item) for key, item in value.__dict__.items()},
        )
    if isinstance(value, (list, tuple)):
        return (type(value), [_shape(item) for item in value])
    if isinstance(value, set):
        return (set, sorted(value))
    if isinstance(value, dict):
        return (dict, {key: _shape(item) for key, item in value.items()})
    if isinstance(value, enum.Enum):
        return (type(value), value.value)
    return (type(value), value)


@pytest.mark.parametrize("event", _events(), ids=lambda event: event.author)
def test_rebuilt_event_is_the_validated_event(event: Event) -> None:
    dump = event.model_dump(mode="json", exclude_none=True)
    validated = Event.model_validate(copy.deepcopy(dump))
    rebuilt = rebuild(Event, copy.deepcopy(dump))
    assert rebuilt == validated
    assert _shape(rebuilt) == _shape(validated)
    assert list(rebuilt.__dict__) == list(validated.__dict__)
    assert rebuilt.model_dump_json() == validated.model_dump_json()
    assert repr(rebuilt) == repr(validated)


def test_values_the_fast_path_does_not_cover_are_validated() -> None:
    dump = _events()[0].model_dump(mode="json", exclude_none=True)
    odd = {**dump, "timestamp": "1700000000.5", "content": {**dump["content"], "role": 7}}
    with pytest.raises(pydantic.ValidationError) as expected:
        Event.model_validate(copy.deepcopy(odd))
    with pytest.raises(pydantic.ValidationError) as got:
        rebuild(Event, odd)
    assert got.value.errors() == expected.value.errors()

    lax = {**dump, "timestamp": "1700000000.5", "unknown_key": 1, "id": ""}
    rebuilt = rebuild(Event, copy.deepcopy(lax))
    validated = Event.model_validate(copy.deepcopy(lax))
    assert rebuilt.timestamp == 1_700_000_000.5
    assert rebuilt.id and validated.id  # model_post_init gave each a new id
    assert _shape(rebuilt.model_copy(update={"id": ""})) == _shape(
        validated.model_copy(update={"id": ""})
    )


def _session_fields(events: list[Event]) -> dict[str, Any]:
    return {
        "id": "s",
        "app_name": "a",
        "user_id": "u",
        "state": {"k": [1]},
        "events": events,
        "last_update_time": 5.0,
    }


@pytest.mark.parametrize("make", [rebuild, construct])
def test_session_built_from_values_is_the_validated_session(make: Any) -> None:
    events = _events()
    built = make(AdkSession, _session_fields(events))
    validated = AdkSession(**_session_fields(events))
    assert _shape(built) == _shape(validated)
    assert all(a is b for a, b in zip(built.events, events, strict=True))
    built._storage_update_marker = "m"
    assert built._storage_update_marker == "m"
    assert validated._storage_update_marker is None


def test_construct_needs_every_field() -> None:
    fields = _session_fields([])
    del fields["events"]
    with pytest.raises(TypeError, match="Session has the fields"):
        construct(AdkSession, fields)
    with pytest.raises(TypeError, match="Session has no private attributes"):
        construct(AdkSession, _session_fields([]), _marker="m")
    made = construct(AdkSession, _session_fields([]), _storage_update_marker="m")
    assert made._storage_update_marker == "m"


# A user message and a function call as sessionhub-adk 0.1 stores them (sessionhub event JSON,
# written by event_to_json): the stored format later versions must keep reading.
STORED_TODAY = [
    (
        '{"id":"e-1","seq":0,"role":"user","content":[{"type":"text","text":"Weather in Paris?"}]'
        ',"timestamp":"2026-11-18T11:06:40.123457Z","state_delta":{"sessionhub_adk:last_update_ti'
        'me":1795000000.1234567},"metadata":{"adk_event":{"content":{"parts":[{"text":"Weather in'
        ' Paris?"}],"role":"user"},"invocation_id":"inv-1","author":"user","actions":{"state_delt'
        'a":{},"artifact_delta":{},"requested_auth_configs":{},"requested_tool_confirmations":{}}'
        ',"node_info":{"path":""},"id":"e-1","timestamp":1795000000.1234567}}}'
    ),
    (
        '{"id":"e-2","seq":0,"role":"assistant","content":[{"type":"tool_call","id":"call-1","nam'
        'e":"get_weather","arguments":{"city":"Paris"}}],"timestamp":"2026-11-18T11:06:40.123457Z'
        '","state_delta":{"user:city":"Paris","sessionhub_adk:last_update_time":1795000000.123457'
        '},"metadata":{"adk_event":{"content":{"parts":[{"function_call":{"id":"call-1","args":{"'
        'city":"Paris"},"name":"get_weather"},"thought_signature":"c2ln"}],"role":"model"},"invoc'
        'ation_id":"inv-1","author":"weather_agent","actions":{"state_delta":{"user:city":"Paris"'
        '},"artifact_delta":{},"requested_auth_configs":{},"requested_tool_confirmations":{}},"no'
        'de_info":{"path":""},"long_running_tool_ids":["call-1"],"id":"e-2","timestamp":179500000'
        "0.123457}}}"
    ),
]


def test_events_stored_by_earlier_versions_read_back() -> None:
    first, second = (to_adk_event(event_from_json(text)) for text in STORED_TODAY)
    assert first == Event(
        id="e-1",
        invocation_id="inv-1",
        author="user",
        timestamp=1795000000.1234567,
        content=types.Content(role="user", parts=[types.Part(text="Weather in Paris?")]),
    )
    call = types.FunctionCall(id="call-1", name="get_weather", args={"city": "Paris"})
    assert second == Event(
        id="e-2",
        invocation_id="inv-1",
        author="weather_agent",
        timestamp=1795000000.123457,
        content=types.Content(
            role="model", parts=[types.Part(function_call=call, thought_signature=b"sig")]
        ),
        actions=EventActions(state_delta={"user:city": "Paris"}),
        long_running_tool_ids={"call-1"},
    )
    # and the adapter still writes them so
    for text, event in zip(STORED_TODAY, (first, second), strict=True):
        stored = event_from_json(text)
        assert to_sessionhub_event(event, stored.state_delta).metadata == stored.metadata
