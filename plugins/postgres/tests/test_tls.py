"""A password and TLS taken from the URL, against a server that demands both.

A private cluster (never the shared server) gets a self-signed certificate from
``openssl``, a role with a SCRAM password, and a ``pg_hba.conf`` that lets that
role in over TLS only. Skipped where ``openssl`` is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio

from sessionhub import BackendUnavailable, SessionHistoryService
from sessionhub.settings import SessionHubSettings
from sessionhub_postgres.backend import PostgresBackend, PostgresSettings
from sessionhub_postgres.testing import PrivateCluster

pytestmark = pytest.mark.asyncio

PASSWORD = "s3cret-Pw_9"
ROLE = "sessionhub_app"


@dataclass(frozen=True)
class Secured:
    """The cluster, its certificate, and a URL maker for the role."""

    cluster: PrivateCluster
    certificate: Path
    other_certificate: Path

    def url(self, *, password: str = PASSWORD, query: str = "") -> str:
        """The role's URL with ``password`` and the ``query`` (``sslmode=...``)."""
        port = self.cluster.port
        return f"postgresql://{ROLE}:{password}@127.0.0.1:{port}/postgres?{query}"


def _certificate(openssl: str, directory: Path, name: str) -> Path:
    key, certificate = directory / f"{name}.key", directory / f"{name}.crt"
    subprocess.run(
        [
            *(openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
            *("-keyout", str(key), "-out", str(certificate), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    key.chmod(0o600)
    if os.geteuid() == 0:
        shutil.chown(key, "postgres")
    return certificate


@pytest_asyncio.fixture
async def secured(cluster: PrivateCluster) -> Secured:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("no openssl to make a certificate (apt-get install openssl)")
    certificate = _certificate(openssl, cluster.directory, "server")
    other = _certificate(openssl, cluster.directory, "other")
    hba = cluster.data / "pg_hba.conf"
    hba.write_text(
        f"hostssl all {ROLE} 127.0.0.1/32 scram-sha-256\n"
        f"host all {ROLE} 127.0.0.1/32 reject\n" + hba.read_text()
    )
    conn = await asyncpg.connect(cluster.url)
    try:
        await conn.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{PASSWORD}'")
        await conn.execute(f"GRANT CREATE ON DATABASE postgres TO {ROLE}")
        await conn.execute("ALTER SYSTEM SET ssl = on")
        await conn.execute(f"ALTER SYSTEM SET ssl_cert_file = '{certificate}'")
        await conn.execute(f"ALTER SYSTEM SET ssl_key_file = '{certificate.with_suffix('.key')}'")
        await conn.execute("SELECT pg_reload_conf()")
    finally:
        await conn.close()
    return Secured(cluster, certificate, other)


def _service(url: str) -> SessionHistoryService:
    return SessionHistoryService(
        PostgresBackend(
            PostgresSettings.model_validate(
                # The role may create schemas, not write to public (PostgreSQL 15+).
                {"url": url, "schema": "app", "connect_timeout": 5, "max_pool_size": 2}
            )
        ),
        settings=SessionHubSettings.isolated(purge_interval=None),
    )


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: BaseException | None = error
    while seen is not None:
        yield seen
        seen = seen.__cause__ or seen.__context__


async def test_the_password_and_tls_of_the_url_are_used(secured: Secured) -> None:
    root = f"sslmode=verify-full&sslrootcert={secured.certificate}"
    service = _service(secured.url(query=root))
    async with service:
        await service.create_session("alice", "s1")
        await service.append(("alice", "s1"), "over TLS")
        got = await service.get_session("alice", "s1")
        assert got is not None and got.events[0].text == "over TLS"
        conn = await asyncpg.connect(secured.cluster.url)
        try:  # every connection the role has open is encrypted
            rows = await conn.fetch(
                "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) "
                "WHERE a.usename = $1",
                ROLE,
            )
        finally:
            await conn.close()
        assert rows and all(row["ssl"] for row in rows)


async def test_a_wrong_password_is_refused_and_never_shown(secured: Secured) -> None:
    service = _service(secured.url(password="not-the-Pw_1", query="sslmode=require"))
    with pytest.raises(BackendUnavailable) as caught:
        async with service:
            pass
    assert "refused the login" in str(caught.value)
    for error in _chain(caught.value):
        for said in (str(error), repr(error)):
            assert "not-the-Pw_1" not in said and PASSWORD not in said


async def test_without_tls_the_server_refuses_the_role(secured: Secured) -> None:
    service = _service(secured.url(query="sslmode=disable"))
    with pytest.raises(BackendUnavailable, match="refused the login") as caught:
        async with service:
            pass
    assert "pg_hba.conf" in str(caught.value) and PASSWORD not in str(caught.value)


async def test_a_certificate_from_another_authority_is_refused(secured: Secured) -> None:
    other = f"sslmode=verify-full&sslrootcert={secured.other_certificate}"
    service = _service(secured.url(query=other))
    with pytest.raises(
        BackendUnavailable, match="certificate this client does not trust"
    ) as caught:
        async with service:
            pass
    assert PASSWORD not in str(caught.value)
