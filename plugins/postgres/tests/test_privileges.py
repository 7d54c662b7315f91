"""Least privilege: what a role without the right to create the tables is told.

The whole conformance suite as a role holding only the README's grants is in
``test_conformance.py`` (the ``dml_settings`` fixture, on a private cluster).
"""

from __future__ import annotations

import pytest

from sessionhub import BackendError
from sessionhub_postgres.backend import PostgresBackend, PostgresSettings


@pytest.mark.asyncio
async def test_tables_the_role_may_not_create_name_the_way_out(
    dml_settings: PostgresSettings,
) -> None:
    elsewhere = dml_settings.model_copy(update={"db_schema": "not_created_yet"})
    with pytest.raises(BackendError) as caught:
        async with PostgresBackend(elsewhere):
            pass
    message = str(caught.value)
    assert "permission denied" in message and "as the tables' owner" in message
