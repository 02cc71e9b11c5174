"""Matrix cases for the script library: viewers read, operators and admins write."""

from __future__ import annotations

import secrets
from typing import Any

import httpx

from tests.rbac_cases import Case, allow

CONTENT = '#!/bin/bash\necho "Hello, $NAME"\n'


async def _script(c: httpx.AsyncClient, u: dict[str, Any]) -> int:
    """A script with two versions, created by the admin."""
    body = {"name": f"s-{secrets.token_hex(4)}", "script_type": "bash", "content": CONTENT}
    r = await c.post(
        "/api/v1/scripts", json={**body, "parameters": {"NAME": "World"}}, headers=u["admin"].headers
    )
    assert r.status_code == 201, r.text
    script_id = int(r.json()["id"])
    r = await c.put(
        f"/api/v1/scripts/{script_id}", json={"content": CONTENT + "echo bye\n"}, headers=u["admin"].headers
    )
    assert r.status_code == 200, r.text
    return script_id


async def create_body(_c: httpx.AsyncClient, _u: dict[str, Any]) -> dict[str, Any]:
    name = f"new-{secrets.token_hex(4)}"
    return {"json": {"name": name, "script_type": "bash", "content": CONTENT, "parameters": {"NAME": "x"}}}


async def script_path(c: httpx.AsyncClient, u: dict[str, Any]) -> dict[str, Any]:
    return {"path": {"script_id": await _script(c, u)}}


async def update_body(c: httpx.AsyncClient, u: dict[str, Any]) -> dict[str, Any]:
    return {
        "path": {"script_id": await _script(c, u)},
        "json": {"description": "Updated", "status": "active"},
    }


async def version_path(c: httpx.AsyncClient, u: dict[str, Any]) -> dict[str, Any]:
    return {"path": {"script_id": await _script(c, u), "number": 1}}


async def diff_params(c: httpx.AsyncClient, u: dict[str, Any]) -> dict[str, Any]:
    return {"path": {"script_id": await _script(c, u)}, "params": {"from": 1, "to": 2}}


CASES = [
    Case("GET", "/api/v1/scripts", allow("viewer")),
    Case("POST", "/api/v1/scripts", allow("operator", 201), create_body),
    Case("GET", "/api/v1/scripts/{script_id}", allow("viewer"), script_path),
    Case("PUT", "/api/v1/scripts/{script_id}", allow("operator"), update_body),
    Case("DELETE", "/api/v1/scripts/{script_id}", allow("operator", 204), script_path),
    Case("GET", "/api/v1/scripts/{script_id}/versions", allow("viewer"), script_path),
    Case("GET", "/api/v1/scripts/{script_id}/versions/{number}", allow("viewer"), version_path),
    Case("GET", "/api/v1/scripts/{script_id}/diff", allow("viewer"), diff_params),
    Case("POST", "/api/v1/scripts/{script_id}/rollback/{number}", allow("operator"), version_path),
]
