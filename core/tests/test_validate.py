"""The input rules every backend relies on: identifiers, JSON values, state delta scopes."""

from __future__ import annotations

import pytest

from sessionhub import InvalidInput
from sessionhub._validate import check_identifier, check_json, split_delta


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("", "must not be empty"),
        ("a\x00b", "printable characters only"),
        ("x" * 257, "at most 256 characters"),
        (5, "must be a string"),
    ],
)
def test_bad_identifiers_are_refused_naming_the_rule(value, rule):
    with pytest.raises(InvalidInput, match=rule) as caught:
        check_identifier(value, "user_id")
    assert caught.value.field == "user_id"


def test_an_identifier_is_data_however_it_looks():
    for text in ("'; DROP TABLE x; --", "../../etc/passwd", "ünïcödé ☃", "x" * 256):
        assert check_identifier(text, "session_id") == text


@pytest.mark.parametrize("value", [b"x", {1, 2}, {"a": object()}, float("nan")])
def test_values_that_are_not_json_are_refused(value):
    with pytest.raises(InvalidInput, match="JSON"):
        check_json(value, "state")


def test_a_nested_bad_value_is_named_by_its_path():
    with pytest.raises(InvalidInput) as caught:
        check_json({"a": {"b": [1, b"x"]}}, "state")
    assert caught.value.field.startswith("state.a")


def test_deltas_split_by_prefix_and_temp_keys_are_dropped():
    deltas = split_delta({"app:a": 1, "user:u": 2, "k": 3, "temp:t": 4}, "state_delta")
    assert (deltas.app, deltas.user, deltas.session) == ({"a": 1}, {"u": 2}, {"k": 3})


def test_a_bare_prefix_is_refused():
    with pytest.raises(InvalidInput, match="followed by a key name"):
        split_delta({"app:": 1}, "state_delta")
