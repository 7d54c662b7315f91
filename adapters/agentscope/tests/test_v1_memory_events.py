"""``SessionHubSession`` keeps memories as events: saves append what is new, on every backend.

A save appends only the entries added since the last one; an edit, a deletion,
changed marks or a cleared memory reset that memory; concurrent writers (one
object or many) never lose or mix a save; older layouts still load.

With ``append_only_memories=True`` what a save stores equals what an exact save
stores; what it can see cheaply (a memory shorter than saved, its last saved
message out of place or re-marked, its own state changed, as AgentScope's
compression does) writes that memory whole; an entry edited in place is not
seen (the documented trade-off); concurrent saves stay whole.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from agentscope.memory import InMemoryMemory
from agentscope.message import Msg
from agentscope.module import StateModule

from sessionhub import BackendError, InvalidInput, SessionHistoryService, SessionHubSettings
from sessionhub_agentscope import (
    DEFAULT_USER_ID,
    MEMORIES_KEY,
    STATE_KEY,
    SessionHubSession,
    _memory_log,
    _session,
)

pytestmark = pytest.mark.asyncio


class Holder(StateModule):
    """A module with a registered name and a memory sub-module, as agents have."""

    def __init__(self, name: str = "holder") -> None:
        super().__init__()
        self.name = name
        self.memory = InMemoryMemory()
        self.register_state("name")


async def holder_with(count: int, name: str = "holder", start: int = 0) -> Holder:
    holder = Holder(name)
    await holder.memory.add([Msg("user", f"m{i}", "user") for i in range(start, start + count)])
    return holder


def saved_form(module: StateModule) -> dict:
    return json.loads(json.dumps(module.state_dict()))


async def loaded(session: SessionHubSession, session_id: str = "s") -> Holder:
    holder = Holder("?")
    await session.load_session_state(session_id, holder=holder)
    return holder


@pytest.fixture
def session(service: SessionHistoryService) -> SessionHubSession:
    return SessionHubSession(service)


async def stored(service: SessionHistoryService, session_id: str = "s"):
    return await service.get_session(DEFAULT_USER_ID, session_id)


async def test_each_save_appends_only_the_entries_added_since_the_last(session, service):
    holder = await holder_with(3)
    await session.save_session_state("s", holder=holder)
    first = (await stored(service)).last_seq
    assert first == 3  # a reset of the new memory, its three entries in a batch, the marker
    await holder.memory.add([Msg("assistant", "a", "assistant"), Msg("user", "b", "user")])
    await session.save_session_state("s", holder=holder)
    assert (await stored(service)).last_seq == first + 3
    await session.save_session_state("s", holder=holder)  # nothing new: the marker alone
    after = await stored(service)
    assert after.last_seq == first + 4
    assert [len(e.metadata.get("agentscope_entries", ())) for e in after.events] == [
        *(0, 3, 0),  # the first save: a reset, one batch, the marker
        *(0, 0, 0),  # the second: an event per entry added, the marker
        0,  # the third: a marker
    ]
    entries = [
        entry
        for e in after.events
        for entry in e.metadata.get("agentscope_entries", [e.metadata.get("agentscope_entry")])
        if entry
    ]
    assert [msg["content"] for msg, _ in entries] == [
        "m0",
        "m1",
        "m2",
        "a",
        "b",
    ]
    assert saved_form(await loaded(session)) == saved_form(holder)


async def test_a_second_object_continues_a_session_another_saved(session, service):
    holder = await holder_with(2)
    await session.save_session_state("s", holder=holder)
    other = SessionHubSession(service)  # remembers nothing: reads the session first
    await holder.memory.add(Msg("user", "from other", "user"))
    await other.save_session_state("s", holder=holder)
    assert (await stored(service)).last_seq == 3 + 2  # one entry and a marker, not all three
    await holder.memory.add(Msg("user", "back", "user"))
    await session.save_session_state("s", holder=holder)  # its seq is stale: re-reads, appends
    assert saved_form(await loaded(other)) == saved_form(holder)
    assert (await stored(service)).last_seq == 5 + 2


async def test_a_writer_behind_another_that_reset_the_memory_reads_on_and_wins(session, service):
    mine = await holder_with(5)
    await session.save_session_state("s", holder=mine)
    theirs = await loaded(SessionHubSession(service))
    other = SessionHubSession(service)
    await other.save_session_state("s", holder=theirs)  # a marker only: nothing new
    await theirs.memory.delete([theirs.memory.content[1][0].id])
    await other.save_session_state("s", holder=theirs)  # a reset and four entries
    assert saved_form(await loaded(session)) == saved_form(theirs)
    await mine.memory.add(Msg("user", "mine", "user"))
    await session.save_session_state("s", holder=mine)  # behind by two saves: reads them
    assert saved_form(await loaded(SessionHubSession(service))) == saved_form(mine)
    await theirs.memory.add(Msg("user", "theirs", "user"))
    await other.save_session_state("s", holder=theirs)
    assert saved_form(await loaded(session)) == saved_form(theirs)


@pytest.mark.parametrize("change", ["delete", "edit", "marks", "clear", "reorder"])
async def test_an_earlier_entry_changed_resets_that_memory(session, service, change):
    holder = await holder_with(5)
    await session.save_session_state("s", holder=holder)
    msgs = [msg for msg, _ in holder.memory.content]
    if change == "delete":
        await holder.memory.delete([msgs[2].id])
    elif change == "edit":
        msgs[1].content = "edited"
    elif change == "marks":
        await holder.memory.update_messages_mark("hint", msg_ids=[msgs[0].id])
    elif change == "clear":
        await holder.memory.clear()
    else:
        holder.memory.content.reverse()
    await holder.memory.add(Msg("user", "after", "user"))
    await session.save_session_state("s", holder=holder)
    for reader in (session, SessionHubSession(service)):
        assert saved_form(await loaded(reader)) == saved_form(holder)
    await holder.memory.add(Msg("user", "later", "user"))
    await session.save_session_state("s", holder=holder)
    assert saved_form(await loaded(SessionHubSession(service))) == saved_form(holder)


async def test_resets_and_idle_saves_are_compacted_and_still_load(session, service):
    holder = await holder_with(3)
    for round_ in range(40):
        msgs = [msg for msg, _ in holder.memory.content]
        await holder.memory.delete([msgs[0].id])
        await holder.memory.add(Msg("user", f"r{round_}", "user"))
        await session.save_session_state("s", holder=holder)
        await session.save_session_state("s", holder=holder)  # an idle save: a marker event
    after = await stored(service)
    assert after.last_seq > 100  # 40 resets of 3 entries and 40 markers were written ...
    assert len(after.events) <= 3 + 1 + 33  # ... but only live entries, a reset and a few stay
    assert saved_form(await loaded(SessionHubSession(service))) == saved_form(holder)
    await holder.memory.add(Msg("user", "next", "user"))
    await session.save_session_state("s", holder=holder)
    assert saved_form(await loaded(SessionHubSession(service))) == saved_form(holder)


async def test_memories_top_level_nested_and_several_at_once(session, service):
    memory, holder = InMemoryMemory(), await holder_with(2)
    await memory.add(Msg("user", "top", "user"))
    await session.save_session_state("s", memory=memory, holder=holder)
    index = (await stored(service)).state[MEMORIES_KEY]
    assert index == {
        "memory": {"keys": ["memory"], "count": 1},
        "holder.memory": {"keys": ["holder", "memory"], "count": 2},
    }
    again, holder2 = InMemoryMemory(), Holder("?")
    await session.load_session_state("s", memory=again, holder=holder2)
    assert saved_form(again) == saved_form(memory) and saved_form(holder2) == saved_form(holder)


async def test_module_names_with_dots_keep_their_memories_apart(session, service):
    outer, dotted = Holder("outer"), await holder_with(2, name="dotted")
    outer.inner = await holder_with(3, name="inner")  # registered: "a" -> "inner" -> "memory"
    await outer.memory.add(Msg("user", "outer", "user"))
    await session.save_session_state("s", **{"a": outer, "a.inner": dotted})
    index = (await stored(service)).state[MEMORIES_KEY]
    assert sorted(index) == ['["a.inner", "memory"]', "a.inner.memory", "a.memory"]
    got_outer, got_dotted = Holder("?"), Holder("?")
    got_outer.inner = Holder("?")
    await session.load_session_state("s", **{"a": got_outer, "a.inner": got_dotted})
    assert saved_form(got_outer) == saved_form(outer)
    assert saved_form(got_dotted) == saved_form(dotted)


async def test_a_module_dropped_then_saved_again_starts_fresh(session):
    holder, extra = await holder_with(2), await holder_with(3, name="extra")
    await session.save_session_state("s", holder=holder, extra=extra)
    await session.save_session_state("s", holder=holder)
    fresh = await holder_with(1, name="extra", start=10)
    await session.save_session_state("s", holder=holder, extra=fresh)
    got = Holder("?")
    await session.load_session_state("s", extra=got)
    assert saved_form(got) == saved_form(fresh)


@pytest.mark.parametrize("append_only", [False, True])
async def test_fifty_concurrent_saves_from_separate_objects_leave_one_whole_save(
    service, append_only
):
    holders = [await holder_with(w % 7 + 1, name=f"w{w}", start=w * 10) for w in range(50)]
    expected = {h.name: saved_form(h) for h in holders}
    writers = [SessionHubSession(service, append_only_memories=append_only) for _ in holders]
    pairs = zip(writers, holders, strict=True)
    await asyncio.gather(*(w.save_session_state("race", holder=h) for w, h in pairs))
    got = await loaded(SessionHubSession(service), "race")
    assert saved_form(got) == expected[got.name]
    # acknowledged in turn: each wins
    for writer, holder in zip(writers[:5], holders[:5], strict=True):
        await holder.memory.add(Msg("user", "more", "user"))
        await writer.save_session_state("race", holder=holder)
        got = await loaded(writers[-1], "race")
        assert saved_form(got) == saved_form(holder)


async def test_fifty_concurrent_saves_of_one_growing_memory_from_one_object(session):
    holder = await holder_with(1)
    snapshots = []
    saves = []
    for index in range(50):
        await holder.memory.add(Msg("user", f"g{index}", "user"))
        snapshots.append(saved_form(holder))
        copy = Holder("holder")
        copy.load_state_dict(snapshots[-1])
        saves.append(session.save_session_state("grow", holder=copy))
    await asyncio.gather(*saves)
    assert saved_form(await loaded(session, "grow")) in snapshots
    await session.save_session_state("grow", holder=holder)
    assert saved_form(await loaded(SessionHubSession(session.service), "grow")) == snapshots[-1]


async def test_saves_without_compare_and_set_rewrite_every_entry_and_stay_right(
    session, service, monkeypatch
):
    holder = await holder_with(3)
    monkeypatch.setattr(_session, "_TRIES", 0)  # as when conflicts keep recurring
    await session.save_session_state("s", holder=holder)
    await holder.memory.add(Msg("user", "x", "user"))
    await session.save_session_state("s", holder=holder)
    assert (await stored(service)).last_seq == 3 + 3  # each: a reset, a batch of all, a marker
    monkeypatch.setattr(_session, "_TRIES", 5)
    await holder.memory.add(Msg("user", "y", "user"))
    await session.save_session_state("s", holder=holder)
    assert saved_form(await loaded(SessionHubSession(service))) == saved_form(holder)


async def test_a_session_saved_with_the_whole_snapshot_as_text_loads_and_saves(session, service):
    """The layout before memories were events: everything in ``STATE_KEY``."""
    holder = await holder_with(3)
    text = json.dumps({"holder": holder.state_dict()})
    await service.create_session(DEFAULT_USER_ID, "old", state={STATE_KEY: text})
    assert saved_form(await loaded(session, "old")) == saved_form(holder)
    await holder.memory.add(Msg("user", "new", "user"))
    await session.save_session_state("old", holder=holder)
    assert saved_form(await loaded(SessionHubSession(service), "old")) == saved_form(holder)


async def test_events_removed_behind_its_back_are_an_error_not_a_short_memory(session, service):
    await session.save_session_state("s", holder=await holder_with(3))
    if not service.backend.capabilities.replace_events:
        pytest.skip(f"{service.backend.name} cannot remove events")
    await service.clear_events(DEFAULT_USER_ID, "s")
    with pytest.raises(BackendError, match="do not match their index"):
        await loaded(session)
    holder = await holder_with(2)
    await SessionHubSession(service).save_session_state("s", holder=holder)  # saving repairs it
    assert saved_form(await loaded(session)) == saved_form(holder)


async def test_an_event_limit_is_refused_before_anything_is_written(tmp_path):
    settings = SessionHubSettings.isolated(url="memory://limited", event_limit=10)
    async with SessionHubSession(settings=settings) as session:
        with pytest.raises(InvalidInput, match="event_limit"):
            await session.save_session_state("s", holder=await holder_with(1))
        assert await session.service.get_session(DEFAULT_USER_ID, "s") is None


async def test_a_memory_written_whole_goes_in_batches_under_the_size_budget(
    session, service, monkeypatch
):
    monkeypatch.setattr(_memory_log, "BATCH_BYTES", 400)  # two short entries per batch
    holder = await holder_with(5)
    await holder.memory.add(Msg("user", "x" * 1000, "user"))  # over the budget: a batch alone
    await session.save_session_state("s", holder=holder)
    batches = [
        [msg["content"] for msg, _ in e.metadata["agentscope_entries"]]
        for e in (await stored(service)).events
        if "agentscope_entries" in e.metadata
    ]
    assert batches == [["m0", "m1"], ["m2", "m3"], ["m4"], ["x" * 1000]]
    assert saved_form(await loaded(SessionHubSession(service))) == saved_form(holder)
    await holder.memory.delete([holder.memory.content[0][0].id])  # a reset: batches again
    await session.save_session_state("s", holder=holder)
    assert saved_form(await loaded(SessionHubSession(service))) == saved_form(holder)


# --- append_only_memories=True: saves serialise only the messages added since -----------


@pytest.fixture
def fast(service: SessionHistoryService) -> SessionHubSession:
    return SessionHubSession(service, append_only_memories=True)


async def reloaded(service: SessionHistoryService, session_id: str = "s") -> Holder:
    """The session loaded by an object that remembers nothing, in exact mode."""
    return await loaded(SessionHubSession(service), session_id)


async def new_events(service: SessionHistoryService, after: int, session_id: str = "s") -> list:
    got = await service.get_session(DEFAULT_USER_ID, session_id, after_seq=after)
    return got.events


async def last_seq(service: SessionHistoryService, session_id: str = "s") -> int:
    return (await service.get_session(DEFAULT_USER_ID, session_id, last_n=0)).last_seq


async def test_saves_store_what_exact_saves_store(fast, service):
    holder = await holder_with(3)
    exact = SessionHubSession(service)
    for round_ in range(4):
        await fast.save_session_state("fast", holder=holder)
        await exact.save_session_state("exact", holder=holder)
        fast_copy, exact_copy = await reloaded(service, "fast"), await reloaded(service, "exact")
        assert saved_form(fast_copy) == saved_form(exact_copy) == saved_form(holder)
        await holder.memory.add([Msg("assistant", f"a{round_}", "assistant")])
        holder.name = f"renamed {round_}"  # other state is saved exactly either way
    fast_state = (await service.get_session(DEFAULT_USER_ID, "fast")).state
    assert fast_state == (await service.get_session(DEFAULT_USER_ID, "exact")).state


async def test_a_save_appends_the_new_messages_without_serialising_the_stored_ones(fast, service):
    holder = await holder_with(3)
    await fast.save_session_state("s", holder=holder)
    before = await last_seq(service)
    # A stored message that could no longer be serialised: only an exact save reads it again.
    holder.memory.content[0][0].metadata = {"not json": object()}
    with pytest.raises(InvalidInput, match=r"holder\.memory\.content"):
        await SessionHubSession(service).save_session_state("s", holder=holder)
    await holder.memory.add(Msg("user", "new", "user"))
    await fast.save_session_state("s", holder=holder)
    added = await new_events(service, before)
    assert [e.metadata.get("agentscope_entry", [{}])[0].get("content") for e in added] == [
        "new",
        None,  # the marker carrying the state
    ]


@pytest.mark.parametrize(
    "change", ["delete", "clear", "reorder", "last marks", "compression", "replaced"]
)
async def test_what_it_can_see_changed_writes_the_memory_whole(fast, service, change):
    holder = await holder_with(5)
    await fast.save_session_state("s", holder=holder)
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
    await fast.save_session_state("s", holder=holder)
    added = await new_events(service, before)
    assert added[0].metadata.get("agentscope_reset") is True  # written whole
    assert saved_form(await reloaded(service)) == saved_form(holder)
    await memory.add(Msg("user", "later", "user"))
    await fast.save_session_state("s", holder=holder)  # and appended to again
    assert saved_form(await reloaded(service)) == saved_form(holder)


async def test_an_entry_edited_in_place_is_not_seen(fast, service):
    """The trade-off the option makes: the stored copy of an edited entry stays as it was."""
    holder = await holder_with(3)
    await fast.save_session_state("s", holder=holder)
    holder.memory.content[1][0].content = "edited"
    await holder.memory.add(Msg("user", "new", "user"))
    await fast.save_session_state("s", holder=holder)
    got = [msg.content for msg, _ in (await reloaded(service)).memory.content]
    assert got == ["m0", "m1", "m2", "new"]
    await SessionHubSession(service).save_session_state("s", holder=holder)  # exact: sees it
    got = [msg.content for msg, _ in (await reloaded(service)).memory.content]
    assert got == ["m0", "edited", "m2", "new"]


async def test_a_load_then_a_save_appends_only_what_was_added(fast, service):
    """One object for an application whose agents are built, loaded and saved per request."""
    await fast.save_session_state("s", holder=await holder_with(4))
    for request in range(3):
        holder = Holder("?")
        await fast.load_session_state("s", holder=holder)
        await holder.memory.add(Msg("user", f"request {request}", "user"))
        before = await last_seq(service)
        await fast.save_session_state("s", holder=holder)
        assert len(await new_events(service, before)) == 2  # the message and the marker
        assert saved_form(await reloaded(service)) == saved_form(holder)
    fresh = SessionHubSession(service, append_only_memories=True)  # remembers nothing
    holder = Holder("?")
    await fresh.load_session_state("s", holder=holder)
    await holder.memory.add(Msg("user", "elsewhere", "user"))
    before = await last_seq(service)
    await fresh.save_session_state("s", holder=holder)
    assert len(await new_events(service, before)) == 2
    assert saved_form(await reloaded(service)) == saved_form(holder)


async def test_a_load_into_another_memory_then_a_save_of_the_first_stays_right(fast, service):
    holder = await holder_with(4)
    await fast.save_session_state("s", holder=holder)
    await fast.load_session_state("s", holder=Holder("?"))  # remembered: the loaded copy
    await holder.memory.add(Msg("user", "new", "user"))
    await fast.save_session_state("s", holder=holder)
    assert saved_form(await reloaded(service)) == saved_form(holder)


async def test_a_module_storing_its_memory_in_a_shape_of_its_own_is_saved_whole(fast, service):
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
    await fast.save_session_state("s", flat=flat)
    again = Flat()
    await SessionHubSession(service).load_session_state("s", flat=again)
    assert saved_form(again) == saved_form(flat)


async def test_two_objects_saving_one_session_in_turn(fast, service):
    other = SessionHubSession(service, append_only_memories=True)
    holder = await holder_with(2)
    for round_ in range(4):
        writer = (fast, other)[round_ % 2]
        await holder.memory.add(Msg("user", f"r{round_}", "user"))
        await writer.save_session_state("s", holder=holder)  # the other's save came between
        assert saved_form(await reloaded(service)) == saved_form(holder)


async def test_idle_saves_are_compacted_and_still_load(fast, service):
    holder = await holder_with(3)
    for _ in range(40):
        await fast.save_session_state("s", holder=holder)  # nothing new: a marker each
    await holder.memory.add(Msg("user", "new", "user"))
    await fast.save_session_state("s", holder=holder)
    after = await service.get_session(DEFAULT_USER_ID, "s")
    if service.backend.capabilities.replace_events:  # the 40 markers are gone
        assert len(after.events) < 20 and after.events[0].seq > 1
    assert saved_form(await reloaded(service)) == saved_form(holder)


async def test_fifty_concurrent_saves_of_one_shared_memory_keep_every_message(fast, service):
    holder = await holder_with(1)

    async def turn(index: int) -> None:
        await holder.memory.add(Msg("user", f"t{index}", "user"))
        await fast.save_session_state("race", holder=holder)

    await asyncio.gather(*(turn(index) for index in range(50)))
    assert saved_form(await reloaded(service, "race")) == saved_form(holder)
    assert len(holder.memory.content) == 51
