"""``SessionHubSession(append_only_memories=True)``: saves serialise only the new messages.

What it stores equals what an exact save stores; what it can see cheaply (a
memory shorter than saved, its last saved message out of place, its own state
changed, as AgentScope's compression does) writes that memory whole; an entry
edited in place is not seen (the documented trade-off); concurrent saves stay
whole, on every backend.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from agentscope.memory import InMemoryMemory
from agentscope.message import Msg
from agentscope.module import StateModule

from sessionhub import InvalidInput, SessionHistoryService
from sessionhub_agentscope import DEFAULT_USER_ID, SessionHubSession

pytestmark = pytest.mark.asyncio


class Holder(StateModule):
    """A module with a registered name and a memory sub-module, as agents have."""

    def __init__(self, name: str = "holder") -> None:
        super().__init__()
        self.name = name
        self.memory = InMemoryMemory()
        self.register_state("name")


async def holder_with(count: int, name: str = "holder") -> Holder:
    holder = Holder(name)
    await holder.memory.add([Msg("user", f"m{i}", "user") for i in range(count)])
    return holder


def saved_form(module: StateModule) -> dict:
    return json.loads(json.dumps(module.state_dict()))


@pytest.fixture
def session(service: SessionHistoryService) -> SessionHubSession:
    return SessionHubSession(service, append_only_memories=True)


async def loaded(service: SessionHistoryService, session_id: str = "s") -> Holder:
    """The session loaded by an object that remembers nothing, in exact mode."""
    holder = Holder("?")
    await SessionHubSession(service).load_session_state(session_id, holder=holder)
    return holder


async def new_events(service: SessionHistoryService, after: int, session_id: str = "s") -> list:
    got = await service.get_session(DEFAULT_USER_ID, session_id, after_seq=after)
    return got.events


async def last_seq(service: SessionHistoryService, session_id: str = "s") -> int:
    return (await service.get_session(DEFAULT_USER_ID, session_id, last_n=0)).last_seq


async def test_saves_store_what_exact_saves_store(session, service):
    holder = await holder_with(3)
    exact = SessionHubSession(service)
    for round_ in range(4):
        await session.save_session_state("fast", holder=holder)
        await exact.save_session_state("exact", holder=holder)
        fast_copy, exact_copy = await loaded(service, "fast"), await loaded(service, "exact")
        assert saved_form(fast_copy) == saved_form(exact_copy) == saved_form(holder)
        await holder.memory.add([Msg("assistant", f"a{round_}", "assistant")])
        holder.name = f"renamed {round_}"  # other state is saved exactly either way
    fast_state = (await service.get_session(DEFAULT_USER_ID, "fast")).state
    assert fast_state == (await service.get_session(DEFAULT_USER_ID, "exact")).state


async def test_a_save_appends_the_new_messages_without_serialising_the_stored_ones(
    session, service
):
    holder = await holder_with(3)
    await session.save_session_state("s", holder=holder)
    before = await last_seq(service)
    # A stored message that could no longer be serialised: only an exact save reads it again.
    holder.memory.content[0][0].metadata = {"not json": object()}
    with pytest.raises(InvalidInput, match=r"holder\.memory\.content"):
        await SessionHubSession(service).save_session_state("s", holder=holder)
    await holder.memory.add(Msg("user", "new", "user"))
    await session.save_session_state("s", holder=holder)
    added = await new_events(service, before)
    assert [e.metadata.get("agentscope_entry", [{}])[0].get("content") for e in added] == [
        "new",
        None,  # the marker carrying the state
    ]


@pytest.mark.parametrize(
    "change", ["delete", "clear", "reorder", "last marks", "compression", "replaced"]
)
async def test_what_it_can_see_changed_writes_the_memory_whole(session, service, change):
    holder = await holder_with(5)
    await session.save_session_state("s", holder=holder)
    memory = holder.memory
    msgs = [msg for msg, _ in memory.content]
    if change == "delete":
        await memory.delete([msgs[1].id])
    elif change == "clear":
        await memory.clear()
    elif change == "reorder":
        memory.content.reverse()
    elif change == "last marks":
        await memory.update_messages_mark("hint", msg_ids=[msgs[-1].id])
    elif change == "compression":  # what ReActAgent's compression does to older entries
        await memory.update_compressed_summary("the first two messages, summarised")
        await memory.update_messages_mark("compressed", msg_ids=[m.id for m in msgs[:2]])
    else:  # the same messages loaded again: other objects
        memory.load_state_dict(memory.state_dict())
    await memory.add(Msg("user", "after", "user"))
    before = await last_seq(service)
    await session.save_session_state("s", holder=holder)
    added = await new_events(service, before)
    assert added[0].metadata.get("agentscope_reset") is True  # written whole
    assert saved_form(await loaded(service)) == saved_form(holder)
    await memory.add(Msg("user", "later", "user"))
    await session.save_session_state("s", holder=holder)  # and appended to again
    assert saved_form(await loaded(service)) == saved_form(holder)


async def test_an_entry_edited_in_place_is_not_seen(session, service):
    """The trade-off the option makes: the stored copy of an edited entry stays as it was."""
    holder = await holder_with(3)
    await session.save_session_state("s", holder=holder)
    holder.memory.content[1][0].content = "edited"
    await holder.memory.add(Msg("user", "new", "user"))
    await session.save_session_state("s", holder=holder)
    got = [msg.content for msg, _ in (await loaded(service)).memory.content]
    assert got == ["m0", "m1", "m2", "new"]
    await SessionHubSession(service).save_session_state("s", holder=holder)  # exact: sees it
    got = [msg.content for msg, _ in (await loaded(service)).memory.content]
    assert got == ["m0", "edited", "m2", "new"]


async def test_a_load_then_a_save_appends_only_what_was_added(session, service):
    """One object for an application whose agents are built, loaded and saved per request."""
    await session.save_session_state("s", holder=await holder_with(4))
    for request in range(3):
        holder = Holder("?")
        await session.load_session_state("s", holder=holder)
        await holder.memory.add(Msg("user", f"request {request}", "user"))
        before = await last_seq(service)
        await session.save_session_state("s", holder=holder)
        assert len(await new_events(service, before)) == 2  # the message and the marker
        assert saved_form(await loaded(service)) == saved_form(holder)
    fresh = SessionHubSession(service, append_only_memories=True)  # remembers nothing
    holder = Holder("?")
    await fresh.load_session_state("s", holder=holder)
    await holder.memory.add(Msg("user", "elsewhere", "user"))
    before = await last_seq(service)
    await fresh.save_session_state("s", holder=holder)
    assert len(await new_events(service, before)) == 2
    assert saved_form(await loaded(service)) == saved_form(holder)


async def test_a_load_into_another_memory_then_a_save_of_the_first_stays_right(session, service):
    holder = await holder_with(4)
    await session.save_session_state("s", holder=holder)
    await session.load_session_state("s", holder=Holder("?"))  # remembered: the loaded copy
    await holder.memory.add(Msg("user", "new", "user"))
    await session.save_session_state("s", holder=holder)
    assert saved_form(await loaded(service)) == saved_form(holder)


async def test_a_module_storing_its_memory_in_a_shape_of_its_own_is_saved_whole(session, service):
    class Flat(StateModule):
        """Saves its memory's messages under a key of its own, not as the memory's state."""

        def __init__(self) -> None:
            super().__init__()
            self.memory = InMemoryMemory()

        def state_dict(self) -> dict:
            return {"messages": self.memory.state_dict()["content"]}

        def load_state_dict(self, state: dict, strict: bool = True) -> None:
            self.memory.load_state_dict({"content": state["messages"]})

    flat = Flat()
    await flat.memory.add([Msg("user", "kept", "user")])
    await session.save_session_state("s", flat=flat)
    again = Flat()
    await SessionHubSession(service).load_session_state("s", flat=again)
    assert saved_form(again) == saved_form(flat)


async def test_two_objects_saving_one_session_in_turn(session, service):
    other = SessionHubSession(service, append_only_memories=True)
    holder = await holder_with(2)
    for round_ in range(4):
        writer = (session, other)[round_ % 2]
        await holder.memory.add(Msg("user", f"r{round_}", "user"))
        await writer.save_session_state("s", holder=holder)  # the other's save came between
        assert saved_form(await loaded(service)) == saved_form(holder)


async def test_idle_saves_are_compacted_and_still_load(session, service):
    holder = await holder_with(3)
    for _ in range(40):
        await session.save_session_state("s", holder=holder)  # nothing new: a marker each
    await holder.memory.add(Msg("user", "new", "user"))
    await session.save_session_state("s", holder=holder)
    after = await service.get_session(DEFAULT_USER_ID, "s")
    if service.backend.capabilities.replace_events:  # the 40 markers are gone
        assert len(after.events) < 20 and after.events[0].seq > 1
    assert saved_form(await loaded(service)) == saved_form(holder)


async def test_fifty_concurrent_saves_of_one_shared_memory_keep_every_message(session, service):
    holder = await holder_with(1)

    async def turn(index: int) -> None:
        await holder.memory.add(Msg("user", f"t{index}", "user"))
        await session.save_session_state("race", holder=holder)

    await asyncio.gather(*(turn(index) for index in range(50)))
    assert saved_form(await loaded(service, "race")) == saved_form(holder)
    assert len(holder.memory.content) == 51


async def test_fifty_concurrent_saves_from_separate_objects_leave_one_whole_save(service):
    holders = [await holder_with(w % 7 + 1, name=f"w{w}") for w in range(50)]
    expected = {h.name: saved_form(h) for h in holders}
    writers = [SessionHubSession(service, append_only_memories=True) for _ in holders]
    pairs = list(zip(writers, holders, strict=True))
    await asyncio.gather(*(w.save_session_state("race", holder=h) for w, h in pairs))
    got = await loaded(service, "race")
    assert saved_form(got) == expected[got.name]
    for writer, holder in pairs[:5]:  # acknowledged in turn: each wins
        await holder.memory.add(Msg("user", "more", "user"))
        await writer.save_session_state("race", holder=holder)
        assert saved_form(await loaded(service, "race")) == saved_form(holder)
