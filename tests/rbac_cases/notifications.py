"""Matrix cases for notifications: channels, rules and the delivery log are for admins
(tests/automation/test_notifications.py covers the rules and the delivery)."""

from __future__ import annotations

import secrets
from typing import Any

import httpx

from tests.rbac_cases import Case, allow

CHANNELS = "/api/v1/notifications/channels"


def _channel_body() -> dict[str, Any]:
    # port 9 (discard) on loopback: nothing listens, so a test send fails fast with a 409
    return {"name": f"c-{secrets.token_hex(4)}", "kind": "webhook", "config": {"url": "http://127.0.0.1:9/"}}


async def channel_body(_c: httpx.AsyncClient, _u: dict[str, Any]) -> dict[str, Any]:
    return {"json": _channel_body()}


async def _channel(c: httpx.AsyncClient, u: dict[str, Any]) -> int:
    r = await c.post(CHANNELS, json=_channel_body(), headers=u["admin"].headers)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def channel_path(c: httpx.AsyncClient, u: dict[str, Any]) -> dict[str, Any]:
    return {"path": {"channel_id": await _channel(c, u)}}


async def channel_put(c: httpx.AsyncClient, u: dict[str, Any]) -> dict[str, Any]:
    return {"path": {"channel_id": await _channel(c, u)}, "json": _channel_body()}


async def rule_body(c: httpx.AsyncClient, u: dict[str, Any]) -> dict[str, Any]:
    return {"json": {"channel_id": await _channel(c, u), "events": ["failure"]}}


async def rule_path(c: httpx.AsyncClient, u: dict[str, Any]) -> dict[str, Any]:
    body = (await rule_body(c, u))["json"]
    r = await c.post("/api/v1/notifications/rules", json=body, headers=u["admin"].headers)
    assert r.status_code == 201, r.text
    return {"path": {"rule_id": r.json()["id"]}}


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
        note="the receiver is unreachable: 409 with the transport's error",
    ),
    Case("GET", "/api/v1/notifications/rules", allow("admin")),
    Case("POST", "/api/v1/notifications/rules", allow("admin", 201), rule_body),
    Case("DELETE", "/api/v1/notifications/rules/{rule_id}", allow("admin", 204), rule_path),
    Case("GET", "/api/v1/notifications/deliveries", allow("admin")),
]
