"""Settings: every precedence step, backend tables, validation errors, masked secrets."""

from __future__ import annotations

from datetime import timedelta

import pytest

from sessionhub import ConfigError, SessionHistoryService, SessionHubSettings, load_settings
from sessionhub.backend import BackendSettings
from sessionhub.cli import main
from sessionhub.settings import explain_settings, mask_url, validate_backend_settings
from sessionhub_memory.backend import MemorySettings


def write(path, text):
    path.write_text(text)
    return path


def test_defaults():
    s = load_settings()
    assert (s.backend, s.url, s.app_name, s.event_limit, s.session_ttl) == (
        None,
        None,
        "default",
        None,
        None,
    )
    assert s.purge_interval == timedelta(hours=1)


def test_every_precedence_step(clean_environment, monkeypatch, tmp_path):
    cwd = clean_environment
    write(
        cwd / "pyproject.toml",
        '[tool.sessionhub]\napp_name = "from-pyproject"\nevent_limit = 1\n'
        "session_ttl = 1\nuser_state_ttl = 1\napp_state_ttl = 1\n",
    )
    assert load_settings().app_name == "from-pyproject"

    write(
        cwd / "sessionhub.toml",
        'app_name = "from-toml"\nevent_limit = 2\nsession_ttl = 2\nuser_state_ttl = 2\n',
    )
    s = load_settings()
    assert (s.app_name, s.event_limit, s.app_state_ttl) == ("from-toml", 2, timedelta(seconds=1))

    write(
        cwd / ".env",
        "SESSIONHUB_APP_NAME=from-dotenv\nSESSIONHUB_EVENT_LIMIT=3\nSESSIONHUB_SESSION_TTL=3\n",
    )
    s = load_settings()
    assert (s.app_name, s.event_limit, s.user_state_ttl) == ("from-dotenv", 3, timedelta(seconds=2))

    monkeypatch.setenv("SESSIONHUB_APP_NAME", "from-env")
    monkeypatch.setenv("SESSIONHUB_EVENT_LIMIT", "4")
    s = load_settings()
    assert (s.app_name, s.event_limit, s.session_ttl) == ("from-env", 4, timedelta(seconds=3))

    s = load_settings(app_name="from-constructor")
    assert (s.app_name, s.event_limit) == ("from-constructor", 4)

    sources = {key: source for key, _, source in explain_settings(app_name="x")}
    assert sources["app_name"] == "constructor"
    assert sources["event_limit"] == "env"
    assert sources["session_ttl"] == ".env"
    assert sources["user_state_ttl"] == "sessionhub.toml"
    assert sources["app_state_ttl"] == "pyproject.toml"
    assert sources["backend"] == "default"


def test_config_file_named_by_variable(clean_environment, monkeypatch, tmp_path):
    write(clean_environment / "sessionhub.toml", 'app_name = "cwd-file"\n')
    other = write(tmp_path / "elsewhere.toml", 'app_name = "named-file"\n')
    monkeypatch.setenv("SESSIONHUB_CONFIG", str(other))
    assert load_settings().app_name == "named-file"
    assert dict((k, s) for k, _, s in explain_settings())["app_name"] == str(other)
    monkeypatch.setenv("SESSIONHUB_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match=r"SESSIONHUB_CONFIG names .*missing\.toml"):
        load_settings()


def test_backend_tables_from_every_source(clean_environment, monkeypatch):
    write(
        clean_environment / "sessionhub.toml",
        '[redis]\nurl = "redis://file/0"\nkey_prefix = "file:"\nsocket_timeout = 5\n',
    )
    write(clean_environment / ".env", "SESSIONHUB_REDIS__KEY_PREFIX=dotenv:\n")
    monkeypatch.setenv("SESSIONHUB_REDIS__URL", "redis://env/0")
    monkeypatch.setenv("SESSIONHUB_REDIS__RETRY__ATTEMPTS", "3")
    table = load_settings().backend_table("redis")
    assert table == {
        "url": "redis://env/0",
        "key_prefix": "dotenv:",
        "socket_timeout": 5,
        "retry": {"attempts": "3"},
    }


class StrictSettings(BackendSettings):
    key_prefix: str = ""
    socket_timeout: float = 1.0


def test_backend_table_errors_name_table_and_key(clean_environment):
    write(
        clean_environment / "sessionhub.toml", '[redis]\nsocket_timeout = "soon"\nkey_prefx = "x"\n'
    )
    with pytest.raises(ConfigError) as info:
        validate_backend_settings(load_settings(), "redis", StrictSettings)
    message = str(info.value)
    assert message.startswith("Invalid sessionhub settings in table [redis]:")
    assert "[redis].socket_timeout: Input should be a valid number" in message
    assert "(env: SESSIONHUB_REDIS__SOCKET_TIMEOUT)" in message
    assert "[redis].key_prefx: Extra inputs are not permitted" in message


def test_top_level_url_fills_the_backend_table():
    settings = load_settings(url="memory://shared-name")
    config = validate_backend_settings(settings, "memory", MemorySettings)
    assert config.url is not None and config.url.get_secret_value() == "memory://shared-name"


def test_invalid_values_are_config_errors(monkeypatch):
    monkeypatch.setenv("SESSIONHUB_EVENT_LIMIT", "0")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert (
        "event_limit: Input should be greater than or equal to 1 (env: SESSIONHUB_EVENT_LIMIT)"
        in str(info.value)
    )
    monkeypatch.delenv("SESSIONHUB_EVENT_LIMIT")
    with pytest.raises(ConfigError, match="positive duration"):
        load_settings(session_ttl=-5)
    with pytest.raises(ConfigError, match="unknown setting 'sesion_ttl'"):
        load_settings(sesion_ttl=5)


def test_ttl_formats():
    assert load_settings(session_ttl="P7D").session_ttl == timedelta(days=7)
    assert load_settings(session_ttl=90).session_ttl == timedelta(seconds=90)
    assert load_settings(session_ttl="90").session_ttl == timedelta(seconds=90)
    assert load_settings(session_ttl="30m").session_ttl == timedelta(minutes=30)
    assert load_settings(session_ttl="12h").session_ttl == timedelta(hours=12)
    assert load_settings(session_ttl="7d").session_ttl == timedelta(days=7)


def test_plugin_lists_from_env(monkeypatch):
    monkeypatch.setenv("SESSIONHUB_PLUGINS", "a, b")
    monkeypatch.setenv("SESSIONHUB_DISABLE_PLUGINS", "c")
    s = load_settings()
    assert (s.plugins, s.disable_plugins) == (["a", "b"], ["c"])
    monkeypatch.setenv("SESSIONHUB_PLUGINS", "")
    assert load_settings().plugins == []


def test_isolated_settings_ignore_the_environment(monkeypatch):
    monkeypatch.setenv("SESSIONHUB_EVENT_LIMIT", "3")
    assert SessionHubSettings.isolated().event_limit is None


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://:s3cret@host:6379/0", "redis://:***@host:6379/0"),
        (
            "mongodb+srv://user:p%40ss@cluster/db?w=majority",
            "mongodb+srv://user:***@cluster/db?w=majority",
        ),
        ("redis://user@host", "redis://user@host"),
        ("sqlite:///x.db", "sqlite:///x.db"),
        ("postgres://h/db?password=pw&x=1", "postgres://h/db?password=***&x=1"),
    ],
)
def test_mask_url(url, masked):
    assert mask_url(url) == masked


def test_secrets_are_masked_everywhere(monkeypatch, capsys):
    monkeypatch.setenv("SESSIONHUB_URL", "memory://:hunter2@host")
    monkeypatch.setenv("SESSIONHUB_MEMORY__API_TOKEN", "hunter2")
    settings = load_settings()
    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings)
    rows = explain_settings()
    assert "hunter2" not in repr(rows)
    assert main(["config"]) == 0
    assert main(["config", "--json"]) == 0
    out = capsys.readouterr().out
    assert "hunter2" not in out and "memory://:***@host" in out
    monkeypatch.delenv("SESSIONHUB_MEMORY__API_TOKEN")
    service = SessionHistoryService(backend="memory")
    assert "hunter2" not in repr(service.settings)
