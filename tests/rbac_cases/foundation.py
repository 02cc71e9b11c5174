"""Matrix cases for auth, users, audit, settings and health."""

from __future__ import annotations

import secrets
from typing import Any

import httpx

from tests.rbac_cases import Case, allow, public


async def register_body(_c: httpx.AsyncClient, _u: dict[str, Any]) -> dict[str, Any]:
    name = f"new{secrets.token_hex(3)}"
    return {
        "json": {
            "username": name,
            "email": f"{name}@example.com",
            "password": "Another-Pass-1",
            "full_name": "",
        }
    }


async def login_body(_c: httpx.AsyncClient, u: dict[str, Any]) -> dict[str, Any]:
    return {"json": {"username": u["admin"].username, "password": "Correct-Horse-9"}}


async def refresh_body(c: httpx.AsyncClient, u: dict[str, Any]) -> dict[str, Any]:
    r = await c.post(
        "/api/v1/auth/login", json={"username": u["admin"].username, "password": "Correct-Horse-9"}
    )
    return {"json": {"refresh_token": r.json()["refresh_token"]}}


async def change_password_body(_c: httpx.AsyncClient, _u: dict[str, Any]) -> dict[str, Any]:
    return {"json": {"current_password": "Correct-Horse-9", "new_password": "Brand-New-Pass-7"}}


async def new_user_body(_c: httpx.AsyncClient, _u: dict[str, Any]) -> dict[str, Any]:
    name = f"u{secrets.token_hex(3)}"
    return {
        "json": {
            "username": name,
            "email": f"{name}@example.com",
            "password": "Another-Pass-1",
            "role": "viewer",
        }
    }


async def target_user(_c: httpx.AsyncClient, u: dict[str, Any]) -> dict[str, Any]:
    return {"path": {"user_id": u["target"].id}}


async def update_target(c: httpx.AsyncClient, u: dict[str, Any]) -> dict[str, Any]:
    return {"path": {"user_id": u["target"].id}, "json": {"full_name": "Renamed"}}


async def reset_target(c: httpx.AsyncClient, u: dict[str, Any]) -> dict[str, Any]:
    return {"path": {"user_id": u["target"].id}, "json": {"new_password": "Reset-Pass-123"}}


CASES = [
    # Registration is closed once users exist, for everyone (403), which is the rule being checked.
    Case("POST", "/api/v1/auth/register", public(403), register_body),
    Case("POST", "/api/v1/auth/login", public(200), login_body),
    Case("POST", "/api/v1/auth/refresh", public(200), refresh_body),
    Case("POST", "/api/v1/auth/logout", allow("viewer")),
    Case("GET", "/api/v1/auth/me", allow("viewer")),
    Case("PUT", "/api/v1/auth/me", allow("viewer"), lambda c, u: _json({"full_name": "Renamed Me"})),
    Case("POST", "/api/v1/auth/change-password", allow("viewer"), change_password_body),
    Case("GET", "/api/v1/users", allow("admin")),
    Case("POST", "/api/v1/users", allow("admin", 201), new_user_body),
    Case("GET", "/api/v1/users/{user_id}", allow("admin"), target_user),
    Case("PUT", "/api/v1/users/{user_id}", allow("admin"), update_target),
    Case("POST", "/api/v1/users/{user_id}/reset-password", allow("admin"), reset_target),
    Case("DELETE", "/api/v1/users/{user_id}", allow("admin", 204), target_user),
    Case("GET", "/api/v1/audit", allow("admin")),
    Case("GET", "/api/v1/settings", allow("viewer")),
    Case("PUT", "/api/v1/settings", allow("admin"), lambda c, u: _json({"registration_open": False})),
    Case("GET", "/api/v1/health", public(200)),
    Case("GET", "/api/v1/workers", allow("admin")),
    Case("GET", "/metrics", allow("admin"), note="or the OPSCRAFT_METRICS_TOKEN bearer token"),
]


async def _json(body: dict[str, Any]) -> dict[str, Any]:
    return {"json": body}
