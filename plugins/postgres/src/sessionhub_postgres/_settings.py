"""The PostgreSQL backend's settings: the ``[postgres]`` table, its defaults and its URLs.

Imports no asyncpg, so reading a configuration never loads the driver.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

from sessionhub import BackendSettings, ConfigError
from sessionhub.backend_tools import mask_url

__all__ = ["PostgresSettings", "DEFAULT_URL", "SCHEMES", "driver_dsn"]

DEFAULT_URL = "postgresql://localhost:5432/postgres"
"""The server used when no URL is configured."""

SCHEMES = ("postgres", "postgresql", "postgresql+asyncpg")
"""The URL schemes the backend accepts (``postgresql+asyncpg`` as SQLAlchemy writes it)."""

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PREFIX = re.compile(r"[A-Za-z0-9_]*")
_LONGEST_NAME = len("user_state_by_expiry")  # the longest name the prefix goes before
_IDENTIFIER_BYTES = 63  # PostgreSQL's NAMEDATALEN - 1


def driver_dsn(url: str) -> str:
    """The URL as asyncpg takes it: ``postgresql://``, the rest (password, TLS query) unchanged.

    Raises :class:`~sessionhub.ConfigError` for a scheme this backend does not take.
    """
    parts = urlsplit(url)
    if parts.scheme.lower() not in SCHEMES:
        raise ConfigError(
            f"The PostgreSQL backend takes {', '.join(s + '://' for s in SCHEMES)} URLs, not "
            f"{mask_url(url)!r}. Example: postgresql://user:password@db.example.com:5432/app"
        )
    return urlunsplit(("postgresql", *parts[1:]))


class PostgresSettings(BackendSettings):
    """Options of the PostgreSQL backend (``[postgres]`` in the config, ``SESSIONHUB_POSTGRES__…``).

    ``url`` is a libpq-style URL: ``postgresql://user:password@host:5432/database``
    (``postgres://`` and SQLAlchemy's ``postgresql+asyncpg://`` work too). TLS goes
    in its query (``?sslmode=verify-full&sslrootcert=/path/ca.pem``), as does any
    other option asyncpg takes from a URL. The password is never printed.
    """

    url: SecretStr | None = Field(
        default=SecretStr(DEFAULT_URL),
        description="Where PostgreSQL is: postgresql://user:password@host:5432/database.",
    )
    db_schema: str = Field(
        default="public",
        alias="schema",
        max_length=_IDENTIFIER_BYTES,
        description="The schema holding the tables and functions (created if missing); a plain "
        "SQL name, not starting with pg_.",
    )
    table_prefix: str = Field(
        default="sessionhub_",
        description="Prefix of every table, index and function name; lets several "
        "deployments share one schema.",
    )
    min_pool_size: int = Field(default=1, ge=0, description="Connections the pool keeps open.")
    max_pool_size: int = Field(default=10, ge=1, description="Most connections the pool opens.")
    connect_timeout: float = Field(
        default=10.0, gt=0, description="Seconds to wait for a new connection to open."
    )
    pool_timeout: float = Field(
        default=30.0,
        gt=0,
        description="Seconds a call waits for a free pooled connection before giving up.",
    )
    command_timeout: float | None = Field(
        default=30.0,
        gt=0,
        description="Seconds one statement may run before it is cancelled (None: no limit).",
    )
    statement_cache_size: int = Field(
        default=100,
        ge=0,
        description="Prepared statements cached per connection. Set 0 behind PgBouncer in "
        "transaction mode (older than 1.21, or without max_prepared_statements).",
    )
    max_inactive_connection_lifetime: float = Field(
        default=300.0,
        ge=0,
        description="Seconds an idle pooled connection lives before it is closed (0: forever).",
    )

    model_config = ConfigDict(populate_by_name=True)

    @field_validator("db_schema")
    @classmethod
    def _schema_name(cls, value: str) -> str:
        if not _NAME.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a plain SQL name: use letters, digits and '_', not starting "
                "with a digit (e.g. 'public' or 'sessionhub')"
            )
        if value.startswith("pg_"):
            raise ValueError(
                f"{value!r} starts with 'pg_', which PostgreSQL keeps for its own schemas: "
                "choose another name (e.g. 'sessionhub')"
            )
        return value

    @field_validator("table_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not _PREFIX.fullmatch(value):
            raise ValueError(
                f"{value!r} may hold letters, digits and '_' only (e.g. 'sessionhub_' or 'app1_')"
            )
        if len(value) + _LONGEST_NAME > _IDENTIFIER_BYTES:
            raise ValueError(
                f"is {len(value)} characters; at most {_IDENTIFIER_BYTES - _LONGEST_NAME} keep "
                "every table and index name within PostgreSQL's 63"
            )
        return value

    @model_validator(mode="after")
    def _known_scheme(self) -> PostgresSettings:
        if self.url is not None:
            try:
                driver_dsn(self.url.get_secret_value())
            except ConfigError as exc:
                raise ValueError(str(exc)) from exc
        if self.min_pool_size > self.max_pool_size:
            raise ValueError(
                f"min_pool_size ({self.min_pool_size}) is above max_pool_size "
                f"({self.max_pool_size}); lower the one or raise the other"
            )
        return self
