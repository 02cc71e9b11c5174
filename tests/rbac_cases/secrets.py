"""Matrix cases for the vault: operators and admins manage secrets; viewers only see attachments."""

from __future__ import annotations

import secrets
from typing import Any

import httpx

from tests.rbac_cases import Case, allow

VALUE = "rbac-matrix-value-Zq81"


async def _secret(c: httpx.AsyncClient, u: dict[str, Any]) -> int:
    body = {"name": f"S_{secrets.token_hex(4)}", "value": VALUE, "description": "matrix"}
    r = await c.post("/api/v1/secrets", json=body, headers=u["admin"].headers)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def _script(c: httpx.AsyncClient, u: dict[str, Any]) -> int:
    body = {"name": f"s-{secrets.token_hex(4)}", "script_type": "bash", "content": "echo hi\n"}
    r = await c.post("/api/v1/scripts", json=body, headers=u["admin"].headers)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def _attached(c: httpx.AsyncClient, u: dict[str, Any]) -> dict[str, int]:
    ids = {"script_id": await _script(c, u), "secret_id": await _secret(c, u)}
    r = await c.post(
        "/api/v1/scripts/{script_id}/secrets/{secret_id}".format(**ids), headers=u["admin"].headers
    )
    assert r.status_code == 201, r.text
    return ids


async def create_body(_c: httpx.AsyncClient, _u: dict[str, Any]) -> dict[str, Any]:
    return {"json": {"name": f"NEW_{secrets.token_hex(4)}", "value": VALUE, "description": ""}}


async def secret_path(c: httpx.AsyncClient, u: dict[str, Any]) -> dict[str, Any]:
    return {"path": {"secret_id": await _secret(c, u)}}


async def update_body(c: httpx.AsyncClient, u: dict[str, Any]) -> dict[str, Any]:
    return {"path": {"secret_id": await _secret(c, u)}, "json": {"description": "changed"}}


async def rotated_path(c: httpx.AsyncClient, u: dict[str, Any]) -> dict[str, Any]:
    """A secret that signs a webhook and was given a new value: its previous one is accepted."""
    secret_id, admin = await _secret(c, u), u["admin"].headers
    hook = {"name": "signed", "secret_id": secret_id}
    r = await c.post(f"/api/v1/scripts/{await _script(c, u)}/webhooks", json=hook, headers=admin)
    assert r.status_code == 201, r.text
    r = await c.put(f"/api/v1/secrets/{secret_id}", json={"value": VALUE + "-new"}, headers=admin)
    assert r.status_code == 200 and r.json()["previous_accepted_until"], r.text
    return {"path": {"secret_id": secret_id}}


async def script_path(c: httpx.AsyncClient, u: dict[str, Any]) -> dict[str, Any]:
    return {"path": (await _attached(c, u))}


async def detached_pair(c: httpx.AsyncClient, u: dict[str, Any]) -> dict[str, Any]:
    return {"path": {"script_id": await _script(c, u), "secret_id": await _secret(c, u)}}


CASES = [
    Case("POST", "/api/v1/secrets", allow("operator", 201), create_body),
    Case("GET", "/api/v1/secrets", allow("operator")),
    Case("GET", "/api/v1/secrets/{secret_id}", allow("operator"), secret_path),
    Case("PUT", "/api/v1/secrets/{secret_id}", allow("operator"), update_body),
    Case("DELETE", "/api/v1/secrets/{secret_id}", allow("operator", 204), secret_path),
    Case("GET", "/api/v1/secrets/{secret_id}/audit-logs", allow("operator"), secret_path),
    Case("DELETE", "/api/v1/secrets/{secret_id}/previous-value", allow("operator", 204), rotated_path),
    Case("GET", "/api/v1/scripts/{script_id}/secrets", allow("viewer"), script_path),
    Case("POST", "/api/v1/scripts/{script_id}/secrets/{secret_id}", allow("operator", 201), detached_pair),
    Case("DELETE", "/api/v1/scripts/{script_id}/secrets/{secret_id}", allow("operator", 204), script_path),
]
