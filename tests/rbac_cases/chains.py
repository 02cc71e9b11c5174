"""Matrix cases for chained runs: everyone with a role sees the links and a run's chain;
operators and admins manage links (tests/automation/test_chains.py covers the rules)."""

from __future__ import annotations

import secrets
from typing import Any

import httpx

from tests.rbac_cases import Case, allow

PATH = "/api/v1/scripts/{script_id}/chains"


async def _script(c: httpx.AsyncClient, u: dict[str, Any]) -> int:
    body = {
        "name": f"c-{secrets.token_hex(4)}",
        "script_type": "bash",
        "content": "true\n",
        "status": "active",
    }
    r = await c.post("/api/v1/scripts", json=body, headers=u["admin"].headers)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def script_path(c: httpx.AsyncClient, u: dict[str, Any]) -> dict[str, Any]:
    return {"path": {"script_id": await _script(c, u)}, "json": {"target_script_id": await _script(c, u)}}


async def link_path(c: httpx.AsyncClient, u: dict[str, Any]) -> dict[str, Any]:
    source, target = await _script(c, u), await _script(c, u)
    r = await c.post(
        PATH.format(script_id=source), json={"target_script_id": target}, headers=u["admin"].headers
    )
    assert r.status_code == 201, r.text
    return {"path": {"script_id": source, "link_id": r.json()["id"]}, "json": {"target_script_id": target}}


async def execution_path(c: httpx.AsyncClient, u: dict[str, Any]) -> dict[str, Any]:
    r = await c.put("/api/v1/settings", json={"local_runner_enabled": True}, headers=u["admin"].headers)
    assert r.status_code == 200, r.text
    r = await c.post(
        "/api/v1/executions", json={"script_id": await _script(c, u)}, headers=u["admin"].headers
    )
    assert r.status_code == 202, r.text
    return {"path": {"execution_id": r.json()["id"]}}


CASES = [
    Case("GET", PATH, allow("viewer"), script_path),
    Case("POST", PATH, allow("operator", 201), script_path),
    Case("GET", PATH + "/{link_id}", allow("viewer"), link_path),
    Case("PUT", PATH + "/{link_id}", allow("operator"), link_path),
    Case("DELETE", PATH + "/{link_id}", allow("operator", 204), link_path),
    Case("GET", "/api/v1/executions/{execution_id}/chain", allow("viewer"), execution_path),
]
