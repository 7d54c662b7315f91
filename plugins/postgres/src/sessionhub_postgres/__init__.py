"""sessionhub-postgres: registers the ``postgres`` backend (``postgres://``, ``postgresql://``).

Import-light on purpose: the backend module, and with it asyncpg, is named as
a string and imported only when the backend is selected.
"""

from __future__ import annotations

from sessionhub import BackendInfo, hookimpl

__all__ = ["sessionhub_register_backends"]


@hookimpl
def sessionhub_register_backends() -> BackendInfo:
    """Register the PostgreSQL backend."""
    return BackendInfo(
        name="postgres",
        factory="sessionhub_postgres.backend:PostgresBackend",
        settings_model="sessionhub_postgres._settings:PostgresSettings",
        url_schemes=("postgres", "postgresql", "postgresql+asyncpg"),
        description="PostgreSQL (asyncpg): one server-side function per write, any number of "
        "processes and hosts.",
    )
