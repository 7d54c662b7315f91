"""sessionhub-jsonfiles: registers the ``jsonfiles`` backend (``jsonfiles://<directory>``)."""

from __future__ import annotations

from sessionhub import BackendInfo, hookimpl

__all__ = ["sessionhub_register_backends"]


@hookimpl
def sessionhub_register_backends() -> BackendInfo:
    """Register the JSON-lines file backend."""
    return BackendInfo(
        name="jsonfiles",
        factory="sessionhub_jsonfiles.backend:JsonFilesBackend",
        settings_model="sessionhub_jsonfiles.backend:JsonFilesSettings",
        url_schemes=("jsonfiles",),
        description="One append-only JSON-lines file per session (example backend).",
    )
