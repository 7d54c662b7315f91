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
