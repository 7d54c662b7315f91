"""Every development task: `nox -l` lists them; `nox` runs lint, typecheck and tests."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import nox

nox.needs_version = ">=2024.10.9"
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.error_on_missing_interpreters = False
nox.options.sessions = [
    "lint",
    "typecheck",
    "tests",
    "adapter",
    "example",
    "quickstart",
    "docs",
    "bench_smoke",
]

ROOT = Path(__file__).parent
PACKAGES = [
    "core",
    *sorted(str(p.parent.relative_to(ROOT)) for p in ROOT.glob("plugins/*/pyproject.toml")),
    *sorted(str(p.parent.relative_to(ROOT)) for p in ROOT.glob("adapters/*/pyproject.toml")),
]
# AgentScope 1.x and 2.x cannot be installed together: its adapter is tested once per
# major, each in a venv synced with that major's dependency group (pyproject.toml).
AGENTSCOPE_MAJORS = ("agentscope1", "agentscope2")
ADAPTERS = sorted(
    major
    for p in ROOT.glob("adapters/*/pyproject.toml")
    for major in (AGENTSCOPE_MAJORS if p.parent.name == "agentscope" else (p.parent.name,))
)
EXAMPLES = sorted(p.parent.name for p in ROOT.glob("docs/examples/*/pyproject.toml"))
# uv must never try to download an interpreter: sessions run on the one nox runs on.
os.environ.setdefault("UV_PYTHON_DOWNLOADS", "never")


def _sync(session: nox.Session, *groups: str) -> None:
    """Install the whole workspace (every package, editable) from uv.lock into the session venv."""
    args = ["uv", "sync", "--locked", "--all-packages", f"--python={session.virtualenv.location}"]
    for group in groups:
        args += ["--group", group]
    session.run_install(
        *args, env={"UV_PROJECT_ENVIRONMENT": session.virtualenv.location}, external=True
    )


@nox.session
def tests(session: nox.Session) -> None:
    """Run every test but the adapters': core, cross-package, each backend's conformance and own."""
    _sync(session, "dev")
    session.run(
        "python", "-c", "import sys, sqlite3; print(sys.version, 'sqlite', sqlite3.sqlite_version)"
    )
    session.run("pytest", *session.posargs)


@nox.session
@nox.parametrize("adapter", ADAPTERS)
def adapter(session: nox.Session, adapter: str) -> None:
    """Run one framework adapter's tests (its framework installed from uv.lock) on every backend."""
    if adapter in ("adk", "agentscope2") and sys.version_info < (3, 11):
        session.skip(f"{adapter}'s framework (google-adk 2.x, agentscope 2.x) needs Python 3.11+")
    if adapter in AGENTSCOPE_MAJORS:
        _sync(session, "dev", adapter)
        _typecheck_agentscope(session, adapter)
        session.run("pytest", "adapters/agentscope", *session.posargs)
        return
    _sync(session, "dev")
    session.run("pytest", f"adapters/{adapter}", *session.posargs)


def _typecheck_agentscope(session: nox.Session, major: str) -> None:
    """Type-check the modules of the installed AgentScope major (the others need the other)."""
    package = ROOT / "adapters/agentscope/src/sessionhub_agentscope"
    modules = (
        ["_session", "_memory_log", "_split"]
        if major == "agentscope1"
        else ["_agent_state", "_messages"]
    )
    files = [str(package / f"{name}.py") for name in ("__init__", "_store", *modules)]
    version = [] if major == "agentscope1" else ["--python-version", "3.11"]  # enum.StrEnum
    session.run("mypy", "--strict", "--follow-imports=silent", *version, *files)


@nox.session
def lint(session: nox.Session) -> None:
    """Check style with ruff (lint and format) and that uv.lock is current."""
    _sync(session, "dev")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("uv", "lock", "--check", external=True)


@nox.session(venv_backend="venv")
@nox.parametrize("example", EXAMPLES)
def example(session: nox.Session, example: str) -> None:
    """Install an example plugin with plain pip into a fresh venv, list it, run its tests."""
    path = f"docs/examples/{example}"
    session.install("./core", "./plugins/memory", f"./{path}[test]", "mypy")
    name = example.removeprefix("sessionhub-")
    listing = session.run("sessionhub", "plugins", "--json", silent=True)
    if f'"name": "{name}"' not in str(listing):
        session.error(f"sessionhub plugins does not list {name!r} after pip install ./{path}")
    session.run("sessionhub", "backends")
    session.run("pytest", path, "-p", "no:cacheprovider")
    session.run("mypy", "--strict", f"{path}/src")


@nox.session(venv_backend="venv")
def quickstart(session: nox.Session) -> None:
    """Run the README's quick start as a new user: plain pip into a fresh venv, demo elsewhere."""
    session.install("./core", "./plugins/sqlite")
    elsewhere = Path(tempfile.mkdtemp(dir=session.create_tmp())).resolve()
    session.chdir(elsewhere)
    session.run("sessionhub", "demo")
    if not (elsewhere / "sessionhub.db").is_file():
        session.error("sessionhub demo left no sessionhub.db in the working directory")


# Peers, installed by `nox -s bench -- --peers`. The pins keep AgentScope 1.0
# importable: it imports mcp.client.streamable_http.streamablehttp_client,
# which mcp 2 removed, and tqdm, which it does not declare.
# sqlalchemy[asyncio] brings greenlet for ADK's DatabaseSessionService, which the
# benchmark also runs on PostgreSQL through asyncpg (in the workspace already).
BENCH_PEERS = (
    "google-adk",
    "sqlalchemy[asyncio]",
    "openai-agents[redis]",
    "agentscope>=1.0,<1.1",
    "mcp<2",
    "tqdm",
)


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Benchmark every backend against its raw-driver floor (-- --quick, --smoke, --peers)."""
    _sync(session, "dev", "bench")
    if "--peers" in session.posargs:
        session.install(*BENCH_PEERS)
    session.run("python", "-m", "benchmarks", *session.posargs)


@nox.session
def bench_smoke(session: nox.Session) -> None:
    """Run the benchmark harness with tiny sizes: every row filled, no timing asserted."""
    _sync(session, "dev", "bench")
    session.run(
        "python", "-m", "benchmarks", "--smoke", "--out", str(Path(session.create_tmp()) / "bench")
    )


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site in strict mode (any warning fails)."""
    _sync(session, "dev", "docs")
    session.run("mkdocs", "build", "--strict", *session.posargs, env={"NO_MKDOCS_2_WARNING": "1"})


@nox.session
def typecheck(session: nox.Session) -> None:
    """Type-check each package's src/ with mypy --strict, one at a time, then the benchmarks."""
    _sync(session, "dev")
    for package in PACKAGES:
        if package != "adapters/agentscope":  # typed per AgentScope major in its adapter sessions
            session.run("mypy", "--strict", f"{package}/src")
    session.run("mypy", "--strict", "benchmarks")
