"""``Runner`` over a ``SessionHubSession`` with the SDK's offline scripted model, per backend."""

from __future__ import annotations

import pytest
from agents import Agent, ModelSettings, RunConfig, Runner, function_tool
from agents.memory import SessionSettings
from agents.retry import ModelRetrySettings
from agents.run_internal.session_persistence import rewind_session_items
from agents.testing import ModelStep, ScriptedModel, assistant_message, function_call

from sessionhub import ToolCallPart

pytestmark = pytest.mark.asyncio

RUNNERS = ["run", "run_streamed"]


async def run(method, agent, prompt, **options):
    if method == "run":
        return await Runner.run(agent, prompt, **options)
    result = Runner.run_streamed(agent, prompt, **options)
    async for _ in result.stream_events():
        pass
    return result


def replies(*texts):
    return [[assistant_message(text)] for text in texts]


def text_of(item):
    content = item.get("content")
    return content if isinstance(content, str) else content[0]["text"]


@pytest.mark.parametrize("method", RUNNERS)
async def test_a_second_turn_sees_the_first(make_session, method):
    model = ScriptedModel(replies("San Francisco", "California"))
    agent = Agent(name="guide", model=model)
    session = make_session()

    first = await run(method, agent, "What city is the Golden Gate Bridge in?", session=session)
    assert first.final_output == "San Francisco"
    second = await run(method, agent, "What state is it in?", session=session)
    assert second.final_output == "California"

    assert [text_of(item) for item in model.last_call.input] == [
        "What city is the Golden Gate Bridge in?",
        "San Francisco",
        "What state is it in?",
    ]
    stored = await session.get_items()
    assert stored == [*model.last_call.input, second.new_items[-1].to_input_item()]


@pytest.mark.parametrize("method", RUNNERS)
async def test_sessions_keep_separate_histories(make_session, method):
    model = ScriptedModel(replies("cats noted", "dogs noted", "you said cats"))
    agent = Agent(name="pets", model=model)
    cats, dogs = make_session("session_1"), make_session("session_2")

    await run(method, agent, "I like cats", session=cats)
    await run(method, agent, "I like dogs", session=dogs)
    await run(method, agent, "What did I say I like?", session=cats)

    assert [text_of(item) for item in model.last_call.input] == [
        "I like cats",
        "cats noted",
        "What did I say I like?",
    ]


async def test_tool_calls_and_results_are_stored_and_replayed(make_session):
    @function_tool
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    model = ScriptedModel(
        [
            [function_call("add", {"a": 2, "b": 2}, call_id="call_1")],
            [assistant_message("4")],
            [assistant_message("It was 4")],
        ]
    )
    agent = Agent(name="calc", model=model, tools=[add])
    session = make_session()

    assert (await Runner.run(agent, "2 + 2?", session=session)).final_output == "4"
    items = await session.get_items()
    assert [item.get("type", "message") for item in items] == [
        "message",
        "function_call",
        "function_call_output",
        "message",
    ]
    assert items[2]["call_id"] == "call_1" and items[2]["output"] == "4"

    await Runner.run(agent, "What was it?", session=session)
    assert model.last_call.input[:4] == items  # replayed exactly as stored

    stored = await session.service.get_session(session.user_id, session.session_id, last_n=6)
    assert [event.role for event in stored.events[:4]] == ["user", "assistant", "tool", "assistant"]
    assert stored.events[1].tool_calls == [
        ToolCallPart(id="call_1", name="add", arguments={"a": 2, "b": 2})
    ]
    assert stored.events[3].text == "4"


@pytest.mark.parametrize(
    ("limit", "expected"),
    [
        (2, ["Message 3", "Reply 3", "Message 4"]),
        (0, ["Message 4"]),
        (
            None,
            ["Message 1", "Reply 1", "Message 2", "Reply 2", "Message 3", "Reply 3", "Message 4"],
        ),
        (
            100,
            ["Message 1", "Reply 1", "Message 2", "Reply 2", "Message 3", "Reply 3", "Message 4"],
        ),
    ],
)
async def test_run_config_session_limit(make_session, limit, expected):
    model = ScriptedModel(replies("Reply 1", "Reply 2", "Reply 3", "Reply 4"))
    agent = Agent(name="limited", model=model)
    session = make_session()
    for turn in (1, 2, 3):
        await Runner.run(agent, f"Message {turn}", session=session)
    assert len(await session.get_items()) == 6

    await Runner.run(
        agent,
        "Message 4",
        session=session,
        run_config=RunConfig(session_settings=SessionSettings(limit=limit)),
    )
    assert [text_of(item) for item in model.last_call.input] == expected


async def test_the_session_own_limit_applies_to_the_runner(make_session):
    model = ScriptedModel(replies("Reply 1", "Reply 2"))
    agent = Agent(name="limited", model=model)
    session = make_session(session_settings=SessionSettings(limit=1))
    await Runner.run(agent, "Message 1", session=session)
    await Runner.run(agent, "Message 2", session=session)
    assert [text_of(item) for item in model.last_call.input] == ["Reply 1", "Message 2"]


async def test_list_input_is_appended_to_history(make_session):
    model = ScriptedModel(replies("This should run"))
    agent = Agent(name="lists", model=model)
    session = make_session()
    history = [
        {"role": "user", "content": "Earlier message"},
        {"role": "assistant", "content": "Saved reply"},
    ]
    await session.add_items(history)
    new_input = [{"role": "user", "content": "Test message"}]
    await Runner.run(agent, new_input, session=session)
    assert model.last_call.input == history + new_input


async def test_a_retry_rewind_pops_the_retry_owned_items(make_session, require):
    """The runner's retry path pops what the failed attempt persisted (the SDK's rewind helper).

    In 0.24 the runner rewinds only server-managed conversations, which it refuses
    to combine with a session, so the helper is driven directly, as the SDK's own
    session tests do.
    """
    require("pop_event")
    session = make_session()
    kept = {"role": "user", "content": "kept"}
    retried = [{"role": "user", "content": "retry me"}, {"role": "assistant", "content": "partial"}]
    await session.add_items([kept, *retried])

    await rewind_session_items(session, retried)
    assert await session.get_items() == [kept]

    await session.add_items([{"role": "user", "content": "unrelated"}])
    await rewind_session_items(session, retried)  # the tail does not match: nothing popped
    assert [item["content"] for item in await session.get_items()] == ["kept", "unrelated"]


async def test_a_model_retry_leaves_no_duplicate_history(make_session):
    model = ScriptedModel(
        [ModelStep.raise_error(ConnectionError("the provider hung up")), [assistant_message("ok")]]
    )
    agent = Agent(
        name="flaky",
        model=model,
        model_settings=ModelSettings(
            retry=ModelRetrySettings(
                max_retries=2, backoff={"initial_delay": 0, "jitter": False}, policy=lambda _: True
            )
        ),
    )
    session = make_session()
    result = await Runner.run(agent, "hello", session=session)
    assert result.final_output == "ok"
    assert len(model.calls) == 2
    assert [text_of(item) for item in await session.get_items()] == ["hello", "ok"]
