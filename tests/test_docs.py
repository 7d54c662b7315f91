"""The docs keep up with the code: every hook, setting and CLI command is documented, exactly."""

from __future__ import annotations

import importlib.util
import inspect
import re
from pathlib import Path

import pytest

from sessionhub import hookspecs
from sessionhub.cli import build_parser
from sessionhub.settings import SessionHubSettings

DOCS = Path(__file__).resolve().parent.parent / "docs"


def load_docs_hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "_hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def hookspec_names() -> list[str]:
    return sorted(name for name in dir(hookspecs) if name.startswith("sessionhub_"))


def headings(page: str, level: str) -> list[str]:
    return re.findall(rf"^{level} (.+)$", (DOCS / page).read_text(), flags=re.MULTILINE)


@pytest.mark.parametrize("name", hookspec_names())
def test_every_hook_has_a_heading_with_its_exact_signature(name):
    params = ", ".join(inspect.signature(getattr(hookspecs, name)).parameters)
    documented = {h.partition("(")[0]: h for h in headings("plugin-hooks.md", "###")}
    assert name in documented, f"docs/plugin-hooks.md has no '### {name}(...)' section"
    assert documented[name] == f"{name}({params})", (
        f"docs/plugin-hooks.md documents {documented[name]!r}, the code says {name}({params})"
    )


def test_no_documented_hook_is_missing_from_the_code():
    documented = {h.partition("(")[0] for h in headings("plugin-hooks.md", "###")}
    assert documented == set(hookspec_names())


def test_every_setting_is_documented():
    page = (DOCS / "configuration.md").read_text()
    assert "<!-- sessionhub:settings -->" in page
    rendered = load_docs_hooks().render(page)
    for name in SessionHubSettings.model_fields:
        assert f"| `{name}` | `SESSIONHUB_{name.upper()}` |" in rendered, name


@pytest.mark.parametrize("backend", ["memory", "sqlite", "redis", "mongodb"])
def test_every_first_party_backend_has_a_page_with_its_settings(backend):
    page = (DOCS / "backends" / f"{backend}.md").read_text()
    assert f"<!-- sessionhub:backend-settings {backend} -->" in page
    rendered = load_docs_hooks().render(page)
    assert f"`SESSIONHUB_{backend.upper()}__URL`" in rendered


def cli_commands() -> set[str]:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return set(subparsers.choices)


def test_every_cli_command_is_documented():
    documented = {h.removeprefix("sessionhub ") for h in headings("cli.md", "##")}
    assert documented == cli_commands()


def test_snippet_includes_are_intact_and_name_existing_files():
    """Each ``--8<-- "path"`` line is unmangled and names a file the docs build can include."""
    roots = [DOCS / "examples", DOCS.parent]
    includes = 0
    for page in DOCS.glob("*.md"):
        for number, line in enumerate(page.read_text().splitlines(), start=1):
            if not re.match(r"\s*-+\s*8\s*<", line):
                continue
            match = re.fullmatch(r'--8<-- "([^"]+)"', line)
            assert match, f"{page.name}:{number}: a mangled snippet include: {line!r}"
            assert any((root / match[1]).is_file() for root in roots), f"{page.name}:{number}"
            includes += 1
    assert includes >= 7
