"""State at three scopes: app, user, session; deltas, prefixes, snapshots."""

from __future__ import annotations

from typing import Any

import pytest

from sessionhub.errors import SessionNotFound
from sessionhub.service import SessionHistoryService


class _Module:
    """A minimal AgentScope StateModule: its state plus nested modules."""

    def __init__(self, **children: _Module) -> None:
        self.values: dict[str, Any] = {}
        self.children = children

    def state_dict(self) -> dict[str, Any]:
        return {
            "values": dict(self.values),
            **{name: child.state_dict() for name, child in self.children.items()},
        }

    def load_state_dict(self, state_dict: dict[str, Any], strict: bool = True) -> None:
        if strict and set(state_dict) != {"values", *self.children}:
            raise KeyError(f"unexpected keys {sorted(state_dict)}")
        self.values = dict(state_dict["values"])
        for name, child in self.children.items():
            child.load_state_dict(state_dict[name], strict=strict)


class StateTests:
    """DESIGN §2: state scopes and state_delta rules."""

    pytestmark = pytest.mark.asyncio

    async def test_merged_view_of_scopes(self, service: SessionHistoryService) -> None:
        """Session.state shows app:<k> and user:<k> from the wider scopes and bare session keys."""
        s = await service.create_session(
            "alice", "s1", state={"app:theme": "dark", "user:lang": "fr", "topic": "x"}
        )
        assert s.state == {"app:theme": "dark", "user:lang": "fr", "topic": "x"}
        assert await service.get_app_state() == {"theme": "dark"}
        assert await service.get_user_state("alice") == {"lang": "fr"}
        got = await service.get_session("alice", "s1")
        assert got is not None and got.state == s.state

    async def test_user_state_is_shared_by_the_users_sessions(
        self, service: SessionHistoryService
    ) -> None:
        """A user: key written in one session shows in the user's other sessions, not others'."""
        await service.create_session("alice", "s1")
        await service.create_session("alice", "s2")
        await service.create_session("bob", "s1")
        await service.append(
            ("alice", "s1"), {"role": "user", "content": "x", "state_delta": {"user:name": "Alice"}}
        )
        alice2 = await service.get_session("alice", "s2")
        bob = await service.get_session("bob", "s1")
        assert alice2 is not None and alice2.state == {"user:name": "Alice"}
        assert bob is not None and bob.state == {}

    async def test_app_state_is_shared_by_every_user(self, service: SessionHistoryService) -> None:
        """An app: key is visible in every user's sessions of the app."""
        await service.create_session("alice", "s1")
        await service.create_session("bob", "s9")
        await service.append(
            ("alice", "s1"), {"role": "user", "content": "x", "state_delta": {"app:version": 2}}
        )
        bob = await service.get_session("bob", "s9")
        assert bob is not None and bob.state == {"app:version": 2}
        page = await service.list_sessions("bob")
        assert page.items[0].state == {"app:version": 2}

    async def test_temp_keys_are_never_stored(self, service: SessionHistoryService) -> None:
        """temp: keys are dropped from state and from the stored event's state_delta."""
        s = await service.create_session("alice", "s1", state={"temp:a": 1, "b": 2})
        [event] = await service.append(
            s, {"role": "user", "content": "x", "state_delta": {"temp:scratch": 1, "kept": 1}}
        )
        assert event.state_delta == {"kept": 1}
        got = await service.get_session("alice", "s1")
        assert got is not None
        assert got.state == {"b": 2, "kept": 1}
        assert got.events[0].state_delta == {"kept": 1}

    async def test_none_deletes_a_key_in_every_scope(self, service: SessionHistoryService) -> None:
        """A delta value of None deletes the key, in the session, user and app scopes."""
        await service.create_session(
            "alice", "s1", state={"a": 1, "user:u": 1, "app:p": 1, "keep": 1}
        )
        await service.append(
            ("alice", "s1"),
            {
                "role": "user",
                "content": "x",
                "state_delta": {"a": None, "user:u": None, "app:p": None},
            },
        )
        got = await service.get_session("alice", "s1")
        assert got is not None and got.state == {"keep": 1}
        assert await service.get_user_state("alice") == {}
        assert await service.get_app_state() == {}

    async def test_deltas_apply_in_event_order(self, service: SessionHistoryService) -> None:
        """Within one append, later events' deltas win over earlier ones."""
        await service.create_session("alice", "s1")
        await service.append(
            ("alice", "s1"),
            [
                {"role": "user", "content": "1", "state_delta": {"k": 1, "user:k": 1}},
                {"role": "user", "content": "2", "state_delta": {"k": 2, "user:k": 2}},
            ],
        )
        got = await service.get_session("alice", "s1")
        assert got is not None and got.state == {"k": 2, "user:k": 2}

    async def test_direct_app_and_user_state_updates(self, service: SessionHistoryService) -> None:
        """update_app_state / update_user_state merge deltas and return the new state."""
        assert await service.update_app_state({"a": 1, "b": 2}) == {"a": 1, "b": 2}
        assert await service.update_app_state({"b": None, "app:c": 3}) == {"a": 1, "c": 3}
        assert await service.update_user_state("alice", {"x": [1]}) == {"x": [1]}
        assert await service.get_user_state("bob") == {}
        s = await service.create_session("alice", "s1")
        assert s.state == {"app:a": 1, "app:c": 3, "user:x": [1]}

    async def test_save_and_load_state_modules(self, service: SessionHistoryService) -> None:
        """save_state stores each module's state_dict() (nested too); load_state restores it."""
        agent = _Module(memory=_Module())
        agent.values["name"] = "Friday"
        agent.children["memory"].values["notes"] = ["a", "b"]
        await service.save_state("alice", "snap", agent=agent)
        agent.values["name"] = "changed"
        await service.save_state("alice", "snap", agent=agent)

        restored = _Module(memory=_Module())
        await service.load_state("alice", "snap", agent=restored)
        assert restored.values == {"name": "changed"}
        assert restored.children["memory"].values == {"notes": ["a", "b"]}

        untouched = _Module()
        await service.load_state("alice", "never-saved", agent=untouched)
        assert untouched.values == {}
        with pytest.raises(SessionNotFound):
            await service.load_state("alice", "never-saved", allow_not_exist=False, agent=untouched)

    async def test_conversation_loads_or_creates(self, service: SessionHistoryService) -> None:
        """conversation() creates the session if needed and keeps history current."""
        async with service.conversation("alice", "chat") as chat:
            await chat.append("hi", {"role": "assistant", "content": "hello"})
            assert [e.text for e in chat.history] == ["hi", "hello"]
        async with service.conversation("alice", "chat") as chat:
            assert [e.seq for e in chat.history] == [1, 2]
            await chat.append("again")
        got = await service.get_session("alice", "chat")
        assert got is not None and got.event_count == 3
