"""HTTP protections as plain ASGI middleware: security headers, body size and JSON shape limits,
and a 503 for requests that arrive before start-up has finished."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable
from itertools import islice
from typing import Any
from urllib.parse import parse_qsl

from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opscraft.db.digits import ascii_int
from opscraft.db.text import (
    NOT_UTF8_MESSAGE,
    find_unreadable_numbers,
    find_unstorable,
    not_utf8_parameters,
    not_utf8_path,
    problem,
    read_float,
    read_int,
)
from opscraft.security import ratelimit

MAX_REPORTED = 20

# NiceGUI (Vue + Quasar) needs inline scripts/styles and 'unsafe-eval' for its templates;
# everything else is locked to this origin (`connect-src 'self'` covers this origin's ws:/wss:, as
# CSP Level 3 matches 'self'; `ws: wss:` let an injected script open a WebSocket to any host).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; "
    "connect-src 'self'; worker-src 'self' blob:; frame-ancestors 'none'; "
    "base-uri 'self'; form-action 'self'; object-src 'none'"
)


class RateLimitHeadersMiddleware:
    """`RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` on every HTTP answer whose
    request counted against a rate limit (`ratelimit.count`: sign-in, every authenticated API
    call, inbound webhook calls), a 429 included, so a client can pace itself before it is
    refused (`ratelimit.headers`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry: collect the request's counted quotas; add their headers when the answer starts."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with ratelimit.reported() as counted:

            async def send_with_headers(message: Message) -> None:
                if message["type"] == "http.response.start" and counted:
                    message["headers"] = [*message.get("headers", []), *ratelimit.headers(counted)]
                await send(message)

            await self.app(scope, receive, send_with_headers)


class SecurityHeadersMiddleware:
    """Security headers on every HTTP answer that does not set them itself; HSTS behind HTTPS;
    `Cache-Control: no-store` on the API's answers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry: add the security headers (frame, sniffing, referrer and permissions policies, CSP;
        HSTS on HTTPS; `Cache-Control: no-store` on API answers, RFC 6749 section 5.1) unless the
        response set them.
        """
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        https = is_https(scope)
        api = scope["path"].startswith("/api/")

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
                if api:
                    # Answers carry tokens (login, refresh, a new API token or webhook URL) and
                    # per-user data: no cache keeps them (RFC 6749 5.1 for token answers).
                    extra.append((b"cache-control", b"no-store"))
                headers.extend((k, v) for k, v in extra if k not in present)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def is_https(scope: Scope) -> bool:
    """Whether the browser reached this request over HTTPS: directly, or through a proxy that
    says so (`X-Forwarded-Proto: https`, as docker/nginx.conf sends)."""
    return scope.get("scheme") == "https" or _header(scope, b"x-forwarded-proto") == b"https"


class SecureCookiesMiddleware:
    """Every cookie set in the answer to an HTTPS request (`is_https`) gets the `Secure`
    attribute, so the browser never sends it over plain HTTP (a first `http://` visit, a link,
    a network that strips the redirect), where anyone on the path would read the UI's session.
    NiceGUI's session cookie is made by Starlette's `SessionMiddleware`, whose `https_only` is
    fixed for every request (on, a plain-HTTP installation could not sign in): this middleware
    sits outside it (`api.lean_path.install`) and decides per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry: on HTTPS requests, mark every Set-Cookie of the response Secure."""
        if scope["type"] != "http" or not is_https(scope):
            await self.app(scope, receive, send)
            return

        async def send_secure(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    (name, _secure_cookie(value) if name.lower() == b"set-cookie" else value)
                    for name, value in message.get("headers", [])
                ]
            await send(message)

        await self.app(scope, receive, send_secure)


def _secure_cookie(value: bytes) -> bytes:
    """A `Set-Cookie` value with the `Secure` attribute (unchanged when it has it)."""
    attributes = {part.strip().lower() for part in value.split(b";")[1:]}
    return value if b"secure" in attributes else value + b"; Secure"


RAW_JSON_PREFIX = "/api/v1/terraform/state/"
# Inbound webhooks read their caller's body themselves, whatever its type (services/webhooks.py).
HOOKS_PREFIX = "/api/v1/hooks/"


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value
    return None


def json_shape(value: Any) -> tuple[int, int]:
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


REPEATED_KEY = "sent more than once in one JSON object: send each key once"


class RepeatedKey(ValueError):
    """A JSON object repeats `key`; such bodies are refused (which value wins would be ambiguous)."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """`json.loads`' `object_pairs_hook`: the object, or `RepeatedKey` naming a key it repeats.

    Rule: a body that sends a key twice is refused, not read as its last value (Python's way):
    `{"name": "a", "name": "b"}` is ambiguous, and readers that keep the first value (other
    parsers, a proxy that checks the body) would see another request than the one run."""
    document = dict(pairs)
    if len(document) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise RepeatedKey(key)
            seen.add(key)
    return document


# What RFC 8259 (section 2) reads as white space between a JSON document's values.
JSON_SPACE = " \t\r\n"


def unseen_in_json(error: json.JSONDecodeError) -> str | None:
    """Why `json.loads` refused text where it did, when that is a character people do not see as
    one (else None): a zero-width or other format character (Unicode category Cf: U+200B, a BOM
    inside the text, U+2060), a line or paragraph separator, or white space JSON does not read as
    such (U+00A0 NO-BREAK SPACE): named with its place, code point and Unicode name. Pasted from
    a web page or a file, the text looked right, and "Expecting value" (or, in a form's box,
    "must be a JSON object") said nothing of what to remove."""
    found = error.doc[error.pos : error.pos + 1]
    if not found or found in JSON_SPACE:
        return None
    if not (found.isspace() or unicodedata.category(found) in ("Cf", "Zl", "Zp")):
        return None
    name = unicodedata.name(found, "")
    return (
        f"line {error.lineno}, column {error.colno} holds U+{ord(found):04X}{f' {name}' if name else ''}, "
        "which JSON does not read as white space (only spaces, tabs and line breaks may separate "
        "its values): remove it"
    )


def not_json_reason(error: ValueError) -> str:
    """Why `json.loads` refused a body, in words that never repeat it: where the syntax breaks
    (`Expecting value at line 1, column 14`), a character there that is not seen as one
    (`unseen_in_json`), or the first byte that is not UTF-8 (JSON is sent as UTF-8, RFC 8259
    section 8.1). "not valid JSON" alone left a client to hunt for the mistake in the whole body."""
    if isinstance(error, json.JSONDecodeError):  # "Unterminated string starting at": no "at at"
        unseen = unseen_in_json(error)
        if unseen:
            return unseen
        return f"{error.msg.removesuffix(' at')} at line {error.lineno}, column {error.colno}"
    if isinstance(error, UnicodeDecodeError):
        utf8 = "send JSON as UTF-8 (RFC 8259), whatever charset the Content-Type names"
        if error.encoding == "utf-8":
            return f"byte {error.start + 1} is not UTF-8 text: {utf8}"
        # json.loads takes a body starting with a UTF-16 or UTF-32 byte order mark or zero bytes as such
        read_as = error.encoding.upper()
        return f"its first bytes make it {read_as} text, and byte {error.start + 1} does not decode: {utf8}"
    return "it cannot be read as JSON"


def _is_json(content_type: bytes | None) -> bool:
    """What FastAPI parses as JSON: no content type, `application/json` or `application/*+json`."""
    if not content_type:
        return True
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (media.startswith(b"application/") and media.endswith(b"+json"))


def unstorable_in_request(scope: Scope, document: Any) -> list[dict[str, str]]:
    """`{field, message}` for each text in the path, query string or parsed JSON body that the
    databases cannot store (NUL, lone surrogate; see `db.text`), and each number of the body that
    is not the number sent (`NaN`, `Infinity`, `1e400`, `1e-400` which a float reads as 0:
    `db.text.find_unreadable_numbers`; the body is parsed with `read_float`); fields are named like
    the 422s of request validation: `description`, `parameters.P`, `search`."""
    errors: list[dict[str, str]] = []
    path_problem = problem(scope["path"]) or (NOT_UTF8_MESSAGE if not_utf8_path(scope) else None)
    if path_problem:
        errors.append({"field": "path", "message": path_problem})
    errors += ({"field": name, "message": NOT_UTF8_MESSAGE} for name in not_utf8_parameters(scope))
    query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    for key, value in query:
        errors += ({"field": f, "message": m} for f, m in find_unstorable({key: value}))
    if document is not None:
        errors += ({"field": f, "message": m} for f, m in islice(find_unstorable(document), MAX_REPORTED))
        numbers = find_unreadable_numbers(document)
        errors += ({"field": f, "message": m} for f, m in islice(numbers, MAX_REPORTED))
    return errors[:MAX_REPORTED]


async def _reject(
    send: Send,
    status: int,
    detail: str,
    errors: list[dict[str, str]] | None = None,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """Answer `status` with the API's error body (`{"detail", "errors"}`), encoded as every other
    error answer is (Starlette's `JSONResponse`: compact, UTF-8), plus `headers`."""
    response = JSONResponse({"detail": detail, "errors": errors or []}, status)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*response.raw_headers, *(headers or [])],
        }
    )
    await send({"type": "http.response.body", "body": response.body})


class RequestLimitsMiddleware:
    """For `/api/` requests: cap the body size (`max_body`; `max_state` for the Terraform state
    backend, whose bodies are whole states), and the depth and key count of JSON bodies; refuse
    (422 naming the field) text the databases cannot store anywhere in the path, query or body,
    and a JSON object that repeats a key (`unique_keys`); a body with a `Content-Encoding`
    (gzip, ...) is a 415 with `Accept-Encoding: identity` (RFC 9110, 15.5.16); a body sent as
    another type than JSON is a 415 saying which header to send (`curl -d` sends form data by
    default), except to the routes that read raw bodies (inbound webhooks, the Terraform state
    backend). The query's own rules (unknown or repeated parameters) are api/query_check.py's.

    Every 422 names its fields (`{field, message}`; `body` for the body as a whole) and its
    `detail` is `summary` of them: the API's one wording of refused input
    (`services.errors.input_summary`, given by api/__init__.py: this layer may not import it)."""

    def __init__(
        self,
        app: ASGIApp,
        max_body: int,
        max_depth: int,
        max_keys: int,
        max_state: int,
        summary: Callable[[list[dict[str, str]]], str],
    ) -> None:
        self.app = app
        self.summary = summary
        self.max_body = max_body
        self.max_state = max_state
        self.max_depth = max_depth
        self.max_keys = max_keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry: read an API request's body whole and refuse it before the route runs.

        Answers 413 past the body limit (in bytes; OPSCRAFT_MAX_STATE_BYTES for Terraform states), 415 for
        an encoded body or a non-JSON one outside webhooks and states, 400 for a body that is not valid
        JSON, and 422 for JSON past the depth or key limits, with repeated keys, or with text the databases
        cannot store (the class docstring has the whole list).
        """
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        # Terraform states are stored as sent, never parsed into objects by a route: they may be
        # larger, deeper and have more keys than any request body the API reads.
        raw = scope["path"].startswith(RAW_JSON_PREFIX)
        limit, setting = (self.max_state, "OPSCRAFT_MAX_STATE_BYTES") if raw else (self.max_body, "")
        too_large = f"request body too large: at most {limit} bytes" + (f" ({setting})" if setting else "")
        length = _header(scope, b"content-length")
        declared = ascii_int(length, 20) if length is not None else None
        if declared is not None and declared > limit:
            await _reject(send, 413, too_large)
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
            if size > limit:
                await _reject(send, 413, too_large)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        encoding = (_header(scope, b"content-encoding") or b"").strip().lower()
        if body and encoding not in (b"", b"identity"):
            # Never decoded here: an encoded body would have been read as the bytes sent.
            sent = encoding.decode("latin-1")[:100]
            detail = f"request body must not be encoded: send it without Content-Encoding (not {sent})"
            await _reject(send, 415, detail, headers=[(b"accept-encoding", b"identity")])
            return
        content_type = _header(scope, b"content-type")
        if body and not raw and not _is_json(content_type) and not scope["path"].startswith(HOOKS_PREFIX):
            sent = content_type.decode("latin-1").split(";", 1)[0].strip()[:100] if content_type else ""
            detail = f"request body must be JSON: send it with Content-Type: application/json (not {sent})"
            await _reject(send, 415, detail)
            return
        document: Any = None
        if body and _is_json(content_type) and not raw:
            try:
                document = json.loads(
                    body, object_pairs_hook=unique_keys, parse_float=read_float, parse_int=read_int
                )
                depth, keys = json_shape(document)
            except RecursionError:  # deeper than the parser goes: far beyond any limit
                depth, keys = self.max_depth + 1, 0
            except RepeatedKey as repeated:
                await self._refuse(send, [{"field": repeated.key, "message": REPEATED_KEY}])
                return
            except ValueError as error:
                await _reject(send, 400, f"request body is not valid JSON: {not_json_reason(error)}")
                return
            if depth > self.max_depth:
                message = f"nested too deeply: at most {self.max_depth} levels (OPSCRAFT_MAX_JSON_DEPTH)"
                await self._refuse(send, [{"field": "body", "message": message}])
                return
            if keys > self.max_keys:
                message = f"too many keys: at most {self.max_keys} (OPSCRAFT_MAX_JSON_KEYS)"
                await self._refuse(send, [{"field": "body", "message": message}])
                return
        errors = unstorable_in_request(scope, document)
        if errors:
            await self._refuse(send, errors)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send, errors: list[dict[str, str]]) -> None:
        """Answer 422 naming `errors` (`{field, message}`), in `summary`'s words."""
        await _reject(send, 422, self.summary(errors), errors)


STARTING_RETRY_SECONDS = 2
_UNGATED = ("/_nicegui/", "/_nicegui_ws/")
_STARTING_PAGE = (
    b'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>OpsCraft is starting</title>'
    b'<meta http-equiv="refresh" content="2"></head><body><main><h1>OpsCraft is starting</h1>'
    b"<p>This page reloads by itself in a moment.</p></main></body></html>"
)


class StartupGateMiddleware:
    """Until `ready()` is true, answer every HTTP request with 503 and `Retry-After` (JSON under
    `/api/`, a self-reloading page elsewhere), so nothing reaches a page or route before the
    database and the vault are up. NiceGUI's static assets and sockets pass (they need neither).
    """

    def __init__(self, app: ASGIApp, ready: Callable[[], bool]) -> None:
        self.app = app
        self.ready = ready

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry: until the app is ready, answer 503 with Retry-After (JSON on API paths, a "starting"
        page otherwise), except on the ungated paths.
        """
        if scope["type"] != "http" or self.ready() or scope["path"].startswith(_UNGATED):
            await self.app(scope, receive, send)
            return
        headers = {"retry-after": str(STARTING_RETRY_SECONDS), "cache-control": "no-store"}
        response: Response = (
            JSONResponse(
                {"detail": "OpsCraft is starting: try again in a moment", "errors": []}, 503, headers
            )
            if scope["path"].startswith("/api/")
            else HTMLResponse(_STARTING_PAGE, 503, headers)
        )
        await response(scope, receive, send)
