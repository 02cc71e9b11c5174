"""Matrix cases for shared inventories: everyone with a role reads them, operators and admins
create, replace and delete them (tests/test_shared_inventories_api.py covers the rules)."""

from __future__ import annotations

import secrets
from typing import Any

import httpx

from tests.rbac_cases import Case, allow

PATH = "/api/v1/inventories"
CONTENT = "[web]\nweb1 ansible_host=192.0.2.10\n"


def _body() -> dict[str, Any]:
    return {"name": f"inv-{secrets.token_hex(4)}", "content": CONTENT}


async def new_body(_c: httpx.AsyncClient, _u: dict[str, Any]) -> dict[str, Any]:
    return {"json": _body()}


async def inventory_path(c: httpx.AsyncClient, u: dict[str, Any]) -> dict[str, Any]:
    r = await c.post(PATH, json=_body(), headers=u["admin"].headers)
    assert r.status_code == 201, r.text
    return {"path": {"inventory_id": r.json()["id"]}, "json": _body()}


async def version_path(c: httpx.AsyncClient, u: dict[str, Any]) -> dict[str, Any]:
    return {"path": {**(await inventory_path(c, u))["path"], "number": 1}}


CASES = [
    Case("GET", PATH, allow("viewer")),
    Case("POST", PATH, allow("operator", 201), new_body),
    Case("GET", PATH + "/{inventory_id}", allow("viewer"), inventory_path),
    Case("PUT", PATH + "/{inventory_id}", allow("operator"), inventory_path),
    Case("DELETE", PATH + "/{inventory_id}", allow("operator", 204), inventory_path),
    Case("GET", PATH + "/{inventory_id}/versions", allow("viewer"), inventory_path),
    Case("GET", PATH + "/{inventory_id}/versions/{number}", allow("viewer"), version_path),
]
