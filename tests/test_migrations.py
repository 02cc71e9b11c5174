"""Alembic migrations on SQLite and PostgreSQL: from empty and from every earlier revision to head."""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import shutil
import subprocess
import sys
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text
from sqlalchemy import insert as sql_insert
from sqlalchemy.exc import IntegrityError, SAWarning
from sqlmodel import SQLModel, col, select
from sqlmodel import delete as sql_delete
from sqlmodel.ext.asyncio.session import AsyncSession

from opscraft.db.engine import Database, create_engine
from opscraft.db.migrate import alembic_config, current_revision, upgrade
from opscraft.db.migration_error import MigrationError
from opscraft.db.models import (
    BrowserSignIn,
    Execution,
    ExecutionHost,
    ExecutionLog,
    IdempotencyKey,
    NotificationChannel,
    Schedule,
    Script,
    ScriptSecret,
    Secret,
    SecretPreviousValue,
    User,
    WebhookTrigger,
)
from opscraft.db.types import utcnow
from tests.cli_forks import CommandForks
from tests.conftest import PG_URL, ROOT, _drop_database, drop_databases, postgres_scratch_database

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


# The revisions from the oldest to the head.
OLDEST_FIRST = [*reversed(EARLIER), HEAD]


class _Templates:
    """A database at each revision a test starts from, made once per test process and backend
    by a walker: a database that goes forward from empty one `upgrade(engine, revision)` at a
    time, copied when it reaches a revision a test asked for (a copy of the SQLite file, or a
    PostgreSQL database made with `CREATE DATABASE ... TEMPLATE`). Migrating an empty database up
    to the test's starting revision in each test ran the first half of the chain again for each
    starting point, on both databases; a copy at every revision made 35 PostgreSQL databases
    (0.5-1 s each to create and to drop on a busy machine) where the tests start from 12. A
    revision behind the walker takes a new one from empty: the tests come in the order of the
    revisions they start from. Each migration still runs from the database its predecessor
    left, and from empty to the head in one call in
    `test_empty_database_upgrades_to_head_matching_the_models`; the head is among the starting
    points, for tests that need a database there but do not check the way to it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.made: dict[str, dict[str, str]] = {"sqlite": {}, "postgresql": {}}  # revision -> file or name
        self.walkers: dict[str, tuple[str, int]] = {}  # backend -> (URL, its place in OLDEST_FIRST)
        self.pg_databases: list[str] = []  # walkers and templates, dropped at the end

    async def template(self, backend: str, revision: str) -> str:
        """The file (SQLite) or database name (PostgreSQL) of the template at `revision`."""
        made = self.made[backend]
        if revision not in made:
            target = OLDEST_FIRST.index(revision)
            url, at = self.walkers.get(backend, ("", len(OLDEST_FIRST)))
            if at > target:  # no walker yet, or it is past `revision`
                url, at = await self._empty(backend), -1
            for step in OLDEST_FIRST[at + 1 : target + 1]:
                await _upgrade_once(url, step)  # its connections closed: a template has none
            self.walkers[backend] = (url, target)
            made[revision] = await self._copy(backend, url, revision)
        return made[revision]

    def _pg_url(self, name: str) -> str:
        from sqlalchemy.engine import make_url

        assert PG_URL
        return make_url(PG_URL).set(database=name).render_as_string(hide_password=False)

    def _pg_name(self, what: str) -> str:
        from sqlalchemy.engine import make_url

        assert PG_URL
        return f"{make_url(PG_URL).database}_{what}"

    async def _empty(self, backend: str) -> str:
        """The URL of a new, empty database for a walker."""
        if backend == "sqlite":
            return f"sqlite+aiosqlite:///{self.directory / f'walker-{secrets.token_hex(3)}.db'}"
        name = self._pg_name(f"walker_{secrets.token_hex(3)}")
        async with _admin_connection() as admin:
            await admin.execute(f'CREATE DATABASE "{name}"')
        self.pg_databases.append(name)
        return self._pg_url(name)

    async def _copy(self, backend: str, walker: str, revision: str) -> str:
        if backend == "sqlite":
            path = self.directory / f"{revision}.db"
            shutil.copyfile(walker.removeprefix("sqlite+aiosqlite:///"), path)
            return str(path)
        name = self._pg_name(f"at_{revision}")
        async with _admin_connection() as admin:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{walker.rsplit("/", 1)[-1]}"')
        self.pg_databases.append(name)
        return name

    async def drop(self) -> None:
        """Drop the walkers and templates together (`drop_databases`: one after another, each
        waited for a checkpoint of its own, 14-16 s at the module's end)."""
        await drop_databases(self.pg_databases)


async def _upgrade_once(url: str, revision: str) -> None:
    engine = create_engine(url)
    try:
        await upgrade(engine, revision)
    finally:
        await engine.dispose()


@asynccontextmanager
async def _admin_connection() -> AsyncIterator[Any]:
    """An asyncpg connection to the test PostgreSQL database, for CREATE and DROP DATABASE."""
    import asyncpg
    from sqlalchemy.engine import make_url

    assert PG_URL
    conn = await asyncpg.connect(
        make_url(PG_URL).set(drivername="postgresql").render_as_string(hide_password=False)
    )
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def _templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Templates]:
    templates = _Templates(tmp_path_factory.mktemp("revisions"))
    yield templates
    with ThreadPoolExecutor(1) as thread:  # no event loop runs in a module fixture's teardown
        thread.submit(asyncio.run, templates.drop()).result()


@pytest.fixture
async def at_revision(
    backend: str, tmp_path: Path, _templates: _Templates
) -> AsyncIterator[Callable[[str | None], Awaitable[Database]]]:
    """`await at_revision(rev)`: a database of the test's own at revision `rev` (a copy of its
    `_Templates` one), as if an empty one had been upgraded to `rev`; `rev` None: an empty one."""
    opened: list[Database] = []

    async def at(revision: str | None) -> Database:
        template = await _templates.template(backend, revision) if revision else None
        if backend == "sqlite":
            path = tmp_path / f"at-{revision}.db"
            if template:
                shutil.copyfile(template, path)
            opened.append(Database(f"sqlite+aiosqlite:///{path}"))
        else:
            opened.append(Database(await scratch_from_template(template)))
        return opened[-1]

    copies: list[str] = []

    async def scratch_from_template(template: str | None) -> str:
        from sqlalchemy.engine import make_url

        assert PG_URL
        name = f"{template or make_url(PG_URL).database + '_empty'}_{len(copies)}_{secrets.token_hex(3)}"
        async with _admin_connection() as admin:
            await admin.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        copies.append(name)
        return make_url(PG_URL).set(database=name).render_as_string(hide_password=False)

    try:
        yield at
    finally:
        for db in opened:
            await db.dispose()
        if copies:
            async with _admin_connection() as admin:
                for name in copies:
                    await _drop_database(admin, name)


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
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        await upgrade(scratch.engine)
    # A new install's first start printed SQLAlchemy's warnings about indexes it cannot reflect.
    assert [str(w.message) for w in caught if issubclass(w.category, SAWarning)] == []
    assert await current_revision(scratch.engine) == HEAD
    async with scratch.engine.connect() as conn:
        assert await conn.run_sync(_schema_diff) == [], "models and migrations disagree: add a revision"
    await upgrade(scratch.engine)  # a second run is a no-op
    assert await current_revision(scratch.engine) == HEAD


# A process of its own: once imported, says so (creates the file argv[3]), waits for the start
# signal (the file argv[2]), then upgrades the database at argv[1].
_UPGRADE_WHEN_TOLD = """
import asyncio, sys, time
from pathlib import Path
from opscraft.db.engine import create_engine
from opscraft.db.migrate import upgrade

Path(sys.argv[3]).touch()
go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.001)

async def main() -> None:
    engine = create_engine(sys.argv[1])
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()

asyncio.run(main())
"""


async def test_processes_starting_together_on_an_empty_database_take_turns(
    scratch: Database, tmp_path: Path
) -> None:
    """`opscraft serve`, `opscraft user create` and workers started at the same moment on a new
    database all migrate: on SQLite all but one failed ("table app_settings already exists"),
    each having read the version before any of them wrote. They now take turns (a file lock next
    to an SQLite file, an advisory lock on PostgreSQL) and the later ones find the head."""
    url = scratch.engine.url.render_as_string(hide_password=False)
    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{i}" for i in range(3)]
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _UPGRADE_WHEN_TOLD, url, str(go), str(flag)],
            cwd=ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )
        for flag in ready
    ]
    try:
        async with asyncio.timeout(120):  # imports take seconds on a busy machine
            while not all(flag.exists() for flag in ready):
                assert all(child.poll() is None for child in children), "a child ended before the start"
                await asyncio.sleep(0.02)
        go.touch()  # the children poll for it every millisecond: they start within one of another
        errors = [child.communicate(timeout=180)[1] for child in children]
    finally:
        for child in children:
            child.kill()
    assert [child.returncode for child in children] == [0, 0, 0], [e[-400:] for e in errors]
    assert await current_revision(scratch.engine) == HEAD


async def _add_user(conn: Any, name: str) -> None:
    """A user `name` as a row of the schema `conn` is at (the columns every revision has, and
    from 0016 on the `account_key` it requires)."""
    columns = await conn.run_sync(lambda c: {col["name"] for col in inspect(c).get_columns("users")})
    row = {"username": name, "email": f"{name}@example.com", "full_name": "Old Timer"}
    row |= {"hashed_password": "x", "role": "admin", "is_active": True, "token_version": 3}
    row |= {"created_at": datetime(2024, 1, 1), "updated_at": datetime(2024, 1, 1)}
    if "account_key" in columns:  # required from 0016 on
        row["account_key"] = hashlib.sha256(name.encode()).hexdigest()[:16]
    values = ", ".join(f":{column}" for column in row)
    await conn.execute(text(f"INSERT INTO users ({', '.join(row)}) VALUES ({values})"), row)


class _UsersWalk:
    """One pass per backend from an empty database to the head, one `upgrade(engine, revision)`
    at a time, that adds a user `old-<revision>` at each earlier revision: each revision's test
    (`test_database_at_an_earlier_revision_upgrades_keeping_its_data`) reads that its user came
    through every later migration. A database of its own per starting revision, upgraded to the
    head, ran half the chain again for each of the 33 starting points on average, on both
    databases (135 s of the module's 277 in a full run); the whole way in one call, from the
    oldest revision with a user, stays tested in
    `test_a_database_at_the_oldest_revision_upgrades_in_one_call_keeping_its_data`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.made: dict[str, _UsersWalked] = {}

    async def made_for(self, backend: str) -> _UsersWalked:
        if backend not in self.made:
            if backend == "sqlite":
                self.made[backend] = await self._walk(f"sqlite+aiosqlite:///{self.directory / 'users.db'}")
            else:
                async with postgres_scratch_database() as url:
                    self.made[backend] = await self._walk(url)
        return self.made[backend]

    async def _walk(self, url: str) -> _UsersWalked:
        walked = _UsersWalked()
        for revision in reversed(EARLIER):  # the oldest first
            engine = create_engine(url)
            try:
                await upgrade(engine, revision)
                walked.revision_at[revision] = await current_revision(engine)
                async with engine.begin() as conn:
                    await _add_user(conn, f"old-{revision}")
            finally:
                await engine.dispose()
        engine = create_engine(url)
        try:
            await upgrade(engine)
            walked.head = await current_revision(engine)
            async with engine.connect() as conn:
                rows = await conn.execute(text("SELECT username, role, token_version FROM users"))
                walked.users = {row[0]: tuple(row) for row in rows}
        finally:
            await engine.dispose()
        return walked


@dataclass
class _UsersWalked:
    revision_at: dict[str, str | None] = field(default_factory=dict)  # what the database said
    head: str | None = None  # the revision at the end
    users: dict[str, tuple[object, ...]] = field(default_factory=dict)  # name -> (name, role, version)


@pytest.fixture(scope="module")
def _users_walk(tmp_path_factory: pytest.TempPathFactory) -> _UsersWalk:
    return _UsersWalk(tmp_path_factory.mktemp("users-walk"))


@pytest.mark.parametrize("start", EARLIER)
async def test_database_at_an_earlier_revision_upgrades_keeping_its_data(
    backend: str, _users_walk: _UsersWalk, start: str
) -> None:
    """A user stored at revision `start` is there, unchanged, after every later migration
    (`_UsersWalk`: with the users of the other revisions)."""
    walked = await _users_walk.made_for(backend)
    assert walked.revision_at[start] == start
    assert walked.head == HEAD
    assert walked.users.get(f"old-{start}") == (f"old-{start}", "admin", 3), walked.users


async def test_a_database_at_the_oldest_revision_upgrades_in_one_call_keeping_its_data(
    at_revision: Callable[[str], Awaitable[Database]],
) -> None:
    """From the oldest revision with a user to the head in one `upgrade` (one transaction)."""
    scratch = await at_revision(EARLIER[-1])
    assert await current_revision(scratch.engine) == EARLIER[-1]
    async with scratch.engine.begin() as conn:
        await _add_user(conn, "old")
    await upgrade(scratch.engine)
    assert await current_revision(scratch.engine) == HEAD
    async with scratch.engine.connect() as conn:
        row = (await conn.execute(text("SELECT username, role, token_version FROM users"))).one()
    assert tuple(row) == ("old", "admin", 3)


@pytest.fixture(scope="module")
def command_forks() -> Iterator[CommandForks]:
    """The upgrades of `test_an_upgrade_killed_midway_changes_nothing_and_the_next_one_completes`,
    each a process of its own forked from one that imported OpsCraft once (tests/cli_forks.py):
    started afresh, each paid Python's start and the imports, about 1 s of CPU."""
    forks = CommandForks(timeout=300)
    try:
        yield forks
    finally:
        forks.close()


# `opscraft db upgrade`, killed (SIGKILL) as the statement starting with argv[1] is sent.
_UPGRADE_KILLED_AT = """
import os, signal, sys
from sqlalchemy import Engine, event

def kill_at(_conn, _cursor, statement, *_):
    if statement.lstrip().startswith(sys.argv[1]):
        os.kill(os.getpid(), signal.SIGKILL)

event.listen(Engine, "before_cursor_execute", kill_at)
from opscraft.cli import main
main(["db", "upgrade"])
"""


@pytest.mark.parametrize("start", [None, "0015"])
async def test_an_upgrade_killed_midway_changes_nothing_and_the_next_one_completes(
    at_revision: Callable[[str | None], Awaitable[Database]],
    tmp_path: Path,
    start: str | None,
    command_forks: CommandForks,
) -> None:
    """`opscraft db upgrade` (or a first start) killed midway, here in 0027, by `docker stop`,
    Ctrl-C or a power cut: on SQLite each CREATE, ALTER and DROP had committed on its own
    (`sqlite3` opens a transaction only before INSERT, UPDATE or DELETE), so the database kept
    part of the upgrade under its old `alembic_version`, and every later start failed ("table
    app_settings already exists" on a new install, "duplicate column name: account_key" from
    0015). The upgrade is one transaction on both databases: nothing of it stays, and the next
    run completes with the data kept (a user from 0015, with non-ASCII text)."""
    scratch = await at_revision(start)  # empty, or as if upgraded to `start`
    url = scratch.engine.url.render_as_string(hide_password=False)
    if start:
        assert await current_revision(scratch.engine) == start
        async with scratch.engine.begin() as conn:
            row = {"username": "old", "email": "old@example.com", "full_name": "Öld Tïmer 😀"}
            row |= {"hashed_password": "x", "role": "admin", "is_active": True, "token_version": 3}
            row |= {"created_at": datetime(2024, 1, 1), "updated_at": datetime(2024, 1, 1)}
            values = ", ".join(f":{name}" for name in row)
            await conn.execute(text(f"INSERT INTO users ({', '.join(row)}) VALUES ({values})"), row)
    async with scratch.engine.connect() as conn:
        tables = await conn.run_sync(lambda c: sorted(inspect(c).get_table_names()))
    await scratch.dispose()
    data_dir = tmp_path / "data"

    killed = command_forks(
        data_dir, "CREATE TABLE inventory_versions", code=_UPGRADE_KILLED_AT, DATABASE_URL=url
    )
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert await current_revision(scratch.engine) == start
    async with scratch.engine.connect() as conn:
        assert await conn.run_sync(lambda c: sorted(inspect(c).get_table_names())) == tables
    await scratch.dispose()

    done = command_forks(data_dir, "db", "upgrade", DATABASE_URL=url)
    assert (done.returncode, done.stdout) == (0, f"database is at revision {HEAD}\n"), done.stderr[-2000:]
    if start:
        async with scratch.engine.connect() as conn:
            row = (await conn.execute(text("SELECT username, full_name, token_version FROM users"))).one()
        assert tuple(row) == ("old", "Öld Tïmer 😀", 3)


def test_previous_revision_is_among_the_starting_points() -> None:
    previous = SCRIPTS.get_revision(HEAD).down_revision
    assert previous in EARLIER and len(EARLIER) == len(list(SCRIPTS.walk_revisions())) - 1


# A script row in the columns of every revision from 0017 on: the model has later ones (0041's
# `viewers_choose_run_options`), which an ORM insert at an earlier revision would write.
_OLD_SCRIPT = text(
    "INSERT INTO scripts (name, description, script_type, parameters, version, tags, status, search_text,"
    " timeout_seconds, memory_mb, cpus, network_enabled, current_version, created_at, updated_at, content)"
    " VALUES (:name, '', :kind, '[]', '1.0.0', '[]', 'draft', :search, 60, 512, 0.5, :no, 1, :now, :now,"
    " 'echo') RETURNING id"
)


async def _old_script(session: AsyncSession, name: str, script_type: str) -> int:
    """The id of a new script `name` of `script_type`, written in `session`'s transaction as a
    row of a revision before the model's (`_OLD_SCRIPT`)."""
    connection = await session.connection()
    values = {"name": name, "search": name, "kind": script_type, "no": False, "now": datetime(2026, 1, 1)}
    return int((await connection.execute(_OLD_SCRIPT, values)).scalar_one())


async def test_0018_keeps_the_uses_of_secrets_and_their_tables_indexes(
    at_revision: Callable[[str], Awaitable[Database]],
) -> None:
    """The webhook and channel tables, rebuilt on SQLite, keep their rows, unique name indexes and
    ids; a secret they use can no longer be deleted (it was SET NULL before 0018)."""
    scratch = await at_revision(SCRIPTS.get_revision("0018").down_revision)
    async with scratch.session() as session:
        secret = Secret(name="KEY", ciphertext=b"", salt=b"", nonce=b"")
        session.add(secret)
        await session.flush()
        script_id = await _old_script(session, "deploy", "bash")
        # The columns of that revision only (the models have 0031's `url_*` and 0034's
        # `terraform_*` too)
        hook_row = {"name": "w", "name_key": "w", "token_hash": "h", "prefix": "p", "mapping": {}}
        hook_row |= {"parameters": {}, "enabled": True, "created_at": utcnow()}
        hooks = WebhookTrigger.__table__  # type: ignore[attr-defined]
        added = await session.exec(  # type: ignore[call-overload]
            sql_insert(hooks)
            .values(**hook_row, script_id=script_id, secret_id=secret.id)
            .returning(hooks.c.id)
        )
        hook_id = added.scalar_one()
        channel_row = {"name": "ops", "name_key": "ops", "kind": "webhook", "config": {}, "enabled": True}
        now = {"created_at": utcnow(), "updated_at": utcnow()}
        channels = NotificationChannel.__table__  # type: ignore[attr-defined]
        await session.exec(sql_insert(channels).values(**channel_row, **now, secret_id=secret.id))  # type: ignore[call-overload]
        await session.commit()
        ids = (secret.id, hook_id, script_id)
    await upgrade(scratch.engine)
    async with scratch.session() as session:
        (hook,) = (await session.exec(select(WebhookTrigger))).all()
        (channel,) = (await session.exec(select(NotificationChannel))).all()
        assert (hook.secret_id, hook.id, hook.script_id) == ids and channel.secret_id == ids[0]
        with pytest.raises(IntegrityError):
            await session.exec(sql_delete(Secret))
        await session.rollback()
        for duplicate in (
            WebhookTrigger(script_id=ids[2], name="W", token_hash="i", prefix="q"),
            NotificationChannel(name="OPS", kind="webhook", config={}),
        ):
            session.add(duplicate)
            with pytest.raises(IntegrityError, match=r"(?i)unique"):
                await session.flush()
            await session.rollback()
        await session.exec(sql_delete(WebhookTrigger))  # SQLite's AUTOINCREMENT kept: no id again
        session.add(WebhookTrigger(script_id=ids[2], name="new", token_hash="j", prefix="r"))
        await session.commit()
        assert (await session.exec(select(WebhookTrigger.id))).one() > ids[1]


async def test_0020_keeps_attachments_and_refuses_deleting_an_attached_secret(
    at_revision: Callable[[str], Awaitable[Database]],
) -> None:
    """`script_secrets`, rebuilt on SQLite, keeps its rows and index; an attached secret can no
    longer be deleted under its attachment (it was CASCADE before 0020), a script still can."""
    scratch = await at_revision("0019")
    async with scratch.session() as session:
        secret = Secret(name="KEY", ciphertext=b"", salt=b"", nonce=b"")
        session.add(secret)
        await session.flush()
        script_id = await _old_script(session, "deploy", "bash")
        session.add(ScriptSecret(script_id=script_id, secret_id=secret.id))
        await session.commit()
        ids = (script_id, secret.id)
    await upgrade(scratch.engine)
    async with scratch.session() as session:
        (link,) = (await session.exec(select(ScriptSecret))).all()
        assert (link.script_id, link.secret_id) == ids
        with pytest.raises(IntegrityError):
            await session.exec(sql_delete(Secret))
        await session.rollback()
        await session.exec(sql_delete(Script))  # the script's key still cascades
        await session.commit()
        assert (await session.exec(select(ScriptSecret))).all() == []
    async with scratch.engine.connect() as conn:
        indexes = await conn.run_sync(lambda c: [i["name"] for i in inspect(c).get_indexes("script_secrets")])
    assert "ix_script_secrets_secret_id" in indexes


async def test_0026_refolds_search_text_one_letter_for_one_letter(
    at_revision: Callable[[str], Awaitable[Database]],
) -> None:
    """A script stored with `str.lower`'s fold (`İ` an `i` and a combining dot, final `Σ` a `ς`)
    is found by `istanbul` after the upgrade; the others are left as they were."""
    scratch = await at_revision("0025")
    async with scratch.engine.begin() as conn:
        for name, description, tag in (("tr", "İstanbul ΟΔΟΣ", "İZMİR"), ("plain", "Nothing special", "ops")):
            old = "\n".join([name, description, tag]).lower()
            await conn.execute(
                text(
                    "INSERT INTO scripts (name, description, script_type, parameters, version, tags, status,"
                    " search_text, timeout_seconds, memory_mb, cpus, network_enabled, current_version,"
                    " created_at, updated_at, content) VALUES (:name, :description, 'bash', '[]', '1.0.0',"
                    " :tags, 'draft', :old, 60, 512, 0.5, false, 1, :now, :now, 'echo')"
                ),
                {
                    "name": name,
                    "description": description,
                    "tags": json.dumps([tag]),
                    "old": old,
                    "now": datetime(2026, 1, 1),
                },
            )
    await upgrade(scratch.engine)
    async with scratch.engine.connect() as conn:
        rows = dict((await conn.execute(text("SELECT name, search_text FROM scripts"))).all())
    assert rows == {"tr": "tr\nistanbul οδοσ\nizmir", "plain": "plain\nnothing special\nops"}


async def test_0027_keeps_each_inventorys_content_as_its_version_1(
    at_revision: Callable[[str], Awaitable[Database]],
) -> None:
    """An inventory stored before versions existed gets its content as version 1, with the
    SHA-256 its runs recorded, its last editor and time."""
    scratch = await at_revision("0026")
    saved = datetime(2026, 5, 4, 3, 2, 1)
    content = "[web]\nwéb1\n"
    async with scratch.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO inventories (name, description, content, created_at, updated_at)"
                " VALUES ('web', '', :content, :saved, :saved)"
            ),
            {"content": content, "saved": saved},
        )
    await upgrade(scratch.engine)
    async with scratch.engine.connect() as conn:
        version = (await conn.execute(text("SELECT version FROM inventories"))).scalar_one()
        rows = (
            await conn.execute(
                text("SELECT number, content, content_sha256, author_id FROM inventory_versions")
            )
        ).all()
    assert version == 1
    assert [tuple(r) for r in rows] == [(1, content, hashlib.sha256(content.encode()).hexdigest(), None)]


async def test_0028_makes_each_older_refresh_token_its_own_sign_in(
    at_revision: Callable[[str], Awaitable[Database]],
) -> None:
    """Refresh tokens from before families: each is its own family (its jti), signed in when it
    was issued, not rotated; a logged-out one stays revoked."""
    scratch = await at_revision("0027")
    issued, later = datetime(2026, 1, 1), datetime(2026, 1, 8)
    async with scratch.engine.begin() as conn:
        user = {"username": "old", "email": "old@example.com", "full_name": "", "hashed_password": "x"}
        user |= {"role": "admin", "is_active": True, "token_version": 0, "account_key": "0123456789abcdef"}
        user |= {"created_at": issued, "updated_at": issued}
        await conn.execute(
            text(f"INSERT INTO users ({', '.join(user)}) VALUES ({', '.join(f':{k}' for k in user)})"), user
        )
        user_id = (await conn.execute(text("SELECT id FROM users"))).scalar_one()
        for jti, revoked in (("a" * 32, None), ("b" * 32, later)):
            await conn.execute(
                text(
                    "INSERT INTO refresh_tokens (jti, user_id, expires_at, revoked_at, created_at)"
                    " VALUES (:jti, :user_id, :later, :revoked, :issued)"
                ),
                {"jti": jti, "user_id": user_id, "later": later, "revoked": revoked, "issued": issued},
            )
    await upgrade(scratch.engine)
    async with scratch.engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT jti, family_id, signed_in_at, rotated_at, revoked_at IS NOT NULL"
                    " FROM refresh_tokens ORDER BY jti"
                )
            )
        ).all()
    assert [(r[0], r[1], r[3], bool(r[4])) for r in rows] == [
        ("a" * 32, "a" * 32, None, False),
        ("b" * 32, "b" * 32, None, True),
    ]
    assert all(str(r[2]).startswith("2026-01-01") for r in rows), rows


async def test_0030_gives_older_runs_their_stored_size_and_64_bit_counts(
    at_revision: Callable[[str], Awaitable[Database]],
) -> None:
    """Runs from before: a truncated one gets what its stored chunks take (UTF-8 bytes, not what
    it wrote), another what it wrote, one whose output retention removed 0; and a count over
    2 GiB fits afterwards (PostgreSQL's INTEGER refused it)."""
    scratch = await at_revision("0029")
    async with scratch.session() as session:
        script_id = await _old_script(session, "deploy", "bash")
        await session.commit()
    queued = datetime(2026, 1, 1)
    runs = {"kept": (20, False, None), "truncated": (10**9, True, None), "removed": (30, False, queued)}
    async with scratch.engine.begin() as conn:
        for name, (written, truncated, removed_at) in runs.items():
            await conn.execute(
                text(
                    "INSERT INTO executions (script_id, script_version, script_name, script_type,"
                    " status, parameters, output_bytes, output_truncated, cancel_requested,"
                    " queued_at, output_removed_at)"
                    " VALUES (:sid, 1, :name, 'bash', 'success', '{}', :written, :truncated, :no,"
                    " :queued, :removed)"
                ),
                {"sid": script_id, "name": name, "written": written, "truncated": truncated}
                | {"no": False, "queued": queued, "removed": removed_at},
            )
        truncated_id = (
            await conn.execute(text("SELECT id FROM executions WHERE script_name = 'truncated'"))
        ).scalar_one()
        for seq, content in enumerate(["é" * 10, "x" * 5], start=1):
            await conn.execute(
                text(
                    "INSERT INTO execution_logs (execution_id, seq, stream, content, created_at)"
                    " VALUES (:eid, :seq, 'stdout', :content, :queued)"
                ),
                {"eid": truncated_id, "seq": seq, "content": content, "queued": queued},
            )
    await upgrade(scratch.engine)
    async with scratch.engine.begin() as conn:
        rows = (
            await conn.execute(text("SELECT script_name, output_bytes, output_stored_bytes FROM executions"))
        ).all()
        assert sorted(tuple(r) for r in rows) == [
            ("kept", 20, 20),
            ("removed", 30, 0),
            ("truncated", 10**9, 25),
        ]
        await conn.execute(text("UPDATE executions SET output_bytes = :big"), {"big": 5 * 2**31})
        biggest = await conn.execute(text("SELECT max(output_bytes) FROM executions"))
        assert biggest.scalar_one() == 5 * 2**31


async def _finished_runs(scratch: Database, kinds: list[str]) -> list[int]:
    """A script and one finished run of each script type in `kinds`, written as rows of the
    revision 0030-0032 schema (the columns every later one keeps); the runs' ids."""
    async with scratch.session() as session:
        script_id = await _old_script(session, "old", kinds[0])
        await session.commit()
    async with scratch.engine.begin() as conn:
        for kind in kinds:
            await conn.execute(
                text(
                    "INSERT INTO executions (script_id, script_version, script_name, script_type, status,"
                    " parameters, output_bytes, output_truncated, output_stored_bytes, cancel_requested,"
                    " queued_at) VALUES (:sid, 1, 'old', :kind, 'success', '{}', 0, :no, 0, :no, :queued)"
                ),
                {"sid": script_id, "kind": kind, "no": False, "queued": datetime(2026, 1, 1)},
            )
        return list((await conn.execute(text("SELECT id FROM executions ORDER BY id"))).scalars())


async def test_0032_names_the_workspace_of_terraform_runs_from_before(
    at_revision: Callable[[str], Awaitable[Database]],
) -> None:
    """Terraform runs from before used the workspace `default` and say so; other runs have none."""
    scratch = await at_revision("0031")
    await _finished_runs(scratch, ["terraform", "bash"])
    await upgrade(scratch.engine, "0032")
    async with scratch.engine.begin() as conn:
        rows = await conn.execute(text("SELECT script_type, terraform_workspace FROM executions ORDER BY id"))
        assert [tuple(r) for r in rows] == [("terraform", "default"), ("bash", None)]


async def test_0033_gives_each_stored_chunk_its_length_in_characters(
    at_revision: Callable[[str], Awaitable[Database]],
) -> None:
    """Chunks from before get `chars`, their content's length in characters (not UTF-8 bytes; on
    SQLite also past a NUL, where SQL's `length` stops), and the index that pages of stored
    output are bounded from; a chunk written afterwards through the model gets it from its
    content."""
    scratch = await at_revision("0032")
    [execution_id] = await _finished_runs(scratch, ["bash"])
    queued = datetime(2026, 1, 1)
    contents = ["é" * 10, "x" * 5, "😀 ok\r\n", "\x1b[31mred\x1b[0m" * 1000]
    sqlite = scratch.engine.dialect.name == "sqlite"
    if sqlite:  # output stored before NULs became U+FFFD (PostgreSQL never held one)
        contents.append("find\x00-print0\x00é")
    async with scratch.engine.begin() as conn:
        for seq, content in enumerate(contents, start=1):
            await conn.execute(
                text(
                    "INSERT INTO execution_logs (execution_id, seq, stream, content, created_at)"
                    " VALUES (:eid, :seq, 'stdout', :content, :queued)"
                ),
                {"eid": execution_id, "seq": seq, "content": content, "queued": queued},
            )
    await upgrade(scratch.engine)
    async with scratch.engine.begin() as conn:
        await conn.execute(
            sql_insert(ExecutionLog),
            [{"execution_id": execution_id, "seq": 9, "stream": "stderr", "content": "ü" * 7}],
        )
        rows = (await conn.execute(text("SELECT seq, chars FROM execution_logs ORDER BY seq"))).all()
        indexes = await conn.run_sync(lambda c: inspect(c).get_indexes("execution_logs"))
    assert [tuple(row) for row in rows] == [
        (1, 10),
        (2, 5),
        (3, 6),
        (4, 12000),
        *([(5, 14)] if sqlite else []),
        (9, 7),
    ]
    assert {"name": "ix_execution_logs_page", "columns": ["execution_id", "seq", "chars", "stream"]} in [
        {"name": index["name"], "columns": index["column_names"]} for index in indexes
    ]


KINDS = ("terraform", "bash")
# A schedule and a webhook of script :sid and a link from script :src starting it, as rows of
# the revision 0033 schema.
ROWS_0033 = (
    "INSERT INTO schedules (script_id, name, name_key, cron, timezone, parameters, enabled, missed_policy,"
    " overlap_policy, created_at, updated_at) VALUES (:sid, :k, :k, '0 3 * * *', 'UTC', '{}', :yes,"
    " 'run_once', 'skip', :now, :now)",
    "INSERT INTO webhook_triggers (script_id, name, name_key, token_hash, prefix, mapping, parameters,"
    " enabled, created_at) VALUES (:sid, :k, :k, :k, 'och_', '{}', '{}', :yes, :now)",
    "INSERT INTO chain_links (script_id, target_script_id, outcome, mapping, parameters, enabled,"
    " created_at, updated_at) VALUES (:src, :sid, 'success', '{}', '{}', :yes, :now, :now)",
)


async def test_0034_says_plan_in_default_for_the_automation_of_terraform_scripts(
    at_revision: Callable[[str], Awaitable[Database]],
) -> None:
    """Schedules and webhooks of a Terraform script, links whose target is one, started `plan`
    in `default`: from 0034 on they say so; those of other scripts name no Terraform choice."""
    scratch = await at_revision("0033")
    now = datetime(2026, 1, 1)
    async with scratch.session() as session:
        ids = {kind: await _old_script(session, kind, kind) for kind in KINDS}
        await session.commit()
    other = {"terraform": ids["bash"], "bash": ids["terraform"]}
    async with scratch.engine.begin() as conn:
        for kind, script_id in ids.items():  # its schedule, its webhook, a link starting it
            for statement in ROWS_0033:
                values = {"sid": script_id, "src": other[kind], "k": kind, "yes": True, "now": now}
                await conn.execute(text(statement), values)
    await upgrade(scratch.engine)
    async with scratch.engine.begin() as conn:
        for table, script in (
            ("schedules", "script_id"),
            ("webhook_triggers", "script_id"),
            ("chain_links", "target_script_id"),
        ):
            rows = await conn.execute(
                text(
                    f"SELECT s.script_type, t.terraform_action, t.terraform_workspace FROM {table} t"
                    f" JOIN scripts s ON s.id = t.{script} ORDER BY s.script_type"
                )
            )
            assert [tuple(r) for r in rows] == [("bash", None, None), ("terraform", "plan", "default")], table


AUTOMATION_TABLES = ("schedules", "webhook_triggers", "chain_links")


def _downgrade_to(connection: Connection, revision: str) -> None:
    """Alembic's downgrade on `connection` (OpsCraft itself never downgrades: the tests check
    that each migration's `downgrade` is still sound)."""
    from alembic import command

    config = alembic_config()
    config.attributes["connection"] = connection
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SAWarning)  # SQLite's batch rebuild reflects the tables
        command.downgrade(config, revision)


async def _downgrade(scratch: Database, revision: str) -> None:
    """Downgrade `scratch` to `revision` as `upgrade` runs a migration: on SQLite with foreign
    keys off (a table rebuild)."""
    async with scratch.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            await conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            await conn.commit()
        await conn.run_sync(_downgrade_to, revision)
        await conn.commit()


async def test_0035_gives_automation_no_ansible_options_and_downgrades(
    at_revision: Callable[[str], Awaitable[Database]],
) -> None:
    """Schedules, webhooks and links from before 0035 started their Ansible runs with no
    options: from 0035 on their `run_options` say none (NULL), and the rows are otherwise kept;
    options stored later read back as written; the downgrade drops the column, keeping the rows."""
    scratch = await at_revision("0034")
    now = datetime(2026, 1, 1)
    async with scratch.session() as session:
        target, source = [await _old_script(session, name, "ansible") for name in ("a", "b")]
        await session.commit()
    async with scratch.engine.begin() as conn:
        for statement in ROWS_0033:  # 0034 added only nullable columns to these tables
            values = {"sid": target, "src": source, "k": "old", "yes": True, "now": now}
            await conn.execute(text(statement), values)
    await upgrade(scratch.engine, "0035")
    options = {"limit": "web1", "tags": ["deploy"], "check": True}
    async with scratch.engine.begin() as conn:
        for table in AUTOMATION_TABLES:
            rows = await conn.execute(text(f"SELECT enabled, run_options FROM {table}"))
            assert [tuple(r) for r in rows] == [(True, None)], table
    async with scratch.session() as session:
        schedule = (await session.exec(select(Schedule))).one()
        schedule.run_options = options
        await session.commit()
    async with scratch.session() as session:
        assert (await session.exec(select(Schedule))).one().run_options == options
    await _downgrade(scratch, "0034")
    async with scratch.engine.connect() as conn:
        assert await current_revision(scratch.engine) == "0034"
        for table in AUTOMATION_TABLES:
            columns = await conn.run_sync(
                lambda sync, t=table: [c["name"] for c in inspect(sync).get_columns(t)]
            )
            assert "run_options" not in columns and "terraform_action" in columns, (table, columns)
            assert (await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one() == 1, table


async def test_a_database_migrated_by_a_newer_version_is_refused_as_it_is(
    at_revision: Callable[[str | None], Awaitable[Database]],
) -> None:
    """A database at a revision this version has no script for (a newer OpsCraft upgraded it,
    then an older one was started on it) is refused with what to do, and left as it is: Alembic
    answered "Can't locate revision identified by '0099'" in a traceback."""
    scratch = await at_revision(HEAD)  # the way there is tested from empty above
    assert await current_revision(scratch.engine) == HEAD
    async with scratch.engine.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    with pytest.raises(MigrationError) as refused:
        await upgrade(scratch.engine)
    assert str(refused.value) == (
        f"the database is at schema revision 0099, which this version of OpsCraft (schema {HEAD}) "
        "does not know: a newer version upgraded it. Run that version, or restore the backup made "
        "before the upgrade; OpsCraft never downgrades a database"
    )
    assert await current_revision(scratch.engine) == "0099"


async def test_0037_gives_each_host_of_a_stored_summary_its_row(
    at_revision: Callable[[str], Awaitable[Database]],
) -> None:
    """The per-host summaries stored before 0037 (0036's JSON) get their hosts' rows, so the
    history's host filter finds those runs too: each name once (two `***` added up), with the
    run's queued_at; an item that is no host (a row edited by hand) is left out."""
    scratch = await at_revision("0036")
    queued = datetime(2026, 12, 1, 8, 30, 15, 123456)
    async with scratch.session() as session:
        script_id = await _old_script(session, "play", "ansible")
        await session.commit()
    counts = {"ok": 1, "changed": 0, "unreachable": 0, "failed": 0, "skipped": 0, "rescued": 0, "ignored": 0}
    hosts = [
        {**counts, "host": "db1", "failed": 2},
        {**counts, "host": "***", "unreachable": 1},
        {**counts, "host": "***", "changed": 3},
        {"ok": 1},
        {**counts, "host": "web-01"},
    ]
    async with scratch.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO executions (id, script_id, script_version, script_name, script_type, status,"
                " parameters, trigger, output_bytes, output_truncated, output_stored_bytes, draft,"
                " cancel_requested, queued_at) VALUES (7, :sid, 1, 'play', 'ansible', 'failed', '{}', 'api',"
                " 0, :no, 0, :no, :no, :queued)"
            ),
            {"sid": script_id, "no": False, "queued": queued},
        )
        await conn.execute(
            text(
                "INSERT INTO execution_host_summaries (execution_id, hosts, host_count, totals)"
                " VALUES (7, :hosts, 5, '{}')"
            ),
            {"hosts": json.dumps(hosts)},
        )
    await upgrade(scratch.engine, "0037")
    async with scratch.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT execution_id, host, queued_at, changed, unreachable, failed FROM execution_hosts"
                " ORDER BY host"
            )
        )
        found = [tuple(r) for r in rows]
    stamp = [r[2] for r in found]
    assert [r[:2] + r[3:] for r in found] == [
        (7, "***", 3, 1, 0),
        (7, "db1", 0, 0, 2),
        (7, "web-01", 0, 0, 0),
    ]
    assert {str(s)[:26] for s in stamp} == {"2026-12-01 08:30:15.123456"}, stamp


async def test_0039_puts_search_text_in_nfc_so_a_composed_term_finds_it(
    at_revision: Callable[[str], Awaitable[Database]], backend: str
) -> None:
    """A script whose `search_text` was stored decomposed (`cafe` + U+0301, saved before the NFC
    rule) is in NFC after the upgrade: `café` typed finds it and `cafe` no longer does; a
    script already in NFC is left as it was."""
    scratch = await at_revision("0038")
    async with scratch.engine.begin() as conn:
        for name, stored in (("old", "old\ncafe\u0301 menu\nops"), ("new", "new\ncaf\u00e9\n")):
            await conn.execute(
                text(
                    "INSERT INTO scripts (name, description, script_type, parameters, version, tags, status,"
                    " search_text, timeout_seconds, memory_mb, cpus, network_enabled, current_version,"
                    " created_at, updated_at, content) VALUES (:name, '', 'bash', '[]', '1.0.0',"
                    " '[]', 'draft', :stored, 60, 512, 0.5, false, 1, :now, :now, 'echo')"
                ),
                {"name": name, "stored": stored, "now": datetime(2026, 1, 1)},
            )
    await upgrade(scratch.engine)
    async with scratch.engine.connect() as conn:
        rows = dict((await conn.execute(text("SELECT name, search_text FROM scripts"))).all())
        assert rows == {"old": "old\ncaf\u00e9 menu\nops", "new": "new\ncaf\u00e9\n"}, rows
        found = await conn.execute(
            text("SELECT name FROM scripts WHERE search_text LIKE :term ORDER BY name"),
            {"term": "%caf\u00e9%"},
        )
        assert found.scalars().all() == ["new", "old"]
        plain = await conn.execute(text("SELECT name FROM scripts WHERE search_text LIKE '%cafe%'"))
        assert plain.scalars().all() == []


async def test_0039_folds_the_history_s_host_rows_adding_up_names_that_fold_alike(
    at_revision: Callable[[str], Awaitable[Database]],
) -> None:
    """Host rows of earlier runs kept as the recap printed them are in lower case and NFC after
    the upgrade (as `?host=` now looks them up): `DB1` and `db1` of one run one row, counts added;
    a name alone is moved; a name already folded is left."""
    scratch = await at_revision("0038")
    async with scratch.session() as session:
        script_id = await _old_script(session, "play", "ansible")
        runs = [
            Execution(script_id=script_id, script_version=1, script_name="play", script_type="ansible")
            for _ in range(2)
        ]
        session.add_all(runs)
        await session.flush()
        first, second = (run.id for run in runs)
        queued = runs[0].queued_at
        rows = [
            (first, "DB1", 0, 1, 1),
            (first, "db1", 1, 0, 0),
            (first, "Cafe\u0301", 0, 0, 0),
            (second, "DB1", 1, 0, 0),
            (second, "web", 0, 0, 2),
        ]
        for execution_id, host, changed, unreachable, failed in rows:
            session.add(
                ExecutionHost(
                    execution_id=execution_id,
                    host=host,
                    queued_at=queued,
                    changed=changed,
                    unreachable=unreachable,
                    failed=failed,
                )
            )
        await session.commit()
    await upgrade(scratch.engine)
    async with scratch.engine.connect() as conn:
        found = await conn.execute(
            text(
                "SELECT execution_id, host, changed, unreachable, failed FROM execution_hosts"
                " ORDER BY execution_id, host"
            )
        )
        assert [tuple(row) for row in found.all()] == [
            (first, "caf\u00e9", 0, 0, 0),
            (first, "db1", 1, 1, 1),
            (second, "db1", 1, 0, 0),
            (second, "web", 0, 0, 2),
        ]


async def test_0041_lets_viewers_of_earlier_scripts_choose_run_options_as_before(
    at_revision: Callable[[str], Awaitable[Database]],
) -> None:
    """Scripts from before 0041 allowed every runner to choose an Ansible run's options: after
    the upgrade they say so (`viewers_choose_run_options` true), the rebuilt table keeps its
    unique live-name index, and a later script can switch it off; the downgrade drops the
    column and keeps the rows."""
    scratch = await at_revision("0040")
    async with scratch.session() as session:
        old = await _old_script(session, "play", "ansible")
        await session.commit()
    await upgrade(scratch.engine, "0041")
    async with scratch.session() as session:
        assert (await session.get_one(Script, old)).viewers_choose_run_options is True
        session.add(Script(name="PLAY", script_type="ansible", content="x\n", search_text="play"))
        with pytest.raises(IntegrityError, match=r"(?i)unique"):
            await session.flush()
        await session.rollback()
        session.add(
            Script(name="closed", script_type="ansible", content="x\n", viewers_choose_run_options=False)
        )
        await session.commit()
    async with scratch.engine.connect() as conn:
        rows = await conn.execute(text("SELECT name, viewers_choose_run_options FROM scripts ORDER BY id"))
        assert [(name, bool(allowed)) for name, allowed in rows] == [("play", True), ("closed", False)]
    await _downgrade(scratch, "0040")
    async with scratch.engine.connect() as conn:
        columns = await conn.run_sync(lambda sync: [c["name"] for c in inspect(sync).get_columns("scripts")])
        assert "viewers_choose_run_options" not in columns
        names = await conn.execute(text("SELECT name FROM scripts ORDER BY id"))
        assert names.scalars().all() == ["play", "closed"]


async def test_0043_unmarks_runs_that_wrote_nothing_and_keeps_the_removed_ones_marked(
    at_revision: Callable[[str], Awaitable[Database]],
) -> None:
    """Retention marked a run with no output as "output removed by retention": 0043 unmarks a
    run that wrote nothing, keeps a run whose output was removed marked, and the downgrade keeps
    the rows."""
    scratch = await at_revision("0042")
    async with scratch.session() as session:
        script_id = await _old_script(session, "old", "bash")
        await session.commit()
    removed_at = datetime(2026, 2, 1)
    runs = {"quiet": (0, 0, removed_at), "removed": (30, 0, removed_at), "kept": (20, 20, None)}
    async with scratch.engine.begin() as conn:
        for name, (written, stored, removed) in runs.items():
            await conn.execute(
                text(
                    "INSERT INTO executions (script_id, script_version, script_name, script_type, status,"
                    " parameters, output_bytes, output_truncated, output_stored_bytes, cancel_requested,"
                    " queued_at, output_removed_at)"
                    " VALUES (:sid, 1, :name, 'bash', 'success', '{}', :written, :no, :stored, :no,"
                    " :queued, :removed)"
                ),
                {"sid": script_id, "name": name, "written": written, "stored": stored}
                | {"no": False, "queued": datetime(2026, 1, 1), "removed": removed},
            )
    query = text("SELECT script_name, output_removed_at IS NOT NULL FROM executions ORDER BY id")
    await upgrade(scratch.engine, "0043")
    async with scratch.engine.connect() as conn:
        marked = [(name, bool(flag)) for name, flag in await conn.execute(query)]
    assert marked == [("quiet", False), ("removed", True), ("kept", False)]
    await _downgrade(scratch, "0042")
    async with scratch.engine.connect() as conn:
        assert [(name, bool(flag)) for name, flag in await conn.execute(query)] == marked


async def test_0044_deletes_the_webhooks_of_deleted_scripts_and_keeps_the_others(
    at_revision: Callable[[str], Awaitable[Database]],
) -> None:
    """A webhook of a script deleted before 0044 (signed, with a kept signature) is deleted with
    its signature, so its secret can be deleted; a live script's webhook stays."""
    scratch = await at_revision("0043")
    async with scratch.session() as session:
        live, gone = await _old_script(session, "live", "bash"), await _old_script(session, "gone", "bash")
        connection = await session.connection()
        await connection.execute(
            text("UPDATE scripts SET deleted_at = created_at WHERE id = :id"), {"id": gone}
        )
        hook = text(
            "INSERT INTO webhook_triggers (script_id, name, name_key, prefix, token_hash, mapping,"
            " parameters, enabled, signature_scheme, created_at) VALUES (:script, 'push', 'push', :prefix,"
            " :hash, '{}', '{}', :yes, 'opscraft', :now) RETURNING id"
        )
        ids = {}
        for script_id in (live, gone):
            values = {"script": script_id, "prefix": f"och_{script_id}", "hash": f"{script_id:064d}"}
            values |= {"yes": True, "now": datetime(2026, 1, 1)}
            ids[script_id] = int((await connection.execute(hook, values)).scalar_one())
        signature = text(
            "INSERT INTO webhook_signatures (webhook_id, signature, signed_at) VALUES (:id, 'd', :at)"
        )
        await connection.execute(signature, {"id": ids[gone], "at": datetime(2026, 1, 2)})
        await session.commit()
    await upgrade(scratch.engine, "0044")
    async with scratch.engine.connect() as conn:
        rows = await conn.execute(text("SELECT id FROM webhook_triggers"))
        assert rows.scalars().all() == [ids[live]]
        assert (await conn.execute(text("SELECT count(*) FROM webhook_signatures"))).scalar_one() == 0


async def test_0045_adds_the_previous_values_of_secrets_and_downgrades_keeping_the_secrets(
    at_revision: Callable[[str], Awaitable[Database]],
) -> None:
    """0045 adds `secret_previous_values` (no secret had a previous value before); a previous
    value goes with its secret (ON DELETE CASCADE: a deleted secret leaves no value behind); the
    downgrade drops the table and keeps the secrets."""
    scratch = await at_revision("0044")
    async with scratch.session() as session:
        rows = [Secret(name=name, ciphertext=b"c", salt=b"s", nonce=b"n") for name in ("KEPT", "GONE")]
        session.add_all(rows)
        await session.commit()
        ids = [row.id for row in rows]
    await upgrade(scratch.engine, "0045")
    async with scratch.engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM secret_previous_values"))).scalar_one() == 0
    async with scratch.session() as session:
        for secret_id in ids:
            assert secret_id is not None
            until = datetime(2026, 1, 1, 1)
            session.add(
                SecretPreviousValue(
                    secret_id=secret_id, ciphertext=b"p", salt=b"s", nonce=b"n", accepted_until=until
                )
            )
        await session.commit()
    async with scratch.session() as session:
        await session.exec(sql_delete(Secret).where(col(Secret.id) == ids[1]))
        await session.commit()
        rows = (await session.exec(select(SecretPreviousValue.secret_id))).all()
        assert rows == [ids[0]]
    await _downgrade(scratch, "0044")
    async with scratch.engine.connect() as conn:
        tables = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
        assert "secret_previous_values" not in tables
        assert (await conn.execute(text("SELECT name FROM secrets"))).scalars().all() == ["KEPT"]


async def test_0046_adds_browser_sign_ins_gone_with_their_user_and_downgrades_keeping_the_users(
    at_revision: Callable[[str], Awaitable[Database]],
) -> None:
    """0046 adds `browser_sign_ins` (no sign-in was recorded before: a browser session from
    before ends at its next request); a sign-in goes with its user (ON DELETE CASCADE); the
    downgrade drops the table and keeps the users."""
    scratch = await at_revision("0045")
    async with scratch.session() as session:
        rows = [
            User(username=name, email=f"{name}@example.com", hashed_password="h", role="viewer")
            for name in ("kept", "gone")
        ]
        session.add_all(rows)
        await session.commit()
        ids = [row.id for row in rows]
        keys = [row.account_key for row in rows]
    await upgrade(scratch.engine, "0046")
    async with scratch.session() as session:
        for user_id, key, sign_in in zip(ids, keys, ("a" * 32, "b" * 32), strict=True):
            assert user_id is not None
            at = datetime(2026, 1, 1, 1)
            session.add(
                BrowserSignIn(id=sign_in, user_id=user_id, signed_in_at=at, token_version=0, account_key=key)
            )
        await session.commit()
    async with scratch.session() as session:
        await session.exec(sql_delete(User).where(col(User.id) == ids[1]))
        await session.commit()
        assert (await session.exec(select(BrowserSignIn.id))).all() == ["a" * 32]
    await _downgrade(scratch, "0045")
    async with scratch.engine.connect() as conn:
        tables = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
        assert "browser_sign_ins" not in tables
        assert (await conn.execute(text("SELECT username FROM users"))).scalars().all() == ["kept"]


async def test_0047_adds_idempotency_keys_gone_with_their_user_and_downgrades_keeping_the_users(
    at_revision: Callable[[str], Awaitable[Database]],
) -> None:
    """0047 adds `idempotency_keys` (no key was kept before); a key goes with its user (ON DELETE
    CASCADE); the downgrade drops the table and keeps the users."""
    scratch = await at_revision("0046")
    async with scratch.session() as session:
        rows = [
            User(username=name, email=f"{name}@example.com", hashed_password="h", role="viewer")
            for name in ("kept", "gone")
        ]
        session.add_all(rows)
        await session.commit()
        ids = [row.id for row in rows]
    await upgrade(scratch.engine, "0047")
    async with scratch.session() as session:
        at = datetime(2026, 1, 1, 1)
        for user_id in ids:
            assert user_id is not None
            session.add(
                IdempotencyKey(user_id=user_id, key="k", fingerprint="f" * 64, created_at=at, expires_at=at)
            )
        await session.commit()
    async with scratch.session() as session:
        await session.exec(sql_delete(User).where(col(User.id) == ids[1]))
        await session.commit()
        assert (await session.exec(select(IdempotencyKey.user_id))).all() == [ids[0]]
    await _downgrade(scratch, "0046")
    async with scratch.engine.connect() as conn:
        tables = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
        assert "idempotency_keys" not in tables
        assert (await conn.execute(text("SELECT username FROM users"))).scalars().all() == ["kept"]


async def test_0048_gives_started_chained_runs_their_links_author_and_downgrades(
    at_revision: Callable[[str], Awaitable[Database]],
) -> None:
    """0048 adds `chain_runs.author_id` (who may not approve the run: services/approvals.py): a
    firing from before that started a run takes its link's author, one that started nothing
    has none; the author's deletion empties it (ON DELETE SET NULL); the downgrade drops the
    column and keeps the firings."""
    scratch = await at_revision("0047")
    source, started, later = await _finished_runs(scratch, ["bash", "bash", "bash"])
    now = datetime(2026, 1, 1)
    async with scratch.engine.begin() as conn:
        await _add_user(conn, "linker")
        owner = (await conn.execute(text("SELECT id FROM users WHERE username = 'linker'"))).scalar_one()
        script = await conn.execute(text("SELECT script_id FROM executions WHERE id = :id"), {"id": source})
        script_id = script.scalar_one()
        await conn.execute(
            text(
                "INSERT INTO chain_links (script_id, target_script_id, outcome, mapping, parameters,"
                " enabled, owner_id, created_at, updated_at)"
                " VALUES (:s, :s, 'success', '{}', '{}', :yes, :o, :now, :now)"
            ),
            {"s": script_id, "o": owner, "yes": True, "now": now},
        )
        link = (await conn.execute(text("SELECT id FROM chain_links"))).scalar_one()
        for src, execution_id, status in ((source, started, "started"), (later, None, "pending")):
            await conn.execute(
                text(
                    "INSERT INTO chain_runs (link_id, source_execution_id, target_script_id, execution_id,"
                    " status, parameters, depth, created_at) VALUES (:l, :src, :s, :e, :st, '{}', 1, :now)"
                ),
                {"l": link, "src": src, "s": script_id, "e": execution_id, "st": status, "now": now},
            )
    await upgrade(scratch.engine, "0048")
    authors = "SELECT status, author_id FROM chain_runs ORDER BY id"
    async with scratch.engine.begin() as conn:
        rows = [tuple(r) for r in await conn.execute(text(authors))]
        assert rows == [("started", owner), ("pending", None)]
    async with scratch.session() as session:
        await session.exec(sql_delete(User).where(col(User.id) == owner))
        await session.commit()
    async with scratch.engine.begin() as conn:
        assert [tuple(r) for r in await conn.execute(text(authors))] == [("started", None), ("pending", None)]
    await _downgrade(scratch, "0047")
    async with scratch.engine.connect() as conn:
        columns = await conn.run_sync(lambda c: {col["name"] for col in inspect(c).get_columns("chain_runs")})
        assert "author_id" not in columns
        assert (await conn.execute(text("SELECT count(*) FROM chain_runs"))).scalar_one() == 2
