"""Each script's header names its KEYS and ARGV; its Python argument class must say the same.

The header (see :mod:`sessionhub_redis._scripts`) lists KEYS and ARGV by name
in order, ``?`` marking an optional key and ``*`` a counted part, and a line
``name*: ...`` per list of records; the script then unpacks the fixed names
into locals. These tests parse both and compare them with the argument
class's fields, so a script and its builder cannot drift apart unnoticed.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import dataclass

import pytest

from sessionhub_redis import _protocol
from sessionhub_redis._protocol import (
    OPTIONAL_KEY,
    RECORDS,
    SCRIPTS,
    AppendArgs,
    AppendedEvent,
    RestoreArgs,
    Script,
    ScriptArgs,
    StateArgs,
)

_SECTION = re.compile(r"-- (KEYS|ARGV|\w+\*): (.*)")
_CONTINUED = re.compile(r"--\s{2,}(\S.*)")


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def header(source: str) -> dict[str, list[str]]:
    """The header's sections (KEYS, ARGV, ``name*`` records) as lists of names."""
    lines = source[source.index("-- KEYS:") :].splitlines()
    sections: dict[str, list[str]] = {}
    current: str | None = None
    for line in lines:
        if not line.startswith("--"):
            break
        if started := _SECTION.fullmatch(line):
            current = started[1]
            sections[current] = _names(started[2])
        elif current is not None and (more := _CONTINUED.fullmatch(line)):
            sections[current] += _names(more[1])
        else:
            current = None
    return sections


def unpacked(source: str, table: str) -> tuple[list[str], int | None]:
    """The locals the script unpacks ``table`` into, and the count it unpacks (ARGV)."""
    pattern = rf"local ([\w,\s]+?) = unpack\({table}(?:, 1, (\d+))?\)"
    found = re.search(pattern, source[source.index("-- KEYS:") :])
    assert found is not None, f"the script does not unpack {table}"
    return _names(found[1]), int(found[2]) if found[2] else None


def expected(args: type[ScriptArgs]) -> dict[str, list[str]]:
    """What the header of a script taking ``args`` must say, derived from its fields."""
    sections: dict[str, list[str]] = {"KEYS": [], "ARGV": []}
    hints = typing.get_type_hints(args, vars(_protocol))
    for field in dataclasses.fields(args):  # type: ignore[arg-type]
        kind = field.metadata.get("kind", "arg")
        if kind.startswith("key"):
            sections["KEYS"].append(field.name + ("?" if kind == OPTIONAL_KEY else ""))
            continue
        counted = kind in ("delta", "pairs", RECORDS)
        sections["ARGV"].append(field.name + ("*" if counted else ""))
        if kind == RECORDS:
            (record,) = typing.get_args(hints[field.name])
            sections[field.name + "*"] = expected(record)["ARGV"]
    return sections


def mismatches(source: str, args: type[ScriptArgs]) -> list[str]:
    """How a script's header and its locals disagree with its argument class (empty: not)."""
    problems = []
    said, wanted = header(source), expected(args)
    for section in sorted(set(said) | set(wanted)):
        if said.get(section) != wanted.get(section):
            problems.append(
                f"{section}: header {said.get(section)} != Python {wanted.get(section)}"
            )
    keys, _ = unpacked(source, "KEYS")
    if keys != [name.rstrip("?") for name in said.get("KEYS", [])]:
        problems.append(f"KEYS unpacked into {keys}, header says {said.get('KEYS')}")
    argv, count = unpacked(source, "ARGV")
    fixed = []
    for name in said.get("ARGV", []):
        if name.endswith("*"):
            break
        fixed.append(name)
    if argv != fixed or count != len(fixed):
        problems.append(f"ARGV[1..{count}] unpacked into {argv}, header says {fixed}")
    return problems


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda script: script.name)
def test_each_script_header_matches_its_argument_class(script: Script) -> None:
    assert mismatches(script.source, script.args) == []


def test_a_header_that_disagrees_with_its_builder_is_caught() -> None:
    source = _protocol.APPEND.source
    swapped = source.replace("-- ARGV: now, exp, ttl,", "-- ARGV: now, ttl, exp,", 1)
    assert swapped != source
    assert any(problem.startswith("ARGV:") for problem in mismatches(swapped, AppendArgs))
    record = source.replace("id, json, time, session_delta*", "id, time, json, session_delta*")
    assert any(problem.startswith("new_events*:") for problem in mismatches(record, AppendArgs))
    local = source.replace(
        "expected_last_seq = unpack(ARGV, 1, 12)", "expected_last_seq = unpack(ARGV, 1, 11)"
    )
    assert any("unpacked" in problem for problem in mismatches(local, AppendArgs))

    @dataclass(slots=True, kw_only=True)
    class OneMore(AppendArgs):
        extra: str

    assert any(problem.startswith("ARGV:") for problem in mismatches(source, OneMore))


def test_fields_are_laid_out_in_order_with_counts() -> None:
    state = StateArgs(
        state="k1", now=7, mode="update", exp="", ttl="", delta={"x": [1], "y": None}, user_id="u",
        app_name="a",
    )  # fmt: skip
    assert state.to_keys_argv() == (
        ["k1"],
        [7, "update", "", "", 2, "x", "[1]", "y", "", "u", "a"],
    )
    state.apps = "k2"
    assert state.to_keys_argv()[0] == ["k1", "k2"]
    state.app_users = "k3"
    assert state.to_keys_argv()[0] == ["k1", "k2", "k3"]

    event = AppendedEvent(
        id="e1", json=b"{}", time="t", session_delta={"k": 1}, user_delta={}, app_delta={"a": None}
    )
    restore = RestoreArgs(
        session_hash="h", event_list="e", id_index="i", time_list="t", user_index="x",
        now=1, exp="", ttl="", updated_at=2, base="b", session_id="s", parent_escaped="",
        fields=["id", "s", "depth", 0], restored_events=[], user_id="u", app_name="a",
    )  # fmt: skip
    assert restore.to_keys_argv()[1] == [
        1,
        "",
        "",
        2,
        "b",
        "s",
        "",
        2,
        "id",
        "s",
        "depth",
        0,
        0,
        "u",
        "a",
    ]
    append = AppendArgs(
        session_hash="h", event_list="e", id_index="i", time_list="t", user_state="u",
        user_index="x", now=1, exp="", ttl="", user_exp="", user_ttl="", app_exp="", app_ttl="",
        base="b", session_id="s", event_limit="", app_clock="", expected_last_seq="",
        new_events=[event],
    )  # fmt: skip
    assert append.to_keys_argv()[1][-13:] == [
        "", "", 1, "e1", b"{}", "t", 1, "k", "1", 0, 1, "a", "",
    ]  # fmt: skip
