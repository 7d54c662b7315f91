"""The one exception hierarchy of sessionhub.

Every error raised on purpose by the core, a backend or the CLI is a
``SessionHubError``. Messages say what failed, for which name, what was
expected and what to do next; the underlying cause is always chained.
"""

from __future__ import annotations

__all__ = [
    "SessionHubError",
    "ConfigError",
    "BackendNotInstalled",
    "PluginLoadError",
    "BackendUnavailable",
    "BackendError",
    "SessionNotFound",
    "SessionExists",
    "InvalidInput",
    "ConflictError",
]


class SessionHubError(Exception):
    """Base class of every error sessionhub raises on purpose."""


class ConfigError(SessionHubError):
    """The configuration is invalid or names something that cannot be used."""


class BackendNotInstalled(ConfigError):
    """The configuration selects a backend that no installed plugin provides."""


class PluginLoadError(ConfigError):
    """A plugin is installed but could not be imported or registered.

    The import error is chained as ``__cause__``.
    """


class BackendUnavailable(SessionHubError):
    """The storage could not be reached (connection refused, timeout, ...).

    The driver's exception is chained as ``__cause__``.
    """


class BackendError(SessionHubError):
    """The storage answered with an error (not a connection problem); the message quotes it."""


class SessionNotFound(SessionHubError):
    """The session does not exist, belongs to another user, or has expired."""

    def __init__(self, app_name: str, user_id: str, session_id: str) -> None:
        self.app_name = app_name
        self.user_id = user_id
        self.session_id = session_id
        super().__init__(
            f"No session {session_id!r} for user {user_id!r} in app {app_name!r} "
            "(it was never created, was deleted, or has expired). "
            "Create it first with create_session(), or use conversation() to create it on demand."
        )


class SessionExists(SessionHubError):
    """``create_session`` was asked for an id that is already taken."""

    def __init__(self, app_name: str, user_id: str, session_id: str) -> None:
        self.app_name = app_name
        self.user_id = user_id
        self.session_id = session_id
        super().__init__(
            f"Session {session_id!r} already exists for user {user_id!r} in app {app_name!r}. "
            "Use get_session() to load it, or pass another session_id (or none, to get a "
            "generated one)."
        )


class InvalidInput(SessionHubError, ValueError):
    """Input breaks a rule of the data model; nothing was written.

    ``field`` names the offending field (a dotted path), ``rule`` the rule it broke.
    """

    def __init__(self, field: str, rule: str) -> None:
        self.field = field
        self.rule = rule
        super().__init__(f"Invalid {field}: {rule}")


class ConflictError(SessionHubError):
    """A concurrent change made this write impossible; re-read and retry."""
