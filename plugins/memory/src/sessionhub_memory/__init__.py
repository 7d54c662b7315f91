"""sessionhub-memory: registers the ``memory`` backend (``memory://``).

Import-light on purpose: the backend module is named as a string and imported
only when the backend is selected.
"""

from __future__ import annotations

from sessionhub import BackendInfo, hookimpl

__all__ = ["sessionhub_register_backends"]


@hookimpl
def sessionhub_register_backends() -> BackendInfo:
    """Register the in-process memory backend."""
    return BackendInfo(
        name="memory",
        factory="sessionhub_memory.backend:MemoryBackend",
        settings_model="sessionhub_memory.backend:MemorySettings",
        url_schemes=("memory",),
        description="In-process dicts; nothing survives the process. For tests and demos.",
    )
