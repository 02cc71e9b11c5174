"""Text the databases cannot store (NUL, lone surrogates) is refused at the door with a 422 naming
the field, nothing is stored, and old rows holding such text never break a list or detail route.

Every test runs on SQLite and PostgreSQL (the `backend` fixture behind `client`): PostgreSQL
refuses NUL where SQLite takes it, and OpsCraft must answer the same on both.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import text

from opscraft import runtime
from opscraft.db.models import Execution, User
from opscraft.services import audit, scripts, storable, users
from opscraft.services.actor import Actor
from opscraft.services.errors import Invalid
from tests.conftest import LoggedIn

SURROGATE = "x\ud800y"
NUL = "a\u0000b"


def raw_json(body: Any) -> bytes:
    """JSON as a client may send it: a lone surrogate travels as the valid escape `\\ud800`."""
    return json.dumps(body).encode()


async def send(client: httpx.AsyncClient, method: str, url: str, who: LoggedIn, body: Any) -> httpx.Response:
    headers = {**who.headers, "content-type": "application/json"}
    return await client.request(method, url, content=raw_json(body), headers=headers)


def fields(response: httpx.Response) -> set[str]:
    return {e["field"] for e in response.json()["errors"]}


async def active_script(client: httpx.AsyncClient, admin: LoggedIn) -> int:
    body = {
        "name": "echo-p",
        "script_type": "bash",
        "content": 'echo "$P"\n',
        "parameters": {"P": "x"},
        "status": "active",
    }
    r = await client.post("/api/v1/scripts", json=body, headers=admin.headers)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def test_lone_surrogate_parameter_is_422_and_nothing_is_stored(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    script_id = await active_script(client, admin)
    r = await send(
        client, "POST", "/api/v1/executions", admin, {"script_id": script_id, "parameters": {"P": SURROGATE}}
    )
    assert r.status_code == 422, r.text
    assert fields(r) == {"parameters.P"}
    assert "surrogate" in r.json()["detail"]
    for query in ("", "?status=queued", f"?script_id={script_id}", "?status=failed"):
        listing = await client.get(f"/api/v1/executions{query}", headers=admin.headers)
        assert listing.status_code == 200, listing.text
        assert listing.json()["total"] == 0, "a refused run must not be stored"
    # A parameter *name* with a surrogate, and a NUL value, are refused the same way.
    r = await send(
        client, "POST", "/api/v1/executions", admin, {"script_id": script_id, "parameters": {"P": NUL}}
    )
    assert r.status_code == 422 and fields(r) == {"parameters.P"}
    r = await send(
        client, "POST", "/api/v1/executions", admin, {"script_id": script_id, "parameters": {"P\udc00": "v"}}
    )
    assert r.status_code == 422 and fields(r) == {"parameters"}


async def test_nul_in_script_description_is_422_on_both_databases(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    body = {"name": "nul", "script_type": "bash", "content": "echo hi\n", "description": NUL}
    r = await client.post("/api/v1/scripts", json=body, headers=admin.headers)
    assert r.status_code == 422, r.text
    assert fields(r) == {"description"}
    assert "NUL" in r.json()["detail"]
    listing = await client.get("/api/v1/scripts", headers=admin.headers)
    assert listing.status_code == 200 and listing.json()["total"] == 0


# (method, url, body, the field the 422 must name): one member of every text field kind.
BODY_CASES: list[tuple[str, str, dict[str, Any], str]] = [
    (
        "POST",
        "/api/v1/scripts",
        {"name": "n", "script_type": "bash", "content": "echo\n", "tags": ["ok", NUL]},
        "tags.1",
    ),
    (
        "POST",
        "/api/v1/scripts",
        {"name": "n", "script_type": "bash", "content": f"echo {SURROGATE}\n"},
        "content",
    ),
    (
        "POST",
        "/api/v1/scripts",
        {"name": "n", "script_type": "bash", "content": "echo\n", "change_note": SURROGATE},
        "change_note",
    ),
    (
        "POST",
        "/api/v1/scripts",
        {
            "name": "n",
            "script_type": "bash",
            "content": "echo\n",
            "parameters": [{"name": "A", "description": NUL}],
        },
        "parameters.0.description",
    ),
    ("PUT", "/api/v1/scripts/{script}", {"description": SURROGATE}, "description"),
    ("POST", "/api/v1/secrets", {"name": "S1", "value": SURROGATE}, "value"),
    ("POST", "/api/v1/secrets", {"name": "S2", "value": "v", "description": NUL}, "description"),
    ("PUT", "/api/v1/secrets/{secret}", {"description": SURROGATE}, "description"),
    (
        "POST",
        "/api/v1/users",
        {"username": "u1", "email": "u1@example.com", "password": "Long-Enough-1", "full_name": NUL},
        "full_name",
    ),
    ("PUT", "/api/v1/users/{user}", {"full_name": SURROGATE}, "full_name"),
    ("POST", "/api/v1/users/{user}/reset-password", {"new_password": f"Long-Enough-{NUL}"}, "new_password"),
    ("POST", "/api/v1/auth/login", {"username": NUL, "password": "whatever"}, "username"),
    (
        "POST",
        "/api/v1/auth/change-password",
        {"current_password": SURROGATE, "new_password": "Long-Enough-1"},
        "current_password",
    ),
    ("POST", "/api/v1/scripts/{script}/rollback/1", {"change_note": NUL}, "change_note"),
]
QUERY_CASES: list[tuple[str, str]] = [
    ("/api/v1/users?search=a%00b", "search"),
    ("/api/v1/scripts?search=a%00b", "search"),
    ("/api/v1/scripts?tag=%00", "tag"),
    ("/api/v1/secrets?search=%00", "search"),
    ("/api/v1/audit?actor_name=%00", "actor_name"),
    ("/api/v1/executions?status=%00", "status"),
]


async def test_every_text_field_refuses_unstorable_text(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    script_id = await active_script(client, admin)
    secret = await client.post("/api/v1/secrets", json={"name": "KEEP", "value": "v"}, headers=admin.headers)
    user = await client.post(
        "/api/v1/users",
        json={"username": "keeper", "email": "k@example.com", "password": "Long-Enough-1"},
        headers=admin.headers,
    )
    ids = {"script": script_id, "secret": secret.json()["id"], "user": user.json()["id"]}
    before = {url: (await client.get(url, headers=admin.headers)).json() for url in _lists()}
    for method, url, body, field in BODY_CASES:
        r = await send(client, method, url.format(**ids), admin, body)
        assert r.status_code == 422, (url, body, r.text)
        assert field in fields(r), (url, field, r.text)
    for url, field in QUERY_CASES:
        r = await client.get(url, headers=admin.headers)
        assert r.status_code == 422, (url, r.text)
        assert fields(r) == {field}, (url, r.text)
    after = {url: (await client.get(url, headers=admin.headers)).json() for url in _lists()}
    assert after == before, "a refused request must change nothing"


def _lists() -> list[str]:
    return ["/api/v1/scripts", "/api/v1/secrets", "/api/v1/users", "/api/v1/executions"]


async def test_json_content_types_fastapi_parses_are_checked_too(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    body = raw_json({"name": "n", "script_type": "bash", "content": "echo\n", "description": NUL})
    for content_type in (None, "application/merge-patch+json", "Application/JSON; charset=utf-8"):
        headers = dict(admin.headers) | ({"content-type": content_type} if content_type else {})
        r = await client.post("/api/v1/scripts", content=body, headers=headers)
        assert r.status_code == 422, (content_type, r.text)


async def test_services_refuse_it_for_the_ui_too(rt: runtime.Runtime) -> None:
    """The pages call the services directly: the same text is an `Invalid` naming the field there."""
    async with rt.db.session() as session:
        admin = await users.bootstrap(
            session,
            users.UserCreate(
                username="root", email="root@example.com", password="Long-Enough-1", role="admin"
            ),
        )
    actor = Actor(admin)
    async with rt.db.session() as session:
        with pytest.raises(Invalid) as caught:
            await scripts.create(
                session, actor, {"name": "ui", "script_type": "bash", "content": "echo\n", "description": NUL}
            )
        assert {d["field"] for d in caught.value.details} == {"description"}
    # The forms build the request models, whose text fields refuse it (the page shows it at the field)...
    with pytest.raises(ValidationError) as invalid_model:
        users.UserUpdate(full_name=SURROGATE)
    assert [e["loc"] for e in invalid_model.value.errors()] == [("full_name",)]
    # ... and a model built without validation still cannot write it: the flush check names the field.
    async with rt.db.session() as session:
        with pytest.raises(Invalid) as caught:
            unchecked = users.UserUpdate.model_construct(full_name=SURROGATE)
            await users.update_user(session, actor, admin.id or 0, unchecked)
        assert {d["field"] for d in caught.value.details} == {"full_name"}
    async with rt.db.session() as session:
        # A list's filter names itself (`invisible.check_filters`, which the search boxes show)...
        with pytest.raises(Invalid) as caught:
            await users.list_users(session, actor, search=NUL)
        assert {d["field"] for d in caught.value.details} == {"search"}
        # ... and any other text a query would send is caught by the statement check.
        with pytest.raises(Invalid) as caught:
            await audit.for_target(session, "secret", NUL)
        assert {d["field"] for d in caught.value.details} == {"query"}
    async with rt.db.session() as session:
        stored = await session.get(User, admin.id)
        assert stored is not None and stored.full_name == ""
        _rows, total = await scripts.list_scripts(session, actor, scripts.ScriptQuery())
        assert total == 0


async def test_a_stored_lone_surrogate_never_breaks_a_list(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """A row written before these checks (the JSON escape `\\ud800` in a JSON column) still reads."""
    script_id = await active_script(client, admin)
    async with runtime.current().db.session() as session:
        await session.exec(
            text(
                "INSERT INTO executions (script_id, script_version, script_name, script_type, status,"
                " parameters, output_bytes, output_truncated, cancel_requested, queued_at)"
                " VALUES (:sid, 1, 'echo-p', 'bash', 'failed', :params, 0, false, false, CURRENT_TIMESTAMP)"
            ),
            params={"sid": script_id, "params": '{"P": "x\\ud800y"}'},
        )
        await session.commit()
    listing = await client.get("/api/v1/executions", headers=admin.headers)
    assert listing.status_code == 200, listing.text
    (item,) = listing.json()["items"]
    assert item["parameters"] == {"P": "x\ufffdy"}
    detail = await client.get(f"/api/v1/executions/{item['id']}", headers=admin.headers)
    assert detail.status_code == 200 and detail.json()["parameters"] == {"P": "x\ufffdy"}
    for query in ("?status=failed", f"?script_id={script_id}"):
        assert (await client.get(f"/api/v1/executions{query}", headers=admin.headers)).status_code == 200


async def test_an_integer_past_64_bits_is_422_and_a_stored_one_never_breaks_a_list(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """`{"N": 2**70}` for an integer parameter was stored, and then every history list and the
    run's page answered 500 (the JSON encoder holds 64 bits): now a 422 naming it, nothing stored;
    a row stored before reads the number as its digits."""
    body = {
        "name": "count",
        "script_type": "bash",
        "content": 'echo "$N"\n',
        "parameters": [{"name": "N", "type": "integer", "default": 1}],
        "status": "active",
    }
    r = await client.post("/api/v1/scripts", json=body, headers=admin.headers)
    assert r.status_code == 201, r.text
    script_id = r.json()["id"]
    # 1e300 is a float: refused for its fraction form first (services/bodies.py, one rule)
    cases = ((2**70, "64-bit integer"), (-(2**70), "64-bit integer"), (str(2**64), "64-bit integer"))
    for value, words in (*cases, (1e300, "without a fraction")):
        r = await client.post(
            "/api/v1/executions",
            json={"script_id": script_id, "parameters": {"N": value}},
            headers=admin.headers,
        )
        assert r.status_code == 422 and fields(r) == {"parameters.N"}, r.text
        assert words in r.json()["detail"]
    assert (await client.get("/api/v1/executions", headers=admin.headers)).json()["total"] == 0
    async with runtime.current().db.session() as session:
        await session.exec(
            text(
                "INSERT INTO executions (script_id, script_version, script_name, script_type, status,"
                " parameters, output_bytes, output_truncated, cancel_requested, queued_at)"
                " VALUES (:sid, 1, 'count', 'bash', 'failed', :params, 0, false, false, CURRENT_TIMESTAMP)"
            ),
            params={"sid": script_id, "params": json.dumps({"N": 2**70, "M": 2**63 - 1})},
        )
        await session.commit()
    listing = await client.get("/api/v1/executions", headers=admin.headers)
    assert listing.status_code == 200, listing.text
    (item,) = listing.json()["items"]
    assert item["parameters"] == {"N": str(2**70), "M": 2**63 - 1}
    detail = await client.get(f"/api/v1/executions/{item['id']}", headers=admin.headers)
    assert detail.status_code == 200, detail.text


@pytest.mark.parametrize(
    ("method", "url", "field"),
    [
        ("GET", "/api/v1/scripts?search=%FF", "search"),
        ("GET", "/api/v1/users?search=caf%E9", "search"),  # é sent as Latin-1
        ("GET", "/api/v1/audit?actor_name=%ED%A0%80", "actor_name"),  # a surrogate's UTF-8 form
        ("GET", "/api/v1/scripts?%FF=1", "%FF"),  # a name: as sent (it was U+FFFD, found nowhere)
        ("GET", "/api/v1/scripts?caf%E9=1&x=%C3%A9", "caf%E9"),  # x=é is UTF-8: not named
        ("GET", "/api/v1/scripts?100%25%FE=1", "100%25%FE"),  # a sent "%" is %25: never a byte's
        ("GET", "/api/v1/scripts/1/terraform/states/%FF/versions", "path"),
        ("POST", "/api/v1/hooks/1/och_%FE%FF", "path"),
    ],
)
async def test_percent_encoded_bytes_that_are_no_utf8_are_422_naming_where(
    client: httpx.AsyncClient, admin: LoggedIn, method: str, url: str, field: str
) -> None:
    """A percent-encoded byte that is no UTF-8 was read as U+FFFD: `?search=%FF` searched for it
    and answered an empty page, as though nothing matched. It is a 422 naming the parameter (or
    the path) and what to send, before anything runs."""
    r = await client.request(method, url, headers=admin.headers)
    assert r.status_code == 422, r.text
    assert fields(r) == {field}, r.text
    assert r.json()["errors"][0]["message"].startswith("must be UTF-8 text: a percent-encoded byte")
    r = await client.get("/api/v1/scripts?search=caf%C3%A9", headers=admin.headers)
    assert r.status_code == 200, "the UTF-8 bytes of the same text pass"


def test_a_new_rows_check_walks_text_and_json_and_skips_the_rest() -> None:
    """`storable.check_new_row` (the group insert's flush check) names a column whose text holds a
    NUL, a JSON column with a lone surrogate in a nested key or value, a text enum's value; a row
    of numbers, flags, times and None passes (those are skipped by type, not walked)."""
    now = datetime.now(UTC)
    clean = Execution(script_id=1, script_version=1, triggered_by=1, queued_at=now, parameters={"a": "b"})
    storable.check_new_row(clean)
    bad = Execution(
        script_id=1,
        script_version=1,
        triggered_by=1,
        queued_at=now,
        error_message=NUL,
        parameters={"ok": ["fine", {SURROGATE: 1}]},
        run_options={"x": [1, 2.5, None, SURROGATE]},
        runner=StrEnumLike("loc\x00al"),
    )
    with pytest.raises(Invalid) as caught:
        storable.check_new_row(bad)
    assert {d["field"] for d in caught.value.details} == {
        "error_message",
        "parameters.ok.1",
        "run_options.x.3",
        "runner",
    }


class StrEnumLike(str):
    """A `str` subclass (as the models' text enums are): checked as text, not skipped."""
