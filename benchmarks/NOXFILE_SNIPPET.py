"""What to add to the root noxfile.py and pyproject.toml for ``nox -s bench``.

Not imported by anything: the code below goes into noxfile.py as it is (it
uses that file's ``_sync`` helper), and the dependency group into the root
pyproject.toml, followed by ``uv lock``. ``bench`` stays out of the default
``nox`` run because ``nox.options.sessions`` lists the default sessions.

pyproject.toml, under [dependency-groups]::

    bench = [
        "matplotlib>=3.8",
    ]

The session also syncs the ``dev`` group, so whatever the tests need to start
their Redis and MongoDB servers (testcontainers, SecantusDB) is there for the
benchmark too: it starts its servers with the same helpers.
"""

import nox

# Peers, installed by `nox -s bench -- --peers`. The pins keep AgentScope 1.0
# importable: it imports mcp.client.streamable_http.streamablehttp_client,
# which mcp 2 removed, and tqdm, which it does not declare.
# sqlalchemy[asyncio] brings greenlet for ADK's DatabaseSessionService.
BENCH_PEERS = (
    "google-adk",
    "sqlalchemy[asyncio]",
    "openai-agents[redis]",
    "agentscope>=1.0,<1.1",
    "mcp<2",
    "tqdm",
)


def _sync(session: nox.Session, *groups: str) -> None:  # already in noxfile.py
    ...


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmark every backend against its raw-driver floor (-- --quick, --smoke, --peers)."""
    _sync(session, "dev", "bench")
    if "--peers" in session.posargs:
        session.install(*BENCH_PEERS)
    session.run("python", "-m", "benchmarks", *session.posargs)
