"""The sessionhub command, run as users run it: a real process with the installed entry point."""

from __future__ import annotations

import json
import os
import shutil
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
