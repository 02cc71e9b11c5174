"""Alembic migrations on SQLite and PostgreSQL: from empty and from every earlier revision to head."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url
from sqlmodel import SQLModel

import opscraft.db.models  # noqa: F401  (registers the tables)
from opscraft.db.engine import Database
from opscraft.db.migrate import alembic_config, current_revision, upgrade
from tests.conftest import PG_URL

SCRIPTS = ScriptDirectory.from_config(alembic_config())
HEAD = SCRIPTS.get_current_head()
EARLIER = [rev.revision for rev in SCRIPTS.walk_revisions() if rev.revision != HEAD]


def _plain_dsn(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    if database:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


@pytest.fixture
async def scratch(backend: str, tmp_path: Path) -> AsyncIterator[Database]:
    """An empty database of its own: a file on SQLite, a new database (role has CREATEDB) on PostgreSQL."""
    if backend == "sqlite":
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'scratch.db'}")
        yield db
        await db.dispose()
        return
    assert PG_URL
    name = f"opscraft_mig_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(_plain_dsn(PG_URL))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        db = Database(make_url(PG_URL).set(database=name).render_as_string(hide_password=False))
        try:
            yield db
        finally:
            await db.dispose()
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def _schema_diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, SQLModel.metadata))


async def test_empty_database_upgrades_to_head_matching_the_models(scratch: Database) -> None:
    assert await current_revision(scratch.engine) is None
    await upgrade(scratch.engine)
    assert await current_revision(scratch.engine) == HEAD
    async with scratch.engine.connect() as conn:
        assert await conn.run_sync(_schema_diff) == [], "models and migrations disagree: add a revision"
    await upgrade(scratch.engine)  # a second run is a no-op
    assert await current_revision(scratch.engine) == HEAD


@pytest.mark.parametrize("start", EARLIER)
async def test_database_at_an_earlier_revision_upgrades_keeping_its_data(
    scratch: Database, start: str
) -> None:
    await upgrade(scratch.engine, start)
    assert await current_revision(scratch.engine) == start
    async with scratch.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO users (username, email, full_name, hashed_password, role, is_active,"
                " token_version, created_at, updated_at) VALUES ('old', 'old@example.com', 'Old Timer',"
                " 'x', 'admin', true, 3, '2024-01-01 00:00:00', '2024-01-01 00:00:00')"
            )
        )
    await upgrade(scratch.engine)
    assert await current_revision(scratch.engine) == HEAD
    async with scratch.engine.connect() as conn:
        row = (await conn.execute(text("SELECT username, role, token_version FROM users"))).one()
    assert tuple(row) == ("old", "admin", 3)


def test_previous_revision_is_among_the_starting_points() -> None:
    previous = SCRIPTS.get_revision(HEAD).down_revision
    assert previous in EARLIER and len(EARLIER) == len(list(SCRIPTS.walk_revisions())) - 1
