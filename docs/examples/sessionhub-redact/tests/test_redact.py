"""The redaction plugin, loaded through its entry point like any installed plugin."""

from __future__ import annotations

import pytest

from sessionhub import Event, SessionHistoryService, TextPart, ToolCallPart, get_plugin_manager


def test_the_plugin_is_installed():
    pm = get_plugin_manager(load=None, disable=[])
    plugin = pm.get_plugin("redact")
    assert plugin is not None
    assert [c.name for c in pm.get_hookcallers(plugin)] == ["sessionhub_before_append"]


@pytest.mark.asyncio
async def test_secrets_never_reach_storage():
    async with SessionHistoryService(backend="memory") as svc:
        await svc.create_session("alice", "s1")
        await svc.append(
            ("alice", "s1"),
            [
                "write to ada.lovelace@example.co.uk, key sk-abcdefghijklmnopqrstuvwx",
                Event(
                    role="assistant",
                    content=[
                        ToolCallPart(
                            id="c1",
                            name="http",
                            arguments={
                                "headers": {"Authorization": "Bearer abcdefghijklmnopqrstuvwxyz"},
                                "cc": ["bob@example.com"],
                            },
                        )
                    ],
                ),
            ],
        )
        got = await svc.get_session("alice", "s1")
    assert got.events[0].text == "write to [email], key [secret]"
    assert got.events[1].content[0].arguments == {
        "headers": {"Authorization": "Bearer [secret]"},
        "cc": ["[email]"],
    }


@pytest.mark.asyncio
async def test_disabled_by_name(monkeypatch):
    monkeypatch.setenv("SESSIONHUB_DISABLE_PLUGINS", "redact")
    async with SessionHistoryService(backend="memory") as svc:
        await svc.create_session("alice", "s1")
        [event] = await svc.append(
            ("alice", "s1"), Event(role="user", content=[TextPart(text="me@example.com")])
        )
    assert event.text == "me@example.com"
