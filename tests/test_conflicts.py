"""Unique constraints are a 409 naming the field, on create and update, also when two requests race
(SQLite and PostgreSQL: the `backend` fixture behind `client` and `rt`)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy.exc import IntegrityError
from sqlmodel import SQLModel, col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from opscraft import runtime
from opscraft.db.models import (
    ApiToken,
    AppSetting,
    Inventory,
    InventoryVersion,
    NotificationChannel,
    Schedule,
    Script,
    ScriptSecret,
    ScriptTag,
    ScriptVersion,
    Secret,
    User,
    WebhookTrigger,
)
from opscraft.services import conflicts, scripts, users
from opscraft.services.errors import ServiceError
from tests.conftest import LoggedIn


def user_body(name: str, email: str | None = None) -> dict[str, Any]:
    return {"username": name, "email": email or f"{name}@example.com", "password": "Long-Enough-1"}


def conflict_fields(response: httpx.Response) -> set[str]:
    assert response.status_code == 409, response.text
    return {e["field"] for e in response.json()["errors"]}


async def test_update_to_another_users_email_is_409(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    """The fuzzer's input: PUT /users/2 with an email another user has (was a 500 from an autoflush)."""
    first = await client.post("/api/v1/users", json=user_body("zero", "0@0.com"), headers=admin.headers)
    second = await client.post("/api/v1/users", json=user_body("other"), headers=admin.headers)
    assert second.json()["id"] == 3 and first.status_code == 201
    r = await client.put("/api/v1/users/3", json={"email": "0@0.com"}, headers=admin.headers)
    assert conflict_fields(r) == {"email"}
    # With the other fields the fuzzer sent, deactivation included (its session revocation autoflushed).
    r = await client.put(
        "/api/v1/users/3",
        json={"email": "0@0.COM", "full_name": "x", "role": "viewer", "is_active": False},
        headers=admin.headers,
    )
    assert conflict_fields(r) == {"email"}
    unchanged = (await client.get("/api/v1/users/3", headers=admin.headers)).json()
    assert unchanged["email"] == "other@example.com" and unchanged["is_active"] is True


async def test_script_rename_to_a_taken_name_is_409(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    ids = []
    for name in ("alpha", "beta"):
        body = {"name": name, "script_type": "bash", "content": "echo\n"}
        r = await client.post("/api/v1/scripts", json=body, headers=admin.headers)
        ids.append(r.json()["id"])
    r = await client.put(f"/api/v1/scripts/{ids[1]}", json={"name": "alpha"}, headers=admin.headers)
    assert r.status_code == 409 and "name" in r.json()["detail"]


async def test_the_database_has_the_last_word_when_the_check_loses_the_race(
    client: httpx.AsyncClient, admin: LoggedIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both requests passed "is the name taken?" before either wrote: the unique index answers 409."""
    body = {"name": "racer", "script_type": "bash", "content": "echo\n"}
    assert (await client.post("/api/v1/scripts", json=body, headers=admin.headers)).status_code == 201

    async def never_taken(*_args: object, **_kwargs: object) -> bool:
        return False

    monkeypatch.setattr(scripts, "_name_taken", never_taken)
    assert conflict_fields(await client.post("/api/v1/scripts", json=body, headers=admin.headers)) == {"name"}
    other = await client.post("/api/v1/scripts", json={**body, "name": "other"}, headers=admin.headers)
    r = await client.put(
        f"/api/v1/scripts/{other.json()['id']}", json={"name": "racer"}, headers=admin.headers
    )
    assert conflict_fields(r) == {"name"}
    listing = await client.get("/api/v1/scripts", headers=admin.headers)
    assert sorted(s["name"] for s in listing.json()["items"]) == ["other", "racer"]


RACES: list[tuple[str, str, list[dict[str, Any]], str]] = [
    ("POST", "/api/v1/users", [user_body("twin"), user_body("twin", "twin2@example.com")], "username"),
    (
        "POST",
        "/api/v1/users",
        [user_body("twin3", "same@example.com"), user_body("twin4", "same@example.com")],
        "email",
    ),
    ("POST", "/api/v1/secrets", [{"name": "TWIN", "value": "a"}, {"name": "TWIN", "value": "b"}], "name"),
    (
        "POST",
        "/api/v1/scripts",
        [{"name": "twin", "script_type": "bash", "content": "echo\n"}] * 2,
        "name",
    ),
]


@pytest.mark.parametrize(("method", "url", "bodies", "field"), RACES, ids=[f"{r[1]}-{r[3]}" for r in RACES])
async def test_two_concurrent_creates_one_wins_the_other_409(
    client: httpx.AsyncClient,
    admin: LoggedIn,
    method: str,
    url: str,
    bodies: list[dict[str, Any]],
    field: str,
) -> None:
    before = (await client.get(url, headers=admin.headers)).json()["total"]
    responses = await asyncio.gather(
        *(client.request(method, url, json=b, headers=admin.headers) for b in bodies)
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201, 409], [r.text for r in responses]
    (lost,) = [r for r in responses if r.status_code == 409]
    assert field in lost.json()["detail"]
    assert (await client.get(url, headers=admin.headers)).json()["total"] == before + 1


async def test_a_first_approval_policy_set_by_requests_at_once_is_one_policy(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """Ten `PUT /scripts/{id}/approval` at once on a script without a policy: each read "no
    policy yet" and inserted one, and all but the first got a 500 on the primary key. They take
    turns on the script's row: every one is a 200 and one policy is stored."""
    body = {"name": "guarded", "script_type": "bash", "content": "echo\n"}
    script_id = (await client.post("/api/v1/scripts", json=body, headers=admin.headers)).json()["id"]
    url = f"/api/v1/scripts/{script_id}/approval"
    responses = await asyncio.gather(
        *(
            client.put(url, json={"required": 2, "expires_after_hours": 5}, headers=admin.headers)
            for _ in range(10)
        )
    )
    assert [r.status_code for r in responses] == [200] * 10, [r.text for r in responses]
    stored = await client.get(url, headers=admin.headers)
    assert stored.status_code == 200, stored.text
    assert (stored.json()["required"], stored.json()["expires_after_hours"]) == (2, 5)


@pytest.mark.parametrize(
    ("path", "body", "version"),
    [
        ("/api/v1/scripts", {"script_type": "bash", "content": "echo 0\n"}, "current_version"),
        ("/api/v1/inventories", {"content": "[web]\nhost0\n"}, "version"),
    ],
)
async def test_edits_at_once_without_a_base_version_are_each_a_version(
    client: httpx.AsyncClient, admin: LoggedIn, path: str, body: dict[str, Any], version: str
) -> None:
    """Eight content edits of one script (or shared inventory) at once, none naming the version
    it started from (no `base_version`: no conflict check asked for). PostgreSQL saved each as
    the next version; SQLite's all read the same current version and all but one were a 409 on
    it. They take turns on the row on both: each is a 200, the versions are 2-9, one per edit."""
    created = await client.post(path, json={"name": "edited-at-once", **body}, headers=admin.headers)
    assert created.status_code == 201, created.text
    url = f"{path}/{created.json()['id']}"
    edits = [body["content"].replace("0", str(i)) for i in range(1, 9)]
    responses = await asyncio.gather(
        *(client.put(url, json={"content": c}, headers=admin.headers) for c in edits)
    )
    assert [r.status_code for r in responses] == [200] * 8, [r.text for r in responses]
    assert sorted(r.json()[version] for r in responses) == list(range(2, 10))
    versions = await client.get(f"{url}/versions", headers=admin.headers)
    assert [v["number"] for v in versions.json()["items"]] == list(range(9, 0, -1))


async def test_a_change_to_a_row_another_request_deletes_meanwhile_is_409(
    client: httpx.AsyncClient, admin: LoggedIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A password reset while another request deletes the user: the reset read the row, the
    delete committed, and the reset's UPDATE matched no row (SQLAlchemy's StaleDataError), a 500
    with a traceback (a schedule updated while deleted was another). It is a 409 saying so, and
    the user stays deleted."""
    created = await client.post("/api/v1/users", json=user_body("doomed"), headers=admin.headers)
    user_id = created.json()["id"]
    revoke_sessions = users._revoke_sessions

    async def deleted_meanwhile(session: AsyncSession, user: User) -> None:
        async with runtime.current().db.session() as other:
            await other.exec(delete(User).where(col(User.id) == user_id))
            await other.commit()
        await revoke_sessions(session, user)

    monkeypatch.setattr(users, "_revoke_sessions", deleted_meanwhile)
    url = f"/api/v1/users/{user_id}"
    r = await client.post(
        f"{url}/reset-password", json={"new_password": "Another-Long-1"}, headers=admin.headers
    )
    assert r.status_code == 409, r.text
    assert r.json() == {"detail": conflicts.GONE_MEANWHILE, "errors": []}
    assert (await client.get(url, headers=admin.headers)).status_code == 404


async def test_two_concurrent_updates_to_one_email(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    ids = []
    for name in ("upd1", "upd2"):
        ids.append(
            (await client.post("/api/v1/users", json=user_body(name), headers=admin.headers)).json()["id"]
        )
    responses = await asyncio.gather(
        *(
            client.put(f"/api/v1/users/{i}", json={"email": "wanted@example.com"}, headers=admin.headers)
            for i in ids
        )
    )
    assert sorted(r.status_code for r in responses) == [200, 409], [r.text for r in responses]
    (lost,) = [r for r in responses if r.status_code == 409]
    assert conflict_fields(lost) == {"email"}


def _unique_rows() -> dict[str, tuple[str, list[SQLModel]]]:
    """For each unique constraint of the models: (field the 409 must name, rows that violate it)."""

    def script(i: int, name: str = "dup") -> Script:
        return Script(id=i, name=name, script_type="bash", content="echo\n", search_text=name)

    def version(script_id: int) -> ScriptVersion:
        return ScriptVersion(
            script_id=script_id, number=1, script_type="bash", content="echo\n", parameters=[]
        )

    def inventory_version(inventory_id: int) -> InventoryVersion:
        return InventoryVersion(inventory_id=inventory_id, number=2, content="w\n", content_sha256="0" * 64)

    return {
        "users.username": (
            "username",
            [
                User(username="u", email="a@x.io", hashed_password="h"),
                User(username="U", email="b@x.io", hashed_password="h"),
            ],
        ),
        "users.email": (
            "email",
            [
                User(username="u1", email="a@x.io", hashed_password="h"),
                User(username="u2", email="a@x.io", hashed_password="h"),
            ],
        ),
        "scripts.name": ("name", [script(1), script(2, "DUP")]),
        "secrets.name": (
            "name",
            [
                Secret(name="S", ciphertext=b"", salt=b"", nonce=b""),
                Secret(name="S", ciphertext=b"", salt=b"", nonce=b""),
            ],
        ),
        "script_versions.script_id,number": ("base_version", [script(1), version(1), version(1)]),
        "script_tags.script_id,tag": (
            "tag",
            [script(1), ScriptTag(script_id=1, tag="t"), ScriptTag(script_id=1, tag="t")],
        ),
        "script_secrets.script_id,secret_id": (
            "secret_id",
            [
                script(1),
                Secret(id=1, name="S", ciphertext=b"", salt=b"", nonce=b""),
                ScriptSecret(script_id=1, secret_id=1),
                ScriptSecret(script_id=1, secret_id=1),
            ],
        ),
        "app_settings.key": ("body", [AppSetting(key="k", value=1), AppSetting(key="k", value=2)]),
        "inventories.name": (
            "name",
            [Inventory(name="web", content="w\n"), Inventory(name="WEB", content="x\n")],
        ),
        "inventory_versions.inventory_id,number": (
            "content",
            [Inventory(id=1, name="web", content="w\n"), inventory_version(1), inventory_version(1)],
        ),
        # Names unique by `name_key` (services/names.py): the second is a variant only its folding
        # (NFKC, full case folding) equates: full-width letters, "ß" and "SS".
        "notification_channels.name_key": (
            "name",
            [
                NotificationChannel(name="Ops", kind="webhook", config={}),
                NotificationChannel(name="\uff2f\uff30\uff33", kind="webhook", config={}),
            ],
        ),
        "schedules.script_id,name_key": (
            "name",
            [
                script(1),
                Schedule(script_id=1, name="nightly", cron="0 3 * * *", timezone="UTC"),
                Schedule(script_id=1, name="\uff2eightly", cron="0 3 * * *", timezone="UTC"),
            ],
        ),
        "webhook_triggers.script_id,name_key": (
            "name",
            [
                script(1),
                WebhookTrigger(script_id=1, name="straße", token_hash="a", prefix="a"),
                WebhookTrigger(script_id=1, name="STRASSE", token_hash="b", prefix="b"),
            ],
        ),
        "api_tokens.user_id,name_key": (
            "name",
            [
                User(id=1, username="u", email="a@x.io", hashed_password="h"),
                ApiToken(user_id=1, name="ci", prefix="a", token_hash="a", role="admin"),
                ApiToken(user_id=1, name="\uff23I", prefix="b", token_hash="b", role="admin"),
            ],
        ),
    }


def test_every_unique_index_has_a_case() -> None:
    unique_indexes = {
        f"{t.name}.{','.join(conflicts.index_columns(i))}"
        for t in SQLModel.metadata.tables.values()
        for i in t.indexes
        if i.unique
    }
    # Values no request chooses: output chunks are numbered by the worker, token hashes are of
    # random tokens, Terraform states are created and their versions numbered by the backend, a
    # plan run's saved plan is stored by its worker, a chained run is recorded by the chain starter.
    internal = {
        "execution_logs.execution_id,seq",
        "api_tokens.token_hash",
        "terraform_states.script_id,workspace",
        "terraform_state_versions.state_id,number",
        "terraform_plans.execution_id",
        "chain_runs.execution_id",
    }
    assert unique_indexes - internal <= _unique_rows().keys(), (
        "a new unique index needs a case (and a message)"
    )


@pytest.mark.parametrize("key", sorted(_unique_rows()))
async def test_every_unique_constraint_is_named_on_both_databases(rt: runtime.Runtime, key: str) -> None:
    """The constraint's real IntegrityError (SQLite's text, PostgreSQL's constraint name), raised in
    a second session as in a race, maps to a Conflict naming the field."""
    field, rows = _unique_rows()[key]
    *first, duplicate = rows
    async with rt.db.session() as session:
        for row in first:  # in order: no relationships tell the unit of work which goes first
            session.add(row)
            await session.flush()
        await session.commit()
    async with rt.db.session() as session:
        session.add(duplicate)
        with pytest.raises(IntegrityError) as caught:
            await session.flush()
        await session.rollback()
    conflict = conflicts.conflict_for(caught.value)
    assert conflict is not None and conflict.status_code == 409
    assert conflict.details[0]["field"] == field, conflict.details


@pytest.mark.parametrize("step", ["flush", "commit"])
async def test_a_row_deleted_meanwhile_is_a_conflict_for_the_ui_too(rt: runtime.Runtime, step: str) -> None:
    """A change to a row another session deleted after this one read it (SQLAlchemy's
    StaleDataError) is a `Conflict` saying so from `conflicts.flush` and `conflicts.commit`, the
    services' own calls: the web UI shows a service error next to the action, where it showed a
    generic failure (only the API's error handler knew this error). Nothing is written."""
    async with rt.db.session() as session:
        session.add(Secret(name="GONE_SOON", ciphertext=b"x", salt=b"s", nonce=b"n"))
        await session.commit()
    async with rt.db.session() as session:
        secret = (await session.exec(select(Secret).where(col(Secret.name) == "GONE_SOON"))).one()
        async with rt.db.session() as other:
            await other.exec(delete(Secret).where(col(Secret.id) == secret.id))
            await other.commit()
        secret.description = "changed meanwhile"
        with pytest.raises(ServiceError) as caught:
            await getattr(conflicts, step)(session)
    assert caught.value.status_code == 409 and str(caught.value) == conflicts.GONE_MEANWHILE
    async with rt.db.session() as session:
        assert (await session.exec(select(Secret).where(col(Secret.name) == "GONE_SOON"))).first() is None
