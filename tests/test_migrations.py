"""Alembic migrations on SQLite and PostgreSQL: from empty and from every earlier revision to head."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text
from sqlmodel import SQLModel

import opscraft.db.models  # noqa: F401  (registers the tables)
from opscraft.db.engine import Database
from opscraft.db.migrate import alembic_config, current_revision, upgrade
from tests.conftest import postgres_scratch_database

SCRIPTS = ScriptDirectory.from_config(alembic_config())
HEAD = SCRIPTS.get_current_head()
EARLIER = [rev.revision for rev in SCRIPTS.walk_revisions() if rev.revision != HEAD]


@pytest.fixture
async def scratch(backend: str, tmp_path: Path) -> AsyncIterator[Database]:
    """An empty database of its own: a file on SQLite, a new database (role has CREATEDB) on PostgreSQL."""
    if backend == "sqlite":
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'scratch.db'}")
        yield db
        await db.dispose()
        return
    async with postgres_scratch_database() as url:
        db = Database(url)
        try:
            yield db
        finally:
            await db.dispose()


def _schema_diff(connection: Connection) -> list[object]:
    def for_this_dialect(obj: object, *_: object) -> bool:
        """Skip what the models create on another dialect only (`Index(...).ddl_if(dialect=...)`)."""
        ddl_if = getattr(obj, "_ddl_if", None)
        return ddl_if is None or ddl_if.dialect in (None, connection.dialect.name)

    opts = {"compare_type": True, "include_object": for_this_dialect}
    context = MigrationContext.configure(connection, opts=opts)
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
        # From 0016 on, `users.account_key` is NOT NULL without a default.
        columns = await conn.run_sync(lambda c: {col["name"] for col in inspect(c).get_columns("users")})
        key = ("", "") if "account_key" not in columns else (", account_key", ", '0123456789abcdef'")
        await conn.execute(
            text(
                "INSERT INTO users (username, email, full_name, hashed_password, role, is_active,"
                f" token_version, created_at, updated_at{key[0]}) VALUES ('old', 'old@example.com',"
                f" 'Old Timer', 'x', 'admin', true, 3, '2024-01-01 00:00:00', '2024-01-01 00:00:00'{key[1]})"
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
