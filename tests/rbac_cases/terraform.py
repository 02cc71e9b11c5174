"""Matrix cases for Terraform state: operators read, download and roll back states; admins
break locks; the backend routes answer only a running run's own credentials (never a user's
token: 401 for everyone here). Saved plans: everyone who views runs reads a plan's summary;
operators and admins apply it (tests/executions/test_terraform_plans.py covers the rules)."""

from __future__ import annotations

import io
import json
import secrets
import zipfile
from typing import Any

import httpx

from opscraft import runtime
from opscraft.db.models import Execution, TerraformPlan, TerraformState
from opscraft.db.models.executions import ExecutionStatus
from opscraft.services import keyring, terraform_state
from tests.rbac_cases import ROLES, Case, allow

BACKEND = "/api/v1/terraform/state/{script_id}/{workspace}"
STATES = "/api/v1/scripts/{script_id}/terraform/states"
STATE = '{"version": 4, "serial": 1, "lineage": "l", "outputs": {}}'
NEWER_STATE = '{"version": 4, "serial": 2, "lineage": "l", "outputs": {"x": {"value": 1, "type": "number"}}}'


async def _script(c: httpx.AsyncClient, u: dict[str, Any]) -> int:
    body = {
        "name": f"tf-{secrets.token_hex(4)}",
        "script_type": "terraform",
        "content": "locals {}\n",
        "status": "active",
    }
    r = await c.post("/api/v1/scripts", json=body, headers=u["admin"].headers)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def _with_state(
    c: httpx.AsyncClient, u: dict[str, Any], *, locked: bool = False, newer: bool = False
) -> dict[str, Any]:
    """A state whose version 1 is `STATE`; with `newer`, version 2 (current) is another content."""
    script_id = await _script(c, u)
    async with runtime.current().db.session() as session:
        state = TerraformState(script_id=script_id, workspace="default")
        session.add(state)
        await session.flush()
        for text in (STATE, NEWER_STATE) if newer else (STATE,):
            await terraform_state._add_version(session, state, text, execution_id=None, user_id=None, note="")
        if locked:
            state.lock_id, state.lock_info = "lock-1", {"ID": "lock-1"}
        await session.commit()
    return {"path": {"script_id": script_id, "workspace": "default", "number": 1}}


async def script_path(c: httpx.AsyncClient, u: dict[str, Any]) -> dict[str, Any]:
    return {"path": {"script_id": await _script(c, u), "workspace": "default"}}


async def state_path(c: httpx.AsyncClient, u: dict[str, Any]) -> dict[str, Any]:
    return await _with_state(c, u)


async def older_version_path(c: httpx.AsyncClient, u: dict[str, Any]) -> dict[str, Any]:
    """Version 1 of a state whose current version differs: something to roll back to."""
    return await _with_state(c, u, newer=True)


async def locked_path(c: httpx.AsyncClient, u: dict[str, Any]) -> dict[str, Any]:
    return await _with_state(c, u, locked=True)


async def lock_body(c: httpx.AsyncClient, u: dict[str, Any]) -> dict[str, Any]:
    return {**await script_path(c, u), "json": {"ID": "x"}}


def plan_file() -> bytes:
    """A plan file as far as OpsCraft reads one: a zip whose `tfstate` is the prior state."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("tfstate", json.dumps({"version": 4, "serial": 0, "lineage": ""}))
    return buffer.getvalue()


async def plan_path(c: httpx.AsyncClient, u: dict[str, Any]) -> dict[str, Any]:
    """A successful plan run with its saved plan (the local runner allowed for its apply)."""
    r = await c.put("/api/v1/settings", json={"local_runner_enabled": True}, headers=u["admin"].headers)
    assert r.status_code == 200, r.text
    script_id = await _script(c, u)
    async with runtime.current().db.session() as session:
        run = Execution(
            script_id=script_id,
            script_version=1,
            script_name="plan",
            script_type="terraform",
            terraform_action="plan",
            status=ExecutionStatus.success,
            runner="local",
        )
        session.add(run)
        await session.flush()
        assert run.id is not None
        plan = TerraformPlan(
            execution_id=run.id,
            script_id=script_id,
            workspace="default",
            script_version=1,
            sha256="0" * 64,
            ciphertext=b"",
            salt=b"",
            nonce=b"",
        )
        session.add(plan)
        await session.flush()
        keyring.seal_plan(keyring.current_vault(), plan, plan_file())
        await session.commit()
        return {"path": {"execution_id": run.id}}


RUN_ONLY = dict.fromkeys(ROLES, 401)
PLAN = "/api/v1/executions/{execution_id}/terraform/plan"

CASES = [
    Case("GET", BACKEND, RUN_ONLY, script_path, note="Basic run credentials only"),
    Case("POST", BACKEND, RUN_ONLY, script_path),
    Case("DELETE", BACKEND, RUN_ONLY, script_path),
    Case("LOCK", f"{BACKEND}/lock", RUN_ONLY, lock_body),
    Case("UNLOCK", f"{BACKEND}/lock", RUN_ONLY, lock_body),
    Case("GET", STATES, allow("operator"), script_path),
    Case("GET", f"{STATES}/{{workspace}}/versions", allow("operator"), state_path),
    Case("GET", f"{STATES}/{{workspace}}/versions/{{number}}", allow("operator"), state_path),
    Case(
        "POST", f"{STATES}/{{workspace}}/versions/{{number}}/rollback", allow("operator"), older_version_path
    ),
    Case("DELETE", f"{STATES}/{{workspace}}/lock", allow("admin", 204), locked_path),
    Case("GET", PLAN, allow("viewer"), plan_path),
    Case("POST", f"{PLAN}/apply", allow("operator", 202), plan_path),
]
