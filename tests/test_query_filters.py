"""A control character or NUL in a free-text list filter is a 422 naming the parameter.

Field report (issue 8's kind "bad input gets a clear 4xx"): `GET /api/v1/audit?target_id=%01`
answered 200 with an empty page, so a user could not tell a typo from "nothing matched". Every
list route's text filter is one member of the kind; each is checked with a NUL and a C0 control
on SQLite and PostgreSQL (the `backend` fixture behind `client`), where PostgreSQL would
otherwise fail on NUL with a 500 and SQLite answer an empty 200.

The tests that only read (every parametrized one: a refused filter, a length bound, plain text,
an emptied filter, a parameter sent twice) share one started runtime per database for the module
(`tests.conftest.reader`), on a database of its own, with one signed-in admin: none of them
writes a row, so none can change what another reads, and a runtime per test (start, stop,
sign-in, and emptying PostgreSQL) cost four times the request it checked (170 s of the suite,
session 25). The tests that write rows keep a runtime each (`client`, `admin`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from opscraft import runtime
from opscraft.db.models import Role, User
from opscraft.services import audit, scripts, secrets, users
from opscraft.services.actor import Actor
from opscraft.services.errors import Invalid
from tests.conftest import IN_MODULE_LOOP, LoggedIn, Reader

# (list route, its free-text filter parameter).
FILTERS: list[tuple[str, str]] = [
    ("/api/v1/audit", "actor_name"),
    ("/api/v1/audit", "action"),
    ("/api/v1/audit", "target_type"),
    ("/api/v1/audit", "target_id"),
    ("/api/v1/executions", "status"),
    ("/api/v1/executions", "trigger"),
    ("/api/v1/scripts", "search"),
    ("/api/v1/scripts", "tag"),
    ("/api/v1/secrets", "search"),
    ("/api/v1/users", "search"),
    ("/api/v1/notifications/deliveries", "status"),
]
# The lists that answered bare arrays until they paged as every list does (`{items, total, skip,
# limit}`): an emptied `skip` or `limit` takes its default on them too.
PAGED_LISTS = [
    "/api/v1/approvals",
    "/api/v1/executions/{execution_id}/approvals",
    "/api/v1/inventories",
    "/api/v1/notifications/channels",
    "/api/v1/notifications/rules",
    "/api/v1/schedules",
    "/api/v1/scripts/{script_id}/chains",
    "/api/v1/scripts/{script_id}/schedules",
    "/api/v1/scripts/{script_id}/secrets",
    "/api/v1/scripts/{script_id}/terraform/states",
    "/api/v1/scripts/{script_id}/webhooks",
    "/api/v1/warm-pools",
    "/api/v1/workers",
]


@IN_MODULE_LOOP
@pytest.mark.parametrize("bad", ["%00", "%01", "%C2%85"])
@pytest.mark.parametrize(("url", "param"), FILTERS)
async def test_control_character_in_a_filter_is_422_naming_it(
    reader: Reader, url: str, param: str, bad: str
) -> None:
    client, admin = reader.client, await reader.person(Role.admin)
    r = await client.get(f"{url}?{param}={bad}", headers=admin.headers)
    assert r.status_code == 422, r.text
    body = r.json()
    assert [e["field"] for e in body["errors"]] == [param], body
    # NUL is refused for every request by the storable-text check; other controls by the filter
    # rule; `status` and `trigger` list their allowed values instead.
    if param not in ("status", "trigger"):
        assert ("NUL" if bad == "%00" else "control character") in body["detail"], body


# (list route, free-text filter, its longest accepted value in characters).
LENGTHS: list[tuple[str, str, int]] = [
    ("/api/v1/audit", "actor_name", 64),
    ("/api/v1/audit", "target_id", 64),
    ("/api/v1/audit", "target_type", 32),
    ("/api/v1/scripts", "search", 200),
    ("/api/v1/scripts", "tag", 50),
    ("/api/v1/secrets", "search", 128),
    ("/api/v1/users", "search", 254),
]


@IN_MODULE_LOOP
@pytest.mark.parametrize(("url", "param", "longest"), LENGTHS)
async def test_a_filter_over_its_length_is_422_saying_the_bound(
    reader: Reader, url: str, param: str, longest: int
) -> None:
    client, admin = reader.client, await reader.person(Role.admin)
    ok = await client.get(url, params={param: "é" * longest}, headers=admin.headers)
    assert ok.status_code == 200, ok.text
    r = await client.get(url, params={param: "é" * (longest + 1)}, headers=admin.headers)
    assert r.status_code == 422, r.text
    assert r.json()["errors"] == [
        {"field": param, "message": f"must be at most {longest} characters (it has {longest + 1})"}
    ]


# What the UI's search boxes call: (service call with the filter, the field it names).
Query = Callable[[Any, Actor, str], Awaitable[Any]]
SERVICE_FILTERS: list[tuple[str, Query]] = [
    ("search", lambda s, a, v: scripts.list_scripts(s, a, scripts.ScriptQuery(search=v))),
    ("tag", lambda s, a, v: scripts.list_scripts(s, a, scripts.ScriptQuery(tag=v))),
    ("search", lambda s, a, v: secrets.list_secrets(s, a, search=v)),
    ("search", lambda s, a, v: users.list_users(s, a, search=v)),
    ("actor_name", lambda s, a, v: audit.search(s, a, audit.AuditQuery(actor_name=v))),
    ("target_id", lambda s, a, v: audit.search(s, a, audit.AuditQuery(target_id=v))),
]


@IN_MODULE_LOOP
@pytest.mark.parametrize("bad", ["\x00", "web\x01", "\x85", "x" * 5000])
@pytest.mark.parametrize(("field", "query"), SERVICE_FILTERS)
async def test_the_services_refuse_the_filters_the_ui_passes(
    reader: Reader, field: str, query: Query, bad: str
) -> None:
    """The rule lives in the services: the UI's search boxes call them without the API's layer, and
    get the same 422 naming the field (shown under the box), never an empty page or a 500."""
    admin = await reader.person(Role.admin)
    async with runtime.current().db.session() as session:
        actor = Actor(await session.get(User, admin.id))
        with pytest.raises(Invalid) as raised:
            await query(session, actor, bad)
        assert [d["field"] for d in raised.value.details] == [field]
        # A NUL in the words of the API's door (`db.text.NUL_MESSAGE`), as the API answers it.
        expected = "at most" if len(bad) > 100 else "NUL character" if "\x00" in bad else "control character"
        assert expected in raised.value.details[0]["message"]
        await query(session, actor, "web server é")  # plain text: no error


@IN_MODULE_LOOP
@pytest.mark.parametrize(("url", "param"), FILTERS)
async def test_plain_filter_text_still_answers_200(reader: Reader, url: str, param: str) -> None:
    """Ordinary text (spaces and non-ASCII letters included) is no error, only possibly no match."""
    client, admin = reader.client, await reader.person(Role.admin)
    value = {"status": "failed", "trigger": "api"}.get(param, "web server é")
    r = await client.get(url, params={param: value}, headers=admin.headers)
    assert r.status_code == 200, r.text


@IN_MODULE_LOOP
@pytest.mark.parametrize(("url", "param"), FILTERS)
async def test_an_emptied_filter_is_no_filter(reader: Reader, url: str, param: str) -> None:
    """`?param=` (a form's emptied filter) answers what no filter answers: `?trigger=` was a 422
    "must be one of" while `?status=` of the same route listed every run."""
    client, admin = reader.client, await reader.person(Role.admin)
    everything = await client.get(url, headers=admin.headers)
    r = await client.get(f"{url}?{param}=", headers=admin.headers)
    assert r.status_code == 200, r.text
    assert r.json()["total"] == everything.json()["total"], r.text


def _get_query_parameters(app: FastAPI) -> list[tuple[str, str]]:
    """Every (GET path, query parameter) of the API's OpenAPI schema: each list's filters and
    paging, and the query of every other read, so a filter added later is covered too."""
    found = []
    for path, operations in app.openapi()["paths"].items():
        for param in operations.get("get", {}).get("parameters", []):
            if param["in"] == "query":
                found.append((path, param["name"]))
    return found


# Values that move between two reads a moment apart whatever the query: the live worker's
# heartbeat (every 5 s; two reads of /api/v1/workers straddled one at load).
_MOVING = frozenset({"heartbeat_at"})


def _steady(value: Any) -> Any:
    """`value` (a JSON answer) without the `_MOVING` keys, at any depth."""
    if isinstance(value, dict):
        return {k: _steady(v) for k, v in value.items() if k not in _MOVING}
    if isinstance(value, list):
        return [_steady(v) for v in value]
    return value


async def test_every_emptied_query_parameter_answers_as_if_not_sent(
    api_app: FastAPI, client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """`GET /api/v1/scripts?status=` (an emptied filter) was a 422 "must be one of" while
    `?search=` of the same route, and `?status=` of the executions, listed everything; so were
    `?script_type=`, the executions' `?script_id=`, `?since=`, the audit trail's `?actor_id=`,
    `?all=` of the tokens... Each GET route's each query parameter, sent empty, answers exactly
    what the route answers without it (on a library with rows for the filters to hold back)."""
    made = await client.post(
        "/api/v1/scripts",
        json={"name": "web", "script_type": "bash", "content": "echo\n", "status": "active"},
        headers=admin.headers,
    )
    assert made.status_code == 201, made.text
    await client.post(
        "/api/v1/scripts",
        json={"name": "draft", "script_type": "python", "content": "print()\n", "status": "draft"},
        headers=admin.headers,
    )
    await client.post("/api/v1/tokens", json={"name": "ci"}, headers=admin.headers)
    secret = await client.post("/api/v1/secrets", json={"name": "DB", "value": "v"}, headers=admin.headers)
    assert secret.status_code == 201, secret.text
    # No run, schedule nor inventory here: their reads answer 404 with or without the parameter.
    ids = {"script_id": made.json()["id"], "secret_id": secret.json()["id"]}
    ids |= {"execution_id": 999_999, "schedule_id": 999_999, "inventory_id": 999_999, "workspace": "default"}
    pairs = _get_query_parameters(api_app)
    covered = set()
    for path, param in pairs:
        url = path.format(**ids)
        expected = await client.get(url, headers=admin.headers)
        emptied = await client.get(f"{url}?{param}=", headers=admin.headers)
        answers = (_steady(emptied.json()), _steady(expected.json()))
        assert (emptied.status_code, answers[0]) == (expected.status_code, answers[1]), (url, param)
        covered.add((path, param))
    for listed in (
        ("/api/v1/scripts", "status"),
        ("/api/v1/scripts", "script_type"),
        ("/api/v1/scripts", "sort"),
        ("/api/v1/executions", "script_id"),
        ("/api/v1/executions", "since"),
        ("/api/v1/executions", "cursor"),
        ("/api/v1/audit", "actor_id"),
        ("/api/v1/audit", "until"),
        ("/api/v1/notifications/deliveries", "channel_id"),
        ("/api/v1/notifications/rules", "script_id"),
        ("/api/v1/tokens", "all"),
        ("/api/v1/approvals", "ended"),
        ("/api/v1/schedules", "tz"),
        *((path, param) for path in PAGED_LISTS for param in ("skip", "limit")),
    ):
        assert listed in covered, listed
    # Filtering still filters: the emptied filter is no filter, not a broken one.
    drafts = await client.get("/api/v1/scripts?status=draft&script_type=", headers=admin.headers)
    assert [s["name"] for s in drafts.json()["items"]] == ["draft"], drafts.text
    # A value that is no status is still refused, naming the parameter.
    r = await client.get("/api/v1/scripts?status=gone", headers=admin.headers)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "status", r.text


@pytest.mark.parametrize("tz", ["%01", "Mars%2FOlympus"])
async def test_unknown_display_zone_is_422_even_for_an_empty_list(
    client: httpx.AsyncClient, admin: LoggedIn, tz: str
) -> None:
    """`?tz=` was only checked per schedule: with none yet, any text answered 200 `[]`."""
    body = {"name": "s", "script_type": "bash", "content": "echo\n", "status": "active"}
    script_id = (await client.post("/api/v1/scripts", json=body, headers=admin.headers)).json()["id"]
    for url in ("/api/v1/schedules", f"/api/v1/scripts/{script_id}/schedules"):
        r = await client.get(f"{url}?tz={tz}", headers=admin.headers)
        assert r.status_code == 422, r.text
        assert [e["field"] for e in r.json()["errors"]] == ["tz"]
        assert "unknown time zone" in r.json()["detail"]
    ok = await client.get("/api/v1/schedules?tz=Europe%2FParis", headers=admin.headers)
    assert ok.status_code == 200 and ok.json()["items"] == []


@IN_MODULE_LOOP
@pytest.mark.parametrize(
    ("url", "param"), [*FILTERS, ("/api/v1/executions", "limit"), ("/api/v1/executions", "script_id")]
)
async def test_a_query_parameter_sent_twice_is_422_naming_it(reader: Reader, url: str, param: str) -> None:
    """Field report: `GET /api/v1/executions?status=failed&status=success` answered 200 with the
    successful runs only (the last value won, silently), where a client sending a filter twice
    meant both; a JSON body that repeats a key is refused the same way."""
    client, admin = reader.client, await reader.person(Role.admin)
    value = {"status": ("failed", "success"), "trigger": ("api", "ui")}.get(param, ("1", "2"))
    r = await client.get(url, params=[(param, value[0]), (param, value[1])], headers=admin.headers)
    assert r.status_code == 422, r.text
    message = "sent more than once: send each query parameter once"
    assert r.json()["errors"] == [{"field": param, "message": message}]


async def test_a_query_parameter_the_route_does_not_take_or_sent_twice_is_422(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """`?serach=deploy` (a typo) answered every script as if filtered, `/inventories?limit=1` every
    inventory (when that list did not page), and `?limit=1&limit=2` read the last value: the
    query follows the bodies' rule."""
    created = await client.post(
        "/api/v1/scripts",
        json={"name": "deploy", "script_type": "bash", "content": "echo\n"},
        headers=admin.headers,
    )
    assert created.status_code == 201, created.text
    takes = "unknown query parameter: this route takes limit, script_type, search, skip, sort, status, tag"
    for query, errors in (
        ("serach=x", [{"field": "serach", "message": takes}]),
        (
            "limit=1&limit=2",
            [{"field": "limit", "message": "sent more than once: send each query parameter once"}],
        ),
        (
            "search=a&search=a",
            [{"field": "search", "message": "sent more than once: send each query parameter once"}],
        ),
        ("token=abc&search=d", [{"field": "token", "message": takes}]),
    ):
        r = await client.get(f"/api/v1/scripts?{query}", headers=admin.headers)
        assert r.status_code == 422, (query, r.text)
        assert r.json()["errors"] == errors, query
    r = await client.get("/api/v1/auth/me?limit=1", headers=admin.headers)
    assert r.status_code == 422
    assert r.json()["errors"] == [
        {"field": "limit", "message": "unknown query parameter: this route takes none"}
    ]
    r = await client.post("/api/v1/executions?dry_run=true", json={"script_id": 1}, headers=admin.headers)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "dry_run", "nothing ran"
    assert (await client.get("/api/v1/executions", headers=admin.headers)).json()["total"] == 0
    # What the routes take still works, as do routes' own parameters declared by dependencies.
    r = await client.get("/api/v1/scripts?search=deploy&limit=5", headers=admin.headers)
    assert r.status_code == 200 and r.json()["total"] == 1
    assert (await client.get("/api/v1/tokens?all=true", headers=admin.headers)).status_code == 200
    assert (await client.get("/api/v1/health?_=1700000000")).status_code == 200, (
        "a probe's own parameters pass"
    )


@IN_MODULE_LOOP
async def test_a_true_or_false_query_parameter_holding_other_text_is_422_in_the_projects_words(
    reader: Reader,
) -> None:
    """Field report (h3): `GET /api/v1/tokens?all=maybe` and `GET /api/v1/approvals?ended=maybe`
    answered 422 "Input should be a valid boolean, unable to interpret input", pydantic's words
    naming no value it reads, where every body's true/false field says "must be true or false".
    Every boolean query parameter of the API (found in `/openapi.json`, so a new one is covered)
    is sent `maybe`; the path's ids are unknown, so nothing can be deleted (`?force=`)."""
    client, admin = reader.client, await reader.person(Role.admin)
    spec = (await client.get("/openapi.json")).json()
    sent = []
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            for param in op.get("parameters", []):
                if param["in"] != "query" or param["schema"].get("type") != "boolean":
                    continue
                url = path.replace("{", "").replace("}", "")
                url = "/".join("999999" if part.endswith("_id") else part for part in url.split("/"))
                r = await client.request(
                    method.upper(), url, params={param["name"]: "maybe"}, headers=admin.headers
                )
                assert r.status_code == 422, (method, url, r.text)
                message = "must be true or false (1 or 0, yes or no, on or off are read so too)"
                assert r.json()["errors"] == [{"field": param["name"], "message": message}], (method, url)
                sent.append((method, path, param["name"]))
    assert {(p, n) for _, p, n in sent} >= {
        ("/api/v1/tokens", "all"),
        ("/api/v1/approvals", "ended"),
        ("/api/v1/secrets/{secret_id}", "force"),
    }, sent


async def test_a_whole_name_pasted_as_the_search_finds_its_row(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """A secret's name may be 128 characters, a user's full name 200 and email 254: the secrets
    and users searches took 100, so the whole name pasted into the search box (the API's
    `search`) was refused ("must be at most 100 characters") instead of finding the row."""
    name = "S" * 128
    r = await client.post(
        "/api/v1/secrets", json={"name": name, "value": "whole-name-1"}, headers=admin.headers
    )
    assert r.status_code == 201, r.text
    email = f"{'e' * 64}@{'d' * 63}.{'d' * 63}.{'d' * 57}.com"
    assert len(email) == 254
    body = {"username": "wholename", "email": email, "password": "Whole-name-9x", "full_name": "F" * 200}
    r = await client.post("/api/v1/users", json=body, headers=admin.headers)
    assert r.status_code == 201, r.text
    for url, search, field, found in (
        ("/api/v1/secrets", name, "name", name),
        ("/api/v1/users", "F" * 200, "username", "wholename"),
        ("/api/v1/users", email, "username", "wholename"),
    ):
        r = await client.get(url, params={"search": search}, headers=admin.headers)
        assert r.status_code == 200, r.text
        assert [row[field] for row in r.json()["items"]] == [found], (url, r.text)
