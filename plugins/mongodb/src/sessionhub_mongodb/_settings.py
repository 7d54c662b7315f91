"""The MongoDB backend's settings (``[mongodb]``) and what they turn into for the driver."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, Union
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pymongo.read_preferences import (
    Nearest,
    Primary,
    PrimaryPreferred,
    Secondary,
    SecondaryPreferred,
)
from pymongo.write_concern import WriteConcern

from sessionhub import BackendSettings

__all__ = [
    "MongoSettings",
    "DEFAULT_URL",
    "DEFAULT_DATABASE",
    "ReadConcernLevel",
    "ReadPreferenceName",
    "read_preference",
    "write_concern",
]

DEFAULT_URL = "mongodb://localhost:27017"
"""The server used when no ``url`` is configured."""

DEFAULT_DATABASE = "sessionhub"
"""The database used when neither ``database`` nor the URL's path names one."""

_SCHEMES = ("mongodb", "mongodb+srv")

_ReadPreference = Union[Primary, PrimaryPreferred, Secondary, SecondaryPreferred, Nearest]  # noqa: UP007
_READ_PREFERENCES: dict[str, Callable[[], _ReadPreference]] = {
    "primary": Primary,
    "primaryPreferred": PrimaryPreferred,
    "secondary": Secondary,
    "secondaryPreferred": SecondaryPreferred,
    "nearest": Nearest,
}

ReadConcernLevel = Literal["local", "majority", "available", "linearizable", "snapshot"]
ReadPreferenceName = Literal[
    "primary", "primaryPreferred", "secondary", "secondaryPreferred", "nearest"
]


class MongoSettings(BackendSettings):
    """Options of the MongoDB backend (``[mongodb]`` in the config, ``SESSIONHUB_MONGODB__…``).

    ``url`` is any MongoDB connection string (``mongodb://`` or
    ``mongodb+srv://``; credentials, replica set and TLS options go in it).
    The database is ``database``, else the URL's path (``mongodb://h/mydb``),
    else ``sessionhub``.
    """

    database: str | None = Field(
        default=None, description="The database; default: the URL's path, else 'sessionhub'."
    )
    collection_prefix: str = Field(
        default="sessionhub_",
        description="Prefix of the collection names (sessions, events, state).",
    )
    write_concern: int | str = Field(
        default="majority",
        description="The write concern's w: 'majority' (default), a number, or a tag set name.",
    )
    journal: bool | None = Field(
        default=True,
        description="Wait for the journal (j) before acknowledging a write; None: server default.",
    )
    wtimeout_ms: int | None = Field(
        default=None, ge=0, description="How long a write waits for its write concern (ms)."
    )
    read_concern: ReadConcernLevel | None = Field(
        default="majority", description="Read concern level of reads; None: server default."
    )
    read_preference: ReadPreferenceName = Field(
        default="primary",
        description=(
            "Where reads go. Anything but 'primary' may return stale sessions; appends "
            "always read and write the primary."
        ),
    )
    server_selection_timeout_ms: int = Field(
        default=10_000,
        gt=0,
        description="How long an operation waits for a usable server before BackendUnavailable.",
    )
    connect_timeout_ms: int = Field(
        default=10_000, gt=0, description="How long opening a connection may take (ms)."
    )
    socket_timeout_ms: int | None = Field(
        default=30_000,
        gt=0,
        description="How long a request may wait for its answer (ms); None: forever.",
    )
    transactions: Literal["auto", "always", "never"] = Field(
        default="auto",
        description=(
            "auto: use multi-document transactions where the deployment supports them "
            "(replica set, sharded cluster); never: the standalone scheme everywhere."
        ),
    )
    write_lease_ms: int = Field(
        default=10_000,
        gt=0,
        description=(
            "Standalone scheme: how long a session's write lease lasts; a writer that died "
            "holding it blocks that session's writers for at most this long."
        ),
    )

    @field_validator("url")
    @classmethod
    def _mongodb_url(cls, value: Any) -> Any:
        if value is not None:
            scheme = urlsplit(value.get_secret_value()).scheme.lower()
            if scheme not in _SCHEMES:
                raise ValueError(
                    f"the MongoDB backend takes mongodb:// or mongodb+srv:// URLs, not {scheme!r}"
                )
        return value

    @field_validator("collection_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if "$" in value or "\x00" in value:
            raise ValueError("collection_prefix must not contain '$' or NUL")
        return value


def write_concern(settings: MongoSettings) -> WriteConcern:
    """The write concern every write uses."""
    return WriteConcern(w=settings.write_concern, j=settings.journal, wtimeout=settings.wtimeout_ms)


def read_preference(settings: MongoSettings) -> _ReadPreference:
    """The read preference of reads (appends always use the primary)."""
    return _READ_PREFERENCES[settings.read_preference]()
