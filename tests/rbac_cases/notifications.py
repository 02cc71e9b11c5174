"""Matrix cases for notifications: channels, rules and the delivery log are for admins
(tests/automation/test_notifications.py covers the rules and the delivery)."""

from __future__ import annotations

import secrets
from typing import Any

import httpx

from tests.rbac_cases import Case, allow

CHANNELS = "/api/v1/notifications/channels"


async def _channel_body(c: httpx.AsyncClient, u: dict[str, Any]) -> dict[str, Any]:
    """A Slack channel whose vault secret holds a loopback URL: saved (the URL is in the vault,
    read when sending), refused when sending (the default OPSCRAFT_NOTIFY_NETWORKS), so a test
    send fails at once with a 409 and reaches nothing."""
    secret = {"name": f"HOOK_{secrets.token_hex(4)}", "value": "http://127.0.0.1:9/"}
    r = await c.post("/api/v1/secrets", json=secret, headers=u["admin"].headers)
    assert r.status_code == 201, r.text
    return {"name": f"c-{secrets.token_hex(4)}", "kind": "slack", "secret_id": r.json()["id"]}


async def channel_body(c: httpx.AsyncClient, u: dict[str, Any]) -> dict[str, Any]:
    return {"json": await _channel_body(c, u)}


async def _channel(c: httpx.AsyncClient, u: dict[str, Any]) -> int:
    r = await c.post(CHANNELS, json=await _channel_body(c, u), headers=u["admin"].headers)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def channel_path(c: httpx.AsyncClient, u: dict[str, Any]) -> dict[str, Any]:
    return {"path": {"channel_id": await _channel(c, u)}}


async def channel_put(c: httpx.AsyncClient, u: dict[str, Any]) -> dict[str, Any]:
    return {"path": {"channel_id": await _channel(c, u)}, "json": await _channel_body(c, u)}


async def rule_body(c: httpx.AsyncClient, u: dict[str, Any]) -> dict[str, Any]:
    return {"json": {"channel_id": await _channel(c, u), "events": ["failure"]}}


async def rule_path(c: httpx.AsyncClient, u: dict[str, Any]) -> dict[str, Any]:
    body = (await rule_body(c, u))["json"]
    r = await c.post("/api/v1/notifications/rules", json=body, headers=u["admin"].headers)
    assert r.status_code == 201, r.text
    return {"path": {"rule_id": r.json()["id"]}}


async def rule_put(c: httpx.AsyncClient, u: dict[str, Any]) -> dict[str, Any]:
    return {**await rule_path(c, u), "json": {"enabled": False}}


CASES = [
    Case("GET", CHANNELS, allow("admin")),
    Case("POST", CHANNELS, allow("admin", 201), channel_body),
    Case("GET", CHANNELS + "/{channel_id}", allow("admin"), channel_path),
    Case("PUT", CHANNELS + "/{channel_id}", allow("admin"), channel_put),
    Case("DELETE", CHANNELS + "/{channel_id}", allow("admin", 204), channel_path),
    Case(
        "POST",
        CHANNELS + "/{channel_id}/test",
        allow("admin", 409),
        channel_path,
        note="the receiver's loopback address is refused: 409 with the transport's error",
    ),
    Case("GET", "/api/v1/notifications/rules", allow("admin")),
    Case("POST", "/api/v1/notifications/rules", allow("admin", 201), rule_body),
    Case("PUT", "/api/v1/notifications/rules/{rule_id}", allow("admin"), rule_put),
    Case("DELETE", "/api/v1/notifications/rules/{rule_id}", allow("admin", 204), rule_path),
    Case("GET", "/api/v1/notifications/deliveries", allow("admin")),
]
