"""Reading the configuration sources into layers, and merging them by precedence.

A layer is one source's raw values (constructor arguments, the environment,
``.env``, ``sessionhub.toml`` or the ``SESSIONHUB_CONFIG`` file, ``[tool.sessionhub]``
in ``pyproject.toml``), highest precedence first. Files are read here, so that a
malformed, missing or unreadable one is one ``ConfigError`` line naming the file
(and the line and column of a syntax error).
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic_settings import BaseSettings, EnvSettingsSource

from sessionhub.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

__all__ = [
    "ENV_PREFIX",
    "CONFIG_FILE",
    "ENV_FILE",
    "PYPROJECT_FILE",
    "Layer",
    "read_layers",
    "merge",
    "find_layer",
]

ENV_PREFIX = "SESSIONHUB_"
CONFIG_FILE = "sessionhub.toml"
ENV_FILE = ".env"
PYPROJECT_FILE = "pyproject.toml"

LayerKind = Literal["constructor", "env", "dotenv", "file"]


@dataclass(frozen=True)
class Layer:
    """One source's raw values; ``label`` is what ``sessionhub config`` shows as the source."""

    label: str
    kind: LayerKind
    values: dict[str, Any]

    def describe(self, path: tuple[str | int, ...]) -> str:
        """Where the value at ``path`` came from, for an error message."""
        if self.kind == "constructor":
            return "from a constructor argument"
        variable = ENV_PREFIX + "__".join(str(part).upper() for part in path)
        if self.kind == "env":
            return f"from environment variable {variable}"
        if self.kind == "dotenv":
            return f"from {variable} in {self.label}"
        return f"from {self.label}"


def read_layers(settings_cls: type[BaseSettings], overrides: Mapping[str, Any]) -> list[Layer]:
    """Every source's values, highest precedence first."""
    dotenv = _read_dotenv(Path(ENV_FILE))
    config_path = os.environ.get(f"{ENV_PREFIX}CONFIG")
    if config_path:
        toml_label = config_path
        toml = _read_toml(Path(config_path), config_path, named_by_variable=True)
    else:
        toml_label = CONFIG_FILE
        toml = _read_toml(Path(CONFIG_FILE), CONFIG_FILE) if Path(CONFIG_FILE).is_file() else {}
    return [
        Layer("constructor", "constructor", dict(overrides)),
        Layer("env", "env", _environment(settings_cls, os.environ)),
        Layer(ENV_FILE, "dotenv", _environment(settings_cls, dotenv)),
        Layer(toml_label, "file", toml),
        Layer(PYPROJECT_FILE, "file", _read_pyproject(Path(PYPROJECT_FILE))),
    ]


def merge(layers: list[Layer]) -> dict[str, Any]:
    """One mapping of every layer: a higher layer's value wins, tables merge key by key."""
    merged: dict[str, Any] = {}
    for layer in reversed(layers):
        merged = _deep_update(merged, layer.values)
    return merged


def find_layer(layers: list[Layer], path: tuple[str | int, ...]) -> Layer | None:
    """The highest layer that sets the value at ``path`` (keys match case-insensitively)."""
    return next((layer for layer in layers if _has_path(layer.values, path)), None)


def _deep_update(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    result = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(result.get(key), dict):
            result[key] = _deep_update(result[key], value)
        else:
            result[key] = dict(value) if isinstance(value, Mapping) else value
    return result


def _has_path(data: Any, path: tuple[str | int, ...]) -> bool:
    for part in path:
        if not isinstance(data, Mapping):
            return False
        match = next((k for k in data if str(k).lower() == str(part).lower()), None)
        if match is None:
            return False
        data = data[match]
    return True


# --- files ------------------------------------------------------------------------------

_TOML_POSITION = re.compile(r"^(?P<what>.*?) \(at line (?P<line>\d+), column (?P<column>\d+)\)$")


def _read_toml(path: Path, label: str, *, named_by_variable: bool = False) -> dict[str, Any]:
    if named_by_variable and not path.is_file():
        raise ConfigError(
            f"SESSIONHUB_CONFIG names {label!r}, which is not a file. "
            "Point it at a TOML config file, or unset it to use ./sessionhub.toml."
        )
    try:
        with path.open("rb") as file:
            data: dict[str, Any] = tomllib.load(file)
            return data
    except tomllib.TOMLDecodeError as exc:
        match = _TOML_POSITION.match(str(exc))
        where = f"{label}, line {match['line']}, column {match['column']}" if match else label
        what = match["what"] if match else str(exc)
        raise ConfigError(f"{where}: {what}: the file is not valid TOML. Fix that line.") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{label}: byte {exc.start} is not UTF-8: a config file must be UTF-8 TOML text."
        ) from exc
    except OSError as exc:
        raise ConfigError(f"{label}: cannot be read: {exc.strerror or exc}.") from exc


def _read_pyproject(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    tool = _read_toml(path, PYPROJECT_FILE).get("tool", {})
    table = tool.get("sessionhub", {}) if isinstance(tool, dict) else {}
    if not isinstance(table, dict):
        raise ConfigError(
            f"{PYPROJECT_FILE}: tool.sessionhub is a {type(table).__name__}, but it must be a "
            "table of settings: a [tool.sessionhub] header, then one setting per line."
        )
    return table


def _read_dotenv(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    from dotenv import dotenv_values

    try:
        values = dotenv_values(path, encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{ENV_FILE}: byte {exc.start} is not UTF-8: the file must be UTF-8 text."
        ) from exc
    return {key: value for key, value in values.items() if value is not None}


# --- environment ------------------------------------------------------------------------


def _environment(settings_cls: type[BaseSettings], variables: Mapping[str, str]) -> dict[str, Any]:
    """Known settings (``SESSIONHUB_<SETTING>``) and backend tables (``SESSIONHUB_<NAME>__<KEY>``).

    In a table variable, values that look like JSON arrays or objects are parsed.
    """
    values: dict[str, Any] = _MappingEnvSource(settings_cls, variables)()
    known = set(settings_cls.model_fields)
    for raw_key, value in variables.items():
        key = raw_key.lower()
        if not key.startswith(ENV_PREFIX.lower()):
            continue
        path = key[len(ENV_PREFIX) :].split("__")
        if len(path) < 2 or path[0] in known or not all(path):
            continue
        node = values
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                break
            node = child
        else:
            node[path[-1]] = _maybe_json(value)
    return values


class _MappingEnvSource(EnvSettingsSource):
    """Environment-variable rules applied to a given mapping."""

    def __init__(self, settings_cls: type[BaseSettings], values: Mapping[str, str]) -> None:
        self._values = values
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {key.lower(): value for key, value in self._values.items()}


def _maybe_json(value: str) -> Any:
    if value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value
