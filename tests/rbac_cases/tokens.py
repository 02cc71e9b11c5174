"""Matrix cases for personal access tokens: every user manages their own; a token of someone
else is a 404 except for admins (tests/automation/test_api_tokens.py covers the rules)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.rbac_cases import Case, allow


async def target_token(c: httpx.AsyncClient, u: dict[str, Any]) -> dict[str, Any]:
    r = await c.post("/api/v1/tokens", json={"name": "t"}, headers=u["target"].headers)
    assert r.status_code == 201, r.text
    return {"path": {"token_id": r.json()["id"]}}


async def token_body(_c: httpx.AsyncClient, _u: dict[str, Any]) -> dict[str, Any]:
    return {"json": {"name": "matrix"}}


CASES = [
    Case("POST", "/api/v1/tokens", allow("viewer", 201), token_body),
    Case("GET", "/api/v1/tokens", allow("viewer")),
    Case(
        "DELETE",
        "/api/v1/tokens/{token_id}",
        {"anonymous": 401, "viewer": 404, "operator": 404, "admin": 204},
        target_token,
        note="someone else's token: hidden from non-admins",
    ),
]
