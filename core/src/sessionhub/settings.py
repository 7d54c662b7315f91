"""Settings: where configuration comes from, in which order, and how it is checked.

Precedence, highest first: constructor arguments; environment variables
(``SESSIONHUB_…``, ``__`` for nesting); the ``.env`` file; ``sessionhub.toml``
(or the file named by ``SESSIONHUB_CONFIG``); ``[tool.sessionhub]`` in
``pyproject.toml``; defaults. Each backend's options are a table named after
it (``[redis]``, env ``SESSIONHUB_REDIS__URL``), kept raw here and validated by
the backend's own settings model once the backend is selected.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    InitSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    PyprojectTomlConfigSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from sessionhub.backend import BackendSettings
from sessionhub.errors import ConfigError

__all__ = [
    "SessionHubSettings",
    "ENV_PREFIX",
    "CONFIG_FILE",
    "load_settings",
    "explain_settings",
    "validate_backend_settings",
    "mask_url",
    "SettingSource",
]

ENV_PREFIX = "SESSIONHUB_"
"""Prefix of every environment variable sessionhub reads."""
CONFIG_FILE = "sessionhub.toml"
"""The config file looked for in the working directory (unless ``SESSIONHUB_CONFIG`` is set)."""
ENV_FILE = ".env"

SettingSource = str
"""A label naming where a value came from (``env``, ``sessionhub.toml``, ``default``...)."""

_SECRET_QUERY_KEYS = frozenset({"password", "pass", "pwd", "secret", "token", "access_token"})


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _parse_duration(value: Any) -> Any:
    """Accept seconds (3600 or "3600"), "30m", "12h", "7d", "2w", or ISO 8601 ("P7D")."""
    if not isinstance(value, str):
        return value
    text = value.strip().lower()
    if not text or text in ("none", "null"):
        return None
    number, unit = (text[:-1], text[-1]) if text[-1] in _UNITS else (text, "s")
    try:
        return timedelta(seconds=float(number) * _UNITS[unit])
    except ValueError:
        return value  # ISO 8601 ("P7D") and errors are pydantic's to handle


def _names(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class SessionHubSettings(BaseSettings):
    """Every sessionhub setting. Backend tables (``[redis]`` ...) are extra fields."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="allow",
        validate_default=True,
        pyproject_toml_table_header=("tool", "sessionhub"),
    )

    backend: str | None = Field(
        default=None,
        description="Backend by name (memory, sqlite, redis, mongodb, or a third-party one).",
    )
    url: SecretStr | None = Field(
        default=None,
        description="Storage URL; its scheme selects the backend when `backend` is not set.",
    )
    app_name: str = Field(
        default="default", description="The app whose sessions and app state this service uses."
    )
    event_limit: int | None = Field(
        default=None,
        ge=1,
        description="Keep only the newest N events per session (seq keeps counting).",
    )
    session_ttl: timedelta | None = Field(
        default=None, description="Sliding lifetime of a session: each read or write extends it."
    )
    app_state_ttl: timedelta | None = Field(
        default=None, description="Sliding lifetime of the app state."
    )
    user_state_ttl: timedelta | None = Field(
        default=None, description="Sliding lifetime of each user's state."
    )
    purge_interval: timedelta | None = Field(
        default=timedelta(hours=1),
        description="How often a running service reclaims expired data when a TTL is set "
        "and the backend has no native TTL (none: only on demand).",
    )
    plugins: Annotated[list[str] | None, NoDecode] = Field(
        default=None,
        description="Load only these plugins (comma list; empty: none; unset: all installed).",
    )
    disable_plugins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Never load these plugins (comma list)."
    )

    @field_validator("plugins", "disable_plugins", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        return _names(value)

    @field_validator(
        "session_ttl", "app_state_ttl", "user_state_ttl", "purge_interval", mode="before"
    )
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return _parse_duration(value)

    @field_validator("session_ttl", "app_state_ttl", "user_state_ttl", "purge_interval")
    @classmethod
    def _positive(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value <= timedelta(0):
            raise ValueError(
                "must be a positive duration: seconds, '30m', '12h', '7d' or ISO 8601 'P7D'"
            )
        return value

    @model_validator(mode="after")
    def _tables_only(self) -> SessionHubSettings:
        for key, value in (self.model_extra or {}).items():
            if not isinstance(value, dict):
                raise ValueError(
                    f"unknown setting {key!r}. Known settings: "
                    f"{', '.join(type(self).model_fields)}; backend options go in a table "
                    f"named after the backend, e.g. [{key.partition('__')[0]}]"
                )
        return self

    @classmethod
    def isolated(cls, **values: Any) -> SessionHubSettings:
        """Settings from ``values`` and defaults only: no environment, no files.

        For tests and for code that must not depend on the process's configuration.
        Raises ``ConfigError`` like ``load_settings``.
        """
        try:
            return _IsolatedSettings(**values)
        except ValidationError as exc:
            raise ConfigError(_describe(exc, prefix="")) from exc

    def __repr_args__(self) -> Any:
        extra = self.model_extra or {}
        for key, value in super().__repr_args__():
            if key in extra:
                value = {".".join(path): _display(path, leaf) for path, leaf in _leaves(value)}
            yield key, value

    def backend_table(self, name: str) -> dict[str, Any]:
        """The raw options table of backend ``name`` (``{}`` if none)."""
        table = (self.model_extra or {}).get(name, {})
        return dict(table)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Order the sources by precedence (see the module docstring)."""
        return tuple(source for _, source in _sources(settings_cls, init_settings))


class _IsolatedSettings(SessionHubSettings):
    """``SessionHubSettings`` that read nothing but their constructor arguments."""

    model_config = SettingsConfigDict(pyproject_toml_table_header=None)  # type: ignore[typeddict-item]

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Only the constructor arguments."""
        return (init_settings,)


def _sources(
    settings_cls: type[BaseSettings], init: PydanticBaseSettingsSource
) -> list[tuple[SettingSource, PydanticBaseSettingsSource]]:
    dotenv = _read_dotenv(Path(ENV_FILE))
    config_path = os.environ.get(f"{ENV_PREFIX}CONFIG")
    if config_path:
        if not Path(config_path).is_file():
            raise ConfigError(
                f"SESSIONHUB_CONFIG names {config_path!r}, which is not a file. "
                "Point it at a TOML config file, or unset it to use ./sessionhub.toml."
            )
        toml_label, toml_path = config_path, Path(config_path)
    else:
        toml_label, toml_path = CONFIG_FILE, Path(CONFIG_FILE)
    return [
        ("constructor", init),
        ("env", EnvSettingsSource(settings_cls)),
        ("env", _BackendTablesSource(settings_cls, os.environ)),
        (ENV_FILE, _MappingEnvSource(settings_cls, dotenv)),
        (ENV_FILE, _BackendTablesSource(settings_cls, dotenv)),
        (toml_label, TomlConfigSettingsSource(settings_cls, toml_file=toml_path)),
        ("pyproject.toml", PyprojectTomlConfigSettingsSource(settings_cls)),
    ]


def _read_dotenv(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    from dotenv import dotenv_values

    return {key: value for key, value in dotenv_values(path).items() if value is not None}


class _MappingEnvSource(EnvSettingsSource):
    """Environment-variable rules applied to a given mapping (the ``.env`` file)."""

    def __init__(self, settings_cls: type[BaseSettings], values: Mapping[str, str]) -> None:
        self._values = values
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {key.lower(): value for key, value in self._values.items()}


class _BackendTablesSource(PydanticBaseSettingsSource):
    """Backend tables from variables like ``SESSIONHUB_REDIS__KEY_PREFIX``.

    Any ``SESSIONHUB_<NAME>__<KEY>`` whose ``<name>`` is not a setting becomes
    ``{name: {key: value}}``; values that look like JSON arrays or objects are parsed.
    """

    def __init__(self, settings_cls: type[BaseSettings], values: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        self._values = values

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        """Unused: this source contributes extra tables only."""
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        known = set(self.settings_cls.model_fields)
        tables: dict[str, Any] = {}
        for raw_key, value in self._values.items():
            key = raw_key.lower()
            if not key.startswith(ENV_PREFIX.lower()):
                continue
            path = key[len(ENV_PREFIX) :].split("__")
            if len(path) < 2 or path[0] in known or not all(path):
                continue
            node = tables
            for part in path[:-1]:
                child = node.setdefault(part, {})
                if not isinstance(child, dict):
                    break
                node = child
            else:
                node[path[-1]] = _maybe_json(value)
        return tables


def _maybe_json(value: str) -> Any:
    if value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def load_settings(**overrides: Any) -> SessionHubSettings:
    """Resolve the settings from every source; constructor ``overrides`` win.

    Raises ``ConfigError`` naming the setting and the rule it broke.
    """
    try:
        return SessionHubSettings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, prefix="")) from exc


def _describe(exc: ValidationError, *, prefix: str) -> str:
    lines = []
    for error in exc.errors():
        loc = ".".join(str(part) for part in error["loc"])
        where = f"{prefix}.{loc}" if prefix and loc else (prefix or loc)
        env = ENV_PREFIX + "__".join(
            str(part).upper()
            for part in ([prefix.strip("[]")] if prefix else []) + list(error["loc"])
        )
        lines.append(f"  {where or '(settings)'}: {error['msg']} (env: {env})")
    head = f"Invalid sessionhub settings{' in table ' + prefix if prefix else ''}:"
    return "\n".join([head, *lines])


def validate_backend_settings(
    settings: SessionHubSettings, name: str, model: type[BackendSettings]
) -> BackendSettings:
    """Validate backend ``name``'s table with its own model; the top-level url fills ``url``."""
    table = settings.backend_table(name)
    if settings.url is not None and "url" in model.model_fields and "url" not in table:
        table["url"] = settings.url.get_secret_value()
    try:
        return model.model_validate(table)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, prefix=f"[{name}]")) from exc


def mask_url(url: str) -> str:
    """Return ``url`` with its password (and secret-looking query values) replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "***"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user, has_password, _ = userinfo.partition(":")
        netloc = f"{user}:***@{host}" if has_password else f"{userinfo}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(key.lower() in _SECRET_QUERY_KEYS for key, _ in pairs):
            query = urlencode(
                [(k, "***" if k.lower() in _SECRET_QUERY_KEYS else v) for k, v in pairs], safe="*"
            )
    if (netloc, query) == (parts.netloc, parts.query):
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def explain_settings(**overrides: Any) -> list[tuple[str, Any, SettingSource]]:
    """Resolve the settings and say where each value came from.

    Returns ``(dotted key, value, source)`` rows; secrets are masked.
    """
    settings = load_settings(**overrides)
    per_source = [
        (label, source())
        for label, source in _sources(
            SessionHubSettings, InitSettingsSource(SessionHubSettings, init_kwargs=overrides)
        )
    ]
    rows: list[tuple[str, Any, SettingSource]] = []
    for key, value in _leaves(settings.model_dump()):
        label = next((lbl for lbl, data in per_source if _has_path(data, key)), "default")
        rows.append((".".join(key), _display(key, value), label))
    return rows


def _leaves(
    data: Mapping[str, Any], prefix: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], Any]]:
    rows: list[tuple[tuple[str, ...], Any]] = []
    for key, value in data.items():
        if isinstance(value, dict) and value:
            rows.extend(_leaves(value, (*prefix, key)))
        else:
            rows.append(((*prefix, key), value))
    return rows


def _has_path(data: Any, path: tuple[str, ...]) -> bool:
    for part in path:
        if not isinstance(data, Mapping):
            return False
        match = next((k for k in data if str(k).lower() == part.lower()), None)
        if match is None:
            return False
        data = data[match]
    return True


_SECRET_NAMES = ("password", "secret", "token", "api_key", "apikey", "credentials")


def _display(key: tuple[str, ...], value: Any) -> Any:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
        return mask_url(value) if "://" in value else "***"
    if isinstance(value, str) and "://" in value:
        return mask_url(value)
    if any(word in key[-1].lower() for word in _SECRET_NAMES) and value is not None:
        return "***"
    if isinstance(value, timedelta):
        return f"{value.total_seconds():g}s"
    return value
