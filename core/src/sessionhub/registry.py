"""The backend registry: backends by name and by URL scheme, and how one is selected.

Filled from ``sessionhub_register_backends``. Selection: a backend name
(matched case-insensitively), or the URL's full scheme (``mongodb+srv``), then
the part before ``+`` (``sqlite+aiosqlite`` -> ``sqlite``); else the default.
When both are set and disagree, the one from the higher-precedence source
decides and the other is ignored; from the same source, it is an error.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import logging
from dataclasses import replace
from typing import Any

import pluggy

from sessionhub.backend import BackendInfo, BackendSettings
from sessionhub.errors import BackendNotInstalled, ConfigError, PluginLoadError
from sessionhub.plugins import each_implementation
from sessionhub.settings import SessionHubSettings, mask_url, validate_backend_settings

__all__ = ["BackendRegistry", "DEFAULT_BACKEND", "FIRST_PARTY", "url_scheme", "import_object"]

logger = logging.getLogger("sessionhub")

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
    "postgres": ("sessionhub-postgres", ("postgres", "postgresql", "postgresql+asyncpg")),
}
"""First-party backends: distribution and URL schemes, for install hints."""


def url_scheme(url: str) -> str:
    """Return the lower-cased scheme of ``url`` (the part before ``://``)."""
    scheme, sep, _ = url.partition("://")
    if not sep or not scheme or ":" in scheme:
        raise ConfigError(
            f"The url setting {mask_url(url)!r} has no scheme. Write it as scheme://..., "
            "for example sqlite:///sessionhub.db, redis://localhost:6379/0 or memory://."
        )
    return scheme.lower()


def import_object(path: str) -> Any:
    """Import ``"package.module:Name"`` (or ``"package.module"``) and return the object."""
    module_name, _, attribute = path.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in filter(None, attribute.split(".")):
        obj = getattr(obj, part)
    return obj


class BackendRegistry:
    """The backends known to one plugin manager."""

    def __init__(
        self,
        infos: list[BackendInfo],
        broken: dict[str, PluginLoadError],
        skipped: dict[str, str] | None = None,
    ) -> None:
        self._by_name: dict[str, BackendInfo] = {}
        self._by_scheme: dict[str, BackendInfo] = {}
        self.broken = broken
        """Plugins that failed to import, by entry point name."""
        self.skipped = skipped or {}
        """Plugins left out by the load-only or disable list (lower-cased name -> why)."""
        for info in infos:
            self.add(info)

    @classmethod
    def from_plugin_manager(cls, pm: pluggy.PluginManager) -> BackendRegistry:
        """Collect every backend registered through ``sessionhub_register_backends``."""
        records = getattr(pm, "records", {})
        infos: list[BackendInfo] = []
        for plugin_name, call in each_implementation(pm, "sessionhub_register_backends"):
            record = records.get(plugin_name)
            results: list[Any] = call()
            for result in results:
                for info in [result] if isinstance(result, BackendInfo) else result:
                    if record is not None and info.distribution is None:
                        info = replace(
                            info, distribution=record.distribution, version=record.version
                        )
                    infos.append(info)
        return cls(infos, dict(getattr(pm, "broken", {})), dict(getattr(pm, "skipped", {})))

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
        """The backend registered as ``name`` (any case); a clear error if there is none."""
        info = self._by_name.get(name)
        if info is None:
            same = [other for key, other in self._by_name.items() if key.lower() == name.lower()]
            info = same[0] if len(same) == 1 else None
        if info is not None:
            return info
        if name in self.broken:
            raise self.broken[name]
        self._raise_if_skipped(name.lower())
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
            if scheme in schemes or base in schemes:
                if name in self.broken:
                    raise self.broken[name]
                self._raise_if_skipped(name)
        if base in self.broken:
            raise self.broken[base]
        hint_name = next(
            (name for name, (_, schemes) in FIRST_PARTY.items() if scheme in schemes), base
        )
        raise BackendNotInstalled(self._not_installed(f"for URL scheme {scheme!r}", hint_name))

    def select(self, backend: str | None, url: str | None) -> BackendInfo:
        """Pick the backend for a configuration (name, URL, or the default).

        ``backend`` and ``url`` count as set in one place: if they disagree, it is an error.
        """
        return self.choose(backend, url)[0]

    def choose(
        self,
        backend: str | None,
        url: str | None,
        *,
        sources: tuple[tuple[int, str], tuple[int, str]] = ((0, "constructor"), (0, "constructor")),
    ) -> tuple[BackendInfo, str | None]:
        """Pick the backend, and the url it gets (``None`` when ``url`` was overruled).

        ``sources`` gives the precedence rank (0: highest) and the source label of
        ``backend`` and of ``url``. When they disagree, the one from the
        higher-precedence source decides and the other is ignored; from one source,
        it is a ``ConfigError`` naming both values and where they came from.
        """
        if not backend:
            return (self.for_url(url) if url else self.get(DEFAULT_BACKEND)), url
        if not url:
            return self.get(backend), None
        (backend_rank, backend_source), (url_rank, url_source) = sources
        if url_rank < backend_rank:
            # The url outranks the name, which counts only if it is usable and agrees.
            with contextlib.suppress(ConfigError):
                named = self.get(backend)
                if _accepts(named, url):
                    return named, url
            return self.for_url(url), url
        named = self.get(backend)
        if _accepts(named, url):
            return named, url
        if backend_rank < url_rank:
            return named, None
        raise ConfigError(
            f"The backend setting {backend!r} ({_source(backend_source)}) and the url setting "
            f"with scheme {url_scheme(url)!r} ({_source(url_source)}) disagree: {named.name!r} "
            f"accepts {', '.join(named.url_schemes)}. Remove one of the two settings."
        )

    def configure(self, settings: SessionHubSettings) -> tuple[BackendInfo, BackendSettings]:
        """The backend ``settings`` select, and its own settings validated."""
        url = settings.url.get_secret_value() if settings.url is not None else None
        sources = (
            (settings.precedence_of("backend"), settings.source_of("backend")),
            (settings.precedence_of("url"), settings.source_of("url")),
        )
        info, used_url = self.choose(settings.backend, url, sources=sources)
        if used_url is None and url is not None:
            settings = settings.model_copy(update={"url": None})
        self._warn_of_misspelt_tables(settings)
        return info, validate_backend_settings(settings, info.name, self.settings_model(info))

    def effective(self, settings: SessionHubSettings) -> dict[str, tuple[str, str]]:
        """The backend and url ``settings`` select, defaults included, each with its source.

        ``{"backend": (name, source), "url": (masked url, source)}``, for ``sessionhub config``.
        """
        info, config = self.configure(settings)
        if settings.backend and settings.backend.lower() == info.name.lower():
            backend_source = settings.source_of("backend")
        elif settings.url is not None:
            backend_source = f"{settings.source_of('url')} (the url's scheme)"
        else:
            backend_source = "default"
        table = settings.backend_table(info.name)
        if "url" in table:
            url_source = settings.source_of(info.name, "url")
        elif settings.url is not None and config.url is not None:
            url_source = settings.source_of("url")
        elif table:
            url_source = f"from the [{info.name}] options"
        else:
            url_source = f"default of {info.name}"
        url = config.effective_url()
        return {
            "backend": (info.name, backend_source),
            "url": (mask_url(url) if url is not None else "(none)", url_source),
        }

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

    def _warn_of_misspelt_tables(self, settings: SessionHubSettings) -> None:
        # A table may belong to a hook plugin, so only a near miss of a backend is reported.
        backends = {*self.names(), *FIRST_PARTY}
        for table in settings.model_extra or {}:
            close = difflib.get_close_matches(table.lower(), sorted(backends), n=1)
            if table not in backends and close:
                logger.warning(
                    "The settings have a table [%s] (from %s), but no backend has that name: "
                    "did you mean [%s]? Its options are ignored.",
                    table,
                    settings.source_of(table),
                    close[0],
                )

    def _raise_if_skipped(self, name: str) -> None:
        why = self.skipped.get(name) or self.skipped.get(
            FIRST_PARTY.get(name, ("",))[0].lower() or name
        )
        if why is not None:
            raise ConfigError(f"The sessionhub backend {name!r} is installed but {why}.")

    def _not_installed(self, what: str, hint_name: str) -> str:
        installed = ", ".join(self.names()) or "none"
        first_party = FIRST_PARTY.get(hint_name.lower())
        close = difflib.get_close_matches(hint_name.lower(), self.names(), n=1)
        if first_party is not None:
            advice = f"To add it: pip install {first_party[0]}"
        elif close:
            advice = f"Did you mean {close[0]!r}?"
        else:
            advice = (
                "Did you spell it correctly? If it is a third-party backend, install its "
                f"package (usually: pip install sessionhub-{hint_name.lower()})"
            )
        return f"No sessionhub backend {what} is installed. Installed: {installed}. {advice}"


def _source(label: str) -> str:
    named = {"constructor": "a constructor argument", "env": "the environment"}
    return f"from {named.get(label, label)}"


def _accepts(info: BackendInfo, url: str) -> bool:
    if not info.url_schemes:
        return True
    scheme = url_scheme(url)
    return bool({scheme, scheme.partition("+")[0]} & {s.lower() for s in info.url_schemes})


def _origin(info: BackendInfo) -> str:
    if info.distribution:
        return f"{info.distribution} {info.version or ''}".strip()
    return "a plugin registered in code"
