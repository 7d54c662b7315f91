"""The Redis backend's settings: the ``[redis]`` table, its defaults and the URL schemes it takes.

Imports no redis-py, so reading a configuration never loads the driver.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from sessionhub import BackendSettings, ConfigError
from sessionhub.backend_tools import mask_url

__all__ = ["RedisSettings", "DEFAULT_URL", "DEFAULT_KEY_PREFIX", "SCHEMES", "check_url"]

DEFAULT_URL = "redis://localhost:6379/0"
"""The server used when no URL is configured."""

DEFAULT_KEY_PREFIX = "sessionhub:"
"""The prefix of every key this backend writes, unless ``key_prefix`` says otherwise."""

SCHEMES = ("redis", "rediss", "unix", "redis+sentinel", "redis+cluster", "rediss+cluster")
"""The URL schemes the Redis backend accepts."""


def check_url(url: str) -> str:
    """Return the URL's lower-cased scheme; raise ``ConfigError`` if Redis does not take it."""
    scheme = urlsplit(url).scheme.lower()
    if scheme not in SCHEMES:
        raise ConfigError(
            f"The Redis backend takes {', '.join(s + '://' for s in SCHEMES)} URLs, "
            f"not {mask_url(url)!r}. Example: redis://localhost:6379/0"
        )
    return scheme


class RedisSettings(BackendSettings):
    """Options of the Redis backend (``[redis]`` in the config, ``SESSIONHUB_REDIS__…``).

    ``url`` picks the deployment: ``redis://host:6379/0``, ``rediss://`` (TLS),
    ``unix:///path/redis.sock``, ``redis+sentinel://h1:26379,h2:26379/mymaster``,
    ``redis+cluster://h1:7000,h2:7000`` or ``rediss+cluster://``.
    """

    url: SecretStr | None = Field(
        default=SecretStr(DEFAULT_URL),
        description="Where Redis is (see the URL forms above).",
    )
    key_prefix: str = Field(
        default=DEFAULT_KEY_PREFIX,
        max_length=128,
        description="Prefix of every key; lets several deployments share one server. "
        "No '{' or '}'.",
    )
    username: str | None = Field(default=None, description="ACL user name (overrides the URL's).")
    password: SecretStr | None = Field(
        default=None, description="Password (overrides the one in the URL)."
    )
    socket_timeout: float = Field(
        default=5.0, gt=0, description="Seconds to wait for a reply before giving up."
    )
    socket_connect_timeout: float = Field(
        default=5.0, gt=0, description="Seconds to wait for a connection to open."
    )
    retry_attempts: int = Field(
        default=2,
        ge=0,
        le=20,
        description="Retries of a command after a connection error or timeout (every "
        "primitive is safe to retry). An unreachable server is reported after at most "
        "(retry_attempts + 1) x the timeouts, plus the backoff.",
    )
    retry_backoff: float = Field(
        default=0.05,
        ge=0,
        description="Seconds before the first retry; doubles with each retry, at most 1 s.",
    )
    max_connections: int | None = Field(
        default=None,
        ge=1,
        description="Cap on open connections (per node on Cluster); commands wait for a free "
        "one up to socket_connect_timeout. None: no cap.",
    )
    sentinel_master: str | None = Field(
        default=None,
        description="Sentinel master name, when the redis+sentinel:// URL does not give one.",
    )
    sentinel_password: SecretStr | None = Field(
        default=None, description="Password of the Sentinel processes themselves."
    )
    cluster: bool | None = Field(
        default=None,
        description="Talk Redis Cluster protocol. None: only for redis+cluster:// and "
        "rediss+cluster:// URLs.",
    )

    @field_validator("key_prefix")
    @classmethod
    def _no_braces(cls, value: str) -> str:
        if "{" in value or "}" in value:
            raise ValueError(
                "must not contain '{' or '}': they start Redis Cluster hash tags "
                "(try 'sessionhub:' or 'myapp:sessions:')"
            )
        if not value.isprintable():
            raise ValueError("must contain printable characters only")
        return value

    @model_validator(mode="after")
    def _known_scheme(self) -> RedisSettings:
        if self.url is not None:
            try:
                check_url(self.url.get_secret_value())
            except ConfigError as exc:
                raise ValueError(str(exc)) from exc
        return self
