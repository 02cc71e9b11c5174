"""A real `opscraft serve` process: API docs, headers on pages, error shapes, the seed's curl examples."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from websockets.sync.client import connect

from opscraft import logs
from opscraft.api import ROUTERS, ws
from opscraft.api.methods import NOT_FOUND_MESSAGE
from tests.conftest import LiveServer, start_server, stop_server
from tests.linear_time import assert_linear
from tests.waiting import wait_until

SEED_REGISTER_ADMIN = """curl -X POST http://localhost:8000/api/v1/auth/register \\
     -H "Content-Type: application/json" \\
     -d '{
       "username": "admin",
       "email": "admin@example.com",
       "password": "SecurePass123",
       "full_name": "System Administrator"
     }'"""

# The seed's HTTP examples (register, login, me) written as curl commands, bodies verbatim.
SEED_REGISTER = """curl -X POST http://localhost:8000/api/v1/auth/register \\
  -H "Content-Type: application/json" \\
  -d '{
  "username": "john_doe",
  "email": "john@example.com",
  "password": "SecurePass123",
  "full_name": "John Doe"
}'"""
SEED_LOGIN = """curl -X POST http://localhost:8000/api/v1/auth/login \\
  -H "Content-Type: application/json" \\
  -d '{
  "username": "john_doe",
  "password": "SecurePass123"
}'"""
SEED_ME = """curl http://localhost:8000/api/v1/auth/me -H "Authorization: Bearer $TOKEN" """


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server(tmp_path_factory.mktemp("live"))
    try:
        yield live
    finally:
        stop_server(live)


def curl(server: LiveServer, command: str, token: str = "") -> tuple[int, dict]:
    """Run a seed curl command against `server` (only the address changes); returns (status, JSON)."""
    command = command.replace("http://localhost:8000", server.url).replace(
        "curl ", "curl -s -w '\\n%{http_code}' ", 1
    )
    result = subprocess.run(
        ["bash", "-c", command],
        capture_output=True,
        text=True,
        timeout=30,
        env={"TOKEN": token, "PATH": "/usr/bin:/bin"},
    )
    body, _, status = result.stdout.rpartition("\n")
    return int(status), json.loads(body)


def test_seed_auth_curl_examples_work_verbatim(server: LiveServer) -> None:
    assert httpx.get(f"{server.url}/login").headers["location"] == "/setup", "no user yet: set-up first"
    status, admin = curl(server, SEED_REGISTER_ADMIN)
    assert status == 201 and admin["role"] == "admin" and "password" not in admin
    status, closed = curl(server, SEED_REGISTER)
    assert status == 403 and "closed" in closed["detail"]

    login = httpx.post(
        f"{server.url}/api/v1/auth/login", json={"username": "admin", "password": "SecurePass123"}
    )
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    assert httpx.put(
        f"{server.url}/api/v1/settings", json={"registration_open": True}, headers=headers
    ).is_success

    status, john = curl(server, SEED_REGISTER)
    assert status == 201 and john["role"] == "viewer" and john["full_name"] == "John Doe"
    status, tokens = curl(server, SEED_LOGIN)
    assert status == 200 and set(tokens) == {"access_token", "refresh_token", "token_type"}
    assert tokens["token_type"] == "bearer"
    status, me = curl(server, SEED_ME, tokens["access_token"])
    assert status == 200 and me["username"] == "john_doe" and me["email"] == "john@example.com"
    assert httpx.get(f"{server.url}/setup").headers["location"] == "/login", "set-up is over"


def test_openapi_documents_the_api_and_nothing_else(server: LiveServer) -> None:
    r = httpx.get(f"{server.url}/openapi.json")
    assert r.status_code == 200
    spec = r.json()
    assert spec["info"]["title"] == "OpsCraft API"
    paths = spec["paths"]
    assert "/api/v1/auth/login" in paths and "/api/v1/users/{user_id}" in paths
    for path in paths:  # the REST API and the Prometheus endpoint; no NiceGUI page
        assert path.startswith("/api/v1/") or path == "/metrics", f"non-API route in the schema: {path}"
    for path in ("/api/v1/auth/register", "/api/v1/auth/login", "/api/v1/users"):
        assert "requestBody" in paths[path]["post"], path
    for path, operations in paths.items():
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            assert operation.get("summary"), where
            codes = set(operation["responses"])
            success = sorted(c for c in codes if c.startswith("2"))
            assert success, where
            if success != ["204"]:
                assert operation["responses"][success[0]].get("content"), f"{where}: no response schema"
            if path != "/api/v1/health":
                errors = [c for c in codes if c.startswith("4")]
                assert errors, f"{where}: no documented errors"
                # 423 on Terraform's backend carries the holder's lock info, as its protocol says.
                assert all(
                    "ErrorResponse" in json.dumps(operation["responses"][c])
                    or c == "422"
                    or (c == "423" and "LockInfo" in json.dumps(operation["responses"][c]))
                    for c in errors
                ), where


# How an operation's description names who may call it (docs/api.md, Roles): a role, a
# permission held by every role, no login, or the credentials of a running Terraform run.
WHO_MAY_CALL = re.compile(
    r"No login|signed-in|signed in|every role|Any role|[Oo]perator|[Aa]dmin|running run|run credentials"
)


def test_every_operation_says_who_may_call_it_and_what_it_does(server: LiveServer) -> None:
    """`/docs` shows each operation's description: the route's docstring (or `description=`).
    Only 5 of 104 operations had one, so an integrator could not learn who may call a route,
    what its errors mean or what it records; a route added without one fails here."""
    spec = httpx.get(f"{server.url}/openapi.json").json()
    operations = [(m.upper(), p, op) for p, ops in spec["paths"].items() for m, op in ops.items()]
    assert len(operations) > 100
    for method, path, operation in operations:
        description = operation.get("description", "").strip()
        assert description, f"{method} {path}: no description (give the route function a docstring)"
        assert WHO_MAY_CALL.search(description), f"{method} {path}: the description names no caller"
        said = set(re.findall(r"\b(4\d\d)\b", description))
        undocumented = sorted(said - set(operation["responses"]))
        assert not undocumented, f"{method} {path}: says {undocumented}, its responses do not"


def test_every_route_is_described() -> None:
    """The routes the schema leaves out too (the WebSocket, the `GET /stream` refusal): each has
    a docstring, or a route `description` where the text is built from constants."""
    for router in ROUTERS:
        for route in router.routes:
            endpoint = route.endpoint  # type: ignore[attr-defined]
            described = getattr(route, "description", "") or endpoint.__doc__ or ""
            assert described.strip(), f"{route.path}: {endpoint.__name__} has no docstring"


def test_the_authorize_dialog_says_which_token_each_route_takes(server: LiveServer) -> None:
    """Swagger UI's Authorize dialog describes each security scheme. The API's bearer scheme and
    the metrics one shared the name `HTTPBearer`, so the dialog told every API user to paste
    `OPSCRAFT_METRICS_TOKEN`."""
    spec = httpx.get(f"{server.url}/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert "POST /api/v1/auth/login" in schemes["HTTPBearer"]["description"]
    assert "OPSCRAFT_METRICS_TOKEN" in schemes["MetricsBearer"]["description"]
    assert spec["paths"]["/api/v1/auth/me"]["get"]["security"] == [{"HTTPBearer": []}]
    assert spec["paths"]["/metrics"]["get"]["security"] == [{"MetricsBearer": []}]


def test_docs_and_redoc_are_served(server: LiveServer) -> None:
    docs = httpx.get(f"{server.url}/docs")
    assert docs.status_code == 200 and "swagger-ui" in docs.text and "/openapi.json" in docs.text
    redoc = httpx.get(f"{server.url}/redoc")
    assert redoc.status_code == 200 and "redoc" in redoc.text.lower()
    assert "cdn" not in docs.text and "cdn" not in redoc.text, "docs must not depend on a CDN"
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js"):
        assert httpx.get(f"{server.url}/_docs-assets/{asset}").status_code == 200, asset


def test_docs_render_in_a_browser_without_internet(server: LiveServer, page: Any) -> None:
    """Swagger UI and ReDoc render from local assets, under the site's CSP."""
    page.goto(f"{server.url}/docs")
    page.wait_for_selector(".opblock")
    assert page.locator(".opblock").count() > 20
    assert page.get_by_text("/api/v1/auth/login").first.is_visible()
    page.goto(f"{server.url}/redoc")
    page.wait_for_selector("text=OpsCraft API")
    assert page.get_by_text("Log in").first.count() == 1


def test_pages_carry_security_headers(server: LiveServer) -> None:
    r = httpx.get(f"{server.url}/login", follow_redirects=True)
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert r.headers["x-frame-options"] == "DENY" and r.headers["x-content-type-options"] == "nosniff"
    assert "script-src 'self' 'unsafe-inline' 'unsafe-eval'" in r.headers["content-security-policy"]
    assert "strict-transport-security" not in r.headers
    proxied = httpx.get(f"{server.url}/login", headers={"X-Forwarded-Proto": "https"}, follow_redirects=True)
    assert "max-age=" in proxied.headers["strict-transport-security"]


def test_the_session_cookie_is_secure_behind_https_only(server: LiveServer) -> None:
    """The UI's session cookie is `Secure` in answers to HTTPS requests (never sent over plain
    HTTP, where it could be read on the way), and stays usable on a plain-HTTP installation."""
    plain = httpx.get(f"{server.url}/login")
    cookie = plain.headers["set-cookie"].lower()
    assert cookie.startswith("session=") and "httponly" in cookie and "samesite=lax" in cookie
    assert "secure" not in cookie
    proxied = httpx.get(f"{server.url}/login", headers={"X-Forwarded-Proto": "https"})
    attributes = [part.strip().lower() for part in proxied.headers["set-cookie"].split(";")]
    assert attributes[0].startswith("session=") and "secure" in attributes and "httponly" in attributes
    assert proxied.headers["set-cookie"].lower().count("secure") == 1


def test_api_errors_stay_json_next_to_pages(server: LiveServer) -> None:
    r = httpx.get(f"{server.url}/api/v1/missing")
    assert r.status_code == 404 and r.json() == {"detail": NOT_FOUND_MESSAGE, "errors": []}
    # A WebSocket address fetched as a page (a browser tab, curl without the upgrade): JSON too,
    # it was a 500 with a traceback (no page can be built outside the UI's middlewares). Then a
    # bare 404 "Not Found" of a run that exists (a CI job's curl of the stream's address): a 426
    # saying how to connect, and where plain HTTP follows a run.
    for path in ("/ws/executions/1", "/ws/executions/abc"):
        r = httpx.get(f"{server.url}{path}?token=x")
        assert r.status_code == 426 and r.json() == {"detail": ws.UPGRADE_NEEDED, "errors": []}, path
        assert r.headers["upgrade"] == "websocket", path
    for path in ("/ws/nothing", "/ws/executions/1/"):
        r = httpx.post(f"{server.url}{path}")
        assert r.status_code == 404 and r.json() == {"detail": ws.NO_STREAM_HERE, "errors": []}, path
    assert "Traceback" not in server.log()
    page = httpx.get(f"{server.url}/missing-page")
    assert page.status_code == 404 and "text/html" in page.headers["content-type"]
    r = httpx.get(f"{server.url}/api/v1/users/99999999999", headers={"Authorization": "Bearer x"})
    assert r.status_code in {401, 422} and r.json()["detail"]


def test_protected_pages_redirect_to_login(server: LiveServer) -> None:
    r = httpx.get(f"{server.url}/users?x=1")
    assert r.status_code == 303 and r.headers["location"] == "/login?next=%2Fusers%3Fx%3D1"


def test_tokens_in_query_strings_stay_out_of_the_log(server: LiveServer) -> None:
    httpx.get(f"{server.url}/api/v1/health", params={"token": "QUERY-TOKEN-SECRET", "x": "1"})
    httpx.get(f"{server.url}/api/v1/auth/me", headers={"Authorization": "Bearer HEADER-TOKEN-SECRET"})
    log = server.log()
    assert "/api/v1/health?token=***&x=1" in log
    assert "QUERY-TOKEN-SECRET" not in log and "HEADER-TOKEN-SECRET" not in log


def _webhook(server: LiveServer, script_name: str) -> dict[str, Any]:
    """A new webhook (the create answer, with its `token`) of a new script `script_name`, made by
    the admin (registered here unless another test did: then the register is a 403)."""
    admin = {"username": "admin", "email": "admin@example.com", "password": "SecurePass123"}
    httpx.post(f"{server.url}/api/v1/auth/register", json=admin)
    sign_in = {"username": "admin", "password": admin["password"]}
    login = httpx.post(f"{server.url}/api/v1/auth/login", json=sign_in)
    assert login.status_code == 200, login.text
    h = {"Authorization": f"Bearer {login.json()['access_token']}"}
    script = {"name": script_name, "script_type": "bash", "content": "echo hi\n", "status": "active"}
    r = httpx.post(f"{server.url}/api/v1/scripts", json=script, headers=h)
    assert r.status_code == 201, r.text
    r = httpx.post(f"{server.url}/api/v1/scripts/{r.json()['id']}/webhooks", json={"name": "ci"}, headers=h)
    assert r.status_code == 201, r.text
    hook: dict[str, Any] = r.json()
    return hook


def test_a_webhook_token_in_its_url_stays_out_of_the_log(server: LiveServer) -> None:
    """The token of an inbound webhook is the last segment of its URL (no login: it is the
    credential); the access log printed it, for good calls and bad guesses alike."""
    hook = _webhook(server, "hooked")
    assert httpx.post(f"{server.url}{hook['url_path']}", json={}).status_code == 202
    guess = f"/api/v1/hooks/{hook['id']}/och_GUESSED-TOKEN-SECRET"
    assert httpx.post(f"{server.url}{guess}?a=1", json={}).status_code == 404
    log = server.log()
    assert f'"POST /api/v1/hooks/{hook["id"]}/*** HTTP/1.1" 202' in log, log[-2000:]
    assert f"/api/v1/hooks/{hook['id']}/***?a=1" in log
    assert hook["token"] not in log and "GUESSED-TOKEN-SECRET" not in log


def test_credentials_in_percent_encoded_urls_stay_out_of_the_log(server: LiveServer) -> None:
    """The router reads the decoded path and query, the access log prints them as sent: a
    webhook URL with a `%2F` for a `/` (or any character percent-encoded) started the run and
    its token was logged in clear, as was a `?%74oken=` JWT (read as `token`)."""
    hook = _webhook(server, "hooked-encoded")
    hook_id, token = hook["id"], hook["token"]
    spellings = [
        f"/api/v1/hooks/{hook_id}%2F{token}",
        f"/api/v1/hooks/{hook_id}%2f{token}",
        f"/api/v1/%68ooks/{hook_id}/{token}",
        f"%2Fapi%2Fv1%2Fhooks%2F{hook_id}%2F{token}".replace("%2F", "/", 1),
    ]
    for path in spellings:
        assert httpx.post(f"{server.url}{path}", json={}).status_code == 202, path
    httpx.get(f"{server.url}/api/v1/health?%74oken=ENCODED-QUERY-TOKEN&x=1")
    log = server.log()
    assert token not in log and token[len(hook["prefix"]) :] not in log
    assert "ENCODED-QUERY-TOKEN" not in log


WEBHOOK_TOKEN = "och_a2r7wJSKHS7GR_DnTn8MfD_ymYRREaPEdw2f3BtQMi8"
ACCESS_JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.X8puTwX1j9XJisvhMhknuirlMPgGB2bfdZFvc6HgZt8"
PERSONAL_TOKEN = "ocp_B8unm0y6iFbt54Zv4g4TNSPJWPqKZBeljR9_Cd28al4"
PASSWORD = "Hunter2-of-no-shape"


@pytest.mark.parametrize(
    "path",
    [
        # A base URL ending in "/" joined with a path starting with one, dot segments: the router
        # answers 404, but the token in the URL is still the webhook's and was logged in clear.
        f"/api//v1/hooks/3/{WEBHOOK_TOKEN}",
        f"/api/v1/./hooks/3/{WEBHOOK_TOKEN}",
        f"/api/v1/hooks//3/{WEBHOOK_TOKEN}",
        f"/api/v1/hooks/./3/{WEBHOOK_TOKEN}",
        f"/api/v1/hooks/3/./{WEBHOOK_TOKEN}",
        f"/api/v1/hooks/3//{WEBHOOK_TOKEN}",
        f"/api/v1/hooks/{WEBHOOK_TOKEN}",  # the id left out
        f"/api/v1/hook/3/{WEBHOOK_TOKEN}",  # a typo in the path
        f"/api/v1/health?url=%2Fapi%2Fv1%2Fhooks%2F3%2F{WEBHOOK_TOKEN}",
        f"/ws/executions/1?tokens={ACCESS_JWT}",  # a misspelt parameter (a 4422)
        f"/api/v1/health?jwt={ACCESS_JWT}",
        f"/api/v1/health?api_key={PERSONAL_TOKEN}",
        f"/api/v1/auth/me/{PERSONAL_TOKEN}",
        "/api/v1/health?k=%6Fcp_B8unm0y6iFbt54Zv4g4TNSPJWPqKZBeljR9_Cd28al4",
        # An escape in lower-case hex (RFC 3986 2.1 takes either case): the token's prefix was
        # recognised in upper-case escapes only, and the token logged in clear.
        "/api/v1/health?k=%6fcp_B8unm0y6iFbt54Zv4g4TNSPJWPqKZBeljR9_Cd28al4",
        f"/api/v1/health?q=ocp%5f{PERSONAL_TOKEN[4:]}",
        f"/api/v1/health?q=och%5f{WEBHOOK_TOKEN[4:]}",
        f"/api/v1/health?q=ey%4a{ACCESS_JWT[3:]}",
        f"/api/v1/health?q=ey%4a{ACCESS_JWT[3:].replace('.', '%2e')}",
        # After a percent-encoded separator (a URL in a parameter, `Bearer ` typed into one):
        # the escape's last hex digit was read as the word the credential sat inside.
        f"/login?next=%2Fws%2Fexecutions%2F1%3Ftoken%3D{ACCESS_JWT}",
        f"/login?next=%2Fapi%2Fv1%2Fscripts%3Faccess_token%3D{PERSONAL_TOKEN}",
        f"/api/v1/health?q=Bearer%20{PERSONAL_TOKEN}",
        f"/api/v1/health?q=%22{WEBHOOK_TOKEN}%22",
        f"/api/v1/health?q=a%2C{ACCESS_JWT}",
        # A credential of no shape, in a parameter named for one: a client sending the login's
        # body as a query (`curl -G`), a form's GET.
        f"/api/v1/auth/login?username=admin&password={PASSWORD}",
        f"/api/v1/auth/change-password?current_password={PASSWORD}&new_password={PASSWORD}",
        f"/api/v1/health?client_secret={PASSWORD}",
        f"/api/v1/health?PASSWD={PASSWORD}",
        f"/api/v1/health?pass%77ord={PASSWORD}",
        f"/login?next=%2Fapi%2Fv1%2Fauth%2Flogin%3Fpassword%3D{PASSWORD}",
        # The ids a signed-in page's socket joins the page with: a socket opened with them (no
        # cookie needed) was accepted into that page's room.
        "/_nicegui_ws/socket.io/?client_id=2r7wJSKHS7GR_DnTn8MfD&next_message_id=7&implicit_handshake=true"
        "&document_id=TwX1j9XJisvhMhknuirlMPg&tab_id=m0y6iFbt54Zv4g4TNSPJWPq&old_tab_id=null&EIO=4",
    ],
)
def test_a_token_anywhere_in_a_request_line_stays_out_of_the_log(path: str) -> None:
    """A credential in a URL the router does not take is still a credential: webhook tokens
    (`och_`), personal access tokens (`ocp_`) and access or refresh tokens (JWTs, `eyJ...`)
    are recognised by their shape wherever the request line carries them, not only at the
    places the API reads them."""
    line = f'127.0.0.1:40000 - "POST {path} HTTP/1.1" 404'
    shown = logs.RedactCredentials.redact(line)
    credentials = (WEBHOOK_TOKEN[4:], ACCESS_JWT.rsplit(".", 1)[1], PERSONAL_TOKEN[4:], PASSWORD)
    for secret in (
        "2r7wJSKHS7GR_DnTn8MfD",
        "TwX1j9XJisvhMhknuirlMPg",
        "m0y6iFbt54Zv4g4TNSPJWPq",
        *credentials,
    ):
        assert secret not in shown, shown
    assert shown.endswith(' HTTP/1.1" 404') and "***" in shown, shown


def test_redaction_of_a_long_line_of_escapes_takes_no_time() -> None:
    """A parameter's name read across escaped separators made redacting a 9 KB request line of
    `%3F`s (any client may send one) take a second of the logging thread's CPU; now milliseconds
    (the bound leaves room for a busy machine)."""
    line = f'"GET /x?{"%3F" * 3000} HTTP/1.1" 404'
    started = time.perf_counter()
    assert logs.RedactCredentials.redact(line) == line
    assert time.perf_counter() - started < 0.25


# Request lines of the largest size uvicorn takes (with httptools, a little under 64 KiB; any
# client may send one before signing in) shaped against the redacting patterns: a parameter's
# name was read again to its end from each secret word in it, a JWT's first part from each `eyJ`
# starting a word (12 s and 8 s for 16 KiB, growing with the square of the length).
REQUEST_LINE_CHARS = 64000
REQUEST_LINE_SHAPES = {
    "secret words in a name": "?" + "token" * (REQUEST_LINE_CHARS // 5),
    "JWT starts after escapes": "?q=" + "eyJ%3F" * (REQUEST_LINE_CHARS // 6),
    "a JWT's first part without a dot": "?q=%20eyJ" + "a" * REQUEST_LINE_CHARS,
}


@pytest.mark.parametrize("shape", list(REQUEST_LINE_SHAPES))
def test_a_largest_request_line_of_any_shape_is_redacted_in_linear_time(shape: str) -> None:
    line = f'"GET /x{REQUEST_LINE_SHAPES[shape]} HTTP/1.1" 404'
    assert_linear(logs.RedactCredentials.redact, line)


def test_redaction_leaves_other_paths_alone() -> None:
    """Ids and names in ordinary paths stay readable: only credentials become `***`."""
    for path in (
        "/api/v1/scripts/6/webhooks/2",
        "/api/v1/tokens/12",
        "/executions/42?tab=log",
        "/executions?status=passed&q=secret",
    ):
        assert logs.RedactCredentials.redact(f'"GET {path} HTTP/1.1" 200') == f'"GET {path} HTTP/1.1" 200'


def test_the_servers_own_log_lines_hide_a_webhook_token_too(capsys: pytest.CaptureFixture[str]) -> None:
    """Past uvicorn's access log: the API's own "unhandled error in POST <path>" (api/errors.py)
    goes through the root handler `logs.configure` sets up, which redacts the same way."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logs.configure("INFO", "text")
        logging.getLogger("opscraft.api.errors").error(
            "unhandled error in %s %s", "POST", "/api/v1/hooks/7/och_SECRET-TOKEN"
        )
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    err = capsys.readouterr().err
    assert "unhandled error in POST /api/v1/hooks/7/***" in err and "SECRET-TOKEN" not in err, err


@contextlib.contextmanager
def _logging_configured(level: str) -> Iterator[None]:
    """`logs.configure(level)` for the block, then the test run's logging as it was."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logs.configure(level, "text")
        yield
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        for name in logs.QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.NOTSET)


@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
def test_an_outgoing_url_stays_out_of_the_log(capsys: pytest.CaptureFixture[str], level: str) -> None:
    """A Slack incoming webhook's URL is a vault secret, and httpx logged it in full at INFO
    ("HTTP Request: POST https://hooks.slack.com/services/...") on every notification."""
    url = "https://hooks.slack.com/services/T000/B000/SLACK-URL-SECRET"
    with _logging_configured(level):
        transport = httpx.MockTransport(lambda request: httpx.Response(200))
        with httpx.Client(transport=transport) as client:
            assert client.post(url, json={"text": "deploy failed"}).status_code == 200
        logging.getLogger("opscraft.services.notifications").info("delivered")
    err = capsys.readouterr().err
    assert "delivered" in err and "SLACK-URL-SECRET" not in err, err


def test_websocket_headers_and_frames_stay_out_of_the_debug_log(tmp_path: Path) -> None:
    """uvicorn's WebSocket protocols hand their logger (`uvicorn.error`) to the `websockets`
    library, which at `LOG_LEVEL=DEBUG` wrote the wire into the server log: every handshake
    header (`< cookie: session=...`, a signed-in browser's credential) and the start and end of
    every frame (NiceGUI's socket carries what is typed on a page: the password at the login, a
    secret's value in its dialog)."""
    live = start_server(tmp_path / "debug", {"LOG_LEVEL": "DEBUG"})
    try:
        socket_url = live.url.replace("http", "ws", 1) + "/_nicegui_ws/socket.io/?EIO=4&transport=websocket"
        with connect(socket_url, additional_headers={"Cookie": "session=SESSION-COOKIE-SECRET"}) as ws:
            assert ws.recv(timeout=30)[0] == "0"  # engine.io's open packet: the socket is served
            ws.send('42["event",{"args":["TYPED-PASSWORD-SECRET"]}]')
        # A request after the socket's close handshake: its access line is written after the frames'.
        assert httpx.get(f"{live.url}/api/v1/after-the-socket").status_code == 404
        wait_until(lambda: "/api/v1/after-the-socket" in live.log(), "the next request in the log")
        log = live.log()
        assert "connection open" in log and "[accepted]" in log  # the INFO lines stay
        assert "SESSION-COOKIE-SECRET" not in log and "TYPED-PASSWORD-SECRET" not in log, log[-3000:]
    finally:
        stop_server(live)


def test_sql_parameters_stay_out_of_the_debug_log(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """aiosqlite logged every statement with its bound values at DEBUG (`executing
    functools.partial(<function _run ...>, 'INSERT INTO users ...', ('admin', ..., '$argon2id$...'))`):
    password hashes, sealed secrets' ciphertext and salts, token ids, whatever a row holds."""

    async def insert() -> None:
        engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (v TEXT)"))
            await conn.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": "BOUND-VALUE-SECRET"})
        await engine.dispose()

    with _logging_configured("DEBUG"):
        # A thread of its own: this module's browser test leaves Playwright's loop running here.
        with concurrent.futures.ThreadPoolExecutor(1) as thread:
            thread.submit(asyncio.run, insert()).result()
        logging.getLogger("opscraft.db").debug("inserted")
    err = capsys.readouterr().err
    assert "inserted" in err and "BOUND-VALUE-SECRET" not in err, err
