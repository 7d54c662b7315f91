"""sessionhub-redis: registers the ``redis`` backend.

URL schemes: ``redis``, ``rediss``, ``unix``, ``redis+sentinel``,
``redis+cluster`` and ``rediss+cluster``. Import-light on purpose: the backend
module, and with it redis-py, is named as a string and imported only when the
backend is selected.
"""

from __future__ import annotations

from sessionhub import BackendInfo, hookimpl

__all__ = ["sessionhub_register_backends"]


@hookimpl
def sessionhub_register_backends() -> BackendInfo:
    """Register the Redis backend."""
    return BackendInfo(
        name="redis",
        factory="sessionhub_redis.backend:RedisBackend",
        settings_model="sessionhub_redis.backend:RedisSettings",
        url_schemes=(
            "redis",
            "rediss",
            "unix",
            "redis+sentinel",
            "redis+cluster",
            "rediss+cluster",
        ),
        description="Redis (single node, Sentinel, Cluster): one Lua script per append.",
    )
