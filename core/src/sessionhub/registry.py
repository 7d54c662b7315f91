"""The backend registry: backends by name and by URL scheme, and how one is selected.

Filled from ``sessionhub_register_backends``. Selection: an explicit backend
name wins; else the URL's full scheme is matched (``mongodb+srv``), then the
part before ``+`` (``sqlite+aiosqlite`` -> ``sqlite``); else the default.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import replace
from typing import Any

import pluggy

from sessionhub.backend import BackendInfo, BackendSettings
from sessionhub.errors import BackendNotInstalled, ConfigError, PluginLoadError

__all__ = ["BackendRegistry", "DEFAULT_BACKEND", "FIRST_PARTY", "url_scheme", "import_object"]

DEFAULT_BACKEND = "sqlite"
"""The backend used when the configuration names none: embedded, zero set-up."""

FIRST_PARTY: dict[str, tuple[str, tuple[str, ...]]] = {
    "memory": ("sessionhub-memory", ("memory",)),
    "sqlite": ("sessionhub-sqlite", ("sqlite", "sqlite+aiosqlite")),
    "redis": (
        "sessionhub-redis",
        ("redis", "rediss", "unix", "redis+sentinel", "redis+cluster", "rediss+cluster"),
    ),
    "mongodb": ("sessionhub-mongodb", ("mongodb", "mongodb+srv")),
}
"""First-party backends: distribution and URL schemes, for install hints."""


def url_scheme(url: str) -> str:
    """Return the lower-cased scheme of ``url`` (the part before ``://``)."""
    scheme, sep, _ = url.partition("://")
    if not sep or not scheme or ":" in scheme:
        raise ConfigError(
            f"The url setting {_mask(url)!r} has no scheme. Write it as scheme://..., "
            "for example sqlite:///sessionhub.db, redis://localhost:6379/0 or memory://."
        )
    return scheme.lower()


def _mask(url: str) -> str:
    from sessionhub.settings import mask_url

    return mask_url(url)


def import_object(path: str) -> Any:
    """Import ``"package.module:Name"`` (or ``"package.module"``) and return the object."""
    module_name, _, attribute = path.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in filter(None, attribute.split(".")):
        obj = getattr(obj, part)
    return obj


class BackendRegistry:
    """The backends known to one plugin manager."""

    def __init__(self, infos: list[BackendInfo], broken: dict[str, PluginLoadError]) -> None:
        self._by_name: dict[str, BackendInfo] = {}
        self._by_scheme: dict[str, BackendInfo] = {}
        self.broken = broken
        for info in infos:
            self.add(info)

    @classmethod
    def from_plugin_manager(cls, pm: pluggy.PluginManager) -> BackendRegistry:
        """Collect every backend registered through ``sessionhub_register_backends``."""
        records = getattr(pm, "records", {})
        infos: list[BackendInfo] = []
        for impl in reversed(pm.hook.sessionhub_register_backends.get_hookimpls()):
            result: Any = impl.function()
            if result is None:
                continue
            record = records.get(impl.plugin_name)
            for info in [result] if isinstance(result, BackendInfo) else result:
                if record is not None and info.distribution is None:
                    info = replace(info, distribution=record.distribution, version=record.version)
                infos.append(info)
        return cls(infos, dict(getattr(pm, "broken", {})))

    def add(self, info: BackendInfo) -> None:
        """Register a backend; a name or scheme already taken is an error naming both."""
        other = self._by_name.get(info.name)
        if other is not None:
            raise ConfigError(
                f"Two plugins register a backend named {info.name!r}: "
                f"{_origin(other)} and {_origin(info)}. Uninstall or disable one of them "
                "(SESSIONHUB_DISABLE_PLUGINS=<name>)."
            )
        for scheme in info.url_schemes:
            taken = self._by_scheme.get(scheme.lower())
            if taken is not None:
                raise ConfigError(
                    f"The URL scheme {scheme!r} is claimed by backend {taken.name!r} "
                    f"({_origin(taken)}) and by {info.name!r} ({_origin(info)}). "
                    "Uninstall or disable one of them."
                )
        self._by_name[info.name] = info
        for scheme in info.url_schemes:
            self._by_scheme[scheme.lower()] = info

    def names(self) -> list[str]:
        """The installed backend names, sorted."""
        return sorted(self._by_name)

    def infos(self) -> list[BackendInfo]:
        """Every registered backend, sorted by name."""
        return [self._by_name[name] for name in self.names()]

    def get(self, name: str) -> BackendInfo:
        """The backend registered as ``name``; a clear error if there is none."""
        info = self._by_name.get(name)
        if info is not None:
            return info
        if name in self.broken:
            raise self.broken[name]
        raise BackendNotInstalled(self._not_installed(f"named {name!r}", name))

    def for_url(self, url: str) -> BackendInfo:
        """The backend whose schemes match ``url``: the full scheme, then the part before ``+``."""
        scheme = url_scheme(url)
        base = scheme.partition("+")[0]
        for candidate in (scheme, base):
            info = self._by_scheme.get(candidate)
            if info is not None:
                return info
        for name, (_, schemes) in FIRST_PARTY.items():
            if (scheme in schemes or base in schemes) and name in self.broken:
                raise self.broken[name]
        if base in self.broken:
            raise self.broken[base]
        hint_name = next(
            (name for name, (_, schemes) in FIRST_PARTY.items() if scheme in schemes), base
        )
        raise BackendNotInstalled(self._not_installed(f"for URL scheme {scheme!r}", hint_name))

    def select(self, backend: str | None, url: str | None) -> BackendInfo:
        """Pick the backend for a configuration (name, URL, or the default)."""
        if backend:
            info = self.get(backend)
            if url:
                scheme = url_scheme(url)
                if info.url_schemes and not {scheme, scheme.partition("+")[0]} & {
                    s.lower() for s in info.url_schemes
                }:
                    raise ConfigError(
                        f"The backend setting is {backend!r} but the url setting has scheme "
                        f"{scheme!r}, which {backend!r} does not accept (it accepts: "
                        f"{', '.join(info.url_schemes)}). Remove one of the two settings."
                    )
            return info
        if url:
            return self.for_url(url)
        return self.get(DEFAULT_BACKEND)

    def settings_model(self, info: BackendInfo) -> type[BackendSettings]:
        """The backend's settings model class, imported if given as a string."""
        model = info.settings_model
        return self._load(info, model) if isinstance(model, str) else model

    def factory(self, info: BackendInfo) -> Any:
        """The backend's factory, imported if given as a string."""
        return self._load(info, info.factory) if isinstance(info.factory, str) else info.factory

    @staticmethod
    def _load(info: BackendInfo, path: str) -> Any:
        try:
            return import_object(path)
        except Exception as exc:
            raise PluginLoadError(
                f"The backend {info.name!r} ({_origin(info)}) could not import {path!r}: "
                f"{type(exc).__name__}: {exc}. Reinstall it with its dependencies "
                f"(pip install -U {info.distribution or 'sessionhub-' + info.name})."
            ) from exc

    def _not_installed(self, what: str, hint_name: str) -> str:
        installed = ", ".join(self.names()) or "none"
        first_party = FIRST_PARTY.get(hint_name)
        if first_party is not None:
            advice = f"To add it: pip install {first_party[0]}"
        else:
            close = difflib.get_close_matches(hint_name, self.names(), n=3)
            advice = (f"Did you mean {' or '.join(repr(c) for c in close)}? " if close else "") + (
                "Did you spell it correctly? If it is a third-party backend, install its "
                f"package (usually: pip install sessionhub-{hint_name})"
            )
        return f"No sessionhub backend {what} is installed. Installed: {installed}. {advice}"


def _origin(info: BackendInfo) -> str:
    if info.distribution:
        return f"{info.distribution} {info.version or ''}".strip()
    return "a plugin registered in code"
