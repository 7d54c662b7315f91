"""sessionhub-sqlite: registers the ``sqlite`` backend (``sqlite://``, ``sqlite+aiosqlite://``).

Import-light on purpose: the backend module, and with it aiosqlite, is named as
a string and imported only when the backend is selected.
"""

from __future__ import annotations

from sessionhub import BackendInfo, hookimpl

__all__ = ["sessionhub_register_backends"]


@hookimpl
def sessionhub_register_backends() -> BackendInfo:
    """Register the SQLite backend."""
    return BackendInfo(
        name="sqlite",
        factory="sessionhub_sqlite.backend:SQLiteBackend",
        settings_model="sessionhub_sqlite.backend:SQLiteSettings",
        url_schemes=("sqlite", "sqlite+aiosqlite"),
        description="One SQLite file (WAL): embedded, zero set-up, shared safely by processes.",
    )
