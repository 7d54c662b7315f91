"""Helpers for backend authors' own tests."""

from __future__ import annotations

from sessionhub.backend import BackendInfo
from sessionhub.plugins import get_plugin_manager
from sessionhub.registry import BackendRegistry

__all__ = ["assert_backend_registered"]


def assert_backend_registered(name: str, *, schemes: tuple[str, ...] = ()) -> BackendInfo:
    """Check an installed plugin registers backend ``name`` through its entry point.

    Loads the installed plugins in a fresh manager, finds the backend, checks
    its URL schemes and imports its (lazy) factory and settings model, the
    most common ways a packaged plugin is broken.
    """
    registry = BackendRegistry.from_plugin_manager(get_plugin_manager(load=None, disable=[]))
    info = registry.get(name)
    missing = set(schemes) - set(info.url_schemes)
    assert not missing, f"backend {name!r} does not register the URL schemes {sorted(missing)}"
    assert callable(registry.factory(info)), f"backend {name!r} has a factory that is not callable"
    registry.settings_model(info)
    return info
