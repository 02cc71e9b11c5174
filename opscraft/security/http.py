"""HTTP protections as plain ASGI middleware: security headers, body size and JSON shape limits."""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# NiceGUI (Vue + Quasar) needs inline scripts/styles and 'unsafe-eval' for its templates;
# everything else is locked to this origin.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; "
    "connect-src 'self' ws: wss:; worker-src 'self' blob:; frame-ancestors 'none'; "
    "base-uri 'self'; form-action 'self'; object-src 'none'"
)


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        https = scope.get("scheme") == "https" or _header(scope, b"x-forwarded-proto") == b"https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                extra = [
                    (b"x-frame-options", b"DENY"),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"strict-origin-when-cross-origin"),
                    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
                    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
                ]
                if https:
                    extra.append((b"strict-transport-security", b"max-age=31536000; includeSubDomains"))
                headers.extend((k, v) for k, v in extra if k not in present)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


RAW_JSON_PREFIX = "/api/v1/terraform/state/"


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value
    return None


def _json_shape(value: Any) -> tuple[int, int]:
    """(max depth, total object keys) of a parsed JSON document, without recursion."""
    deepest, keys = 0, 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(item, dict):
            keys += len(item)
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
    return deepest, keys


async def _reject(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail, "errors": []}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RequestLimitsMiddleware:
    """For `/api/` requests: cap the body size, and the depth and key count of JSON bodies."""

    def __init__(self, app: ASGIApp, max_body: int, max_depth: int, max_keys: int) -> None:
        self.app = app
        self.max_body = max_body
        self.max_depth = max_depth
        self.max_keys = max_keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        length = _header(scope, b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            await _reject(send, 413, f"request body too large: at most {self.max_body} bytes")
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await _reject(send, 413, f"request body too large: at most {self.max_body} bytes")
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        content_type = _header(scope, b"content-type") or b""
        # Terraform states are stored as sent, never parsed into objects by a route: they may be
        # deeper and have more keys than any request body the API reads.
        raw = scope["path"].startswith(RAW_JSON_PREFIX)
        if body and content_type.startswith(b"application/json") and not raw:
            try:
                depth, keys = _json_shape(json.loads(body))
            except RecursionError:  # deeper than the parser goes: far beyond any limit
                depth, keys = self.max_depth + 1, 0
            except ValueError:
                await _reject(send, 400, "request body is not valid JSON")
                return
            if depth > self.max_depth:
                await _reject(send, 422, f"JSON body nested too deeply: at most {self.max_depth} levels")
                return
            if keys > self.max_keys:
                await _reject(send, 422, f"JSON body has too many keys: at most {self.max_keys}")
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
