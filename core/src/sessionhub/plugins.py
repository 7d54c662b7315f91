"""Building the plugin manager: entry-point loading, load-only and disable lists, built-ins.

Nothing happens at import time: ``get_plugin_manager`` builds a fresh
manager each time it is called. A plugin that fails to import is recorded in
``broken`` with its distribution and chained error instead of stopping the
load; it breaks only a service that selects one of its backends.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import inspect
import logging
import os
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pluggy

from sessionhub import hookspecs
from sessionhub.errors import PluginLoadError

__all__ = [
    "SessionHubPluginManager",
    "PluginRecord",
    "get_plugin_manager",
    "parse_name_list",
    "call_hook",
    "BUILTIN_PLUGINS",
]

logger = logging.getLogger("sessionhub.plugins")

BUILTIN_PLUGINS: tuple[str, ...] = ("sessionhub._builtin.audit_log",)
"""Modules of the core registered through the same hooks as any plugin."""


@dataclass(frozen=True)
class PluginRecord:
    """Where a loaded plugin came from."""

    name: str
    distribution: str | None
    version: str | None


class SessionHubPluginManager(pluggy.PluginManager):
    """A pluggy manager that also remembers distributions and plugins that failed to load."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT_NAME)
        self.add_hookspecs(hookspecs)
        self.records: dict[str, PluginRecord] = {}
        """Loaded plugins by name."""
        self.broken: dict[str, PluginLoadError] = {}
        """Plugins that failed to load, by entry point name."""
        self.not_found: list[str] = []
        """Names given in the load-only or disable list that no installed plugin has."""
        self.skipped: dict[str, str] = {}
        """Installed plugins left out by the load-only or disable list: entry point and
        distribution name (lower-cased) -> why, as a sentence ending in what to change."""


def parse_name_list(raw: str | Iterable[str] | None) -> list[str] | None:
    """Turn ``"a, b"`` or ``["a", "b"]`` into ``["a", "b"]``; ``None`` stays ``None``."""
    if raw is None:
        return None
    items = raw.split(",") if isinstance(raw, str) else raw
    return [item.strip() for item in items if item.strip()]


class _FromEnvironment:
    """Sentinel: read the list from the environment variable."""


_FROM_ENV: Any = _FromEnvironment()


def get_plugin_manager(
    *,
    load: Sequence[str] | None = _FROM_ENV,
    disable: Sequence[str] = _FROM_ENV,
    entry_points: bool = True,
    builtins: bool = True,
) -> SessionHubPluginManager:
    """Build a plugin manager with the installed plugins and the core's built-ins.

    :param load: Load only the plugins with these entry point or distribution
        names (empty: none; ``None``: all). Default: ``SESSIONHUB_PLUGINS``.
    :param disable: Never load these. Default: ``SESSIONHUB_DISABLE_PLUGINS``.
    :param entry_points: Load installed plugins at all (off: built-ins only).
    :param builtins: Register the core's built-in plugins.
    """
    if load is _FROM_ENV:
        load = parse_name_list(os.environ.get("SESSIONHUB_PLUGINS"))
    if disable is _FROM_ENV:
        disable = parse_name_list(os.environ.get("SESSIONHUB_DISABLE_PLUGINS")) or []
    pm = SessionHubPluginManager()
    for name in disable:
        pm.set_blocked(name)
    if entry_points:
        _load_entry_points(pm, load, disable)
    if builtins:
        for module_name in BUILTIN_PLUGINS:
            if not pm.is_blocked(module_name):
                pm.register(importlib.import_module(module_name), name=module_name)
                pm.records[module_name] = PluginRecord(module_name, "sessionhub", _version())
    pm.check_pending()
    return pm


def _version() -> str | None:
    try:
        return importlib.metadata.version("sessionhub")
    except importlib.metadata.PackageNotFoundError:
        return None


def _load_entry_points(
    pm: SessionHubPluginManager, only: Sequence[str] | None, disable: Sequence[str]
) -> None:
    wanted = None if only is None else {name.lower() for name in only}
    disabled = {name.lower() for name in disable}
    installed: set[str] = set()
    for dist in importlib.metadata.distributions():
        dist_name = dist.metadata["Name"]
        for ep in dist.entry_points:
            if ep.group != hookspecs.PROJECT_NAME:
                continue
            names = {ep.name.lower(), dist_name.lower()}
            installed |= names
            if names & disabled:
                _skip(
                    pm,
                    names,
                    "disabled by the disable_plugins setting (SESSIONHUB_DISABLE_PLUGINS): "
                    f"take {ep.name} out of that list to use it",
                )
                continue
            if wanted is not None and not names & wanted:
                _skip(
                    pm,
                    names,
                    "not loaded: the plugins setting (SESSIONHUB_PLUGINS) lists only "
                    f"{', '.join(sorted(wanted)) or 'none'}; add {ep.name} to it to use it",
                )
                continue
            known = pm.records.get(ep.name)
            if known is not None:
                if known.distribution == dist_name:
                    continue  # the same distribution found twice on sys.path
                raise PluginLoadError(
                    f"Two plugins are named {ep.name!r}: one from {known.distribution} "
                    f"and one from {dist_name} {dist.version}. Uninstall one of them, or "
                    f"disable one with SESSIONHUB_DISABLE_PLUGINS={dist_name}."
                )
            try:
                plugin = ep.load()
            except Exception as exc:  # a broken plugin must not stop the others
                error = PluginLoadError(
                    f"The sessionhub plugin {ep.name!r} from {dist_name} {dist.version} "
                    f"failed to import ({ep.value}): {type(exc).__name__}: {exc}. "
                    f"Reinstall or upgrade it (pip install -U {dist_name}), or disable it "
                    f"with SESSIONHUB_DISABLE_PLUGINS={ep.name}."
                )
                error.__cause__ = exc
                pm.broken[ep.name] = error
                logger.warning("%s", error)
                continue
            pm.register(plugin, name=ep.name)
            pm.records[ep.name] = PluginRecord(ep.name, dist_name, dist.version)
    builtins = {name.lower() for name in BUILTIN_PLUGINS}
    for setting, names in (
        ("SESSIONHUB_PLUGINS", wanted or set()),
        ("SESSIONHUB_DISABLE_PLUGINS", disabled),
    ):
        for name in sorted(names - installed - builtins):
            pm.not_found.append(name)
            close = difflib.get_close_matches(name, sorted(installed), n=1)
            hint = f"did you mean {close[0]!r}" if close else "installed: "
            hint += "" if close else (", ".join(sorted(installed)) or "none")
            logger.warning(
                "%s names %r, but no installed sessionhub plugin has that name (%s).",
                setting,
                name,
                hint,
            )


def _skip(pm: SessionHubPluginManager, names: set[str], why: str) -> None:
    for name in names:
        pm.skipped[name] = why


async def call_hook(pm: pluggy.PluginManager, hook_name: str, **kwargs: Any) -> list[Any]:
    """Call a hook's implementations one at a time in pluggy order, awaiting async ones.

    Returns the non-``None`` results in call order. A coroutine does not start
    until awaited, so calling each implementation only after the previous one
    finished keeps in-place rewrites in the documented order.
    """
    caller: pluggy.HookCaller = getattr(pm.hook, hook_name)
    results: list[Any] = []
    for impl in reversed(caller.get_hookimpls()):
        result = impl.function(*[kwargs[name] for name in impl.argnames])
        if inspect.isawaitable(result):
            result = await _await(result)
        if result is not None:
            results.append(result)
    return results


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable
