"""Plugin discovery: entry points, load-only and disable lists, duplicates, typos, broken ones."""

from __future__ import annotations

import pytest

from sessionhub import (
    BackendNotInstalled,
    BackendRegistry,
    PluginLoadError,
    SessionHistoryService,
    get_plugin_manager,
)
from sessionhub.errors import ConfigError

BACKEND_PLUGIN = """
from sessionhub import BackendInfo, hookimpl

@hookimpl
def sessionhub_register_backends():
    return BackendInfo(name={name!r}, factory="sessionhub_memory.backend:MemoryBackend",
                       settings_model="sessionhub_memory.backend:MemorySettings",
                       url_schemes={schemes!r})
"""


def backend_plugin(name: str, schemes: tuple[str, ...] = ()) -> str:
    """Source of a plugin module registering a memory-backed backend called ``name``."""
    return BACKEND_PLUGIN.format(name=name, schemes=schemes)


def registry(**kwargs) -> BackendRegistry:
    return BackendRegistry.from_plugin_manager(get_plugin_manager(**kwargs))


def test_entry_point_plugins_are_loaded(site):
    site.install(
        "sessionhub-acme",
        {"sessionhub_acme": backend_plugin("acme", ("acme",))},
        {"acme": "sessionhub_acme"},
        version="2.3",
    )
    pm = get_plugin_manager(load=None, disable=[])
    assert pm.records["acme"].distribution == "sessionhub-acme"
    assert pm.records["acme"].version == "2.3"
    info = BackendRegistry.from_plugin_manager(pm).get("acme")
    assert (info.distribution, info.version, info.url_schemes) == (
        "sessionhub-acme",
        "2.3",
        ("acme",),
    )


def test_builtins_are_registered_through_the_hooks():
    pm = get_plugin_manager(load=[], disable=[])
    plugin = pm.get_plugin("sessionhub._builtin.audit_log")
    assert plugin is not None
    hooks = {caller.name for caller in pm.get_hookcallers(plugin)}
    assert hooks == {"sessionhub_session_created", "sessionhub_session_deleted"}


def test_load_only_list(site, monkeypatch):
    site.install("sessionhub-one", {"p_one": backend_plugin("one")}, {"one": "p_one"})
    site.install("sessionhub-two", {"p_two": backend_plugin("two")}, {"two": "p_two"})
    monkeypatch.setenv("SESSIONHUB_PLUGINS", "one")
    assert "one" in registry().names() and "two" not in registry().names()
    monkeypatch.setenv("SESSIONHUB_PLUGINS", "sessionhub-two")  # distribution names work too
    assert registry().names() == ["two"]
    monkeypatch.setenv("SESSIONHUB_PLUGINS", "")  # empty: load none
    assert registry().names() == []
    monkeypatch.setenv("SESSIONHUB_PLUGINS", "one,nope")
    pm = get_plugin_manager()
    assert pm.not_found == ["nope"]


def test_disable_list(site, monkeypatch):
    site.install("sessionhub-one", {"p_one": backend_plugin("one")}, {"one": "p_one"})
    site.install("sessionhub-two", {"p_two": backend_plugin("two")}, {"two": "p_two"})
    monkeypatch.setenv("SESSIONHUB_DISABLE_PLUGINS", "two, memory")
    names = registry().names()
    assert "one" in names and "two" not in names and "memory" not in names
    monkeypatch.setenv("SESSIONHUB_DISABLE_PLUGINS", "sessionhub._builtin.audit_log")
    assert get_plugin_manager().get_plugin("sessionhub._builtin.audit_log") is None


@pytest.mark.parametrize(
    ("variable", "value", "why"),
    [
        (
            "SESSIONHUB_DISABLE_PLUGINS",
            "memory",
            "disabled by the disable_plugins setting (SESSIONHUB_DISABLE_PLUGINS): take memory "
            "out of that list to use it.",
        ),
        (
            "SESSIONHUB_PLUGINS",
            "sqlite",
            "not loaded: the plugins setting (SESSIONHUB_PLUGINS) lists only sqlite; add memory "
            "to it to use it.",
        ),
    ],
)
def test_a_selected_backend_whose_plugin_is_left_out_is_reported_as_such(
    monkeypatch, variable, value, why
):
    monkeypatch.setenv(variable, value)
    for selection in ({"backend": "memory"}, {"url": "memory://"}):
        with pytest.raises(ConfigError) as info:
            SessionHistoryService(**selection)
        assert str(info.value) == f"The sessionhub backend 'memory' is installed but {why}"


def test_unknown_names_in_the_plugin_lists_are_reported(monkeypatch, caplog):
    monkeypatch.setenv("SESSIONHUB_DISABLE_PLUGINS", "redsi")
    monkeypatch.setenv("SESSIONHUB_PLUGINS", "memory,nosuchplugin")
    pm = get_plugin_manager()
    assert pm.not_found == ["nosuchplugin", "redsi"]
    messages = [record.getMessage() for record in caplog.records]
    assert (
        "SESSIONHUB_DISABLE_PLUGINS names 'redsi', but no installed sessionhub plugin has that "
        "name (did you mean 'redis')." in messages
    )
    assert any(m.startswith("SESSIONHUB_PLUGINS names 'nosuchplugin'") for m in messages)


def test_settings_choose_the_plugins(site, tmp_path):
    site.install("sessionhub-one", {"p_one": backend_plugin("one")}, {"one": "p_one"})
    (tmp_path / "cwd" / "sessionhub.toml").write_text('plugins = ["memory"]\nbackend = "memory"\n')
    service = SessionHistoryService()
    assert service.plugin_manager.get_plugin("one") is None
    assert service.plugin_manager.get_plugin("memory") is not None


def test_two_plugins_with_one_entry_point_name(site):
    site.install("sessionhub-first", {"p_first": backend_plugin("first")}, {"dup": "p_first"})
    site.install("sessionhub-second", {"p_second": backend_plugin("second")}, {"dup": "p_second"})
    with pytest.raises(PluginLoadError) as info:
        get_plugin_manager(load=["dup"], disable=[])
    message = str(info.value)
    assert "sessionhub-first" in message and "sessionhub-second" in message


def test_two_plugins_claiming_one_backend_name(site):
    site.install("sessionhub-first", {"p_first": backend_plugin("same")}, {"first": "p_first"})
    site.install("sessionhub-second", {"p_second": backend_plugin("same")}, {"second": "p_second"})
    with pytest.raises(ConfigError) as info:
        registry(load=["first", "second"], disable=[])
    message = str(info.value)
    assert "'same'" in message
    assert "sessionhub-first 1.0" in message and "sessionhub-second 1.0" in message


def test_two_backends_claiming_one_scheme(site):
    site.install("sessionhub-first", {"p_first": backend_plugin("a", ("x",))}, {"a": "p_first"})
    site.install("sessionhub-second", {"p_second": backend_plugin("b", ("x",))}, {"b": "p_second"})
    with pytest.raises(ConfigError, match="URL scheme 'x' is claimed by backend"):
        registry(load=["a", "b"], disable=[])


def test_misspelt_hook_is_an_error(site):
    site.install(
        "sessionhub-typo",
        {
            "p_typo": """
        from sessionhub import hookimpl

        @hookimpl
        def sessionhub_regster_backends():
            return None
    """
        },
        {"typo": "p_typo"},
    )
    from pluggy import PluginValidationError

    with pytest.raises(PluginValidationError, match="sessionhub_regster_backends"):
        get_plugin_manager(load=["typo"], disable=[])


def test_broken_plugin_is_reported_with_its_cause(site):
    site.install(
        "sessionhub-broken",
        {"p_broken": "import not_a_real_module_xyz\n"},
        {"broken": "p_broken"},
        version="0.9",
    )
    pm = get_plugin_manager(load=None, disable=[])
    error = pm.broken["broken"]
    assert isinstance(error.__cause__, ModuleNotFoundError)
    assert str(error) == (
        "The sessionhub plugin 'broken' from sessionhub-broken 0.9 failed to import (p_broken): "
        "ModuleNotFoundError: No module named 'not_a_real_module_xyz'. Reinstall or upgrade it "
        "(pip install -U sessionhub-broken), or disable it with SESSIONHUB_DISABLE_PLUGINS=broken."
    )
    # other plugins still load, and only a service that selects it fails
    assert "memory" in BackendRegistry.from_plugin_manager(pm).names()
    SessionHistoryService(backend="memory", plugin_manager=pm)
    with pytest.raises(PluginLoadError) as info:
        SessionHistoryService(backend="broken", plugin_manager=pm)
    assert info.value is error and isinstance(info.value.__cause__, ModuleNotFoundError)
    with pytest.raises(PluginLoadError):
        SessionHistoryService(url="broken://x", plugin_manager=pm)


def test_lazy_factory_that_fails_to_import(site):
    site.install(
        "sessionhub-lazy",
        {
            "p_lazy": """
        from sessionhub import BackendInfo, hookimpl

        @hookimpl
        def sessionhub_register_backends():
            return BackendInfo(name="lazy", factory="p_lazy_driver:Backend", url_schemes=("lazy",))
    """,
            "p_lazy_driver": "import missing_driver_xyz\n",
        },
        {"lazy": "p_lazy"},
    )
    pm = get_plugin_manager(load=["lazy"], disable=[])
    assert "lazy" in BackendRegistry.from_plugin_manager(pm).names()  # listing does not import
    with pytest.raises(PluginLoadError) as info:
        SessionHistoryService(backend="lazy", plugin_manager=pm)
    assert "could not import 'p_lazy_driver:Backend'" in str(info.value)
    assert "pip install -U sessionhub-lazy" in str(info.value)
    assert isinstance(info.value.__cause__, ModuleNotFoundError)


def test_an_installed_plugin_with_a_wrapper_a_hook_cannot_run_is_refused_by_name(site):
    site.install(
        "sessionhub-wraps",
        {
            "p_wraps": """
        from sessionhub import hookimpl

        @hookimpl(wrapper=True)
        def sessionhub_after_append(session, events):
            return (yield)
    """
        },
        {"wraps": "p_wraps"},
    )
    with pytest.raises(PluginLoadError) as caught:
        get_plugin_manager(load=["wraps"], disable=[])
    assert str(caught.value) == (
        "The sessionhub plugin 'wraps' implements sessionhub_after_append with "
        "@hookimpl(wrapper=True) or hookwrapper=True, which that hook does not support: its "
        "implementations may be async def, and a wrapper runs before pluggy's caller awaits "
        "them, so it could not wrap their work. Use a plain @hookimpl, or disable the plugin "
        "with SESSIONHUB_DISABLE_PLUGINS=wraps."
    )
    assert "memory" in registry(disable=["wraps"]).names()


def test_each_plugins_backends_are_credited_to_its_distribution(site):
    site.install("sessionhub-one", {"p_one": backend_plugin("one")}, {"one": "p_one"}, "1.1")
    site.install("sessionhub-two", {"p_two": backend_plugin("two")}, {"two": "p_two"}, "2.2")
    found = registry(load=["one", "two", "memory"], disable=[])
    assert [(i.name, i.distribution, i.version) for i in found.infos()] == [
        ("memory", "sessionhub-memory", found.get("memory").version),
        ("one", "sessionhub-one", "1.1"),
        ("two", "sessionhub-two", "2.2"),
    ]


def test_service_reports_missing_backend_with_installed_ones():
    with pytest.raises(BackendNotInstalled) as info:
        SessionHistoryService(backend="nosuch")
    assert "Installed: memory" in str(info.value)


@pytest.mark.parametrize("name", ["memory", "sqlite", "redis", "mongodb", "postgres"])
def test_each_first_party_backend_class_carries_its_registered_name(name):
    found = registry(load=None, disable=[])
    backend_class = found.factory(found.get(name))
    assert backend_class.name == name  # messages and `sessionhub check` print it
