"""Every API route, for anonymous, viewer, operator and admin; and no route without a case.

The cases share one runtime (SQLite: authorization does not depend on the database backend)
and each gets people of its own (the caller, and the admin or viewer `target` its setup uses,
with fresh names), so that a case that logs its caller out, changes its password or deletes the
target changes nothing for the next one. A runtime per case cost three times the case itself
(start, stop and four sign-ins: 373 s of a 4,821 s suite, issue 15).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from fastapi.routing import APIRoute, APIWebSocketRoute

from opscraft import lifecycle
from opscraft.api import install_api
from opscraft.config import load_settings
from tests.conftest import LoggedIn, api_app_for, api_client, make_settings, make_user
from tests.rbac_cases import ROLES, Case, all_cases, no_setup

CASES = all_cases()
IN_MODULE_LOOP = pytest.mark.asyncio(loop_scope="module")  # the loop the shared runtime lives in


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[httpx.AsyncClient]:
    """One started runtime for the module, and a client of its API."""
    settings = make_settings(tmp_path_factory.mktemp("matrix"))
    await lifecycle.start(settings)
    try:
        async with api_client(api_app_for(settings)) as c:
            yield c
    finally:
        await lifecycle.stop()


class _Missing(Exception):
    """A case's setup asked for a person `_People` has not made yet."""

    def __init__(self, role: str) -> None:
        super().__init__(role)
        self.role = role


class _People(dict[str, LoggedIn]):
    """A request's people, signed in as they are first needed: the caller (a viewer, operator or
    admin) and whoever the case's setup asks for (the admin that makes its rows, a viewer
    `target`), each with a fresh name. Made up front, the four sign-ins cost more than most
    cases themselves, whose setups use one person at most."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        super().__init__()
        self.client = client
        self.tag = secrets.token_hex(3)

    def __missing__(self, role: str) -> LoggedIn:
        raise _Missing(role)

    async def make(self, who: str) -> LoggedIn:
        if who not in self:
            role = "viewer" if who == "target" else who
            self[who] = await make_user(self.client, role, f"{who}-{self.tag}")
        return self[who]


async def _request(client: httpx.AsyncClient, case: Case, role: str, **body: Any) -> httpx.Response:
    """`case`'s request as `role` (no token for anonymous), after the case's own setup; `body`
    (json=...) replaces the setup's body. A setup that asks for a person not made yet is run
    again once that person is (what its first run made is left: rows nobody reads)."""
    people = _People(client)
    if role != "anonymous":
        await people.make(role)
    while True:
        try:
            spec = await case.setup(client, people)
            break
        except _Missing as missing:
            assert missing.role in ("viewer", "operator", "admin", "target"), missing.role
            await people.make(missing.role)
    path = case.path.format(**spec.get("path", {}))
    headers = people[role].headers if role != "anonymous" else {}
    # A DELETE reads no body (a setup shared with the route's POST/PUT returns one): sent, it is a
    # 422 (api.deps.no_body).
    setup_body = spec.get("json") if case.method != "DELETE" else None
    request = {"json": setup_body, "params": spec.get("params"), **body}
    return await client.request(case.method, path, headers=headers, **request)


def _routes(app: FastAPI) -> set[tuple[str, str]]:
    return _walk(app.routes)


def _walk(routes: list) -> set[tuple[str, str]]:
    """(method, path) of every API route, descending into included routers."""
    found: set[tuple[str, str]] = set()
    for route in routes:
        if hasattr(route, "original_router"):
            found |= _walk(route.original_router.routes)
        elif isinstance(route, APIRoute):
            found |= {(m, route.path) for m in route.methods - {"HEAD", "OPTIONS"}}
        elif isinstance(route, APIWebSocketRoute):
            found.add(("WS", route.path))
    return found


def test_every_route_has_a_case(tmp_path) -> None:
    app = FastAPI()
    install_api(app, load_settings(OPSCRAFT_DATA_DIR=tmp_path, SECRET_KEY="k" * 40))
    routes = _routes(app)
    covered = {(c.method, c.path) for c in CASES}
    assert routes - covered == set(), "routes without an RBAC matrix case (add them to tests/rbac_cases/)"
    assert covered - routes == set(), "matrix cases for routes that do not exist"


@IN_MODULE_LOOP
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("case", [c for c in CASES if c.method != "WS"], ids=lambda c: c.id)
async def test_matrix(case: Case, role: str, client: httpx.AsyncClient) -> None:
    response = await _request(client, case, role)
    assert response.status_code == case.expected[role], f"{case.id} as {role}: {response.text}"


BAD_BODY = {"no_such_field": [None], "name": 12345, "required": "many", "comment": ["x"]}
# Refusals of one row, not of a role: a viewer may cancel runs, their own; whose run this is the
# service decides, after the request's shape is checked (as every route's row-level refusal).
# A viewer's run options are refused by the script's setting (viewers_choose_run_options), after
# the body is read (its other runs start).
ROW_LEVEL = {
    ("POST", "/api/v1/executions/{execution_id}/cancel", "viewer"),
    ("POST", "/api/v1/executions", "viewer"),
}
# Registration is refused by a setting, not by a role: its body is checked first.
REFUSED = [
    (case, role)
    for case in CASES
    if case.method in ("POST", "PUT", "PATCH") and case.path != "/api/v1/auth/register"
    for role in ROLES
    if case.expected[role] in (401, 403) and (case.method, case.path, role) not in ROW_LEVEL
]


@IN_MODULE_LOOP
@pytest.mark.parametrize(("case", "role"), REFUSED, ids=[f"{c.id} as {r}" for c, r in REFUSED])
async def test_refusal_comes_before_the_body_check(case: Case, role: str, client: httpx.AsyncClient) -> None:
    """A role that may not use a route is told so (403; 401 without a token) whatever the body:
    a malformed one does not get the body's 422 first (deps.Permitted)."""
    response = await _request(client, case, role, json=BAD_BODY)
    assert response.status_code == case.expected[role], f"{case.id} as {role}: {response.text}"


# Not /api/v1/tokens: a token may not manage tokens, by rule (docs/api.md, 403 naming it).
TOKEN_CASES = [c for c in CASES if c.method == "GET" and c.setup is no_setup and c.path != "/api/v1/tokens"]


@IN_MODULE_LOOP
@pytest.mark.parametrize("role", ROLES[1:])
@pytest.mark.parametrize("case", TOKEN_CASES, ids=lambda c: c.id)
async def test_a_personal_token_gets_what_its_login_gets(
    case: Case, role: str, client: httpx.AsyncClient
) -> None:
    """Every route authenticates through the one shared path: a personal access token (`ocp_...`,
    full role) gets the status its owner's login token gets, 403 included (the issue: /metrics
    answered an admin's token 401 and a viewer's 401 where the login got 403)."""
    who = await make_user(client, role)
    r = await client.post("/api/v1/tokens", json={"name": "matrix"}, headers=who.headers)
    assert r.status_code == 201, r.text
    headers = {"Authorization": f"Bearer {r.json()['token']}"}
    response = await client.get(case.path, headers=headers)
    assert response.status_code == case.expected[role], f"{case.id} as {role}'s token: {response.text}"


def _lowest_allowed(case: Case) -> str | None:
    """The least privileged role `case` lets through (None: a route no role may use)."""
    return next((r for r in ROLES[1:] if case.expected[r] not in (401, 403)), None)


# A refusal's words for the role it needs: "... that needs operator or admin" (permissions.require),
# "only an admin may ..." (a rule above the permission table, services/approvals.py).
NEEDED_ROLE = re.compile(r"\b(?:needs|only an?) (viewer|operator|admin)\b")
FORBIDDEN = [
    (case, role)
    for case in CASES
    if case.method != "WS" and _lowest_allowed(case) is not None
    for role in ROLES[1:]
    if case.expected[role] == 403 and (case.method, case.path, role) not in ROW_LEVEL
]


@IN_MODULE_LOOP
@pytest.mark.parametrize(("case", "role"), FORBIDDEN, ids=[f"{c.id} as {r}" for c, r in FORBIDDEN])
async def test_a_refusal_names_the_lowest_role_allowed(
    case: Case, role: str, client: httpx.AsyncClient
) -> None:
    """A role's 403 names the least privileged role the route lets through, as the role it needs:
    a viewer's `DELETE /api/v1/scripts/{id}/approval` said "that needs operator or admin" (the
    early check was `edit_scripts`) while removing an approval policy is admin-only."""
    response = await _request(client, case, role)
    assert response.status_code == 403, f"{case.id} as {role}: {response.text}"
    detail = response.json()["detail"]
    needed = NEEDED_ROLE.search(detail)
    assert needed is not None and needed.group(1) == _lowest_allowed(case), f"{case.id} as {role}: {detail}"
