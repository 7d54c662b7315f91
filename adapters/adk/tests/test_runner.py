"""An ADK ``Runner`` conversation stored by sessionhub, with a scripted model (no network).

The model is a ``BaseLlm`` subclass that answers from a script, as ADK's own
tests do: turn one calls a tool and then answers, turn two answers directly.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

import pytest
from google.adk.agents.llm_agent import LlmAgent
from google.adk.events.event import Event
from google.adk.models.base_llm import BaseLlm
from google.adk.models.llm_request import LlmRequest
from google.adk.models.llm_response import LlmResponse
from google.adk.runners import Runner
from google.genai import types

from sessionhub_adk import SessionHubSessionService

APP = "weather_app"


class ScriptedLlm(BaseLlm):
    """Answers each model call with the next scripted response; records what it was sent."""

    responses: list[LlmResponse]
    requests: list[LlmRequest]

    async def generate_content_async(
        self, llm_request: LlmRequest, stream: bool = False
    ) -> AsyncGenerator[LlmResponse, None]:
        self.requests.append(llm_request)
        yield self.responses[len(self.requests) - 1]


def text(role: str, words: str) -> types.Content:
    return types.Content(role=role, parts=[types.Part(text=words)])


def get_weather(city: str) -> dict[str, object]:
    """Return the weather in a city."""
    return {"city": city, "temp_c": 21}


def build_agent() -> tuple[LlmAgent, ScriptedLlm]:
    call = types.FunctionCall(id="call-1", name="get_weather", args={"city": "Paris"})
    model = ScriptedLlm(
        model="scripted",
        responses=[
            LlmResponse(
                content=types.Content(role="model", parts=[types.Part(function_call=call)])
            ),
            LlmResponse(content=text("model", "21 °C in Paris.")),
            LlmResponse(content=text("model", "You're welcome.")),
        ],
        requests=[],
    )
    agent = LlmAgent(name="weather_agent", model=model, tools=[get_weather], output_key="last")
    return agent, model


async def run_turn(runner: Runner, session_id: str, words: str, seen: list[Event]) -> list[str]:
    replies = []
    async for event in runner.run_async(
        user_id="u1",
        session_id=session_id,
        new_message=text("user", words),
        yield_user_message=True,
    ):
        seen.append(event)
        if event.author != "user" and event.content and event.content.parts[0].text:
            replies.append(event.content.parts[0].text)
    return replies


@pytest.mark.asyncio
async def test_a_runner_conversation_is_stored_and_read_back(store):
    agent, model = build_agent()
    service = SessionHubSessionService(store())
    runner = Runner(app_name=APP, agent=agent, session_service=service)
    session = await service.create_session(app_name=APP, user_id="u1")

    seen: list[Event] = []
    assert await run_turn(runner, session.id, "Weather in Paris?", seen) == ["21 °C in Paris."]
    assert await run_turn(runner, session.id, "Thanks!", seen) == ["You're welcome."]
    await runner.close()

    # the second model call saw the whole first turn, read from storage
    history = [c.parts[0] for c in model.requests[2].contents]
    assert [p.text or (p.function_call or p.function_response).name for p in history] == [
        "Weather in Paris?",
        "get_weather",
        "get_weather",
        "21 °C in Paris.",
        "Thanks!",
    ]

    # another process's service reads the same conversation, equal event for event
    other = SessionHubSessionService(store())
    stored = await other.get_session(app_name=APP, user_id="u1", session_id=session.id)
    assert stored.events == seen
    assert stored.state["last"] == "You're welcome."
    agent_turn = ["weather_agent"] * 3
    assert [e.author for e in stored.events] == ["user", *agent_turn, "user", "weather_agent"]
    readable = await store().for_app(APP).get_session("u1", session.id)
    first_turn = ["user", "assistant", "tool", "assistant"]
    assert [e.role for e in readable.events] == [*first_turn, "user", "assistant"]
    assert readable.events[2].content[0].output == {"city": "Paris", "temp_c": 21}
