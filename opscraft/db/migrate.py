"""Apply Alembic migrations programmatically (on start and by `opscraft db upgrade`).

A database already at the head costs one query: the head is read from the revision files
themselves (`head_revisions`), so Alembic is neither imported nor run (about 0.3-0.5 s of CPU
at every start; docs/benchmarks.md, "Start-up").
"""

from __future__ import annotations

import ast
import asyncio
import fcntl
import functools
import os
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from opscraft.db.engine import create_engine
from opscraft.db.migration_error import MigrationError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
HEAD = "head"
# Held for the migration's transaction on PostgreSQL, so a server and workers starting together
# migrate one after the other.
_PG_LOCK_ID = 7_243_001
# On SQLite the same is an exclusive lock (flock(2)) on this file next to the database: a
# transaction there takes SQLite's write lock only at its first write, after reading the
# version, so two processes starting on a fresh file both created the tables and all but one
# failed ("table app_settings already exists"; e.g. `opscraft serve` and `opscraft user create`
# started together). Not the database file itself: closing any descriptor of it would drop the
# POSIX locks SQLite holds on it in this process (fcntl(2), "the lock is released when any file
# descriptor is closed").
SQLITE_LOCK_SUFFIX = "-migrate.lock"


def alembic_config(url: str | None = None) -> Config:
    """An Alembic Config pointing at the packaged migrations, with `url` as sqlalchemy.url when given."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url:
        config.set_main_option("sqlalchemy.url", url)
    return config


def head_revisions(versions: Path = MIGRATIONS_DIR / "versions") -> set[str]:
    """The head revision ids of the migration scripts in `versions`: revisions no other script
    names as its `down_revision`. Raises ValueError for a script without a literal `revision`."""
    revisions, parents = _revision_graph(versions)
    return revisions - parents


def _revision_graph(versions: Path) -> tuple[set[str], set[str]]:
    """(every revision id, every id some script names as its `down_revision`) of the migration
    scripts in `versions`. Read from the module-level `revision` and `down_revision` assignments
    of Alembic's script format (a string, None, or a tuple of strings for a merge) with `ast`,
    without importing the scripts or Alembic (`_identifiers`). Raises ValueError for a script
    without a literal `revision`, SyntaxError for one that is not Python."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in versions.glob("*.py"):
        values = _identifiers(path.read_text(encoding="utf-8"), str(path))
        if not isinstance(values.get("revision"), str):
            raise ValueError(f'{path}: no literal `revision = "..."`')
        revisions.add(str(values["revision"]))
        down = values.get("down_revision")
        if isinstance(down, str):
            parents.add(down)
        elif isinstance(down, tuple | list):
            parents.update(str(parent) for parent in down)
    return revisions, parents


# A line starting a top-level definition: the end of an Alembic script's header.
_DEFINITION = re.compile(r"^(?:def |async def |class |@)", re.MULTILINE)
# A line that may assign `revision` or `down_revision` at the top level.
_ASSIGNMENT = re.compile(r"^(?:down_)?revision\b", re.MULTILINE)


def _identifiers(text: str, filename: str) -> dict[str, object]:
    """The literal values of the module-level `revision` and `down_revision` assignments of the
    migration script `text` (plain or annotated; the last one of each counts, as on import).
    Alembic's format assigns them in the header, above `upgrade()` and `downgrade()`: only the
    part before the first top-level definition is parsed (the whole scripts, 117 kB, took 60-80
    ms of CPU at every start of every process, twice), the whole script when a line after that
    part may assign one of them again, or that part does not parse on its own (a docstring with
    a line starting with `def `) or assigns no `revision`."""
    definition = _DEFINITION.search(text)
    if definition and not _ASSIGNMENT.search(text, definition.start()):
        try:
            values = _assigned(ast.parse(text[: definition.start()], filename))
        except SyntaxError:
            values = {}
        if isinstance(values.get("revision"), str):
            return values
    return _assigned(ast.parse(text, filename))


def _assigned(module: ast.Module) -> dict[str, object]:
    """`revision` and `down_revision` as `module`'s top-level statements assign them."""
    values: dict[str, object] = {}
    for node in module.body:
        target = node.target if isinstance(node, ast.AnnAssign) else None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
            values[target.id] = ast.literal_eval(node.value) if node.value is not None else None
    return values


@functools.cache
def _installed_graph() -> tuple[frozenset[str], frozenset[str]]:
    """`_revision_graph` of the installed migration scripts, read once per process (they do not
    change while it runs; a test process starts hundreds of runtimes)."""
    revisions, parents = _revision_graph(MIGRATIONS_DIR / "versions")
    return frozenset(revisions), frozenset(parents)


def _installed_heads() -> frozenset[str]:
    """`head_revisions` of the installed migration scripts."""
    revisions, parents = _installed_graph()
    return revisions - parents


def _installed_revisions() -> frozenset[str]:
    """Every revision id of the installed migration scripts."""
    return _installed_graph()[0]


def _refuse_newer(applied: set[str]) -> None:
    """Raise MigrationError when the database is at a revision this version has no script for:
    a newer version migrated it, and Alembic would stop with a traceback ("Can't locate
    revision"). Downgrading is never done: it could drop columns holding data."""
    unknown = sorted(applied - _installed_revisions())
    if unknown:
        raise MigrationError(
            f"the database is at schema revision {', '.join(unknown)}, which this version of "
            f"OpsCraft (schema {', '.join(sorted(_installed_heads()))}) does not know: a newer "
            "version upgraded it. Run that version, or restore the backup made before the "
            "upgrade; OpsCraft never downgrades a database"
        )


def _applied_revisions(connection: Connection) -> set[str]:
    if not inspect(connection).has_table("alembic_version"):
        return set()
    return {row[0] for row in connection.execute(text("SELECT version_num FROM alembic_version"))}


async def upgrade(engine: AsyncEngine, revision: str = HEAD) -> None:
    """Bring the database at `engine` up to `revision` in one transaction; to the head, a
    database already there is left alone after one query. Processes migrating the same database
    at once take turns (PostgreSQL: an advisory lock; an SQLite file: `SQLITE_LOCK_SUFFIX`), and
    each finds what the previous one did. SQLite: with foreign keys off until the commit,
    checked before it (`_dangling`), its DDL inside the transaction too (`_migrate`): an upgrade
    interrupted midway leaves nothing of itself. Raises MigrationError, changing nothing, for a
    database a newer version migrated."""
    async with engine.connect() as conn:
        applied = await conn.run_sync(_applied_revisions)
    _refuse_newer(applied)  # before Alembic is imported, whose loggers add lines to the refusal
    if revision == HEAD and applied == _installed_heads():
        return
    if engine.dialect.name == "postgresql":
        # Not under the app engine's `command_timeout` (db.engine.create_engine): a migration of a
        # large history, or the advisory lock another process holds while it migrates, may rightly
        # take longer than a request may wait.
        unbounded = create_engine(engine.url.render_as_string(hide_password=False))
        try:
            await _migrate(unbounded, revision)
        finally:
            await unbounded.dispose()
        return
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:" or database.startswith("file:"):
        await _migrate(engine, revision)
        return
    lock = await asyncio.to_thread(_lock_file, Path(f"{database}{SQLITE_LOCK_SUFFIX}"))
    try:
        await _migrate(engine, revision)
    finally:
        os.close(lock)  # releases the flock


def _lock_file(path: Path) -> int:
    """Open `path` (created 0600) and wait for an exclusive flock on it; the descriptor."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except BaseException:
        os.close(fd)
        raise
    return fd


async def _migrate(engine: AsyncEngine, revision: str) -> None:
    from alembic import command

    def _upgrade(connection: Connection) -> None:
        if connection.dialect.name == "postgresql":
            connection.execute(text(f"SELECT pg_advisory_xact_lock({_PG_LOCK_ID})"))
        config = alembic_config()
        config.attributes["connection"] = connection
        with warnings.catch_warnings():
            # SQLite's table rebuilds (0016, 0018, 0020) reflect the tables they refer to, whose
            # expression indexes SQLAlchemy cannot read: it warned on the first start of every new
            # install ("SAWarning: Skipped unsupported reflection of expression-based index
            # ux_users_username"). The rebuilt tables keep theirs (saved and made again as SQL).
            warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based index")
            command.upgrade(config, revision)

    async with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:  # a pragma only takes effect outside a transaction
            await conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            await conn.commit()
            # Opened here, or each CREATE, ALTER and DROP would commit on its own: `sqlite3`
            # begins a transaction only before INSERT, UPDATE or DELETE. An upgrade killed or
            # failing midway (`docker stop`, Ctrl-C, `_dangling`) kept the DDL it had run with the
            # old `alembic_version`, and every later start failed on it ("table app_settings
            # already exists", "duplicate column name: rerun_of"). IMMEDIATE: the write lock is
            # waited for now (busy timeout), not found taken at the first write.
            await conn.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            before = await conn.run_sync(_dangling) if sqlite else set()
            await conn.run_sync(_upgrade)
            if sqlite and (new := await conn.run_sync(_dangling) - before):
                raise MigrationError(f"the migration left rows referring to missing ones: {list(new)[:5]}")
            await conn.commit()
        finally:
            if sqlite:
                await conn.rollback()
                await conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                await conn.commit()


def _dangling(connection: Connection) -> set[tuple[object, ...]]:
    """SQLite's rows referring to a row that does not exist (table, rowid, parent, key number).

    On SQLite migrations run with foreign keys off, as SQLite's own procedure for changing a
    table's definition asks (https://sqlite.org/lang_altertable.html#otheralter): rebuilding a
    table drops the old one, which with foreign keys on would delete or orphan the rows referring
    to it. A migration that leaves a new one is rolled back."""
    return {tuple(row) for row in connection.exec_driver_sql("PRAGMA foreign_key_check")}


async def current_revision(engine: AsyncEngine) -> str | None:
    """The Alembic revision the database is at (None for a database never migrated), read from
    its `alembic_version` table without importing Alembic (about 0.3 s of CPU: most of what
    `opscraft db upgrade` on a database at the head did after its start-up). Raises
    MigrationError for a database at more than one revision (branches: OpsCraft has none)."""
    async with engine.connect() as conn:
        applied = await conn.run_sync(_applied_revisions)
    if len(applied) > 1:
        raise MigrationError(f"the database is at several schema revisions: {', '.join(sorted(applied))}")
    return next(iter(applied), None)
