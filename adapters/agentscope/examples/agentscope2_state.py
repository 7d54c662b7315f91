"""AgentScope 2.x: an agent's state and its messages kept in sessionhub between requests."""

import asyncio

from agentscope.message import AssistantMsg, UserMsg
from agentscope.state import AgentState

from sessionhub_agentscope import AgentStateStore


async def main() -> None:
    """Handle one request: resume, reply, save."""
    async with AgentStateStore(url="sqlite:///agents.db") as store:
        # A request arrives: resume the agent's state, or start a new one.
        state = await store.load_state("alice", "chat-1") or AgentState(session_id="chat-1")
        # agent = Agent(name="Friday", system_prompt="...", model=model, state=state)
        # answer = await agent.reply(question)  -- the agent appends to state.context;
        # here, without a model, the exchange is added by hand:
        question, answer = UserMsg("alice", "What is 2+3?"), AssistantMsg("Friday", "5.")
        state.context += [question, answer]

        # The reply is done: keep the state and log the exchange.
        await store.save_state("alice", state)
        await store.append_messages("alice", state.session_id, [question, answer])

        print(await store.load_state("alice", "chat-1") == state)
        print([msg.get_text_content() for msg in await store.load_messages("alice", "chat-1")])


asyncio.run(main())
