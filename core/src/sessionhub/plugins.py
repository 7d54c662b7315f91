"""The plugin manager and how hooks are called.

Building it: entry-point loading, load-only and disable lists, built-ins.
Nothing happens at import time: ``get_plugin_manager`` builds a fresh
manager each time it is called. A plugin that fails to import is recorded in
``broken`` with its distribution and chained error instead of stopping the
load; it breaks only a service that selects one of its backends.

Calling hooks: ``call_hook`` (hooks whose implementations may be ``async
def``) and ``each_implementation`` (the registration hooks) are the only ways
the core calls a hook, always through pluggy.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import inspect
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal

import pluggy
from pluggy import HookImpl

from sessionhub import hookspecs
from sessionhub.errors import PluginLoadError

__all__ = [
    "SessionHubPluginManager",
    "PluginRecord",
    "get_plugin_manager",
    "parse_name_list",
    "call_hook",
    "each_implementation",
    "has_implementations",
    "BUILTIN_PLUGINS",
    "WRAPPERS_REFUSED",
]

logger = logging.getLogger("sessionhub.plugins")

BUILTIN_PLUGINS: tuple[str, ...] = ("sessionhub._builtin.audit_log",)
"""Modules of the core registered through the same hooks as any plugin."""

WRAPPERS_REFUSED: dict[str, str] = {
    **dict.fromkeys(
        hookspecs.AWAITED_HOOKS,
        "its implementations may be async def, and a wrapper runs before pluggy's caller "
        "awaits them, so it could not wrap their work",
    ),
    "sessionhub_wrap_backend": (
        "the hook wraps already: return a Backend that wraps the one it receives"
    ),
    "sessionhub_operation_wrapper": (
        "the hook wraps already: return a function that returns a context manager, which "
        "the service runs around each operation"
    ),
}
"""Hooks that refuse ``wrapper=True`` / ``hookwrapper=True`` implementations, and why.

Such an implementation is rejected when its plugin is registered (``PluginLoadError``).
Wrappers of the other hooks (``sessionhub_register_backends``) work as pluggy runs them.
"""


@dataclass(frozen=True)
class PluginRecord:
    """Where a loaded plugin came from."""

    name: str
    distribution: str | None
    version: str | None


class SessionHubPluginManager(pluggy.PluginManager):
    """A pluggy manager that also remembers distributions and plugins that failed to load."""

    def __init__(self) -> None:
        self.changes = 0
        """Counts the plugins registered and unregistered: what a cached hook lookup depends on."""
        self._implemented: dict[str, bool] = {}
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
        self._run_plans: dict[tuple[str, _Split], tuple[list[HookImpl], _Runs]] = {}

    def register(self, plugin: object, name: str | None = None) -> str | None:
        """Register ``plugin`` as pluggy does; refuse one the hook calls could not handle.

        Raises ``PluginLoadError`` naming the plugin (and the hook) when it cannot
        be hashed, or implements a hook of ``WRAPPERS_REFUSED`` with
        ``wrapper=True`` or ``hookwrapper=True``; the plugin is then left
        unregistered.
        """
        try:
            plugin_name = super().register(plugin, name)
        finally:
            self._changed()  # pluggy may have added implementations before raising
        if plugin_name is not None:
            try:
                _check_plugin(self, plugin, plugin_name)
            except PluginLoadError:
                self.unregister(plugin)
                raise
        return plugin_name

    def unregister(self, plugin: object | None = None, name: str | None = None) -> Any | None:
        """Unregister a plugin as pluggy does (the cached hook lookups start again)."""
        try:
            return super().unregister(plugin, name)
        finally:
            self._changed()

    def add_hookspecs(self, module_or_class: ModuleType | type) -> None:
        """Add hook specifications as pluggy does (the cached hook lookups start again)."""
        super().add_hookspecs(module_or_class)
        self._changed()

    def _changed(self) -> None:
        self.changes += 1
        self._implemented.clear()


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


# --- calling hooks --------------------------------------------------------------
#
# Every hook call goes through pluggy (``pm.hook.<name>`` or a subset of it), so
# ``add_hookcall_monitoring`` and ``enable_tracing`` see it.

_Split = Literal["each", "awaited", "first-awaited"]
"""Where a hook's implementations need separate pluggy calls: before every one
(``each``); before a plain function that follows an ``async def`` one (``awaited``);
and also after every ``async def`` one for a firstresult hook (``first-awaited``)."""

_Runs = list[list[HookImpl]]


def _wrapper_error(plugin_name: str | None, hook_name: str) -> PluginLoadError:
    reason = WRAPPERS_REFUSED[hook_name]
    return PluginLoadError(
        f"The sessionhub plugin {plugin_name!r} implements {hook_name} with "
        f"@hookimpl(wrapper=True) or hookwrapper=True, which that hook does not support: "
        f"{reason}. Use a plain @hookimpl, or disable the plugin with "
        f"SESSIONHUB_DISABLE_PLUGINS={plugin_name}."
    )


def _check_plugin(pm: pluggy.PluginManager, plugin: object, plugin_name: str) -> None:
    """Refuse a plugin the hook calls cannot handle: unhashable, or with a refused wrapper."""
    _check_hashable(plugin, plugin_name)
    for caller in pm.get_hookcallers(plugin) or []:
        if caller.name not in WRAPPERS_REFUSED:
            continue
        for impl in caller.get_hookimpls():
            if impl.plugin is plugin and (impl.wrapper or impl.hookwrapper):
                raise _wrapper_error(impl.plugin_name, caller.name)
            if (
                impl.plugin is plugin
                and caller.name not in hookspecs.AWAITED_HOOKS
                and inspect.iscoroutinefunction(impl.function)
            ):
                raise PluginLoadError(
                    f"The sessionhub plugin {impl.plugin_name!r} implements {caller.name} "
                    "with async def, but that hook is synchronous: its result is used "
                    "at once. Use a plain def, or disable the plugin with "
                    f"SESSIONHUB_DISABLE_PLUGINS={impl.plugin_name}."
                )


def _check_hashable(plugin: object, plugin_name: str) -> None:
    try:
        hash(plugin)
    except TypeError:
        # pluggy keeps plugins in sets to call them one at a time (subset_hook_caller).
        raise PluginLoadError(
            f"The sessionhub plugin {plugin_name!r} is a {type(plugin).__name__} object that "
            "cannot be hashed, and sessionhub calls hooks one plugin at a time through "
            "pluggy, which needs that. Make its class hashable (a dataclass: "
            "@dataclass(eq=False) or frozen=True), or register a module or a plain object."
        ) from None


def _split(hook_name: str, impls: list[HookImpl], split: _Split) -> _Runs:
    runs: _Runs = []
    previous_async = False
    for impl in reversed(impls):  # pluggy calls the last registered first
        if impl.wrapper or impl.hookwrapper:
            if hook_name in WRAPPERS_REFUSED:  # a manager that did not check at registration
                raise _wrapper_error(impl.plugin_name, hook_name)
            continue
        is_async = inspect.iscoroutinefunction(impl.function)
        if not runs or split == "each" or (previous_async and (split != "awaited" or not is_async)):
            runs.append([impl])
        else:
            runs[-1].append(impl)
        previous_async = is_async
    return runs


def _runs(pm: pluggy.PluginManager, hook_name: str, split: _Split) -> list[pluggy.HookCaller]:
    """A caller per run of a hook's implementations that one pluggy call may make.

    ``pm.hook.<name>`` itself when one run covers them all (the usual case), else a
    subset of it per run, each keeping the hook's wrappers. The split is remembered
    per manager until the hook's implementations change.
    """
    caller: pluggy.HookCaller = getattr(pm.hook, hook_name)
    impls = caller.get_hookimpls()
    plans: dict[tuple[str, _Split], tuple[list[HookImpl], _Runs]] | None = getattr(
        pm, "_run_plans", None
    )
    known = plans.get((hook_name, split)) if plans is not None else None
    if known is not None and known[0] == impls:
        runs = known[1]
    else:
        runs = _split(hook_name, impls, split)
        if plans is not None:
            plans[(hook_name, split)] = (impls, runs)
    if len(runs) <= 1:
        return [caller]
    plain = [impl for run in runs for impl in run]
    for impl in plain:  # a manager that did not check at registration
        _check_hashable(impl.plugin, impl.plugin_name)
    return [
        pm.subset_hook_caller(hook_name, [i.plugin for i in plain if i not in run]) for run in runs
    ]


def each_implementation(
    pm: pluggy.PluginManager, hook_name: str
) -> list[tuple[str, pluggy.HookCaller]]:
    """One caller per implementation of a synchronous hook, in pluggy's call order.

    Each caller runs one plugin's implementation (inside the hook's wrappers)
    through pluggy, for hooks whose results must be told apart by plugin
    (``sessionhub_register_backends``) or chained (``sessionhub_wrap_backend``).
    Returns ``(plugin name, caller)`` pairs.
    """
    impls = reversed(getattr(pm.hook, hook_name).get_hookimpls())  # in call order
    plain = [i for i in impls if not (i.wrapper or i.hookwrapper)]
    callers = _runs(pm, hook_name, "each") if plain else []
    return [(impl.plugin_name, caller) for impl, caller in zip(plain, callers, strict=True)]


def has_implementations(pm: pluggy.PluginManager, hook_name: str) -> bool:
    """Whether any plugin implements the hook.

    On a ``SessionHubPluginManager`` the answer is kept until a plugin is registered
    or unregistered, so an operation with no hooks to run costs a dict look-up, not a
    copy of pluggy's list of implementations; another manager is asked each time.
    """
    cache: dict[str, bool] | None = getattr(pm, "_implemented", None)
    if cache is None:
        return bool(getattr(pm.hook, hook_name).get_hookimpls())
    found = cache.get(hook_name)
    if found is None:
        found = cache[hook_name] = bool(getattr(pm.hook, hook_name).get_hookimpls())
    return found


async def call_hook(pm: pluggy.PluginManager, hook_name: str, **kwargs: Any) -> list[Any]:
    """Call a hook through pluggy and await its ``async def`` implementations in call order.

    Returns the non-``None`` results in call order (for a ``firstresult`` hook,
    at most the first). A coroutine does not start until awaited, so an
    implementation's body runs only after those before it finished: in-place
    rewrites keep the documented order. A plain function called after an
    ``async def`` one gets a pluggy call of its own, made once the coroutines
    before it are done. If one raises, the coroutines after it are closed
    unstarted and the error propagates.
    """
    spec = getattr(pm.hook, hook_name).spec
    firstresult = bool(spec is not None and spec.opts.get("firstresult"))
    results: list[Any] = []
    for run in _runs(pm, hook_name, "first-awaited" if firstresult else "awaited"):
        outcome = run(**kwargs)
        pending: list[Any] = [outcome] if firstresult else outcome
        for index, result in enumerate(pending):
            if inspect.isawaitable(result):
                try:
                    result = await result
                except BaseException:
                    for unstarted in pending[index + 1 :]:
                        if inspect.iscoroutine(unstarted):
                            unstarted.close()
                    raise
            if result is not None:
                results.append(result)
                if firstresult:
                    return results
    return results
