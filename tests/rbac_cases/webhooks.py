"""Matrix cases for webhooks: everyone with a role sees them, operators and admins manage them;
the call URL needs no login (its token is the credential), so every caller gets a 202
(tests/automation/test_webhooks.py covers tokens, signatures and refusals)."""

from __future__ import annotations

import secrets
from typing import Any

import httpx

from tests.rbac_cases import LOCAL_FOR_ALL, Case, allow, public

PATH = "/api/v1/scripts/{script_id}/webhooks"
BODY = {"name": "on-push"}


async def _script(c: httpx.AsyncClient, u: dict[str, Any]) -> int:
    body = {
        "name": f"x-{secrets.token_hex(4)}",
        "script_type": "bash",
        "content": "true\n",
        "status": "active",
    }
    r = await c.post("/api/v1/scripts", json=body, headers=u["admin"].headers)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def _hook(c: httpx.AsyncClient, u: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    script_id = await _script(c, u)
    r = await c.post(PATH.format(script_id=script_id), json=BODY, headers=u["admin"].headers)
    assert r.status_code == 201, r.text
    return script_id, r.json()


async def script_path(c: httpx.AsyncClient, u: dict[str, Any]) -> dict[str, Any]:
    return {"path": {"script_id": await _script(c, u)}, "json": BODY}


async def hook_path(c: httpx.AsyncClient, u: dict[str, Any]) -> dict[str, Any]:
    script_id, hook = await _hook(c, u)
    return {"path": {"script_id": script_id, "webhook_id": hook["id"]}, "json": BODY}


async def call_path(c: httpx.AsyncClient, u: dict[str, Any]) -> dict[str, Any]:
    r = await c.put("/api/v1/settings", json=LOCAL_FOR_ALL, headers=u["admin"].headers)
    assert r.status_code == 200, r.text
    _, hook = await _hook(c, u)
    return {"path": {"webhook_id": hook["id"], "token": hook["token"]}, "json": {}}


CASES = [
    Case("GET", PATH, allow("viewer"), script_path),
    Case("POST", PATH, allow("operator", 201), script_path),
    Case("GET", PATH + "/{webhook_id}", allow("viewer"), hook_path),
    Case("PUT", PATH + "/{webhook_id}", allow("operator"), hook_path),
    Case("DELETE", PATH + "/{webhook_id}", allow("operator", 204), hook_path),
    Case(
        "POST",
        "/api/v1/hooks/{webhook_id}/{token}",
        public(202),
        call_path,
        note="the token is the credential",
    ),
]
