"""A deleted account's id, tokens and UI session never pass to a later account.

SQLite gave a new row the largest id in use plus one, so deleting the newest user handed its id,
and with it the old user's still-signed access token and browser session, to the next user
created (an admin, in the report). Two guards: ids only grow (`AUTOINCREMENT`, models/__init__.py,
migration 0016), and every token and UI session names the account's random `account_key`, so even
an id given again (a database from before 0016) fits no other account.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlmodel import SQLModel

from opscraft import runtime
from opscraft.db.engine import Database
from opscraft.db.migrate import upgrade
from opscraft.db.models import BrowserSignIn, User
from opscraft.services import auth
from opscraft.services.errors import Unauthorized
from tests.conftest import PASSWORD, LoggedIn


async def _create_user(client: httpx.AsyncClient, admin: LoggedIn, username: str, role: str) -> int:
    body = {"username": username, "email": f"{username}@example.com", "password": PASSWORD, "role": role}
    r = await client.post("/api/v1/users", json=body, headers=admin.headers)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def _victim(client: httpx.AsyncClient, admin: LoggedIn) -> tuple[int, dict[str, str], User]:
    """The newest user, logged in: (id, its access/refresh/API tokens and browser sign-in, its row
    as it was)."""
    victim_id = await _create_user(client, admin, "victimold", "viewer")
    login = await client.post("/api/v1/auth/login", json={"username": "victimold", "password": PASSWORD})
    assert login.status_code == 200, login.text
    tokens = {"access": login.json()["access_token"], "refresh": login.json()["refresh_token"]}
    headers = {"Authorization": f"Bearer {tokens['access']}"}
    pat = await client.post("/api/v1/tokens", json={"name": "ci"}, headers=headers)
    assert pat.status_code == 201, pat.text
    tokens["api"] = pat.json()["token"]
    async with runtime.current().db.session() as session:
        row = await session.get(User, victim_id)
        assert row is not None
        tokens["browser"] = (await auth.start_browser_sign_in(session, row)).id  # a browser signed in
    deleted = await client.delete(f"/api/v1/users/{victim_id}", headers=admin.headers)
    assert deleted.status_code in (200, 204), deleted.text
    return victim_id, tokens, row


async def _refused_everywhere(client: httpx.AsyncClient, tokens: dict[str, str], old: User) -> None:
    for kind in ("access", "api"):
        me = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {tokens[kind]}"})
        assert me.status_code == 401, (kind, me.text)
    refreshed = await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh"]})
    assert refreshed.status_code == 401, refreshed.text
    assert old.id is not None
    async with runtime.current().db.session() as session:  # the browser session's check
        with pytest.raises(Unauthorized):
            await auth.user_for_session(session, tokens["browser"], None)


async def test_a_deleted_newest_users_id_goes_to_no_one_else(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    victim_id, tokens, old = await _victim(client, admin)
    await _refused_everywhere(client, tokens, old)
    new_admin = await _create_user(client, admin, "newadmin", "admin")
    assert new_admin > victim_id
    await _refused_everywhere(client, tokens, old)


async def test_an_id_given_again_inherits_no_token_or_session(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """Defence in depth: a database that did reuse the id (as SQLite did before migration 0016)."""
    victim_id, tokens, old = await _victim(client, admin)
    async with runtime.current().db.session() as session:
        heir = User(
            id=victim_id,
            username="newadmin",
            email="newadmin@example.com",
            hashed_password=old.hashed_password,
            role="admin",
            token_version=old.token_version,
        )
        session.add(heir)
        await session.commit()
        assert heir.account_key != old.account_key
    await _refused_everywhere(client, tokens, old)
    # The new account itself works, with its own tokens and session.
    login = await client.post("/api/v1/auth/login", json={"username": "newadmin", "password": PASSWORD})
    me = await client.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {login.json()['access_token']}"}
    )
    assert me.status_code == 200 and me.json()["id"] == victim_id, me.text
    async with runtime.current().db.session() as session:
        own = await auth.start_browser_sign_in(session, heir)
        actor = await auth.user_for_session(session, own.id, None)
        assert actor.user is not None and actor.user.username == "newadmin"
        # The old account's browser sign-in, as a database that kept it would have it (its row
        # went with the account): it names the old account's key, which is not the heir's.
        session.add(
            BrowserSignIn(
                id=tokens["browser"],
                user_id=victim_id,
                signed_in_at=own.signed_in_at,
                token_version=old.token_version,
                account_key=old.account_key,
            )
        )
        await session.commit()
        with pytest.raises(Unauthorized):
            await auth.user_for_session(session, tokens["browser"], None)


async def test_deleted_newest_rows_ids_are_not_given_again(
    client: httpx.AsyncClient, admin: LoggedIn, backend: str
) -> None:
    """Secrets through the API; every table with a generated id in SQLite's schema."""
    body = {"name": "FIRST_TOKEN", "value": "s3cret-value"}
    first = await client.post("/api/v1/secrets", json=body, headers=admin.headers)
    assert first.status_code == 201, first.text
    gone = await client.delete(f"/api/v1/secrets/{first.json()['id']}", headers=admin.headers)
    assert gone.status_code in (200, 204), gone.text
    second = await client.post(
        "/api/v1/secrets", json={**body, "name": "SECOND_TOKEN"}, headers=admin.headers
    )
    assert second.status_code == 201, second.text
    assert second.json()["id"] > first.json()["id"]
    if backend != "sqlite":
        return  # PostgreSQL's sequences never give a value twice
    async with runtime.current().db.engine.connect() as conn:
        tables = dict(
            (await conn.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'table'"))).all()
        )
        for table in ("users", "scripts", "secrets", "executions", "execution_logs", "audit_events"):
            assert "AUTOINCREMENT" in tables[table], table


def _sqlite_schema(path: Path) -> tuple[dict[str, str], set[str]]:
    """(index name -> its SQL with spacing and quoting normalized, tables with AUTOINCREMENT)."""
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL").fetchall()
    indexes = {name: re.sub(r"\s+", " ", sql.replace('"', "")) for kind, name, sql in rows if kind == "index"}
    return indexes, {name for kind, name, sql in rows if kind == "table" and "AUTOINCREMENT" in sql}


async def test_upgrading_sqlite_rebuilds_tables_keeping_rows_indexes_and_foreign_keys(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")
    try:
        await upgrade(db.engine, "0015")
        async with db.engine.begin() as conn:
            for statement in (
                "INSERT INTO users (id, username, email, full_name, hashed_password, role, is_active,"
                " token_version, created_at, updated_at) VALUES (7, 'old', 'old@example.com', '', 'x',"
                " 'admin', 1, 0, '2024-01-01', '2024-01-01')",
                "INSERT INTO api_tokens (user_id, name, prefix, token_hash, role, created_at)"
                " VALUES (7, 'ci', 'ocp_x', 'h', 'admin', '2024-01-01')",
                "INSERT INTO secrets (name, description, ciphertext, salt, nonce, key_version, kind,"
                " created_by, created_at, updated_at) VALUES ('KEY', '', X'00', X'00', X'00', 1, 'env', 7,"
                " '2024-01-01', '2024-01-01')",
                "INSERT INTO audit_events (time, actor_id, action, target_type, details)"
                " VALUES ('2024-01-01', 7, 'user.create', 'user', '{}')",
            ):
                await conn.execute(text(statement))
        await upgrade(db.engine)
        async with db.engine.begin() as conn:
            assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1  # back on after
            await conn.execute(text("DELETE FROM users WHERE id = 7"))  # ON DELETE rules still hold
            left = (await conn.execute(text("SELECT count(*) FROM api_tokens"))).scalar()
            creator = (await conn.execute(text("SELECT created_by FROM secrets"))).scalar()
            events = (await conn.execute(text("SELECT count(*) FROM audit_events"))).scalar()
            assert (left, creator, events) == (0, None, 1)
            await conn.execute(
                text(
                    "INSERT INTO users (username, email, full_name, hashed_password, role, is_active,"
                    " token_version, account_key, created_at, updated_at) VALUES ('new', 'new@example.com',"
                    " '', 'x', 'admin', 1, 0, 'k', '2024-01-01', '2024-01-01')"
                )
            )
            assert (await conn.execute(text("SELECT id FROM users"))).scalar() == 8
    finally:
        await db.dispose()
    fresh = create_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    SQLModel.metadata.create_all(fresh)
    fresh.dispose()
    migrated, from_models = _sqlite_schema(tmp_path / "old.db"), _sqlite_schema(tmp_path / "fresh.db")
    assert migrated[1] == from_models[1] and "users" in migrated[1] and "execution_logs" in migrated[1]
    assert migrated[0] == from_models[0]
