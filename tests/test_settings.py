"""Settings: every precedence step, backend tables, validation errors, masked secrets."""

from __future__ import annotations

import gc
import logging
import traceback
import warnings
from datetime import timedelta

import pytest

from sessionhub import (
    BackendRegistry,
    ConfigError,
    SessionHistoryService,
    SessionHubSettings,
    get_plugin_manager,
    load_settings,
)
from sessionhub.backend import BackendSettings
from sessionhub.cli import main
from sessionhub.settings import explain_settings, validate_backend_settings
from sessionhub_memory.backend import MemorySettings
from sessionhub_mongodb.backend import MongoSettings
from sessionhub_postgres.backend import PostgresSettings
from sessionhub_redis.backend import RedisSettings
from sessionhub_sqlite.backend import SQLiteSettings


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
    assert str(info.value) == (
        "Invalid sessionhub settings:\n"
        "  [redis].socket_timeout (from sessionhub.toml): Input should be a valid number, "
        "unable to parse string as a number\n"
        "  [redis].key_prefx (from sessionhub.toml): not an option of the redis backend; "
        "did you mean key_prefix?"
    )


def test_top_level_url_fills_the_backend_table():
    settings = load_settings(url="memory://shared-name")
    config = validate_backend_settings(settings, "memory", MemorySettings)
    assert config.url is not None and config.url.get_secret_value() == "memory://shared-name"


def test_invalid_values_are_config_errors(monkeypatch):
    monkeypatch.setenv("SESSIONHUB_EVENT_LIMIT", "0")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(info.value) == (
        "Invalid sessionhub setting event_limit (from environment variable "
        "SESSIONHUB_EVENT_LIMIT): Input should be greater than or equal to 1"
    )
    monkeypatch.delenv("SESSIONHUB_EVENT_LIMIT")
    with pytest.raises(ConfigError, match="positive duration"):
        load_settings(session_ttl=-5)
    with pytest.raises(ConfigError, match="Unknown setting 'sesion_ttl'"):
        load_settings(sesion_ttl=5)


def test_plugin_lists_from_env(monkeypatch):
    monkeypatch.setenv("SESSIONHUB_PLUGINS", "a, b")
    monkeypatch.setenv("SESSIONHUB_DISABLE_PLUGINS", "c")
    s = load_settings()
    assert (s.plugins, s.disable_plugins) == (["a", "b"], ["c"])
    monkeypatch.setenv("SESSIONHUB_PLUGINS", "")
    assert load_settings().plugins == []


PASSWORD = "hunter2-Zq9"


def test_a_password_never_appears_in_any_output(clean_environment, monkeypatch, capsys, caplog):
    """Every path a configured secret could take to the user, grepped for the password."""
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    write(
        clean_environment / "sessionhub.toml",
        f'''backend = "memory"
url = "memory://:{PASSWORD}@host"
[redis]
url = "redis://:{PASSWORD}@127.0.0.1:1/0"
password = "{PASSWORD}"
sentinel_password = "{PASSWORD}"
retry_attempts = 0
[mongodb]
url = "mongodb://u:{PASSWORD}@127.0.0.1:1/?tlsCertificateKeyFilePassword={PASSWORD}"
server_selection_timeout_ms = 200
[postgres]
url = "postgresql://u:{PASSWORD}@127.0.0.1:1/db?sslpassword={PASSWORD}"
connect_timeout = 2
[sqlite]
api_token = "{PASSWORD}"
[audit]
sinks = ["https://u:{PASSWORD}@logs.example/", "stdout"]
''',
    )
    settings = load_settings()
    seen += [repr(settings), str(settings), repr(settings.model_dump()), settings.model_dump_json()]
    seen += [repr(explain_settings())]
    for name, model in (
        ("redis", RedisSettings),
        ("mongodb", MongoSettings),
        ("postgres", PostgresSettings),
    ):
        config = validate_backend_settings(settings, name, model)
        seen += [repr(config), str(config), repr(config.model_dump()), config.model_dump_json()]
    sqlite = validate_backend_settings(
        SessionHubSettings.isolated(url=f"sqlite:///{PASSWORD}.db"), "sqlite", SQLiteSettings
    )
    assert PASSWORD in sqlite.effective_url()  # a path is no secret; only the check below is
    seen += [repr(sqlite), sqlite.model_dump_json()]

    errors: list[BaseException] = []
    bad = [
        {"url": f"redis+nosuch://:{PASSWORD}@h"},
        {"url": f":{PASSWORD}@host:6379/0"},
        {"backend": "redis", "url": f"mongodb://u:{PASSWORD}@h"},
        {"backend": "redis", "redis": {"url": f"http://:{PASSWORD}@h/0"}},
        {"backend": "redis", "redis": {"url": f"redis://:{PASSWORD}@h/0", "socket_timeout": "x"}},
        {"backend": "mongodb", "url": f"redis://:{PASSWORD}@h/0"},
        {"backend": "mongodb", "mongodb": {"url": f"mongodb://u:{PASSWORD}@h", "database": 5}},
        {"backend": "sqlite", "url": f"sqlite://u:{PASSWORD}@host/x.db"},
        {"backend": "postgres", "url": f"mysql://u:{PASSWORD}@h/db"},
        {"backend": "postgres", "postgres": {"url": f"postgres://u:{PASSWORD}@h", "schema": "a-b"}},
        {"url": 12345, "event_limit": PASSWORD},
    ]
    for values in bad:
        with pytest.raises(ConfigError) as info:  # noqa: PT012
            SessionHistoryService(settings=SessionHubSettings.isolated(**values))
            pytest.fail(f"no ConfigError for {values}")
        errors.append(info.value)
    for exc in errors:
        seen += [
            "".join(traceback.format_exception(exc)),
            repr(exc.__cause__),
            repr(exc.__context__),
        ]

    for backend in ("memory", "redis", "postgres", "mongodb"):
        monkeypatch.setenv("SESSIONHUB_BACKEND", backend)
        assert main(["config"]) == 0
        assert main(["config", "--json"]) == 0
        assert main(["check", "--timeout", "30"]) == (0 if backend == "memory" else 1)
    captured = capsys.readouterr()
    assert (
        "redis://:***@127.0.0.1:1/0" in captured.out and "failed: backend 'redis'" in captured.err
    )
    seen += [captured.out, captured.err]
    seen += [record.getMessage() for record in caplog.records]
    seen += [repr(record.args) for record in caplog.records]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()  # PyMongo's monitor drops a socket it was opening to the closed port
    leaks = [text for text in seen if PASSWORD in text]
    assert not leaks, leaks[0]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "sessionhub.toml",
            b'app_name = "x"\nbackend = \n',
            "sessionhub.toml, line 2, column 11: Invalid value: the file is not valid TOML. "
            "Fix that line.",
        ),
        (
            "pyproject.toml",
            b"[tool.sessionhub\n",
            "pyproject.toml, line 1, column 17: Expected ']' at the end of a table declaration: "
            "the file is not valid TOML. Fix that line.",
        ),
        (
            "pyproject.toml",
            b'[tool]\nsessionhub = "redis"\n',
            "pyproject.toml: tool.sessionhub is a str, but it must be a table of settings: a "
            "[tool.sessionhub] header, then one setting per line.",
        ),
        (
            "sessionhub.toml",
            b'app_name = "caf\xe9"\n',
            "sessionhub.toml: byte 15 is not UTF-8: a config file must be UTF-8 TOML text.",
        ),
        (
            "sessionhub.toml",
            b'event_limit = "many"\n',
            "Invalid sessionhub setting event_limit (from sessionhub.toml): Input should be a "
            "valid integer, unable to parse string as an integer",
        ),
        (
            "pyproject.toml",
            b"[tool.sessionhub]\nevent_limt = 5\n",
            "Unknown setting 'event_limt' (from pyproject.toml): did you mean event_limit?",
        ),
        (
            ".env",
            b"SESSIONHUB_SESSION_TTL=7 dayz\n",
            "Invalid sessionhub setting session_ttl (from SESSIONHUB_SESSION_TTL in .env): "
            "'7 dayz' is not a duration. Write seconds (3600), a number and a unit ('90s', "
            "'30m', '12h', '7d', '2w') or ISO 8601 ('P7D')",
        ),
    ],
)
def test_a_bad_config_file_is_one_line_naming_the_file(clean_environment, name, content, message):
    (clean_environment / name).write_bytes(content)
    with pytest.raises(ConfigError) as info:
        SessionHistoryService()
    assert str(info.value) == message


def test_a_config_file_named_by_the_variable_must_be_readable_utf8(
    clean_environment, monkeypatch, tmp_path
):
    monkeypatch.setenv("SESSIONHUB_CONFIG", str(tmp_path))
    with pytest.raises(ConfigError, match=r"SESSIONHUB_CONFIG names .*, which is not a file"):
        load_settings()
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00backend")
    monkeypatch.setenv("SESSIONHUB_CONFIG", str(binary))
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert (
        str(info.value) == f"{binary}: byte 0 is not UTF-8: a config file must be UTF-8 TOML text."
    )


def test_a_higher_source_wins_across_backend_and_url(clean_environment, monkeypatch):
    write(clean_environment / "sessionhub.toml", 'backend = "redis"\n')
    monkeypatch.setenv("SESSIONHUB_URL", "sqlite:///from-env.db")
    service = SessionHistoryService()
    assert service.backend.name == "sqlite"
    write(clean_environment / "sessionhub.toml", 'url = "sqlite:///from-file.db"\n')
    monkeypatch.delenv("SESSIONHUB_URL")
    monkeypatch.setenv("SESSIONHUB_BACKEND", "memory")
    assert SessionHistoryService().backend.name == "memory"  # the file's url is overruled
    monkeypatch.setenv("SESSIONHUB_BACKEND", "sqlite")  # agreeing: the file's url is used
    registry = BackendRegistry.from_plugin_manager(get_plugin_manager())
    _, config = registry.configure(load_settings())
    assert config.effective_url() == "sqlite:///from-file.db"
    monkeypatch.delenv("SESSIONHUB_BACKEND")
    write(clean_environment / "sessionhub.toml", 'backend = "redis"\nurl = "sqlite:///x.db"\n')
    with pytest.raises(ConfigError) as info:
        SessionHistoryService()
    assert str(info.value).startswith(
        "The backend setting 'redis' (from sessionhub.toml) and the url setting with scheme "
        "'sqlite' (from sessionhub.toml) disagree"
    )


def test_unknown_settings_get_a_suggestion_naming_where_they_are(clean_environment):
    with pytest.raises(ConfigError) as info:
        load_settings(sesion_ttl=5)
    assert str(info.value) == (
        "Unknown setting 'sesion_ttl' (from a constructor argument): did you mean session_ttl?"
    )
    with pytest.raises(ConfigError, match=r"Unknown setting 'sesion_ttl' .*: did you mean"):
        SessionHubSettings.isolated(sesion_ttl=5)
    with pytest.raises(ValueError, match=r"Unknown setting 'sesion_ttl' .*: did you mean"):
        SessionHubSettings(sesion_ttl=5)


def test_arguments_given_with_resolved_settings_outrank_them(clean_environment):
    write(clean_environment / "sessionhub.toml", 'backend = "redis"\nevent_limit = 7\n')
    settings = load_settings()
    service = SessionHistoryService(settings=settings, url="memory://")
    assert service.backend.name == "memory" and service.settings.event_limit == 7
    assert service.settings.source_of("event_limit") == "sessionhub.toml"
    isolated = SessionHubSettings.isolated(backend="redis")
    assert SessionHistoryService(settings=isolated, url="memory://").backend.name == "memory"


def test_a_misspelt_backend_table_is_reported(clean_environment, caplog):
    write(
        clean_environment / "sessionhub.toml", 'backend = "memory"\n[memroy]\nurl = "memory://x"\n'
    )
    SessionHistoryService()
    assert [record.getMessage() for record in caplog.records] == [
        "The settings have a table [memroy] (from sessionhub.toml), but no backend has that "
        "name: did you mean [memory]? Its options are ignored."
    ]
