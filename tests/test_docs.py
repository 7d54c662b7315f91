"""The docs keep up with the code: every hook, setting and CLI command is documented, exactly."""

from __future__ import annotations

import importlib.util
import inspect
import os
import re
import shlex
import subprocess
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import pluggy
import pytest

from sessionhub import hookspecs
from sessionhub.cli import build_parser
from sessionhub.plugins import get_plugin_manager
from sessionhub.registry import BackendRegistry
from sessionhub.settings import SessionHubSettings, load_settings, validate_backend_settings

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

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


@pytest.mark.parametrize("backend", ["memory", "sqlite", "redis", "mongodb", "postgres"])
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
    """Each ``--8<-- "path[:section]"`` line is unmangled and names what the build can include."""
    roots = [DOCS / "examples", DOCS.parent]
    includes = 0
    for page in sorted(DOCS.rglob("*.md")):
        if "examples" in page.relative_to(DOCS).parts:
            continue
        name = page.relative_to(DOCS).as_posix()
        for number, line in enumerate(page.read_text().splitlines(), start=1):
            if not re.match(r"\s*-+\s*8\s*<", line):
                continue
            match = re.fullmatch(r'--8<-- "([^":]+)(?::([\w-]+))?"', line)
            assert match, f"{name}:{number}: a mangled snippet include: {line!r}"
            found = [root / match[1] for root in roots if (root / match[1]).is_file()]
            assert found, f"{name}:{number}: no file {match[1]}"
            if match[2]:
                text = found[0].read_text()
                for marker in (f"--8<-- [start:{match[2]}]", f"--8<-- [end:{match[2]}]"):
                    assert marker in text, f"{name}:{number}: {match[1]} has no {marker}"
            includes += 1
    assert includes >= 7


# --- snippets: every code block a reader may copy runs, parses or validates ----------
#
# The blocks of README.md and docs/**/*.md (with the sections the docs include from
# plugin READMEs through ``--8<-- "file:section"``) are checked by language:
#
# - ``python``: compiled as a file (so a top-level ``await`` is an error), then run in
#   a fresh module, in an empty working directory with no SESSIONHUB_* variable, on
#   the backends installed here (memory, sqlite). Hook implementations it defines
#   must match the hookspecs. A block included from an example package
#   (``--8<-- "sessionhub-redact/..."``) is compiled only: the package's tests run it.
# - ``bash``: parsed with ``bash -n``; every ``pip install`` names a distribution or a
#   directory of this repository; then run with ``bash -e`` in an empty working
#   directory, with this environment's ``sessionhub`` first on PATH. A block that
#   only exports SESSIONHUB_* variables is followed by ``sessionhub config``, so the
#   settings it sets must be valid.
# - ``toml``: parsed; a package's ``pyproject.toml`` (with a ``[project]`` table) has
#   its ``[tool.sessionhub]`` table validated, any other block is a whole
#   ``sessionhub.toml``: the settings and the selected backend's table are validated.
#
# A block that cannot run here (it needs a server, installs packages, or is one
# method of a class shown above) says so on the line before its fence:
#
#     <!-- docs-test: no-run: needs a MongoDB server -->
#
# It is then only compiled (python) or parsed (bash, toml). The reason is required.
#
# A python block that changes process-wide state (it sets OpenTelemetry's global
# providers, say) runs in a process of its own, and must exit 0:
#
#     <!-- docs-test: own-process: sets the process-wide OpenTelemetry providers -->

REPO = DOCS.parent
NO_RUN = re.compile(r"<!--\s*docs-test:\s*no-run:\s*(.*?)\s*-->")
OWN_PROCESS = re.compile(r"<!--\s*docs-test:\s*own-process:\s*(.*?)\s*-->")
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<lang>[\w+-]*)")
SECTION_INCLUDE = re.compile(r'^--8<-- "(?P<path>[^":]+):(?P<section>[\w-]+)"$')
FILE_INCLUDE = re.compile(r'^--8<-- "(?P<path>[^"]+)"$')
INCLUDE_ROOTS = (DOCS / "examples", REPO)


@dataclass(frozen=True)
class Snippet:
    """One fenced code block as a reader sees it on a page."""

    where: str
    lang: str
    code: str
    no_run: str | None
    included: bool  # the block's body is a file of an example package
    own_process: str | None = None

    def __str__(self) -> str:
        return self.where


def include_path(name: str) -> Path:
    return next(root / name for root in INCLUDE_ROOTS if (root / name).is_file())


def section_lines(path: Path, section: str) -> list[tuple[str, str]]:
    """The lines of ``--8<-- [start:section]`` … ``[end:section]`` in ``path``, with where."""
    lines = path.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if f"--8<-- [start:{section}]" in line)
    end = next(i for i, line in enumerate(lines) if f"--8<-- [end:{section}]" in line)
    rel = path.relative_to(REPO)
    return [(f"{rel}:{i + 1}", lines[i]) for i in range(start + 1, end)]


def page_lines(page: Path) -> list[tuple[str, str]]:
    """A page's lines with where each comes from, included sections expanded."""
    rel = page.relative_to(REPO)
    out: list[tuple[str, str]] = []
    for number, line in enumerate(page.read_text().splitlines(), start=1):
        match = SECTION_INCLUDE.match(line)
        if match:
            out.extend(section_lines(include_path(match["path"]), match["section"]))
        else:
            out.append((f"{rel}:{number}", line))
    return out


def page_snippets(page: Path) -> list[Snippet]:
    lines = page_lines(page)
    snippets: list[Snippet] = []
    index = 0
    while index < len(lines):
        where, line = lines[index]
        opening = FENCE.match(line)
        if not opening:
            index += 1
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        previous = next((text for _, text in reversed(lines[:index]) if text.strip()), "")
        marker = NO_RUN.search(previous)
        own_process = OWN_PROCESS.search(previous)
        body: list[str] = []
        index += 1
        while not lines[index][1].strip().startswith(fence):
            body.append(lines[index][1][indent:])
            index += 1
        index += 1
        code = "\n".join(body) + "\n"
        included = FILE_INCLUDE.match(code.strip())
        if included:
            code = include_path(included["path"]).read_text()
        snippets.append(
            Snippet(
                where,
                opening["lang"],
                code,
                marker and marker[1],
                bool(included),
                own_process and own_process[1],
            )
        )
    return snippets


def snippet_pages() -> list[Path]:
    pages = [p for p in sorted(DOCS.rglob("*.md")) if "examples" not in p.parts]
    return [REPO / "README.md", *pages]


SNIPPETS = [snippet for page in snippet_pages() for snippet in page_snippets(page)]


def snippets(lang: str) -> list[Snippet]:
    return [snippet for snippet in SNIPPETS if snippet.lang == lang]


def test_snippets_are_found_and_every_block_names_its_language():
    """The parser sees the pages' blocks; a block without a language would go unchecked."""
    assert len(snippets("python")) >= 15 and len(snippets("bash")) >= 5
    assert len(snippets("toml")) >= 5
    pages = [p.relative_to(REPO).as_posix() for p in snippet_pages()]
    unnamed = [s.where for s in SNIPPETS if not s.lang and s.where.rsplit(":", 1)[0] in pages]
    assert not unnamed, f"give these code blocks a language (python, bash, toml, text): {unnamed}"


def test_every_no_run_marker_gives_a_reason_and_precedes_a_block():
    for page in snippet_pages():
        lines = page_lines(page)
        for index, (where, line) in enumerate(lines):
            if not (line.lstrip().startswith("<!--") and "docs-test:" in line):
                continue
            marker = NO_RUN.search(line) or OWN_PROCESS.search(line)
            assert marker and marker[1], (
                f"{where}: write <!-- docs-test: no-run: REASON --> (or own-process: REASON)"
            )
            following = next(text for _, text in lines[index + 1 :] if text.strip())
            assert FENCE.match(following), f"{where}: the marker must come right before a block"


@pytest.mark.parametrize("snippet", snippets("python"), ids=str)
def test_python_snippet_runs(snippet: Snippet):
    try:
        code = compile(snippet.code, snippet.where, "exec")
    except SyntaxError as exc:
        pytest.fail(f"{snippet.where}: does not compile as a Python file: {exc}")
    if snippet.no_run or snippet.included:
        return
    if snippet.own_process:
        run_in_own_process(snippet, [sys.executable, "-c", snippet.code], None)
        return
    module = types.ModuleType("docs_snippet")
    module.__file__ = str(Path.cwd() / "snippet.py")
    sys.modules[module.__name__] = module
    try:
        exec(code, module.__dict__)
    finally:
        del sys.modules[module.__name__]
    if any(name.startswith("sessionhub_") for name in vars(module)):
        manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        manager.add_hookspecs(hookspecs)
        manager.register(module)  # a hook implementation's arguments must match its spec
        manager.check_pending()  # and its name must be a hook


def distributions() -> dict[str, Path]:
    found = {}
    for pyproject in [*REPO.glob("*/pyproject.toml"), *REPO.glob("*/*/pyproject.toml")]:
        project = tomllib.loads(pyproject.read_text()).get("project")
        if project:
            found[project["name"]] = pyproject.parent
    for pyproject in (DOCS / "examples").glob("*/pyproject.toml"):
        found[tomllib.loads(pyproject.read_text())["project"]["name"]] = pyproject.parent
    return found


def pip_targets(code: str) -> list[str]:
    """What the ``pip install`` commands of a bash block install."""
    targets = []
    for line in code.replace("&&", "\n").splitlines():
        words = shlex.split(line, comments=True)
        if "pip" in words and words[words.index("pip") + 1 : words.index("pip") + 2] == ["install"]:
            targets += [w for w in words[words.index("pip") + 2 :] if not w.startswith("-")]
    return targets


def run_in_own_process(snippet: Snippet, command: list[str], stdin: str | None) -> None:
    """Run a snippet in a process of its own, in the test's empty directory; it must exit 0."""
    result = subprocess.run(
        command,
        input=stdin,
        capture_output=True,
        text=True,
        env=snippet_environment(),
        cwd=Path.cwd(),
        timeout=120,
    )
    assert result.returncode == 0, f"{snippet.where}: exit {result.returncode}\n{result.stderr}"


def snippet_environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONHUB_")}
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    return env


@pytest.mark.parametrize("snippet", snippets("bash"), ids=str)
def test_bash_snippet_runs(snippet: Snippet):
    parsed = subprocess.run(["bash", "-n"], input=snippet.code, capture_output=True, text=True)
    assert parsed.returncode == 0, f"{snippet.where}: {parsed.stderr}"
    known = distributions()
    for target in pip_targets(snippet.code):
        name = re.sub(r"\[.*\]$", "", target)
        if name.startswith("."):
            assert (REPO / name / "pyproject.toml").is_file(), f"{snippet.where}: no package {name}"
        elif name.startswith("sessionhub"):
            assert name in known, f"{snippet.where}: pip install {name}: no such distribution here"
    if snippet.no_run:
        return
    assert not re.search(r"\b(pip|nox|uv)\b", snippet.code), (
        f"{snippet.where}: a block that installs packages or runs the test suite cannot run "
        "here; mark it <!-- docs-test: no-run: REASON -->"
    )
    script = snippet.code
    commands = [line for line in script.splitlines() if line.strip() and not line.startswith("#")]
    if all(re.match(r"export SESSIONHUB_\w+=", line) for line in commands):
        script += "sessionhub config\n"
    run_in_own_process(snippet, ["bash", "-e"], script)


@pytest.mark.parametrize("snippet", snippets("toml"), ids=str)
def test_toml_snippet_is_valid(snippet: Snippet):
    try:
        document = tomllib.loads(snippet.code)
    except tomllib.TOMLDecodeError as exc:
        pytest.fail(f"{snippet.where}: {exc}")
    if "project" in document or "build-system" in document:
        if "sessionhub" not in document.get("tool", {}):
            return
        Path("pyproject.toml").write_text(snippet.code)
    else:
        Path("sessionhub.toml").write_text(snippet.code)
    settings = load_settings()
    registry = BackendRegistry.from_plugin_manager(get_plugin_manager())
    url = settings.url.get_secret_value() if settings.url else None
    info = registry.select(settings.backend, url)
    validate_backend_settings(settings, info.name, registry.settings_model(info))


def test_every_field_of_the_backend_dataclasses_has_a_docstring():
    """The API page renders an attribute only with its docstring: a plugin author needs them."""
    import ast

    import sessionhub.backend

    tree = ast.parse(Path(sessionhub.backend.__file__).read_text())
    missing = []
    for cls in (node for node in tree.body if isinstance(node, ast.ClassDef)):
        body = cls.body
        for index, node in enumerate(body):
            if not isinstance(node, ast.AnnAssign) or not isinstance(node.target, ast.Name):
                continue
            following = body[index + 1] if index + 1 < len(body) else None
            documented = isinstance(following, ast.Expr) and isinstance(
                getattr(following, "value", None), ast.Constant
            )
            if not documented:
                missing.append(f"{cls.name}.{node.target.id}")
    assert not missing, f"give these fields a docstring in sessionhub/backend.py: {missing}"


def test_every_suite_test_the_docs_name_exists():
    from sessionhub.testing import BackendConformance

    named = set()
    for page in DOCS.glob("*.md"):
        named |= set(re.findall(r"`(test_\w+)`", page.read_text()))
    assert named, "the docs name no suite test"
    assert not sorted(n for n in named if not hasattr(BackendConformance, n))
