"""The documented examples run, each under the AgentScope major it is for.

``tests/test_docs.py`` runs without AgentScope, so it only compiles these: the
example files ``docs/agentscope.md`` includes, and the README's blocks marked
``docs-test: no-run: needs AgentScope 1.x`` (or 2.x). They run here, in an
empty directory, under the installed major.
"""

from __future__ import annotations

import re
import runpy
from importlib.metadata import version
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = REPO / "adapters/agentscope/examples"
EXPECTED = {
    "agentscope1_session.py": "['My name is Alice.']\n",
    "agentscope2_state.py": "True\n['What is 2+3?', '5.']\n",
}
MAJOR = version("agentscope").partition(".")[0]
README_BLOCK = re.compile(
    r"<!-- docs-test: no-run: needs AgentScope (?P<major>\d)\.x[^>]*-->\n"
    r"```python\n(?P<code>.*?)```",
    re.DOTALL,
)


def readme_blocks() -> list[tuple[str, str]]:
    text = (REPO / "README.md").read_text()
    return [(m["major"], m["code"]) for m in README_BLOCK.finditer(text)]


def test_every_example_is_checked_here():
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(EXPECTED)
    assert [major for major, _ in readme_blocks()] == ["1"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs(name, tmp_path, monkeypatch, capsys):
    if not name.startswith(f"agentscope{MAJOR}_"):
        pytest.skip(f"{name} is for another AgentScope major (installed: {version('agentscope')})")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SESSIONHUB_URL", raising=False)
    runpy.run_path(str(EXAMPLES / name), run_name="__main__")
    assert capsys.readouterr().out == EXPECTED[name]
    runpy.run_path(str(EXAMPLES / name), run_name="__main__")  # a second run carries on
    assert capsys.readouterr().out != ""


@pytest.mark.parametrize("index", range(len(readme_blocks())))
def test_readme_block_runs(index, tmp_path, monkeypatch, capsys):
    major, code = readme_blocks()[index]
    if major != MAJOR:
        pytest.skip(f"README block {index} is for AgentScope {major}.x")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, f"README.md block {index}", "exec"), {"__name__": "__main__"})
    assert capsys.readouterr().out == "['Hi, I am Alice.']\n"
