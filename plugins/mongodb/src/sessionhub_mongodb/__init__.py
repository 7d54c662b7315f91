"""sessionhub-mongodb: registers the ``mongodb`` backend (``mongodb://``, ``mongodb+srv://``).

Import-light on purpose: the backend module, and with it PyMongo, is named as a
string and imported only when the backend is selected.
"""

from __future__ import annotations

from sessionhub import BackendInfo, hookimpl

__all__ = ["sessionhub_register_backends"]


@hookimpl
def sessionhub_register_backends() -> BackendInfo:
    """Register the MongoDB backend."""
    return BackendInfo(
        name="mongodb",
        factory="sessionhub_mongodb.backend:MongoBackend",
        settings_model="sessionhub_mongodb.backend:MongoSettings",
        url_schemes=("mongodb", "mongodb+srv"),
        description="MongoDB (PyMongo async): native TTL, any number of processes and hosts.",
    )
