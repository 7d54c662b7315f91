"""``adk web --session_service_uri "sessionhub+…"``: ADK's own CLI code builds the adapter.

These tests go through ``google.adk.cli.service_registry`` and
``create_session_service_from_options``, the functions ``adk web`` and
``adk api_server`` call, after loading an agents directory's ``services.py``
or ``services.yaml`` as they do.
"""

from __future__ import annotations

import sys
import uuid

import pytest
from google.adk.cli.service_registry import ServiceRegistry, load_services_module
from google.adk.cli.utils.service_factory import create_session_service_from_options
from google.adk.events.event import Event

from sessionhub_adk import SessionHubSessionService, register

SERVICES_PY = "import sessionhub_adk\n\nsessionhub_adk.register()\n"
SERVICES_YAML = """\
services:
  - scheme: sessionhub+sqlite
    type: session
    class: sessionhub_adk.SessionHubSessionService
"""


@pytest.fixture
def agents_dir(tmp_path, monkeypatch):
    """An empty agents directory as the working directory; ADK's import of it undone after."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "services", raising=False)
    yield tmp_path
    sys.modules.pop("services", None)


async def round_trip(uri: str, agents_dir) -> None:
    service = create_session_service_from_options(base_dir=agents_dir, session_service_uri=uri)
    assert isinstance(service, SessionHubSessionService)
    app = f"app_{uuid.uuid4().hex[:8]}"
    async with service:
        session = await service.create_session(app_name=app, user_id="u1")
        await service.append_event(session, Event(author="user", invocation_id="i1"))
    again = create_session_service_from_options(base_dir=agents_dir, session_service_uri=uri)
    async with again:
        stored = await again.get_session(app_name=app, user_id="u1", session_id=session.id)
    assert stored == session


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("file", "text"), [("services.py", SERVICES_PY), ("services.yaml", SERVICES_YAML)]
)
async def test_an_agents_directory_registers_sqlite(agents_dir, file, text):
    (agents_dir / file).write_text(text)
    load_services_module(str(agents_dir))
    await round_trip("sessionhub+sqlite:///sessions.db", agents_dir)
    assert (agents_dir / "sessions.db").is_file()


@pytest.mark.asyncio
async def test_redis_and_mongodb_uris(agents_dir, redis_url, mongodb_url):
    (agents_dir / "services.py").write_text(SERVICES_PY)
    load_services_module(str(agents_dir))
    await round_trip(f"sessionhub+{redis_url}", agents_dir)
    await round_trip(f"sessionhub+{mongodb_url}", agents_dir)


def test_register_names_every_installed_backend_scheme():
    registry = ServiceRegistry()
    schemes = register(registry)
    for scheme in ("sessionhub", "sessionhub+memory", "sessionhub+sqlite", "sessionhub+redis"):
        assert scheme in schemes
    assert "sessionhub+mongodb" in schemes
    service = registry.create_session_service("sessionhub+memory://", agents_dir="/x")
    assert isinstance(service, SessionHubSessionService)
    assert service.service.backend.name == "memory"
