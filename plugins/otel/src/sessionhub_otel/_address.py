"""``server.address`` and ``server.port`` from the settings' URL: host and port, nothing else."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from sessionhub import SessionHubSettings

__all__ = ["server_of"]


def server_of(settings: SessionHubSettings, backend_name: str) -> tuple[str | None, int | None]:
    """The host and port of the URL the settings give the backend; ``(None, None)`` without one.

    The backend's own ``url`` option wins over the top-level ``url``. A URL with
    several hosts (a replica set) reports the first. User, password, path and
    query are never read out of it.
    """
    url = _secret(settings.backend_table(backend_name).get("url")) or _secret(settings.url)
    if not url or "://" not in url:
        return None, None
    try:
        netloc = urlsplit(url).netloc
    except ValueError:
        return None, None
    first_host = netloc.rpartition("@")[2].split(",")[0]
    try:
        parts = urlsplit(f"//{first_host}")
        return parts.hostname or None, parts.port
    except ValueError:  # a port that is not a number
        return None, None


def _secret(value: Any) -> str | None:
    if value is None:
        return None
    if hasattr(value, "get_secret_value"):
        value = value.get_secret_value()
    return value if isinstance(value, str) else None
