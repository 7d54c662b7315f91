"""Backend selection by name and URL scheme, and the exact errors when it fails (no plugins)."""

from __future__ import annotations

import pytest

from sessionhub import (
    BackendInfo,
    BackendNotInstalled,
    BackendRegistry,
    ConfigError,
)


def fake_registry(*infos: BackendInfo) -> BackendRegistry:
    return BackendRegistry(list(infos), {})


SQLITE = BackendInfo("sqlite", "x:Y", url_schemes=("sqlite", "sqlite+aiosqlite"))
REDIS = BackendInfo("redis", "x:Y", url_schemes=("redis", "rediss", "unix"))
MONGO = BackendInfo("mongodb", "x:Y", url_schemes=("mongodb", "mongodb+srv"))
SRV_ONLY = BackendInfo("srv", "x:Y", url_schemes=("mongodb+srv",))


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///sessions.db", "sqlite"),
        ("sqlite+aiosqlite:///sessions.db", "sqlite"),
        ("SQLITE+pysqlite:///x", "sqlite"),
        ("redis://localhost:6379/0", "redis"),
        ("rediss://:secret@host:6380/0", "redis"),
        ("unix:///tmp/redis.sock", "redis"),
        ("mongodb://localhost", "mongodb"),
        ("mongodb+srv://cluster.example.com", "mongodb"),
    ],
)
def test_url_schemes_select_the_backend(url, expected):
    assert fake_registry(SQLITE, REDIS, MONGO).select(None, url).name == expected


def test_full_scheme_wins_over_the_part_before_plus():
    registry = fake_registry(MONGO.__class__("mongodb", "x:Y", url_schemes=("mongodb",)), SRV_ONLY)
    assert registry.for_url("mongodb+srv://c.example.com").name == "srv"
    assert registry.for_url("mongodb+other://c.example.com").name == "mongodb"


def test_name_wins_and_default_is_sqlite():
    registry = fake_registry(SQLITE, REDIS)
    assert registry.select("redis", None).name == "redis"
    assert registry.select(None, None).name == "sqlite"


def test_name_and_url_from_one_source_that_disagree_name_the_source():
    with pytest.raises(ConfigError) as info:
        fake_registry(SQLITE, REDIS).choose(
            "redis", "sqlite:///x.db", sources=((3, "sessionhub.toml"), (3, "sessionhub.toml"))
        )
    assert str(info.value) == (
        "The backend setting 'redis' (from sessionhub.toml) and the url setting with scheme "
        "'sqlite' (from sessionhub.toml) disagree: 'redis' accepts redis, rediss, unix. "
        "Remove one of the two settings."
    )


def test_the_higher_source_decides_between_name_and_url():
    registry = fake_registry(SQLITE, REDIS)
    env, file = (1, "env"), (3, "sessionhub.toml")
    # A url from the environment outranks a backend name from the file, and the reverse.
    info, url = registry.choose("redis", "sqlite:///x.db", sources=(file, env))
    assert (info.name, url) == ("sqlite", "sqlite:///x.db")
    info, url = registry.choose("redis", "sqlite:///x.db", sources=(env, file))
    assert (info.name, url) == ("redis", None)
    # Agreeing values from different sources are both used.
    info, url = registry.choose("redis", "redis://cache:6379/0", sources=(env, file))
    assert (info.name, url) == ("redis", "redis://cache:6379/0")
    # A lower backend that is not even installed does not stand in the way of the url.
    info, url = registry.choose("postgres", "redis://cache/0", sources=(file, env))
    assert (info.name, url) == ("redis", "redis://cache/0")


def test_names_match_in_any_case_and_a_typo_gets_one_suggestion():
    registry = fake_registry(SQLITE, REDIS)
    assert registry.get("Redis").name == "redis"
    assert registry.select("SQLITE", "sqlite:///x.db").name == "sqlite"
    with pytest.raises(BackendNotInstalled) as info:
        registry.get("Rediss")
    assert str(info.value) == (
        "No sessionhub backend named 'Rediss' is installed. Installed: redis, sqlite. "
        "Did you mean 'redis'?"
    )


def test_unknown_first_party_backend_names_the_install_line():
    with pytest.raises(BackendNotInstalled) as info:
        fake_registry(SQLITE, BackendInfo("memory", "x:Y")).get("redis")
    assert str(info.value) == (
        "No sessionhub backend named 'redis' is installed. Installed: memory, sqlite. "
        "To add it: pip install sessionhub-redis"
    )


def test_unknown_scheme_names_the_install_line():
    with pytest.raises(BackendNotInstalled) as info:
        fake_registry(SQLITE).for_url("mongodb+srv://user:pw@cluster")
    assert str(info.value) == (
        "No sessionhub backend for URL scheme 'mongodb+srv' is installed. Installed: sqlite. "
        "To add it: pip install sessionhub-mongodb"
    )


def test_unknown_third_party_name_suggests_close_matches():
    with pytest.raises(BackendNotInstalled) as info:
        fake_registry(SQLITE).get("sqlit")
    assert str(info.value) == (
        "No sessionhub backend named 'sqlit' is installed. Installed: sqlite. Did you mean "
        "'sqlite'?"
    )
    with pytest.raises(BackendNotInstalled) as info:
        fake_registry(SQLITE).get("AcmeStore")
    assert str(info.value).endswith(
        "If it is a third-party backend, install its package (usually: pip install "
        "sessionhub-acmestore)"
    )


def test_url_without_scheme():
    with pytest.raises(ConfigError, match="has no scheme"):
        fake_registry(SQLITE).for_url("localhost:6379")
