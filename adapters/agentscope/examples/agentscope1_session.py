"""AgentScope 1.x: an agent's memory kept in sessionhub between runs, as JSONSession would."""

import asyncio

from agentscope.agent import ReActAgent
from agentscope.formatter import DashScopeChatFormatter
from agentscope.memory import InMemoryMemory
from agentscope.message import Msg
from agentscope.model import DashScopeChatModel

from sessionhub_agentscope import SessionHubSession


def make_agent() -> ReActAgent:
    """The application's agent, as it builds it today."""
    return ReActAgent(
        name="Friday",
        sys_prompt="You are a helpful assistant.",
        model=DashScopeChatModel(model_name="qwen-max", api_key="sk-..."),  # not called here
        formatter=DashScopeChatFormatter(),
        memory=InMemoryMemory(),
    )


async def main() -> None:
    """Save a turn, then load it into a fresh agent."""
    # was: session = JSONSession(save_dir="./sessions")
    async with SessionHubSession(url="sqlite:///sessions.db") as session:
        agent = make_agent()
        await session.load_session_state("chat-1", user_id="alice", agent=agent)  # none yet
        await agent.observe(Msg("alice", "My name is Alice.", "user"))  # or: await agent(msg)
        await session.save_session_state("chat-1", user_id="alice", agent=agent)

    # Later, in this process or another one: a new agent carries on from the snapshot.
    async with SessionHubSession(url="sqlite:///sessions.db") as session:
        agent = make_agent()
        await session.load_session_state("chat-1", user_id="alice", agent=agent)
        print([msg.content for msg in await agent.memory.get_memory()])


asyncio.run(main())
