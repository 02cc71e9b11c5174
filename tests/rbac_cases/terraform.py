"""Matrix cases for Terraform state: operators read, download and roll back states; admins
break locks; the backend routes answer only a running run's own credentials (never a user's
token: 401 for everyone here)."""

from __future__ import annotations

import secrets
from typing import Any

import httpx

from opscraft import runtime
from opscraft.db.models import TerraformState
from opscraft.services import terraform_state
from tests.rbac_cases import ROLES, Case, allow

BACKEND = "/api/v1/terraform/state/{script_id}/{workspace}"
STATES = "/api/v1/scripts/{script_id}/terraform/states"
STATE = '{"version": 4, "serial": 1, "lineage": "l", "outputs": {}}'


async def _script(c: httpx.AsyncClient, u: dict[str, Any]) -> int:
    body = {"name": f"tf-{secrets.token_hex(4)}", "script_type": "terraform", "content": "locals {}\n"}
    r = await c.post("/api/v1/scripts", json=body, headers=u["admin"].headers)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def _with_state(c: httpx.AsyncClient, u: dict[str, Any], *, locked: bool = False) -> dict[str, Any]:
    script_id = await _script(c, u)
    async with runtime.current().db.session() as session:
        state = TerraformState(script_id=script_id, workspace="default")
        session.add(state)
        await session.flush()
        await terraform_state._add_version(session, state, STATE, execution_id=None, user_id=None, note="")
        if locked:
            state.lock_id, state.lock_info = "lock-1", {"ID": "lock-1"}
        await session.commit()
    return {"path": {"script_id": script_id, "workspace": "default", "number": 1}}


async def script_path(c: httpx.AsyncClient, u: dict[str, Any]) -> dict[str, Any]:
    return {"path": {"script_id": await _script(c, u), "workspace": "default"}}


async def state_path(c: httpx.AsyncClient, u: dict[str, Any]) -> dict[str, Any]:
    return await _with_state(c, u)


async def locked_path(c: httpx.AsyncClient, u: dict[str, Any]) -> dict[str, Any]:
    return await _with_state(c, u, locked=True)


async def lock_body(c: httpx.AsyncClient, u: dict[str, Any]) -> dict[str, Any]:
    return {**await script_path(c, u), "json": {"ID": "x"}}


RUN_ONLY = dict.fromkeys(ROLES, 401)

CASES = [
    Case("GET", BACKEND, RUN_ONLY, script_path, note="Basic run credentials only"),
    Case("POST", BACKEND, RUN_ONLY, script_path),
    Case("DELETE", BACKEND, RUN_ONLY, script_path),
    Case("LOCK", f"{BACKEND}/lock", RUN_ONLY, lock_body),
    Case("UNLOCK", f"{BACKEND}/lock", RUN_ONLY, lock_body),
    Case("GET", STATES, allow("operator"), script_path),
    Case("GET", f"{STATES}/{{workspace}}/versions", allow("operator"), state_path),
    Case("GET", f"{STATES}/{{workspace}}/versions/{{number}}", allow("operator"), state_path),
    Case("POST", f"{STATES}/{{workspace}}/versions/{{number}}/rollback", allow("operator"), state_path),
    Case("DELETE", f"{STATES}/{{workspace}}/lock", allow("admin", 204), locked_path),
]
