"""Matrix cases for schedules: everyone with a role sees them; operators and admins edit
(tests/automation/test_schedules.py covers the rules)."""

from __future__ import annotations

import secrets
from typing import Any

import httpx

from tests.rbac_cases import Case, allow

PATH = "/api/v1/scripts/{script_id}/schedules"
BODY = {"name": "nightly", "cron": "0 3 * * *", "timezone": "UTC"}


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


async def script_path(c: httpx.AsyncClient, u: dict[str, Any]) -> dict[str, Any]:
    return {"path": {"script_id": await _script(c, u)}, "json": BODY}


async def schedule_path(c: httpx.AsyncClient, u: dict[str, Any]) -> dict[str, Any]:
    script_id = await _script(c, u)
    r = await c.post(PATH.format(script_id=script_id), json=BODY, headers=u["admin"].headers)
    assert r.status_code == 201, r.text
    return {"path": {"script_id": script_id, "schedule_id": r.json()["id"]}, "json": BODY}


CASES = [
    Case("GET", "/api/v1/schedules", allow("viewer")),
    Case("GET", PATH, allow("viewer"), script_path),
    Case("POST", PATH, allow("operator", 201), script_path),
    Case("GET", PATH + "/{schedule_id}", allow("viewer"), schedule_path),
    Case("PUT", PATH + "/{schedule_id}", allow("operator"), schedule_path),
    Case("DELETE", PATH + "/{schedule_id}", allow("operator", 204), schedule_path),
]
