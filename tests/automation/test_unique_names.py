"""Names people tell objects apart by are unique in their scope, ignoring case (services/names.py):
a script's schedules and webhooks, a user's tokens in use, the notification channels. A clash is
a 409 naming `name` on create and on update, also when two requests race, and nothing is stored;
existing duplicates are renamed, not lost, when the database is upgraded (migrations 0015 to 0017)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy import func
from sqlalchemy import text as sql_text
from sqlmodel import select

import opscraft.db.models  # noqa: F401  (registers the tables)
from opscraft import runtime
from opscraft.db.engine import Database
from opscraft.db.migrate import upgrade
from opscraft.db.models import (
    ApiToken,
    Inventory,
    NotificationChannel,
    Schedule,
    Script,
    User,
    WebhookTrigger,
)
from opscraft.db.types import utcnow
from opscraft.services import names
from tests.conftest import LoggedIn, postgres_scratch_database

SAME_NAMES = [
    "nightly",
    "Nightly",
    " NIGHTLY ",
    "\uff2e\uff49\uff47\uff48\uff54\uff4c\uff59",
]  # last: full width


async def _script(client: httpx.AsyncClient, who: LoggedIn) -> int:
    body = {
        "name": f"s-{time.monotonic_ns()}",
        "script_type": "bash",
        "content": "true\n",
        "status": "active",
    }
    r = await client.post("/api/v1/scripts", json=body, headers=who.headers)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def _refused(r: httpx.Response, message: str) -> None:
    assert r.status_code == 409, r.text
    assert r.json()["errors"] == [{"field": "name", "message": message}], r.text


@pytest.mark.parametrize(
    ("kind", "message"), [("schedules", names.SCHEDULE_TAKEN), ("webhooks", names.WEBHOOK_TAKEN)]
)
async def test_a_scripts_schedules_and_webhooks_have_unique_names(
    client: httpx.AsyncClient, operator: LoggedIn, backend: str, kind: str, message: str
) -> None:
    body = {"schedules": {"cron": "0 3 * * *"}, "webhooks": {}}[kind]
    first, second = await _script(client, operator), await _script(client, operator)
    url = f"/api/v1/scripts/{first}/{kind}"
    r = await client.post(url, json={"name": SAME_NAMES[0], **body}, headers=operator.headers)
    assert r.status_code == 201, r.text
    for same in SAME_NAMES[1:]:
        _refused(await client.post(url, json={"name": same, **body}, headers=operator.headers), message)
    # Another script may use the name; the script's own object keeps it on update.
    other = f"/api/v1/scripts/{second}/{kind}"
    assert (
        await client.post(other, json={"name": "Nightly", **body}, headers=operator.headers)
    ).status_code == 201
    own = r.json()["id"]
    kept = await client.put(f"{url}/{own}", json={"name": "NIGHTLY", **body}, headers=operator.headers)
    assert kept.status_code == 200 and kept.json()["name"] == "NIGHTLY", kept.text
    r = await client.post(url, json={"name": "weekly", **body}, headers=operator.headers)
    assert r.status_code == 201, r.text
    renamed = await client.put(
        f"{url}/{r.json()['id']}", json={"name": "nightly", **body}, headers=operator.headers
    )
    _refused(renamed, message)
    listed = (await client.get(url, headers=operator.headers)).json()["items"]
    assert sorted(item["name"] for item in listed) == ["NIGHTLY", "weekly"]


async def test_two_creates_of_one_name_at_once_store_one(
    client: httpx.AsyncClient, operator: LoggedIn, backend: str
) -> None:
    """The database's unique index has the last word when both pass the services' check (ASCII
    case variants here; `FOLDED` has the others)."""
    script_id = await _script(client, operator)
    url = f"/api/v1/scripts/{script_id}/schedules"
    answers = await asyncio.gather(
        *(
            client.post(url, json={"name": name, "cron": "0 3 * * *"}, headers=operator.headers)
            for name in ["nightly", "Nightly", " NIGHTLY ", "nightlY"]
        )
    )
    assert sorted(r.status_code for r in answers) == [201, 409, 409, 409], [r.text for r in answers]
    for r in answers:
        if r.status_code == 409:
            _refused(r, names.SCHEDULE_TAKEN)
    assert len((await client.get(url, headers=operator.headers)).json()["items"]) == 1


async def test_a_users_tokens_in_use_have_unique_names(
    client: httpx.AsyncClient, operator: LoggedIn, viewer: LoggedIn, backend: str
) -> None:
    r = await client.post("/api/v1/tokens", json={"name": "ci"}, headers=operator.headers)
    assert r.status_code == 201, r.text
    _refused(
        await client.post("/api/v1/tokens", json={"name": " CI "}, headers=operator.headers),
        names.TOKEN_TAKEN,
    )
    assert (
        await client.post("/api/v1/tokens", json={"name": "ci"}, headers=viewer.headers)
    ).status_code == 201
    assert (
        await client.delete(f"/api/v1/tokens/{r.json()['id']}", headers=operator.headers)
    ).status_code == 204
    again = await client.post("/api/v1/tokens", json={"name": "CI"}, headers=operator.headers)
    assert again.status_code == 201, again.text  # a revoked token's name is free again
    mine = (await client.get("/api/v1/tokens", headers=operator.headers)).json()
    assert sorted((t["name"], t["active"]) for t in mine["items"]) == [("CI", True), ("ci", False)]


async def test_notification_channels_have_unique_names_ignoring_case(
    client: httpx.AsyncClient, admin: LoggedIn, backend: str
) -> None:
    url = "/api/v1/notifications/channels"
    body: dict[str, Any] = {"kind": "webhook", "config": {"url": "https://example.com/hook"}}
    first = await client.post(url, json={"name": "Ops", **body}, headers=admin.headers)
    assert first.status_code == 201, first.text
    _refused(await client.post(url, json={"name": "ops", **body}, headers=admin.headers), names.CHANNEL_TAKEN)
    second = await client.post(url, json={"name": "dev", **body}, headers=admin.headers)
    renamed = await client.put(
        f"{url}/{second.json()['id']}", json={"name": "OPS", **body}, headers=admin.headers
    )
    _refused(renamed, names.CHANNEL_TAKEN)
    assert sorted(c["name"] for c in (await client.get(url, headers=admin.headers)).json()["items"]) == [
        "Ops",
        "dev",
    ]
    # A channel takes a variant of its own name (full width here): its stored key stays its own.
    own = await client.put(
        f"{url}/{first.json()['id']}", json={"name": "\uff2f\uff50\uff53", **body}, headers=admin.headers
    )
    assert own.status_code == 200 and own.json()["name"] == "\uff2f\uff50\uff53", own.text
    _refused(await client.post(url, json={"name": "OPS", **body}, headers=admin.headers), names.CHANNEL_TAKEN)


@pytest.fixture
async def scratch(backend: str, tmp_path: Path) -> AsyncIterator[Database]:
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


async def _old_user(s: Any) -> User:
    """A user row of a database before 0016 (no `account_key` yet)."""
    await s.exec(
        sql_text(
            "INSERT INTO users (username, email, full_name, hashed_password, role, is_active, token_version,"
            " created_at, updated_at) VALUES ('old', 'old@example.com', '', 'x', 'admin', true, 0,"
            " '2024-01-01', '2024-01-01')"
        )
    )
    user_id = (await s.exec(sql_text("SELECT id FROM users WHERE username = 'old'"))).one()[0]
    return User(id=user_id, username="old", email="", hashed_password="x")


async def _old_insert(s: Any, row: Any) -> None:
    """Insert `row` into a database at an older revision: the columns the row has a value for and
    the table has at that revision (read from the database: a column added since, `name_key` in
    0017 or any later one, is left out), through a table clause that knows no defaults."""
    table = type(row).__table__
    connection = await s.connection()
    present = await connection.run_sync(
        lambda sync: {column["name"] for column in sa.inspect(sync).get_columns(table.name)}
    )
    columns = [c for c in table.columns if c.name in present and getattr(row, c.name) is not None]
    bare = sa.table(table.name, *(sa.column(c.name, c.type) for c in columns))
    await s.exec(sa.insert(bare).values({c.name: getattr(row, c.name) for c in columns}))


async def test_upgrading_renames_existing_duplicates_and_keeps_every_row(scratch: Database) -> None:
    await upgrade(scratch.engine, "0014")
    long = "x" * 64
    async with scratch.session() as s:
        user = await _old_user(s)
        one, two = 1, 2
        old_rows: list[Any] = [
            Script(id=i, name=f"s{i}", script_type="bash", content="true\n", created_by=user.id)
            for i in (one, two)
        ]
        old_rows += [
            Schedule(script_id=script_id, name=name, cron="0 3 * * *", timezone="UTC")
            for script_id, name in [
                (one, "nightly"),
                (one, "Nightly"),
                (one, "nightly (2)"),
                (one, long),
                (one, long),
                (two, "NIGHTLY"),
            ]
        ]
        old_rows += [
            WebhookTrigger(script_id=one, name=n, token_hash=n + "h", prefix="p") for n in ("push", "PUSH")
        ]
        old_rows += [
            ApiToken(
                user_id=user.id, name="ci", prefix="a", token_hash="a", role="admin", revoked_at=utcnow()
            ),
            ApiToken(user_id=user.id, name="ci", prefix="b", token_hash="b", role="admin"),
            ApiToken(user_id=user.id, name="CI", prefix="c", token_hash="c", role="admin"),
        ]
        for row in old_rows:
            await _old_insert(s, row)
        await s.commit()
    await upgrade(scratch.engine)
    async with scratch.session() as s:
        schedules = [
            (r.script_id, r.name) for r in (await s.exec(select(Schedule).order_by(Schedule.id))).all()
        ]
        hooks = [r.name for r in (await s.exec(select(WebhookTrigger).order_by(WebhookTrigger.id))).all()]
        tokens = [r.name for r in (await s.exec(select(ApiToken).order_by(ApiToken.id))).all()]
    assert schedules == [
        (one, "nightly"),
        (one, "Nightly (3)"),  # " (2)" is another schedule's name
        (one, "nightly (2)"),
        (one, long),
        (one, "x" * 60 + " (2)"),
        (two, "NIGHTLY"),
    ]
    assert hooks == ["push", "PUSH (2)"]
    assert tokens == ["ci", "ci", "CI (2)"]  # the revoked token is not in use: it keeps its name


RACING = ["race-x", "RACE-X", "Race-X", "rAce-x", "race-X", "RACE-x"]
# kind -> (URL, body for a name, field the 409 names, listing query that finds the rows)
RACES: dict[str, tuple[str, Any, str]] = {
    "scripts": (
        "/api/v1/scripts",
        lambda name: {"name": name, "script_type": "bash", "content": "true\n", "status": "active"},
        "name",
    ),
    "users": (
        "/api/v1/users",
        lambda name: {
            "username": name,
            "email": f"{name}-{time.monotonic_ns()}@example.com",
            "password": "Correct-Horse-9",
            "role": "viewer",
        },
        "username",
    ),
    "inventories": ("/api/v1/inventories", lambda name: {"name": name, "content": "[web]\nweb1\n"}, "name"),
    "channels": (
        "/api/v1/notifications/channels",
        lambda name: {"name": name, "kind": "webhook", "config": {"url": "https://example.com/hook"}},
        "name",
    ),
}


@pytest.mark.parametrize("kind", RACES)
async def test_one_name_in_any_case_created_at_once_stores_one(
    client: httpx.AsyncClient, admin: LoggedIn, backend: str, kind: str
) -> None:
    """Concurrent creates of one name in different cases: one 201, the others 409 naming the
    field, and one row (the database's unique index decides the race)."""
    url, body, field = RACES[kind]
    answers = await asyncio.gather(
        *(client.post(url, json=body(name), headers=admin.headers) for name in RACING)
    )
    codes = sorted(r.status_code for r in answers)
    assert codes == [201] + [409] * (len(RACING) - 1), [r.text for r in answers]
    for r in answers:
        if r.status_code == 409:
            assert [e["field"] for e in r.json()["errors"]] == [field], r.text
    async with runtime.current().db.session() as s:
        model, column = {
            "scripts": (Script, Script.name),
            "users": (User, User.username),
            "inventories": (Inventory, Inventory.name),
            "channels": (NotificationChannel, NotificationChannel.name),
        }[kind]
        stored = (await s.exec(select(column).where(func.lower(column) == "race-x"))).all()
    assert len(stored) == 1, (model, stored)


async def test_upgrading_to_0016_renames_duplicate_names_and_keeps_every_row(scratch: Database) -> None:
    await upgrade(scratch.engine, "0015")
    users = ", ".join(
        f"('{name}', '{name}-{i}@example.com', '', 'x', 'admin', true, 0, '2024-01-01', '2024-01-01')"
        for i, name in enumerate(["Ann", "ann", "ANN", "ann-2"])
    )
    scripts = ", ".join(
        f"('{name}', 'bash', '{name.lower()}\n\n', 'true', {deleted}, '2024-01-01', '2024-01-01', '',"
        " '[]', '1', '[]', 'active', 60, 64, 0.5, false, 1)"
        for name, deleted in [("Deploy", "NULL"), ("deploy", "NULL"), ("DEPLOY", "'2024-01-02'")]
    )
    async with scratch.engine.begin() as conn:
        await conn.execute(
            sql_text(
                "INSERT INTO users (username, email, full_name, hashed_password, role, is_active,"
                f" token_version, created_at, updated_at) VALUES {users}"
            )
        )
        await conn.execute(
            sql_text(
                "INSERT INTO scripts (name, script_type, search_text, content, deleted_at, created_at,"
                " updated_at, description, parameters, version, tags, status, timeout_seconds, memory_mb,"
                f" cpus, network_enabled, current_version) VALUES {scripts}"
            )
        )
        for name in ("Web", "web"):
            await conn.execute(
                sql_text(
                    "INSERT INTO inventories (name, description, content, created_at, updated_at)"
                    " VALUES (:n, '', '[web]', '2024-01-01', '2024-01-01')"
                ),
                {"n": name},
            )
        for name in ("Ops", "OPS"):
            await conn.execute(
                sql_text(
                    "INSERT INTO notification_channels (name, kind, config, enabled, created_at, updated_at)"
                    " VALUES (:n, 'webhook', '{}', true, '2024-01-01', '2024-01-01')"
                ),
                {"n": name},
            )
    await upgrade(scratch.engine)
    async with scratch.engine.connect() as conn:

        async def column(query: str) -> list[Any]:
            return [tuple(row) for row in (await conn.execute(sql_text(query))).all()]

        assert await column("SELECT username FROM users ORDER BY id") == [
            ("Ann",),
            ("ann-3",),  # "-2" is another user's name
            ("ANN-4",),
            ("ann-2",),
        ]
        assert await column("SELECT name, search_text FROM scripts ORDER BY id") == [
            ("Deploy", "deploy\n\n"),
            ("deploy-2", "deploy-2\n\n"),
            ("DEPLOY", "deploy\n\n"),  # deleted: not renamed
        ]
        assert await column("SELECT name FROM inventories ORDER BY id") == [("Web",), ("web-2",)]
        assert await column("SELECT name FROM notification_channels ORDER BY id") == [("Ops",), ("OPS (2)",)]
        keys = await column("SELECT account_key FROM users")
        assert len({key for (key,) in keys}) == 4 and all(len(key) == 16 for (key,) in keys)


async def test_secret_names_are_exact_environment_variable_names(
    client: httpx.AsyncClient, admin: LoggedIn, backend: str
) -> None:
    """Case-sensitive by design (`KEY` and `key` are two variables); one exact name, created by
    several requests at once, is stored once and the others get 409 naming `name`."""
    url = "/api/v1/secrets"
    answers = await asyncio.gather(
        *(client.post(url, json={"name": "API_KEY", "value": "v"}, headers=admin.headers) for _ in range(4))
    )
    assert sorted(r.status_code for r in answers) == [201, 409, 409, 409], [r.text for r in answers]
    assert all(r.json()["errors"][0]["field"] == "name" for r in answers if r.status_code == 409)
    other_case = await client.post(url, json={"name": "api_key", "value": "v"}, headers=admin.headers)
    assert other_case.status_code == 201, other_case.text


# One name as a tester sent it at once: plain case, full-width letters, "ß" for "ss". Only
# `names.name_key` (NFKC, full case folding) equates them all; SQL's `lower` does not.
FOLDED = [
    "ch-strasse",
    "CH-STRASSE",
    "\uff43\uff48-\uff53\uff54\uff52\uff41\uff53\uff53\uff45",
    "\uff23\uff48-Stra\u00dfe",
    "ch-stra\u00dfe",
]
# kind -> (collection URL for a script id, body for a name, 409 message, model)
FREE_TEXT: dict[str, tuple[Any, Any, str, Any]] = {
    "schedules": (
        lambda script_id: f"/api/v1/scripts/{script_id}/schedules",
        lambda name: {"name": name, "cron": "0 3 * * *"},
        names.SCHEDULE_TAKEN,
        Schedule,
    ),
    "webhooks": (
        lambda script_id: f"/api/v1/scripts/{script_id}/webhooks",
        lambda name: {"name": name},
        names.WEBHOOK_TAKEN,
        WebhookTrigger,
    ),
    "tokens": (lambda _: "/api/v1/tokens", lambda name: {"name": name}, names.TOKEN_TAKEN, ApiToken),
    "channels": (
        lambda _: "/api/v1/notifications/channels",
        lambda name: {"name": name, "kind": "webhook", "config": {"url": "https://example.com/hook"}},
        names.CHANNEL_TAKEN,
        NotificationChannel,
    ),
}


@pytest.mark.parametrize("kind", FREE_TEXT)
async def test_variants_only_the_folding_equates_created_at_once_store_one(
    client: httpx.AsyncClient, admin: LoggedIn, backend: str, kind: str
) -> None:
    """Concurrent creates of `FOLDED`: one 201, the others 409 naming `name`, one row. The unique
    index on (scope, `name_key`) decides the race with the services' own equality."""
    url, body, message, model = FREE_TEXT[kind]
    collection = url(await _script(client, admin))
    answers = await asyncio.gather(
        *(client.post(collection, json=body(name), headers=admin.headers) for name in FOLDED)
    )
    codes = sorted(r.status_code for r in answers)
    assert codes == [201] + [409] * (len(FOLDED) - 1), [r.text for r in answers]
    for r in answers:
        if r.status_code == 409:
            _refused(r, message)
    async with runtime.current().db.session() as s:
        stored = (await s.exec(select(model.name).where(model.name_key == "ch-strasse"))).all()
    assert len(stored) == 1, stored


@pytest.mark.parametrize("kind", ["scripts", "users", "inventories"])
async def test_ascii_names_refuse_what_only_the_folding_would_equate(
    client: httpx.AsyncClient, admin: LoggedIn, backend: str, kind: str
) -> None:
    """Usernames, script and inventory names are ASCII, where `lower` is the folding, so their
    `lower(...)` indexes enforce the rule: full-width letters and "ß" are refused (422 naming
    the field), never stored beside their ASCII twin."""
    url, body, field = RACES[kind]
    for name in FOLDED[2:4]:
        r = await client.post(url, json=body(name), headers=admin.headers)
        assert r.status_code == 422 and field in [e["field"] for e in r.json()["errors"]], r.text


async def test_upgrading_to_0017_renames_names_only_the_folding_equates(scratch: Database) -> None:
    """0016's `lower(name)` indexes let these in (SQL's `lower` neither applies NFKC nor folds
    "ß"); 0017 keeps the oldest of each, renames the later ones and stores every row's key."""
    await upgrade(scratch.engine, "0016")
    full_width = {"push": "\uff50\uff55\uff53\uff48", "ci": "\uff43\uff49", "ch": "\uff43\uff48"}
    rows: list[Any] = [
        User(id=1, username="old", email="old@example.com", hashed_password="x"),
        *(Script(id=i, name=f"s{i}", script_type="bash", content="true\n") for i in (1, 2)),
        *(
            Schedule(script_id=script_id, name=name, cron="0 3 * * *", timezone="UTC")
            for script_id, name in [(1, "stra\u00dfe"), (1, "STRASSE"), (1, "strasse (2)"), (2, "Strasse")]
        ),
        WebhookTrigger(script_id=1, name="push", token_hash="a", prefix="p"),
        WebhookTrigger(script_id=1, name=full_width["push"], token_hash="b", prefix="p"),
        ApiToken(user_id=1, name="ci", prefix="a", token_hash="a", role="admin", revoked_at=utcnow()),
        ApiToken(user_id=1, name="ci", prefix="b", token_hash="b", role="admin"),
        ApiToken(user_id=1, name=full_width["ci"], prefix="c", token_hash="c", role="admin"),
        NotificationChannel(name="ch3479", kind="webhook", config={}),
        NotificationChannel(name=full_width["ch"] + "3479", kind="webhook", config={}),
    ]
    async with scratch.session() as s:
        for row in rows:
            await _old_insert(s, row)
        await s.commit()
    await upgrade(scratch.engine)
    async with scratch.engine.connect() as conn:

        async def stored(table: str) -> list[Any]:
            query = f"SELECT name, name_key FROM {table} ORDER BY id"
            found = [tuple(row) for row in (await conn.execute(sql_text(query))).all()]
            assert all(key == names.name_key(name) for name, key in found), found
            return [name for name, _ in found]

        assert await stored("schedules") == ["stra\u00dfe", "STRASSE (3)", "strasse (2)", "Strasse"]
        assert await stored("webhook_triggers") == ["push", full_width["push"] + " (2)"]
        assert await stored("api_tokens") == ["ci", "ci", full_width["ci"] + " (2)"]  # one revoked
        assert await stored("notification_channels") == ["ch3479", full_width["ch"] + "3479 (2)"]
