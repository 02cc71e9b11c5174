"""HTTP protections in front of the API: headers, CORS, body and JSON limits, error shapes, health."""

from __future__ import annotations

import contextlib
import gzip
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send

from opscraft import lifecycle, runtime
from opscraft.api import install_api
from opscraft.db.engine import Database
from opscraft.db.text import TOO_SMALL_MESSAGE, imprecise_message
from opscraft.security.http import STARTING_RETRY_SECONDS, StartupGateMiddleware
from opscraft.services import app_settings
from tests.conftest import REDIS_URL, LoggedIn, make_settings, own_redis_prefix, require_service


@pytest.fixture
def backend() -> str:
    """These protections sit in front of the database: SQLite is enough."""
    return "sqlite"


async def test_security_headers_on_api_responses(client: httpx.AsyncClient) -> None:
    for r in (await client.get("/api/v1/health"), await client.get("/api/v1/auth/me")):
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "strict-origin-when-cross-origin"
        csp = r.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
        assert "strict-transport-security" not in r.headers, "no HSTS over plain HTTP"


async def test_api_answers_are_never_cached(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    """A login's answer holds tokens (RFC 6749 5.1: `Cache-Control: no-store`), as do a new API
    token's and a refresh's; API answers had no Cache-Control, so a browser or proxy cache could
    keep them."""
    login = await client.post("/api/v1/auth/login", json={"username": "admin", "password": "Correct-Horse-9"})
    assert login.status_code == 200 and login.headers["cache-control"] == "no-store"
    created = await client.post("/api/v1/tokens", json={"name": "ci"}, headers=admin.headers)
    assert created.status_code == 201 and created.headers["cache-control"] == "no-store"
    refused = await client.get("/api/v1/auth/me")
    assert refused.status_code == 401 and refused.headers["cache-control"] == "no-store"


async def test_hsts_only_behind_https(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/health", headers={"X-Forwarded-Proto": "https"})
    assert r.headers["strict-transport-security"].startswith("max-age=31536000")
    r = await client.get("/api/v1/health", headers={"X-Forwarded-Proto": "http"})
    assert "strict-transport-security" not in r.headers


async def test_body_size_limit(client: httpx.AsyncClient, rt: runtime.Runtime) -> None:
    limit = rt.settings.max_body_bytes
    big = {"username": "x" * limit, "password": "y"}
    r = await client.post("/api/v1/auth/login", json=big)
    assert r.status_code == 413 and f"at most {limit} bytes" in r.json()["detail"]

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the stream itself is counted
        yield b'{"username": "'
        for _ in range(limit // 4096 + 2):
            yield b"z" * 4096
        yield b'"}'

    r = await client.post(
        "/api/v1/auth/login", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 413


async def test_json_depth_and_key_limits(client: httpx.AsyncClient, rt: runtime.Runtime) -> None:
    nested: object = "leaf"
    for _ in range(rt.settings.max_json_depth + 1):
        nested = {"n": nested}
    r = await client.post("/api/v1/auth/login", json=nested)
    assert r.status_code == 422 and "nested too deeply" in r.json()["detail"]
    abyss = b"[" * 100_000 + b"]" * 100_000  # deeper than Python's parser recurses
    r = await client.post("/api/v1/auth/login", content=abyss, headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and "nested too deeply" in r.json()["detail"]
    many = {f"k{i}": i for i in range(rt.settings.max_json_keys + 1)}
    r = await client.post("/api/v1/auth/login", json=many)
    assert r.status_code == 422 and "too many keys" in r.json()["detail"]
    r = await client.post(
        "/api/v1/auth/login", content=b'{"username": ', headers={"Content-Type": "application/json"}
    )
    detail = "request body is not valid JSON: Expecting value at line 1, column 14"
    assert r.status_code == 400 and r.json() == {"detail": detail, "errors": []}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"full_name": "A",\n "email": }', "Expecting value at line 2, column 11"),
        (b'{"full_name": "A" "email": "a@b.io"}', "Expecting ',' delimiter at line 1, column 19"),
        (b'{"full_name": "Ren\xe9"}', "byte 19 is not UTF-8 text: send JSON as UTF-8 (RFC 8259)"),
        (b"\xff\xfe\xfd", "its first bytes make it UTF-16-LE text, and byte 3 does not decode"),
    ],
)
async def test_a_body_that_is_not_json_is_400_saying_where(
    client: httpx.AsyncClient, admin: LoggedIn, body: bytes, reason: str
) -> None:
    """ "request body is not valid JSON" alone left the client to hunt for the mistake: the 400
    says where the syntax breaks, or which byte is not UTF-8 (a body written in Latin-1), without
    repeating the body; nothing is changed."""
    headers = {**admin.headers, "Content-Type": "application/json; charset=latin-1"}
    r = await client.put("/api/v1/auth/me", content=body, headers=headers)
    assert r.status_code == 400, r.text
    assert r.json()["detail"].startswith(f"request body is not valid JSON: {reason}"), r.text
    assert "Ren" not in r.text
    assert (await client.get("/api/v1/auth/me", headers=admin.headers)).json()["full_name"] != "A"


async def test_the_request_limits_answer_as_every_other_error_does(client: httpx.AsyncClient) -> None:
    """The refusals written before a route runs (`RequestLimitsMiddleware`) are encoded as the
    routes' own errors are (Starlette's `JSONResponse`: compact separators, UTF-8 text): one client
    comparing or logging bodies saw two styles (`{"detail": "..."}` against `{"detail":"..."}`)."""
    limits = await client.post(
        "/api/v1/auth/login",
        content=b'{"username": "a\\u0000b"}',
        headers={"Content-Type": "application/json"},
    )
    route = await client.get("/api/v1/no-such-thing")
    assert limits.status_code == 422 and route.status_code == 404
    for answer in (limits, route):
        assert answer.headers["content-type"] == "application/json"
        assert answer.content == json.dumps(answer.json(), ensure_ascii=False, separators=(",", ":")).encode()


async def test_the_start_up_gate_answers_503_until_ready() -> None:
    """Before the database and the vault are up (`StartupGateMiddleware`): 503 with `Retry-After`,
    JSON in the API's error shape under `/api/`, a self-reloading page elsewhere; then through."""
    ready = False

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await PlainTextResponse("through")(scope, receive, send)

    gate = StartupGateMiddleware(app, lambda: ready)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gate), base_url="http://t") as c:
        api, page = await c.get("/api/v1/scripts"), await c.get("/scripts")
        for answer in (api, page):
            assert answer.status_code == 503
            assert answer.headers["retry-after"] == str(STARTING_RETRY_SECONDS)
            assert answer.headers["cache-control"] == "no-store"
        assert api.content == b'{"detail":"OpsCraft is starting: try again in a moment","errors":[]}'
        assert page.headers["content-type"] == "text/html; charset=utf-8" and "reloads by itself" in page.text
        ready = True
        assert (await c.get("/api/v1/scripts")).text == "through"


async def _active_script(client: httpx.AsyncClient, who: LoggedIn, parameters: object) -> int:
    """The id of a new active Bash script `p` declaring `parameters`, made by `who`."""
    body = {"name": "p", "script_type": "bash", "content": "env\n", "status": "active"}
    body["parameters"] = parameters
    created = await client.post("/api/v1/scripts", json=body, headers=who.headers)
    assert created.status_code == 201, created.text
    return int(created.json()["id"])


async def test_a_number_that_is_not_finite_is_422_naming_it_and_nothing_is_written(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    """`NaN` and `Infinity` (not JSON, but Python's parser takes them) and `1e400` (beyond a float)
    were read as numbers (and an integer of 5,000 digits was "not valid JSON"): a text field such
    as a string parameter stored `nan` or `inf`, and a schedule ran its script with X=nan. Each is
    a 422 naming its place, before anything runs."""
    json_headers = {**operator.headers, "Content-Type": "application/json"}
    script_id = await _active_script(client, operator, {"X": "a"})
    message = "must be a finite number (NaN, Infinity and numbers beyond 1.8e308 are not)"
    schedule = '{"name": "s", "cron": "0 0 * * *", "parameters": {"X": %s}}'
    # An integer longer than Python converts (4,300 digits) was a 400 "not valid JSON".
    for literal in ("NaN", "Infinity", "-Infinity", "1e400", "-1e999", "9" * 5000, "-" + "1" * 4301):
        for method, path, body, field in (
            (
                "POST",
                "/api/v1/executions",
                f'{{"script_id": {script_id}, "parameters": {{"X": {literal}}}}}',
                "parameters.X",
            ),
            ("POST", f"/api/v1/scripts/{script_id}/schedules", schedule % literal, "parameters.X"),
            # before any authentication: the operator may not change settings
            ("PUT", "/api/v1/settings", f'{{"output_retention_gb": {literal}}}', "output_retention_gb"),
        ):
            r = await client.request(method, path, content=body, headers=json_headers)
            assert r.status_code == 422, (literal, path, r.text)
            assert r.json()["errors"] == [{"field": field, "message": message}], (literal, r.text)
    r = await client.post("/api/v1/scripts", content=b'{"a": [1, {"b": NaN}]}', headers=json_headers)
    assert r.status_code == 422 and r.json()["errors"] == [{"field": "a.1.b", "message": message}]
    assert (await client.get("/api/v1/executions", headers=operator.headers)).json()["total"] == 0
    schedules = await client.get(f"/api/v1/scripts/{script_id}/schedules", headers=operator.headers)
    assert schedules.json()["items"] == []
    r = await client.post("/api/v1/executions", content=b'{"script_id": 1e2}', headers=json_headers)
    assert r.status_code == 422 and "must be a whole number" in r.text, "a finite float is still a number"


async def test_a_number_a_float_reads_as_0_is_422_naming_it_and_nothing_is_written(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    """`1e-400` (closer to 0 than a float holds) was read as 0: a `number` parameter ran with 0,
    sent as a JSON number or as text (the run form's box), and a default saved as 0. Each is a
    422 naming its place; 0 written any way (`0e-400`, `"0.0"`) and the smallest float still run."""
    json_headers = {**operator.headers, "Content-Type": "application/json"}
    script_id = await _active_script(client, operator, [{"name": "R", "type": "number", "default": 1.5}])
    message = TOO_SMALL_MESSAGE
    for literal in ("1e-400", "-2e-324", "0.0000001e-320", '"1e-400"', '" -3E-999 "'):
        body = f'{{"script_id": {script_id}, "parameters": {{"R": {literal}}}}}'
        r = await client.post("/api/v1/executions", content=body, headers=json_headers)
        assert r.status_code == 422, (literal, r.text)
        assert r.json()["errors"] == [{"field": "parameters.R", "message": message}], (literal, r.text)
    default = b'{"name": "tiny", "script_type": "bash", "content": "echo\\n", "parameters": {"R": 1e-400}}'
    r = await client.post("/api/v1/scripts", content=default, headers=json_headers)
    assert r.status_code == 422 and r.json()["errors"] == [{"field": "parameters.R", "message": message}]
    assert (await client.get("/api/v1/executions", headers=operator.headers)).json()["total"] == 0
    assert (await client.get("/api/v1/scripts?search=tiny", headers=operator.headers)).json()["total"] == 0
    for literal, stored in (("0e-400", 0), ('"0.0"', 0), ("5e-324", 5e-324), ('"-0e5"', 0)):
        body = f'{{"script_id": {script_id}, "parameters": {{"R": {literal}}}}}'
        r = await client.post("/api/v1/executions", content=body, headers=json_headers)
        assert r.status_code == 202 and r.json()["parameters"] == {"R": stored}, (literal, r.text)


async def test_a_number_with_more_digits_than_a_float_keeps_is_422_naming_it(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    """`0.1234567890123456789` for a `number` parameter ran as 0.12345678901234568, its last digits
    silently dropped, sent as a JSON number or as text (the run form's box), and a default was
    saved so. Each is a 422 naming its place and the value it would have become; 17 digits or
    fewer (what `%.17g` writes for any float), trailing zeros, and a long numeral a float holds
    exactly (2**-60 written out) are read as sent."""
    json_headers = {**operator.headers, "Content-Type": "application/json"}
    script_id = await _active_script(client, operator, [{"name": "R", "type": "number", "default": 1.5}])
    for literal, read_as in (
        ("0.1234567890123456789", 0.12345678901234568),
        ('"0.1234567890123456789"', 0.12345678901234568),
        ('" -3.14159265358979323846 "', -3.141592653589793),
        ("12345678901234567890.5", 1.2345678901234567e19),
        # More than the 28 digits of Decimal's context, which `normalize()` rounded to 1.
        ("1.0000000000000000000000000001", 1.0),
        ('"0.' + "9" * 40 + '"', 1.0),
        ("-9.99999999999999999999999999999e300", -1e301),
    ):
        body = f'{{"script_id": {script_id}, "parameters": {{"R": {literal}}}}}'
        r = await client.post("/api/v1/executions", content=body, headers=json_headers)
        assert r.status_code == 422, (literal, r.text)
        expected = [{"field": "parameters.R", "message": imprecise_message(read_as)}]
        assert r.json()["errors"] == expected, (literal, r.text)
    default = (
        b'{"name": "long", "script_type": "bash", "content": "echo", '
        b'"parameters": {"R": 2.718281828459045235}}'
    )
    r = await client.post("/api/v1/scripts", content=default, headers=json_headers)
    assert r.status_code == 422, r.text
    assert r.json()["errors"] == [{"field": "parameters.R", "message": imprecise_message(2.718281828459045)}]
    assert (await client.get("/api/v1/executions", headers=operator.headers)).json()["total"] == 0
    assert (await client.get("/api/v1/scripts?search=long", headers=operator.headers)).json()["total"] == 0
    for literal, stored in (
        ("0.10000000000000001", 0.1),
        ('"0.12345678901234568"', 0.12345678901234568),
        ("1.50000000000000000000000", 1.5),
        ("8.67361737988403547205962240695953369140625e-19", 2**-60),
    ):
        body = f'{{"script_id": {script_id}, "parameters": {{"R": {literal}}}}}'
        r = await client.post("/api/v1/executions", content=body, headers=json_headers)
        assert r.status_code == 202 and r.json()["parameters"] == {"R": stored}, (literal, r.text)


async def test_a_key_sent_twice_is_422_naming_it_and_nothing_is_written(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    """`{"name": "a", "name": "b"}` was read as its last value and created a script named `b`: a
    body whose readers may disagree on what it says is refused, at the top and deeper down."""
    json_headers = {**operator.headers, "Content-Type": "application/json"}
    bodies = [
        b'{"name": "first", "name": "second", "script_type": "bash", "content": "echo\\n"}',
        b'{"name": "p", "script_type": "bash", "content": "echo\\n",'
        b' "parameters": [{"name": "N", "type": "string", "type": "integer"}]}',
    ]
    for body, key in zip(bodies, ["name", "type"], strict=True):
        r = await client.post("/api/v1/scripts", content=body, headers=json_headers)
        assert r.status_code == 422, r.text
        assert r.json()["errors"] == [
            {"field": key, "message": "sent more than once in one JSON object: send each key once"}
        ]
    assert (await client.get("/api/v1/scripts", headers=operator.headers)).json()["total"] == 0
    once = b'{"name": "once", "script_type": "bash", "content": "echo\\n", "tags": ["a", "a"]}'
    r = await client.post("/api/v1/scripts", content=once, headers=json_headers)
    assert r.status_code == 201, r.text  # the same value twice in a list is no repeated key


async def test_error_shape_for_unknown_routes_and_methods(client: httpx.AsyncClient) -> None:
    listed = "the API's routes are listed at /docs and /openapi.json"
    r = await client.get("/api/v1/no-such-thing")
    assert r.status_code == 404 and r.json() == {
        "detail": f"no route has this path: check it ({listed})",
        "errors": [],
    }
    r = await client.delete("/api/v1/auth/login")
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    assert r.json() == {"detail": f"DELETE is not allowed on this path: use POST ({listed})", "errors": []}
    r = await client.post("/api/v1/auth/login", content=b"username=a", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415 and r.json() == {
        "detail": "request body must be JSON: send it with Content-Type: application/json (not text/plain)",
        "errors": [],
    }


async def test_a_405_names_every_method_of_the_path(client: httpx.AsyncClient, operator: LoggedIn) -> None:
    """The router's 405 named the methods of the first route it found for the path: `PATCH
    /api/v1/scripts/1` said `Allow: GET`, though PUT and DELETE are there too (RFC 9110 15.5.6:
    `Allow` lists the methods the resource supports)."""
    for method, path, allowed in (
        ("PATCH", "/api/v1/scripts/1", "DELETE, GET, HEAD, PUT"),
        ("PATCH", "/api/v1/scripts", "GET, HEAD, POST"),
        ("DELETE", "/api/v1/settings", "GET, HEAD, PUT"),
        ("PUT", "/api/v1/executions/stream", "POST"),  # not the hidden GET that explains it
        ("HEAD", "/api/v1/auth/login", "POST"),
    ):
        r = await client.request(method, path, headers=operator.headers)
        assert r.status_code == 405, (method, path, r.text)
        assert r.headers["allow"] == allowed, (method, path)
        if method != "HEAD":
            assert r.json()["detail"].startswith(f"{method} is not allowed on this path: use {allowed} ("), (
                r.text
            )


async def test_head_is_answered_where_get_is(client: httpx.AsyncClient, operator: LoggedIn) -> None:
    """HEAD was a 405 on every route (RFC 9110 9.3.2: a server supports GET and HEAD), so a load
    balancer's `HEAD /api/v1/health` probe failed. It answers as the GET would, without a body."""
    for path, headers in (
        ("/api/v1/health", {}),
        ("/api/v1/scripts", operator.headers),
        ("/api/v1/auth/me", {}),
    ):
        got = await client.get(path, headers=headers)
        head = await client.head(path, headers=headers)
        assert head.status_code == got.status_code, (path, head.status_code, got.status_code)
        assert head.content == b"", path
        assert head.headers["content-type"] == got.headers["content-type"], path
        assert head.headers["content-length"] == str(len(got.content)) or path.endswith("health"), path
    r = await client.head("/api/v1/auth/me")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"


async def test_curl_d_without_a_json_header_is_told_which_header_to_send(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    """`curl -d '{...}'` sends `application/x-www-form-urlencoded`: the answer was a 422 "body:
    Input should be a valid dictionary", which does not say what to fix."""
    body = b'{"name": "s", "script_type": "bash", "content": "echo\\n"}'
    form = {**operator.headers, "Content-Type": "application/x-www-form-urlencoded"}
    r = await client.post("/api/v1/scripts", content=body, headers=form)
    assert r.status_code == 415 and "Content-Type: application/json" in r.json()["detail"], r.text
    assert "(not application/x-www-form-urlencoded)" in r.json()["detail"]
    assert (await client.get("/api/v1/scripts", headers=operator.headers)).json()["total"] == 0
    for json_type in ("application/json; charset=utf-8", "application/merge-patch+json"):
        r = await client.post("/api/v1/scripts", content=body, headers={**form, "Content-Type": json_type})
        assert r.status_code == 201, r.text
        body = body.replace(b'"s"', b'"s2"')
    r = await client.post("/api/v1/auth/logout", headers={**form, "Content-Type": "text/plain"})
    assert r.status_code == 200, "no body: no type to check"


@pytest.mark.parametrize("content_type", [None, ""])
async def test_a_body_without_a_content_type_is_read_as_json(
    client: httpx.AsyncClient, operator: LoggedIn, content_type: str | None
) -> None:
    """Field report (h3): a JSON body sent without a Content-Type (`curl --data-binary ... -H
    'Content-Type:'`, a client library's raw `data=`) answered 422 "body: must be a JSON object (it
    is a JSON object)": FastAPI's `strict_content_type` read it as bytes, while the request limits
    checked it as JSON. It is read as JSON, with the same checks."""
    headers = {**operator.headers} | ({} if content_type is None else {"Content-Type": content_type})
    body = b'{"name": "s", "script_type": "bash", "content": "echo\\n"}'
    r = await client.post("/api/v1/scripts", content=body, headers=headers)
    assert r.status_code == 201 and r.json()["name"] == "s", r.text
    r = await client.put(f"/api/v1/scripts/{r.json()['id']}", content=b'{"description": 5}', headers=headers)
    assert r.status_code == 422, r.text
    message = "must be text, a JSON string (it is a number)"
    assert r.json()["errors"] == [{"field": "description", "message": message}]


@pytest.mark.parametrize("encoding", ["gzip", "br", "deflate", "GZIP ", "x-custom"])
async def test_an_encoded_body_is_415_naming_the_header_and_nothing_is_written(
    client: httpx.AsyncClient, operator: LoggedIn, encoding: str
) -> None:
    """A `Content-Encoding` the API does not decode was ignored: the body was read as the bytes
    sent (a plain body marked gzip was accepted, a compressed one a 400 "not valid JSON")."""
    plain = b'{"name": "s", "script_type": "bash", "content": "echo\\n"}'
    for body in (plain, gzip.compress(plain)):
        headers = {**operator.headers, "Content-Type": "application/json", "Content-Encoding": encoding}
        r = await client.post("/api/v1/scripts", content=body, headers=headers)
        assert r.status_code == 415, r.text
        assert f"without Content-Encoding (not {encoding.strip().lower()})" in r.json()["detail"]
        assert r.headers["accept-encoding"] == "identity"
    assert (await client.get("/api/v1/scripts", headers=operator.headers)).json()["total"] == 0
    identity = {**operator.headers, "Content-Type": "application/json", "Content-Encoding": "identity"}
    assert (await client.post("/api/v1/scripts", content=plain, headers=identity)).status_code == 201


async def test_unexpected_error_is_json_without_internals(
    api_app: FastAPI, admin: LoggedIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(_session: object) -> dict[str, object]:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(app_settings, "get_all", broken)
    transport = httpx.ASGITransport(app=api_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        r = await c.get("/api/v1/settings", headers=admin.headers)
    assert r.status_code == 500
    assert r.json() == {"detail": "internal error: the server log has the details", "errors": []}


@contextlib.asynccontextmanager
async def _cors_client(tmp_path: Path, origins: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the API installed with `CORS_ORIGINS=origins` (the runtime started for it)."""
    settings = make_settings(tmp_path, None, CORS_ORIGINS=origins)
    await lifecycle.start(settings)
    try:
        app = FastAPI()
        install_api(app, settings)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c
    finally:
        await lifecycle.stop()


async def test_cors_from_config(tmp_path: Path) -> None:
    async with _cors_client(tmp_path, '["https://ui.example"]') as c:
        preflight = {
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        }
        ok = await c.options("/api/v1/auth/login", headers={"Origin": "https://ui.example", **preflight})
        assert ok.headers["access-control-allow-origin"] == "https://ui.example"
        other = await c.options("/api/v1/auth/login", headers={"Origin": "https://evil.example", **preflight})
        assert "access-control-allow-origin" not in other.headers
        # A page on the allowed origin can read what an error says to do (Retry-After of a
        # 429 above all): these headers are not CORS-safelisted, and were not exposed.
        answer = await c.get("/api/v1/auth/me", headers={"Origin": "https://ui.example"})
        assert answer.status_code == 401
        exposed = {h.strip().lower() for h in answer.headers["access-control-expose-headers"].split(",")}
        assert {
            "retry-after",
            "www-authenticate",
            "accept-encoding",
            "allow",
            "ratelimit-remaining",
        } <= exposed


@pytest.mark.parametrize("origins", ['["https://ui.example"]', "*"])
async def test_cors_never_lets_another_origin_read_with_the_session_cookie(
    tmp_path: Path, origins: str
) -> None:
    """The API takes bearer tokens only, which need no credentialed CORS; with
    `Access-Control-Allow-Credentials: true` (and the origin reflected, `*` included) a page on an
    allowed origin could read, with the browser's `session` cookie, what only the signed-in user
    may: a page of the web UI (its NiceGUI client id, which drives that page's socket) or a run's
    `output.log`. A bearer call from such a page still works and reads its answer."""
    async with _cors_client(tmp_path, origins) as c:
        origin = {"Origin": "https://ui.example"}
        with_cookie = await c.get("/api/v1/auth/me", headers={**origin, "Cookie": "session=abc"})
        assert "access-control-allow-credentials" not in with_cookie.headers
        assert with_cookie.headers.get("access-control-allow-origin") in (None, "*", "https://ui.example")
        preflight = {
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        }
        ok = await c.options("/api/v1/auth/me", headers={**origin, **preflight})
        assert ok.status_code == 200 and "access-control-allow-credentials" not in ok.headers
        assert ok.headers["access-control-allow-origin"] in ("*", "https://ui.example")
        assert "authorization" in ok.headers["access-control-allow-headers"].lower()


async def test_health_reports_the_database(client: httpx.AsyncClient, rt: runtime.Runtime) -> None:
    r = await client.get("/api/v1/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "healthy" and body["database"] == "connected"
    assert body["redis"] == "not configured" and body["database_backend"] == "sqlite"
    assert body["workers"] == 1 and body["queue"] == 0  # this process's worker, nothing waiting
    real = rt.db
    rt.db = Database("postgresql+asyncpg://nobody:x@127.0.0.1:1/none")
    try:
        r = await client.get("/api/v1/health")
    finally:
        await rt.db.dispose()
        rt.db = real
    assert r.status_code == 503
    assert r.json()["status"] == "unhealthy" and r.json()["database"] == "disconnected"
    assert r.json()["workers"] is None and r.json()["queue"] is None


@pytest.mark.redis
async def test_health_reports_redis(tmp_path: Path) -> None:
    require_service(bool(REDIS_URL), "Redis (OPSCRAFT_TEST_REDIS_URL)")
    for url, status, redis_state in (
        (REDIS_URL, 200, "connected"),
        ("redis://127.0.0.1:1/0", 503, "disconnected"),
    ):
        with own_redis_prefix("hp") as prefix:
            settings = make_settings(tmp_path, None, REDIS_URL=url, OPSCRAFT_REDIS_PREFIX=prefix)
            await lifecycle.start(settings)
            try:
                app = FastAPI()
                install_api(app, settings)
                async with httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://t"
                ) as c:
                    r = await c.get("/api/v1/health")
            finally:
                await lifecycle.stop()
        assert (r.status_code, r.json()["redis"]) == (status, redis_state), json.dumps(r.json())
