"""sessionhub: session history for AI agents, with storage backends as plugins.

The public API is what ``__all__`` lists; everything else is private.
"""

from __future__ import annotations

from typing import Any

from sessionhub._operations import ASK_AGAIN, OPERATIONS
from sessionhub.backend import (
    AppendRequest,
    AppendResult,
    Backend,
    BackendInfo,
    BackendSettings,
    Capabilities,
    EventWindow,
    Expiry,
    ListCursor,
    ListedPage,
    ListRequest,
    ReplaceRequest,
    Scope,
    SessionKey,
    StateDeltas,
    StateKey,
    StoredSession,
)
from sessionhub.errors import (
    BackendError,
    BackendNotInstalled,
    BackendUnavailable,
    ConfigError,
    ConflictError,
    InvalidInput,
    PluginLoadError,
    SessionExists,
    SessionHubError,
    SessionNotFound,
)
from sessionhub.hookspecs import AppendContext, Operation, hookimpl
from sessionhub.models import (
    DataPart,
    Event,
    FilePart,
    HealthStatus,
    Page,
    Part,
    Session,
    TextPart,
    ToolCallPart,
    ToolResultPart,
    UnknownPart,
)
from sessionhub.plugins import get_plugin_manager
from sessionhub.registry import BackendRegistry
from sessionhub.service import Conversation, SessionHistoryService, StateModule
from sessionhub.settings import SessionHubSettings, load_settings

__all__ = [
    # the service
    "SessionHistoryService",
    "Conversation",
    "StateModule",
    # data model
    "Session",
    "Event",
    "Part",
    "TextPart",
    "ToolCallPart",
    "ToolResultPart",
    "DataPart",
    "FilePart",
    "UnknownPart",
    "Page",
    "HealthStatus",
    # settings
    "SessionHubSettings",
    "load_settings",
    # plugins and backends
    "hookimpl",
    "AppendContext",
    "Operation",
    "OPERATIONS",
    "ASK_AGAIN",
    "get_plugin_manager",
    "BackendRegistry",
    "Backend",
    "BackendInfo",
    "BackendSettings",
    "Capabilities",
    "SessionKey",
    "Scope",
    "StateDeltas",
    "StateKey",
    "Expiry",
    "EventWindow",
    "ListCursor",
    "ListRequest",
    "ListedPage",
    "StoredSession",
    "AppendRequest",
    "AppendResult",
    "ReplaceRequest",
    # errors
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


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import version

        return version("sessionhub")
    raise AttributeError(f"module 'sessionhub' has no attribute {name!r}")
