"""Settings: where configuration comes from, in which order, and how it is checked.

Precedence, highest first: constructor arguments; environment variables
(``SESSIONHUB_…``, ``__`` for nesting); the ``.env`` file; ``sessionhub.toml``
(or the file named by ``SESSIONHUB_CONFIG``); ``[tool.sessionhub]`` in
``pyproject.toml``; defaults. Each backend's options are a table named after
it (``[redis]``, env ``SESSIONHUB_REDIS__URL``), kept raw here (secrets wrapped
in ``SecretStr``) and validated by the backend's own settings model once the
backend is selected. Reading the sources is ``_config_sources``' job.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any

from pydantic import (
    Field,
    PrivateAttr,
    SecretStr,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from sessionhub._config_sources import (
    CONFIG_FILE,
    ENV_PREFIX,
    Layer,
    find_layer,
    merge,
    read_layers,
)
from sessionhub._secrets import conceal, display, mask_url, reveal
from sessionhub.backend import BackendSettings
from sessionhub.errors import ConfigError

__all__ = [
    "SessionHubSettings",
    "ENV_PREFIX",
    "CONFIG_FILE",
    "MAX_DURATION",
    "load_settings",
    "explain_settings",
    "validate_backend_settings",
    "mask_url",
    "SettingSource",
]

SettingSource = str
"""A label naming where a value came from (``env``, ``sessionhub.toml``, ``default``...)."""

MAX_DURATION = timedelta(days=36525)
"""The longest TTL or interval accepted: 100 years (expiry times must stay representable)."""

_UNITS = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "h": 3600,
    "hour": 3600,
    "d": 86400,
    "day": 86400,
    "w": 604800,
    "week": 604800,
}
_DURATION = re.compile(r"^(?P<number>-?[0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*(?P<unit>[a-z]*)$")
_DURATION_FORMS = (
    "Write seconds (3600), a number and a unit ('90s', '30m', '12h', '7d', '2w') "
    "or ISO 8601 ('P7D')"
)
_ISO_DURATION: TypeAdapter[timedelta] = TypeAdapter(timedelta)


def _parse_duration(value: Any) -> Any:
    """Seconds (3600 or "3600"), a number and a unit ("30m", "7 days"), or ISO 8601 ("P7D").

    Range checks come after (``_in_range``); a number too large for a timedelta is
    refused here, since it would overflow before.
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration. {_DURATION_FORMS}")
    if isinstance(value, (int, float)):
        return _seconds(value, value)
    if not isinstance(value, str):
        return value
    text = value.strip().lower()
    if not text or text in ("none", "null"):
        return None
    match = _DURATION.match(text)
    if match is not None:
        unit = match["unit"]
        factor = _UNITS.get(unit.removesuffix("s") if len(unit) > 3 else unit) if unit else 1
        if factor is not None:
            return _seconds(float(match["number"]) * factor, value)
    else:  # ISO 8601 ("P7D") or pydantic's other forms ("1 day, 02:00:00")
        try:
            return _ISO_DURATION.validate_python(text.upper())
        except ValidationError:
            pass
    raise ValueError(f"{value!r} is not a duration. {_DURATION_FORMS}")


def _seconds(seconds: float, given: Any) -> timedelta:
    if abs(seconds) > MAX_DURATION.total_seconds() or not math.isfinite(seconds):
        raise ValueError(f"{given!r} is longer than the longest duration allowed, 100 years")
    return timedelta(seconds=seconds)


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
        hide_input_in_errors=True,
    )

    backend: str | None = Field(
        default=None,
        description=(
            "Backend by name (memory, sqlite, redis, mongodb, postgres, or a third-party one)."
        ),
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
    def _in_range(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value <= timedelta(0):
            raise ValueError(f"must be a positive duration. {_DURATION_FORMS}")
        if value is not None and value > MAX_DURATION:
            raise ValueError(
                f"{value.days} days is longer than the longest duration allowed, 100 years"
            )
        return value

    @model_validator(mode="after")
    def _tables_only(self) -> SessionHubSettings:
        extra = self.__pydantic_extra__ or {}
        for key, value in extra.items():
            if not isinstance(value, Mapping):
                raise ValueError(_unknown_setting(key, "passed to SessionHubSettings"))
            extra[key] = conceal(value)
        return self

    _layers: list[Layer] = PrivateAttr(default_factory=list)

    @classmethod
    def isolated(cls, **values: Any) -> SessionHubSettings:
        """Settings from ``values`` and defaults only: no environment, no files.

        For tests and for code that must not depend on the process's configuration.
        Raises ``ConfigError`` like ``load_settings``.
        """
        return _resolve([Layer("constructor", "constructor", values)])

    def with_overrides(self, **values: Any) -> SessionHubSettings:
        """These settings with ``values`` added as constructor arguments, above every source."""
        layers = self._layers or [Layer("constructor", "constructor", self.model_dump())]
        return _resolve([Layer("constructor", "constructor", values), *layers])

    def source_of(self, *path: str) -> SettingSource:
        """Where the value at ``path`` (``"url"``, or ``"redis", "url"``) came from.

        One of ``constructor``, ``env``, ``.env``, the config file's name,
        ``pyproject.toml`` or ``default``.
        """
        layer = find_layer(self._layers, path)
        return layer.label if layer is not None else "default"

    def precedence_of(self, *path: str) -> int:
        """The rank of the source of the value at ``path``: 0 is the highest; defaults rank last."""
        layer = find_layer(self._layers, path)
        return self._layers.index(layer) if layer is not None else len(self._layers)

    def __repr_args__(self) -> Any:
        extra = self.model_extra or {}
        for key, value in super().__repr_args__():
            if key in extra:
                value = {".".join(path): display(path[-1], leaf) for path, leaf in _leaves(value)}
            yield key, value

    def backend_table(self, name: str) -> dict[str, Any]:
        """The options table of backend ``name`` (``{}`` if none), secrets in clear."""
        return reveal((self.model_extra or {}).get(name, {}))

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Every source, merged by precedence (see the module docstring)."""
        return (_LayeredSource(settings_cls, init_settings),)


class _ResolvedSettings(SessionHubSettings):
    """``SessionHubSettings`` built from already merged values: no source is read again."""

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

    def __repr_name__(self) -> str:
        return "SessionHubSettings"


class _LayeredSource(PydanticBaseSettingsSource):
    """Every layer of configuration merged into one mapping (for ``SessionHubSettings()``)."""

    def __init__(self, settings_cls: type[BaseSettings], init: PydanticBaseSettingsSource) -> None:
        super().__init__(settings_cls)
        self._init = init

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        """Unused: ``__call__`` returns every value at once."""
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return merge(read_layers(self.settings_cls, self._init()))


def load_settings(**overrides: Any) -> SessionHubSettings:
    """Resolve the settings from every source; constructor ``overrides`` win.

    Raises ``ConfigError`` naming the setting, where its value came from and the
    rule it broke; or the file and line of a config file that cannot be read.
    """
    return _resolve(read_layers(SessionHubSettings, overrides))


def _resolve(layers: list[Layer]) -> SessionHubSettings:
    for layer in layers:
        for key, value in layer.values.items():
            if key not in SessionHubSettings.model_fields and not isinstance(value, Mapping):
                raise ConfigError(_unknown_setting(key, layer.describe((key,))))
    try:
        settings = _ResolvedSettings(**merge(layers))
    except ValidationError as exc:
        # Not chained: the merged values hold every secret; the message names each error.
        error = ConfigError(_describe(exc, layers))
    else:
        settings._layers = layers
        return settings
    raise error


def _unknown_setting(key: str, where: str) -> str:
    known = list(SessionHubSettings.model_fields)
    close = difflib.get_close_matches(key.lower(), known, n=1)
    if close:
        return f"Unknown setting {key!r} ({where}): did you mean {close[0]}?"
    return (
        f"Unknown setting {key!r} ({where}). Known settings: {', '.join(known)}; backend "
        "options go in a table named after the backend, e.g. [redis] or SESSIONHUB_REDIS__URL"
    )


def _describe(
    exc: ValidationError,
    layers: list[Layer],
    *,
    table: str | None = None,
    options: list[str] | None = None,
) -> str:
    lines = []
    for error in exc.errors(include_input=False, include_url=False):
        loc = tuple(error["loc"])
        path = (table, *loc) if table else loc
        key = ".".join(str(part) for part in loc)
        where = f"[{table}]" + (f".{key}" if key else "") if table else key or "(settings)"
        source = ""  # stays empty for a rule across several keys: no one source to name
        if loc:
            layer = find_layer(layers, path)
            source = layer.describe(path) if layer is not None else "the default"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden" and options is not None:
            close = difflib.get_close_matches(str(loc[-1]), options, n=1)
            hint = f"did you mean {close[0]}?" if close else f"known: {', '.join(options)}"
            message = f"not an option of the {table} backend; {hint}"
        lines.append(f"{where} ({source}): {message}" if source else f"{where}: {message}")
    if len(lines) == 1:
        return f"Invalid sessionhub setting {lines[0]}"
    return "\n  ".join(["Invalid sessionhub settings:", *lines])


def validate_backend_settings(
    settings: SessionHubSettings, name: str, model: type[BackendSettings]
) -> BackendSettings:
    """Validate backend ``name``'s table with its own model; the top-level url fills ``url``."""
    table = settings.backend_table(name)
    top_url = settings.url if "url" in model.model_fields and "url" not in table else None
    if top_url is not None:
        table["url"] = top_url.get_secret_value()
    try:
        return model.model_validate(table)
    except ValidationError as exc:
        layers = settings._layers
        if top_url is not None:
            layers = [_url_as_table(layer, name) for layer in layers]
        error = ConfigError(_describe(exc, layers, table=name, options=list(model.model_fields)))
    raise error


def _url_as_table(layer: Layer, name: str) -> Layer:
    if "url" not in layer.values:
        return layer
    table = {**layer.values.get(name, {}), "url": layer.values["url"]}
    return Layer(layer.label, layer.kind, {**layer.values, name: table})


def explain_settings(**overrides: Any) -> list[tuple[str, Any, SettingSource]]:
    """Resolve the settings and say where each value came from.

    Returns ``(dotted key, value, source)`` rows; secrets are masked.
    """
    settings = load_settings(**overrides)
    return [
        (".".join(path), display(path[-1], value), settings.source_of(*path))
        for path, value in _leaves(settings.model_dump())
    ]


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
