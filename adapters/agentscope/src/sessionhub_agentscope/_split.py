"""A save's modules split in two: each ``InMemoryMemory``'s entries, and the rest as JSON text.

``split_snapshot`` calls each module's ``state_dict()`` once and takes the
``content`` of every ``InMemoryMemory`` among the modules (a module itself, or
a registered sub-module such as a ``ReActAgent``'s ``memory``) out of it:
those entries are stored as events, the rest as text
(``sessionhub_agentscope._memory_log`` is that layout).

With ``set_aside`` (``SessionHubSession(append_only_memories=True)``) a memory's
history is not serialised by ``state_dict()`` at all: its ``content`` is set
aside while ``state_dict()`` runs (synchronously, so no other asyncio task
sees the memory without it; a thread reading it at that moment would) and kept
as its ``(Msg, marks)`` pairs, and a save makes only the entries it stores, in
the form ``InMemoryMemory.state_dict()`` gives.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from agentscope.memory import InMemoryMemory
from agentscope.module import StateModule

from sessionhub import InvalidInput

__all__ = ["MemoryPart", "Split", "entries_of", "module_at", "own_state", "split_snapshot"]


@dataclass
class MemoryPart:
    """One memory of a save: its keys from the snapshot's top, and its entries.

    Either ``entries`` as ``state_dict()`` gave them, or (set aside) ``pairs``,
    the memory's ``content`` when the save was called, and ``own``, its state
    besides the content; entries are then made from the pairs a save stores.
    """

    keys: list[str]
    given: list[Any] | None
    """The entries as ``state_dict()`` gives them: from the whole ``state_dict()``, or, set
    aside, made from ``pairs`` the first time all of them are needed (``None`` until then)."""
    pairs: list[tuple[Any, Any]] | None = None
    """Set aside: a copy of the memory's ``content`` list (the ``Msg`` objects themselves)."""
    own: str = ""
    """Set aside: ``own_state`` of the memory."""

    @property
    def count(self) -> int:
        """How many entries the memory holds."""
        return len(self.pairs) if self.pairs is not None else len(self.given or ())

    def entries(self, start: int = 0) -> list[Any]:
        """The entries from ``start`` on, as ``state_dict()`` gives them."""
        if self.given is None and self.pairs is not None:
            if start:  # the new ones only: what an append-only save makes
                return entries_of(self.pairs[start:])
            self.given = entries_of(self.pairs)
        given = self.given or []
        return given[start:] if start else given


@dataclass
class Split:
    """One save's modules split into the snapshot text and each memory's entries."""

    text: str
    """``{name: state}`` as JSON text, each indexed memory's ``content`` emptied."""
    memories: dict[str, MemoryPart]
    """Memory path (``"agent.memory"``) -> its keys and entries."""

    def index(self) -> dict[str, Any]:
        """The ``MEMORIES_KEY`` value: each path's keys and entry count."""
        return {
            path: {"keys": part.keys, "count": part.count} for path, part in self.memories.items()
        }


def split_snapshot(modules: Mapping[str, StateModule], *, set_aside: bool = False) -> Split:
    """Each module's ``state_dict()`` once, its memories' entries taken out of the text.

    ``set_aside``: the memories whose ``state_dict`` is ``InMemoryMemory``'s own
    are not serialised (see the module's docstring). Raises ``InvalidInput``
    naming a module whose state is not JSON (entries are checked when they are
    copied, see ``_memory_log.json_copy``).
    """
    parts: list[str] = []
    memories: dict[str, MemoryPart] = {}
    for name, module in modules.items():
        if not name:
            raise InvalidInput("state_modules_mapping", "a state module needs a non-empty name")
        text, taken = _split_module(module, name, set_aside)
        parts.append(f"{json.dumps(name, ensure_ascii=False)}: {text}")
        for part in taken:
            path = ".".join(part.keys)  # readable; names with dots could make two alike
            memories[json.dumps(part.keys) if path in memories else path] = part
    return Split("{" + ", ".join(parts) + "}", memories)


def _split_module(module: StateModule, name: str, set_aside: bool) -> tuple[str, list[MemoryPart]]:
    """``module``'s state as JSON text, its memories' content emptied, and those memories."""
    found = list(_memories(module, [name], set()))
    aside = {
        id(memory): memory
        for _, memory in found
        if set_aside and type(memory).state_dict is InMemoryMemory.state_dict
    }
    pairs = {key: list(memory.content) for key, memory in aside.items()}
    with _contents_set_aside(list(aside.values())):
        state = module.state_dict()
    taken: list[tuple[list[str], Any, list[Any]]] = []
    for keys, memory in found:
        state, entries = _taken(state, keys[1:])
        if entries is not None:
            taken.append((keys, memory, entries))
        elif id(memory) in aside:  # the module stores it in a shape of its own: state_dict() whole
            return _split_module(module, name, set_aside=False)
        # else a subclass saving another shape: it stays in the text
    try:
        text = json.dumps(state, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(
            f"{name}.state_dict()", f"must be JSON to be saved, as for JSONSession: {exc}"
        ) from exc
    return text, [
        MemoryPart(keys, None, pairs[id(memory)], own_state(memory))
        if id(memory) in aside
        else MemoryPart(keys, entries)
        for keys, memory, entries in taken
    ]


@contextmanager
def _contents_set_aside(memories: Sequence[InMemoryMemory]) -> Iterator[None]:
    """Each memory's ``content`` empty while the block runs, then back as it was."""
    contents = [memory.content for memory in memories]
    try:
        for memory in memories:
            memory.content = []
        yield
    finally:
        for memory, content in zip(memories, contents, strict=True):
            memory.content = content


def _memories(module: Any, keys: list[str], seen: set[int]) -> Iterable[tuple[list[str], Any]]:
    """The ``InMemoryMemory`` modules in ``module`` (itself included) and their key paths.

    A memory registered at two places is found at both (each place saves its entries).
    """
    if isinstance(module, InMemoryMemory):
        yield keys, module
        return
    if id(module) in seen or not isinstance(module, StateModule):
        return
    seen.add(id(module))
    for key in getattr(module, "_module_dict", {}):  # StateModule's registered sub-modules
        yield from _memories(getattr(module, key, None), [*keys, key], seen)


def _taken(state: Any, keys: Sequence[str]) -> tuple[Any, list[Any] | None]:
    """``state`` with the ``content`` at ``keys`` emptied (copies along the path), and it."""
    if not keys:
        if isinstance(state, dict) and isinstance(state.get("content"), list):
            return {**state, "content": []}, state["content"]
        return state, None
    if not isinstance(state, dict) or keys[0] not in state:
        return state, None
    inner, entries = _taken(state[keys[0]], keys[1:])
    return ({**state, keys[0]: inner} if entries is not None else state), entries


def entries_of(pairs: Iterable[tuple[Any, Any]]) -> list[Any]:
    """Memory entries as ``InMemoryMemory.state_dict()`` makes them: ``[msg.to_dict(), marks]``."""
    return [[msg.to_dict(), marks] for msg, marks in pairs]


def own_state(memory: InMemoryMemory) -> str:
    """The memory's state besides its content (its compressed summary), as JSON text.

    AgentScope's compression changes it when it re-marks earlier entries, which
    an append-only save then writes whole.
    """
    state = super(InMemoryMemory, memory).state_dict()  # the registered attributes, unconverted
    return json.dumps({key: value for key, value in state.items() if key != "content"})


def module_at(modules: Mapping[str, Any], keys: Sequence[str]) -> Any:
    """The module at ``keys`` (a module name, then registered sub-module names), or ``None``."""
    module = modules.get(keys[0]) if keys else None
    for key in keys[1:]:
        module = getattr(module, key, None)
    return module
