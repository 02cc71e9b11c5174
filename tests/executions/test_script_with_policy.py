"""`approvals.script_with_policy`, the submission's first statement, read as Core columns (no ORM
row, issue 15): its facts equal the ORM row's fields, value and type, with and without an
approval policy and attached secrets; a missing script is `ScriptToRun(None)`; the statement
runs in the caller's transaction (SQLite and PostgreSQL)."""

from __future__ import annotations

import httpx
from sqlalchemy import text
from sqlmodel import col, update

from opscraft import runtime
from opscraft.db import stored_shapes
from opscraft.db.models import ApprovalPolicy, Script
from opscraft.services import approvals, run_environment
from opscraft.services.approvals import PolicyTerms, ScriptFacts
from opscraft.services.errors import GONE_WHY
from tests.conftest import LoggedIn
from tests.executions.conftest import make_script

PARAMETERS = [{"name": "target", "type": "string", "required": True}]


async def attach_env_secret(client: httpx.AsyncClient, who: LoggedIn, script_id: int) -> None:
    body = {"name": f"TOKEN_{script_id}", "value": "v" * 40, "kind": "env"}
    r = await client.post("/api/v1/secrets", json=body, headers=who.headers)
    assert r.status_code == 201, r.text
    r = await client.post(f"/api/v1/scripts/{script_id}/secrets/{r.json()['id']}", headers=who.headers)
    assert r.status_code == 201, r.text


def _assert_read_as_the_orm_reads(facts: ScriptFacts, row: Script) -> None:
    """Each fact is the loaded row's field, value and type; `problems` are the row's."""
    for field in ScriptFacts.__slots__:
        ours = getattr(facts, field)
        theirs = stored_shapes.problems(row) if field == "problems" else getattr(row, field)
        assert ours == theirs and type(ours) is type(theirs), field


async def test_the_facts_are_the_orm_rows_fields_with_the_policy_and_secret_bytes(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    plain = await make_script(client, admin, "true\n")
    held = await make_script(client, admin, 'echo "$1"\n', parameters=PARAMETERS, network_enabled=True)
    r = await client.put(
        f"/api/v1/scripts/{held}/approval",
        json={"required": 2, "expires_after_hours": 5},
        headers=admin.headers,
    )
    assert r.status_code == 200, r.text
    await attach_env_secret(client, admin, held)
    async with runtime.current().db.session() as session:
        for script_id in (plain, held):
            found = await approvals.script_with_policy(session, script_id)
            row = await session.get(Script, script_id)
            assert row is not None and found.script is not None
            _assert_read_as_the_orm_reads(found.script, row)
            policy = await session.get(ApprovalPolicy, script_id)
            expected = PolicyTerms(policy.required, policy.expires_after_hours) if policy else None
            assert found.policy == expected
            assert found.secret_bytes == await run_environment.attached_secret_bytes(session, script_id)
    assert found.policy == PolicyTerms(2, 5) and found.secret_bytes > 0
    assert found.script.parameters[0]["name"] == "target" and found.script.network_enabled


async def test_a_missing_or_deleted_script(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    script_id = await make_script(client, admin, "true\n")
    assert (await client.delete(f"/api/v1/scripts/{script_id}", headers=admin.headers)).status_code == 204
    async with runtime.current().db.session() as session:
        assert await approvals.script_with_policy(session, script_id + 1000) == approvals.ScriptToRun(None)
        deleted = await approvals.script_with_policy(session, script_id)
        assert deleted.script is not None and deleted.script.deleted_at is not None
        assert session.in_transaction(), "read in the session's own transaction"
    r = await client.post(
        "/api/v1/executions", json={"script_id": script_id, "runner": "local"}, headers=admin.headers
    )
    assert r.status_code == 404 and r.json()["detail"] == f"this script was not found: {GONE_WHY}"


async def test_facts_stored_in_another_shape_are_read_as_a_load_reads_them(
    client: httpx.AsyncClient, admin: LoggedIn, backend: str
) -> None:
    """The submit path's Core read bypassed the load checks (db/stored_shapes.py): declarations
    stored as text, a type none of today's (SQLite; PostgreSQL's enum refuses it) and a
    `deleted_at` that is no time (SQLite) were handed on as stored (the type a 500). They read
    as the ORM's load reads them, with the same problems."""
    script_id = await make_script(client, admin, "true\n")
    odd = {"parameters": "P"} | ({"script_type": "perl"} if backend == "sqlite" else {})
    async with runtime.current().db.session() as session:
        await session.exec(update(Script).where(col(Script.id) == script_id).values(odd))
        if backend == "sqlite":  # past the column type's bind, as a manual edit
            odd["deleted_at"] = "soon"
            await session.exec(text(f"UPDATE scripts SET deleted_at = 'soon' WHERE id = {script_id}"))  # type: ignore[call-overload]
        await session.commit()
    async with runtime.current().db.session() as session:
        found = await approvals.script_with_policy(session, script_id)
        row = await session.get(Script, script_id)
        assert row is not None and found.script is not None
        _assert_read_as_the_orm_reads(found.script, row)
    assert sorted(found.script.problems) == sorted(odd), found.script.problems
