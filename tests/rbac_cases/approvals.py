"""Matrix cases for approvals: everyone sees the pending list, the trail and the policy;
operators and admins decide (never on their own runs) and set policies, admins remove them
(tests/automation/test_approvals.py covers the rules)."""

from __future__ import annotations

import secrets
from typing import Any

import httpx
from sqlmodel import col, update

from opscraft import runtime
from opscraft.db.models import ScriptVersion
from tests.rbac_cases import LOCAL_FOR_ALL, Case, allow


async def _script(c: httpx.AsyncClient, u: dict[str, Any], approval: bool) -> int:
    body = {
        "name": f"x-{secrets.token_hex(4)}",
        "script_type": "bash",
        "content": "true\n",
        "status": "active",
    }
    r = await c.post("/api/v1/scripts", json=body, headers=u["admin"].headers)
    assert r.status_code == 201, r.text
    script_id = int(r.json()["id"])
    if approval:
        r = await c.put(
            f"/api/v1/scripts/{script_id}/approval", json={"required": 1}, headers=u["admin"].headers
        )
        assert r.status_code == 200, r.text
    return script_id


async def waiting(c: httpx.AsyncClient, u: dict[str, Any]) -> dict[str, Any]:
    """A run requested by `target` (a viewer nobody else is), waiting for approval, of a script
    version whose author is gone (as when deleted): the admin who wrote it may not approve its
    runs (services/approvals.py), and the matrix is about the caller's role alone."""
    r = await c.put("/api/v1/settings", json=LOCAL_FOR_ALL, headers=u["admin"].headers)
    assert r.status_code == 200, r.text
    script_id = await _script(c, u, approval=True)
    async with runtime.current().db.session() as session:
        await session.exec(
            update(ScriptVersion).where(col(ScriptVersion.script_id) == script_id).values(author_id=None)
        )
        await session.commit()
    body = {"script_id": script_id, "runner": "local"}
    r = await c.post("/api/v1/executions", json=body, headers=u["target"].headers)
    assert r.status_code == 202 and r.json()["status"] == "awaiting_approval", r.text
    return {"path": {"execution_id": r.json()["id"]}, "json": {"comment": "ok"}}


async def script_path(c: httpx.AsyncClient, u: dict[str, Any]) -> dict[str, Any]:
    return {"path": {"script_id": await _script(c, u, approval=True)}, "json": {"required": 1}}


CASES = [
    Case("GET", "/api/v1/approvals", allow("viewer")),
    Case("POST", "/api/v1/executions/{execution_id}/approve", allow("operator"), waiting),
    Case("POST", "/api/v1/executions/{execution_id}/reject", allow("operator"), waiting),
    Case("GET", "/api/v1/executions/{execution_id}/approvals", allow("viewer"), waiting),
    Case("GET", "/api/v1/executions/{execution_id}/approval", allow("viewer"), waiting),
    Case("GET", "/api/v1/scripts/{script_id}/approval", allow("viewer"), script_path),
    Case("PUT", "/api/v1/scripts/{script_id}/approval", allow("operator"), script_path),
    # Removing the requirement is for admins: operators may only add or raise it.
    Case("DELETE", "/api/v1/scripts/{script_id}/approval", allow("admin", 204), script_path),
]
