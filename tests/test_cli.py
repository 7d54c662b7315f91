"""The sessionhub command, run as users run it: a real process with the installed entry point."""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import socket
import subprocess
import sys

import pytest

SESSIONHUB = shutil.which("sessionhub", path=os.path.dirname(sys.executable)) or "sessionhub"


def run(*args, env=None, cwd=None):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONHUB_")}
    full_env.update(env or {})
    return subprocess.run(
        [SESSIONHUB, *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd or os.getcwd(),
        timeout=60,
    )


def test_backends_lists_memory_with_version_and_scheme():
    result = run("backends")
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("memory "))
    assert "sessionhub-memory" in line and "0.1.0" in line and "memory://" in line


def test_backends_json():
    result = run("backends", "--json")
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    memory = rows["memory"]
    assert memory["distribution"] == "sessionhub-memory"
    assert memory["url_schemes"] == ["memory"]
    assert memory["capabilities"]["shared_store"] is True


def test_plugins_lists_hooks():
    result = run("plugins", "--json")
    plugins = {row["name"]: row for row in json.loads(result.stdout)["plugins"]}
    assert plugins["memory"]["hooks"] == ["sessionhub_register_backends"]
    assert "sessionhub_session_created" in plugins["sessionhub._builtin.audit_log"]["hooks"]


def test_demo_prints_the_conversation():
    result = run("demo", env={"SESSIONHUB_BACKEND": "memory"})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "backend: memory" in out
    assert '#3   assistant -> get_weather({"city": "Paris"})' in out
    assert '#4   tool      <- {"temp_c": 18, "sky": "clear"}' in out
    assert "It's 18 °C and clear in Paris." in out
    assert '"user:units": "metric"' in out
    assert "demo-user's sessions (newest first):" in out and "5 events" in out


def test_config_shows_sources_and_masks_secrets(tmp_path):
    (tmp_path / "sessionhub.toml").write_text('backend = "memory"\n')
    result = run("config", env={"SESSIONHUB_URL": "memory://:hunter2@x"}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "hunter2" not in result.stdout
    lines = {line.split()[0]: line.split()[-1] for line in result.stdout.splitlines()[1:]}
    assert lines["backend"] == "sessionhub.toml" and lines["url"] == "env"
    assert lines["app_name"] == "default"


def test_check_pings_the_backend():
    result = run("check", env={"SESSIONHUB_BACKEND": "memory"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok: backend 'memory' answered in")


def test_errors_are_one_readable_line():
    result = run("check", env={"SESSIONHUB_BACKEND": "nosuch"})
    assert result.returncode == 2
    assert result.stderr.startswith("error: No sessionhub backend named 'nosuch' is installed.")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", ["backends", "plugins", "config", "check", "demo"])
def test_every_command_has_help(command):
    result = run(command, "--help")
    assert result.returncode == 0 and "usage: sessionhub" in result.stdout


def one_error_line(result, status=2):
    """The CLI's promise for a user's mistake: one ``error:`` line, a documented status."""
    assert result.returncode == status, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def sqlite_env(path):
    return {"SESSIONHUB_URL": f"sqlite:///{path}"}


@pytest.fixture
def store(tmp_path):
    """A SQLite file with one session (user ada), made by the demo."""
    env = sqlite_env(tmp_path / "store.db")
    assert run("demo", "--user", "ada", env=env, cwd=tmp_path).returncode == 0
    return env


BAD_IMPORTS = {
    "missing file": (None, "nothing-here.jsonl"),
    "binary file": (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8, "not UTF-8"),
    "empty file": (b"", "holds no records"),
    "truncated line": (
        b'{"kind": "header", "format": "sessionhub-export", "version": 1}\n{"kind": "sess',
        ":2: not JSON",
    ),
    "unknown kind": (b'{"kind": "sessions"}\n', "unknown record kind 'sessions'"),
    "no kind": (b'{"session": {}}\n', "no record kind"),
    "kind error": (b'{"kind": "error"}\n', "unknown record kind 'error'"),
    "events not a list": (
        json.dumps(
            {
                "kind": "session",
                "session": {
                    "id": "s",
                    "user_id": "u",
                    "root_id": "s",
                    "created_at": "2025-01-01T00:00:00Z",
                    "updated_at": "2025-01-01T00:00:00Z",
                },
                "events": 5,
            }
        ).encode(),
        ":1: events: must be a list",
    ),
}


@pytest.mark.parametrize("case", list(BAD_IMPORTS))
def test_import_of_a_bad_file_is_one_error_line(tmp_path, store, case):
    content, expected = BAD_IMPORTS[case]
    path = tmp_path / "input.jsonl"
    if content is None:
        path = tmp_path / "nothing-here.jsonl"
    else:
        path.write_bytes(content)
    line = one_error_line(run("import", str(path), env=store, cwd=tmp_path))
    assert expected in line and path.name in line


def test_import_checks_every_path_before_writing_anything(tmp_path, store):
    good = tmp_path / "good.jsonl"
    assert run("export", "-o", str(good), env=store, cwd=tmp_path).returncode == 0
    target = sqlite_env(tmp_path / "target.db")
    line = one_error_line(run("import", str(good), "missing.jsonl", env=target, cwd=tmp_path))
    assert "missing.jsonl" in line
    assert not (tmp_path / "target.db").exists()
    (tmp_path / "empty-dir").mkdir()
    line = one_error_line(run("import", "empty-dir", env=target, cwd=tmp_path))
    assert "empty-dir" in line


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_import_of_an_unreadable_file_is_one_error_line(tmp_path, store):
    path = tmp_path / "secret.jsonl"
    path.write_text("{}\n")
    path.chmod(0)
    assert "secret.jsonl" in one_error_line(run("import", str(path), env=store, cwd=tmp_path))


def test_keep_going_reports_bad_files_and_imports_the_rest(tmp_path, store):
    good = tmp_path / "good.jsonl"
    assert run("export", "-o", str(good), env=store, cwd=tmp_path).returncode == 0
    (tmp_path / "binary.jsonl").write_bytes(b"\xff\xfe\x00\x01")
    target = sqlite_env(tmp_path / "target.db")
    result = run("import", "binary.jsonl", str(good), "--keep-going", env=target, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("1 sessions, 5 events")
    assert "skipped: Invalid binary.jsonl:1: not UTF-8 text" in result.stdout


@pytest.mark.parametrize("output", ["no/such/dir/out.jsonl", "."])
def test_export_to_an_unwritable_path_is_one_error_line(tmp_path, store, output):
    line = one_error_line(run("export", "-o", output, env=store, cwd=tmp_path))
    assert output in line


def test_sessions_show_of_a_missing_session_exits_1(tmp_path, store):
    result = run("sessions", "show", "nope", "--user", "ada", env=store, cwd=tmp_path)
    assert one_error_line(result, status=1) == "error: no session 'nope' for user 'ada'"


@pytest.mark.parametrize(
    "args",
    [
        ("sessions", "list", "--user", "ada"),
        ("sessions", "show", "s1", "--user", "ada"),
        ("sessions", "delete", "s1", "--user", "ada"),
        ("export",),
        ("export", "-o", "out.jsonl"),
        ("migrate", "--from", "sqlite:///typo.db", "--to", "sqlite:///target.db"),
    ],
)
def test_reading_commands_refuse_a_missing_sqlite_file(tmp_path, args):
    work = tmp_path / "work"
    work.mkdir()
    result = run(*args, env={"SESSIONHUB_URL": "sqlite:///typo.db"}, cwd=work)
    line = one_error_line(result)
    assert f"The SQLite database '{work / 'typo.db'}' does not exist" in line
    assert list(work.iterdir()) == []


def test_writing_commands_create_the_sqlite_file(tmp_path, store):
    good = tmp_path / "good.jsonl"
    assert run("export", "-o", str(good), env=store, cwd=tmp_path).returncode == 0
    result = run("import", str(good), env=sqlite_env("new.db"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "new.db").is_file()
    args = ("migrate", "--from", store["SESSIONHUB_URL"], "--to", "sqlite:///copy.db")
    assert run(*args, cwd=tmp_path).returncode == 0
    assert (tmp_path / "copy.db").is_file()


@pytest.mark.parametrize(
    "args",
    [
        ("sessions", "list", "--user", "ada", "--limit", "0"),
        ("sessions", "list", "--user", "ada", "--cursor", "garbage"),
        ("sessions", "show", "x", "--user", "ada", "--last", "-1"),
        ("sessions", "show", "x", "--user", "bad\tuser"),
        ("migrate", "--from", "nosuch://x", "--to", "memory://"),
    ],
)
def test_bad_arguments_to_data_commands_are_one_error_line(tmp_path, store, args):
    one_error_line(run(*args, env=store, cwd=tmp_path))


def test_version():
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"sessionhub {importlib.metadata.version('sessionhub')}"


COMMANDS = [
    ["backends"],
    ["plugins"],
    ["config"],
    ["check"],
    ["demo"],
    ["sessions", "list", "--user", "u"],
    ["export"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_a_malformed_config_file_is_one_line_and_exit_2(tmp_path, command):
    (tmp_path / "sessionhub.toml").write_text('backend = "memory"\nevent_limit = \n')
    result = run(*command, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == (
        "error: sessionhub.toml, line 2, column 15: Invalid value: the file is not valid TOML. "
        "Fix that line.\n"
    )


def test_config_shows_the_effective_backend_and_url(tmp_path):
    result = run("config", "--json", cwd=tmp_path)
    rows = {row["key"]: (row["value"], row["source"]) for row in json.loads(result.stdout)}
    assert rows["backend"] == ("sqlite", "default")
    assert rows["url"] == ("sqlite:///sessionhub.db", "default of sqlite")
    (tmp_path / "sessionhub.toml").write_text('backend = "redis"\n')
    result = run("config", env={"SESSIONHUB_URL": "memory://:hunter2@x"}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines()[1:]}
    assert lines["backend"] == ["memory", "env", "(the", "url's", "scheme)"]
    assert lines["url"] == ["memory://:***@x", "env"]


def test_config_reports_what_is_wrong_after_showing_the_settings(tmp_path):
    (tmp_path / "sessionhub.toml").write_text('backend = "redis"\nurl = "memory://"\n')
    result = run("config", cwd=tmp_path)
    assert result.returncode == 2
    assert "backend          redis" in result.stdout
    assert result.stderr.startswith(
        "error: The backend setting 'redis' (from sessionhub.toml) and the url setting with "
        "scheme 'memory' (from sessionhub.toml) disagree"
    )


def test_backend_names_in_any_case_and_disabled_plugins(tmp_path):
    assert run("check", env={"SESSIONHUB_BACKEND": "Memory"}).returncode == 0
    result = run(
        "check", env={"SESSIONHUB_BACKEND": "memory", "SESSIONHUB_DISABLE_PLUGINS": "memory"}
    )
    assert result.returncode == 2
    assert result.stderr.startswith(
        "error: The sessionhub backend 'memory' is installed but disabled"
    )
    result = run(
        "check", env={"SESSIONHUB_BACKEND": "memory", "SESSIONHUB_PLUGINS": "memory,memroy"}
    )
    assert result.returncode == 0
    assert (
        "SESSIONHUB_PLUGINS names 'memroy', but no installed sessionhub plugin has that name"
        in (result.stderr)
    )


def test_check_gives_up_on_a_server_that_never_answers():
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts connections, never replies
        port = silent.getsockname()[1]
        result = run(
            "check", "--timeout", "1", env={"SESSIONHUB_URL": f"redis://127.0.0.1:{port}/0"}
        )
    assert result.returncode == 1
    assert result.stderr.startswith("failed: backend 'redis': no answer within 1 s.")
    assert len(result.stderr.splitlines()) == 1


def test_check_of_an_unreachable_mongodb_is_one_line():
    env = {
        "SESSIONHUB_URL": "mongodb://127.0.0.1:1/",
        "SESSIONHUB_MONGODB__SERVER_SELECTION_TIMEOUT_MS": "300",
    }
    result = run("check", env=env)
    assert result.returncode == 1
    assert result.stderr.startswith(
        "failed: backend 'mongodb': MongoDB at mongodb://127.0.0.1:1 (database 'sessionhub') "
        "did not answer during open: 127.0.0.1:1: "
    )
    assert len(result.stderr.splitlines()) == 1 and "Topology" not in result.stderr
