"""Request bodies, all through one base (`services.bodies.Body`): unknown keys refused, booleans
only from JSON true/false, whole numbers never from text or a boolean; per body model, and on
the real API (SQLite and PostgreSQL) for the cases a tester found."""

from __future__ import annotations

import collections
import tempfile
import types
from datetime import datetime
from typing import Annotated, Any, Union, get_args, get_origin

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from sqlmodel import col, select

from opscraft import runtime
from opscraft.api import install_api
from opscraft.config import load_settings
from opscraft.db.models import AppSetting
from opscraft.services.bodies import DATETIME_MESSAGE, Body
from opscraft.services.errors import input_message
from tests.conftest import LoggedIn
from tests.linear_time import assert_linear


def _models(annotation: Any) -> list[type[BaseModel]]:
    """The models in a body annotation (`X | None` included) and, recursively, in their fields."""
    if get_origin(annotation) in (Union, types.UnionType):
        return [m for a in get_args(annotation) for m in _models(a)]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        nested = [m for f in annotation.model_fields.values() for m in _models(f.annotation)]
        return [annotation, *nested]
    return [m for a in get_args(annotation) for m in _models(a)]


def _body_models() -> list[type[BaseModel]]:
    """Every model the API takes as a request body, nested ones included."""
    app = FastAPI()
    with tempfile.TemporaryDirectory() as data:
        install_api(app, load_settings(OPSCRAFT_DATA_DIR=data, SECRET_KEY="k" * 40))

    def walk(routes: list) -> list[APIRoute]:
        found: list[APIRoute] = []
        for route in routes:
            if hasattr(route, "original_router"):
                found += walk(route.original_router.routes)
            elif isinstance(route, APIRoute):
                found.append(route)
        return found

    models = {
        m for r in walk(app.routes) for p in r.dependant.body_params for m in _models(p.field_info.annotation)
    }
    return sorted(models, key=lambda m: m.__qualname__)


MODELS = _body_models()
# A value of another JSON type for each kind of field, and what the 422 says it is.
WRONG: dict[type, list[tuple[Any, str]]] = {
    bool: [("yes", "text"), ("false", "text"), (1, "a number"), (0, "a number"), ([], "a JSON array")],
    int: [(True, "true, a JSON boolean"), ("5", "text"), (5.0, "a number with a decimal point")],
    float: [(False, "false, a JSON boolean"), ("1.5", "text"), ({}, "a JSON object")],
    datetime: [(True, "true, a JSON boolean"), ([], "a JSON array"), ({}, "a JSON object")],
    str: [(True, "true, a JSON boolean"), (7, "a number"), ([], "a JSON array"), ({}, "a JSON object")],
}
# What a field of each kind must be, as its 422 says first.
EXPECTED = {
    bool: "must be true or false",
    int: "must be a whole number",
    float: "must be a number",
    datetime: "must be an ISO 8601 date and time as text, e.g. 2030-01-31T12:00:00Z",
    str: "must be text, a JSON string",
}
# The settings' own words (services.app_settings.problem, the settings page's too).
SETTING_EXPECTED = {bool: "must be true or false", int: "must be a whole number", float: "must be a number"}


def _scalar(annotation: Any) -> type | None:
    """The kind of `WRONG` the field holds (through `Annotated` and `X | None`), else None."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _scalar(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        return _scalar(members[0]) if len(members) == 1 else None
    return annotation if annotation in WRONG else None


def _strict_fields(model: type[BaseModel]) -> list[tuple[str, type]]:
    """(field, kind) for each field of `model` of a kind of `WRONG`."""
    found = []
    for name, field in model.model_fields.items():
        if (kind := _scalar(field.annotation)) is not None:
            found.append((field.alias or name, kind))
    return found


def test_the_api_takes_bodies() -> None:
    assert len(MODELS) > 20, [m.__qualname__ for m in MODELS]
    assert any(_strict_fields(m) for m in MODELS)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__qualname__)
def test_every_body_refuses_unknown_keys_and_lax_scalars(model: type[BaseModel]) -> None:
    assert issubclass(model, Body), f"{model.__qualname__}: derive request bodies from services.bodies.Body"
    with pytest.raises(ValidationError) as raised:
        model.model_validate({"no_such_key": 1})
    assert ("no_such_key",) in [(e["loc"]) for e in raised.value.errors() if e["type"] == "extra_forbidden"]
    for name, kind in _strict_fields(model):
        for value, sent in WRONG[kind]:
            with pytest.raises(ValidationError) as raised:
                model.model_validate({name: value})
            errors = raised.value.errors()
            mine = [input_message(e) for e in errors if e["loc"][:1] == (name,)]
            assert mine, f"{model.__qualname__}.{name} took {value!r}: {errors}"
            said = {f"{EXPECTED[kind]} (it is {sent})", f"{SETTING_EXPECTED.get(kind)} (it is {sent})"}
            assert said & set(mine), f"{model.__qualname__}.{name}, {value!r}: {mine}"


def test_a_boolean_expiry_is_not_called_a_number() -> None:
    """`expires_at: true` said "a bare number is not read as a Unix time" (a bool is an int in
    Python); it says what was sent. A number still says why it is not read as a time."""
    from opscraft.api.tokens import TokenCreate

    for value, sent in [(True, "true, a JSON boolean"), (False, "false, a JSON boolean")]:
        with pytest.raises(ValidationError) as raised:
            TokenCreate.model_validate({"name": "ci", "expires_at": value})
        assert [input_message(e) for e in raised.value.errors()] == [f"{EXPECTED[datetime]} (it is {sent})"]
    with pytest.raises(ValidationError) as raised:
        TokenCreate.model_validate({"name": "ci", "expires_at": 2030})
    assert [input_message(e) for e in raised.value.errors()] == [DATETIME_MESSAGE]


def _field_error(response: httpx.Response, field: str, message: str) -> None:
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert any(e["field"] == field and message in e["message"] for e in errors), errors


# A script body's field of the wrong type or unknown: (extra fields, the field named, its message).
NOT_STRICT = [
    ({"network_enabled": "yes"}, "network_enabled", "true or false"),
    ({"network_enabled": 1}, "network_enabled", "true or false"),
    ({"viewers_choose_run_options": "no"}, "viewers_choose_run_options", "true or false"),
    ({"timeout_seconds": True}, "timeout_seconds", "whole number"),
    ({"timeout_seconds": "60"}, "timeout_seconds", "whole number"),
    ({"timeout_seconds": 60.0}, "timeout_seconds", "whole number"),
    ({"colour": "red"}, "colour", "Extra inputs are not permitted"),
]


async def test_script_body_is_strict(client: httpx.AsyncClient, operator: LoggedIn) -> None:
    """Each of `NOT_STRICT` in turn, in one test: one server per database, not one per case."""
    for extra, field, message in NOT_STRICT:
        body = {"name": "strict", "script_type": "bash", "content": "echo hi\n", **extra}
        r = await client.post("/api/v1/scripts", json=body, headers=operator.headers)
        assert r.status_code == 422, (extra, r.text)
        _field_error(r, field, message)
        assert (await client.get("/api/v1/scripts", headers=operator.headers)).json()["total"] == 0, extra


async def test_user_update_and_register_are_strict(
    client: httpx.AsyncClient, admin: LoggedIn, viewer: LoggedIn
) -> None:
    r = await client.put(f"/api/v1/users/{viewer.id}", json={"is_active": "false"}, headers=admin.headers)
    _field_error(r, "is_active", "true or false")
    assert (await client.get("/api/v1/auth/me", headers=viewer.headers)).status_code == 200, "still active"
    r = await client.put("/api/v1/settings", json={"registration_open": True}, headers=admin.headers)
    assert r.status_code == 200, r.text
    body = {"username": "john", "email": "j@example.com", "password": "SecurePass123", "role": "admin"}
    _field_error(
        await client.post("/api/v1/auth/register", json=body), "role", "Extra inputs are not permitted"
    )
    del body["role"]
    r = await client.post("/api/v1/auth/register", json=body)
    assert r.status_code == 201 and r.json()["role"] == "viewer", r.text


async def test_a_settings_put_that_sends_no_setting_is_422(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """Field report: `PUT /settings` with `{}` or `{"registration_open": null}` (a client meaning
    "back to the default") answered 200 and changed nothing, while the same body to a user or a
    secret is the 422 "nothing to change" the partial models document (`minProperties: 1`)."""
    before = (await client.get("/api/v1/settings", headers=admin.headers)).json()
    for body in ({}, {"registration_open": None}, {"warm_pool_size": None, "output_retention_days": None}):
        r = await client.put("/api/v1/settings", json=body, headers=admin.headers)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["errors"][0]["field"] == "body" and "nothing to change" in r.json()["detail"]
    assert (await client.get("/api/v1/settings", headers=admin.headers)).json() == before
    events = (await client.get("/api/v1/audit?action=setting.update", headers=admin.headers)).json()
    assert events["total"] == 0, events
    schema = (await client.get("/openapi.json")).json()["components"]["schemas"]["SettingsPatch"]
    assert schema["minProperties"] == 1, schema


async def test_a_settings_put_of_the_values_shown_writes_and_audits_nothing(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """Defect: a setting never saved, sent with the default `GET` shows (`warm_pool_size: 2`),
    was written and audited as a `setting.update`, though nothing read differs: a PUT that
    changes nothing writes nothing, as for every other row."""
    shown = (await client.get("/api/v1/settings", headers=admin.headers)).json()
    r = await client.put("/api/v1/settings", json=shown, headers=admin.headers)
    assert r.status_code == 200 and r.json() == shown, r.text
    events = (await client.get("/api/v1/audit?action=setting.update", headers=admin.headers)).json()
    assert events["total"] == 0, events
    async with runtime.current().db.session() as session:
        assert (await session.exec(select(AppSetting).where(col(AppSetting.key).in_(shown)))).all() == []
    # A real change is still written and audited once.
    r = await client.put("/api/v1/settings", json={**shown, "warm_pool_size": 3}, headers=admin.headers)
    assert r.status_code == 200 and r.json()["warm_pool_size"] == 3, r.text
    events = (await client.get("/api/v1/audit?action=setting.update", headers=admin.headers)).json()
    assert [e["target_id"] for e in events["items"]] == ["warm_pool_size"], events


async def test_a_float_is_no_whole_number_in_any_part_of_a_request(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    """One rule for every integer (services/bodies.py): `5.0` is refused with a 422 naming the
    field, in a body (the settings always did), the path, the query, and as the value of a
    script's integer parameter when a run is requested."""
    body = {"name": "whole", "script_type": "bash", "content": 'echo "$N"\n', "status": "active"}
    body["parameters"] = [{"name": "N", "type": "integer", "default": 1}]
    r = await client.post("/api/v1/scripts", json=body, headers=operator.headers)
    assert r.status_code == 201, r.text
    script_id = r.json()["id"]
    _field_error(
        await client.get(f"/api/v1/scripts/{script_id}.0", headers=operator.headers), "script_id", "whole"
    )
    _field_error(await client.get("/api/v1/scripts?limit=5.0", headers=operator.headers), "limit", "whole")
    _field_error(
        await client.get("/api/v1/executions?script_id=1.0", headers=operator.headers), "script_id", "whole"
    )
    run = {"script_id": script_id, "parameters": {"N": 5.0}}
    r = await client.post("/api/v1/executions", json=run, headers=operator.headers)
    _field_error(r, "parameters.N", "without a fraction")
    # the value sent is named: each float was told "(not 5.0)", a webhook's 1E2 or a 2.5 too
    for sent, named in ((100.0, "(not 100.0)"), (2.5, "(not 2.5)"), (1e300, "(not 1e+300)")):
        run = {"script_id": script_id, "parameters": {"N": sent}}
        r = await client.post("/api/v1/executions", json=run, headers=operator.headers)
        _field_error(r, "parameters.N", named)
    _field_error(
        await client.post(
            "/api/v1/executions", json={"script_id": float(script_id)}, headers=operator.headers
        ),
        "script_id",
        "whole number",
    )
    assert (await client.get("/api/v1/executions", headers=operator.headers)).json()["total"] == 0


# A body that is no JSON object -> what its 422 says it is (`errors.sent_kind`).
NOT_OBJECTS = {
    "[]": "a JSON array",
    "null": "empty, a JSON null",
    '"x"': "text",
    "7": "a number",
    "true": "true, a JSON boolean",
}


async def _one_of_each(client: httpx.AsyncClient, admin: LoggedIn, viewer: LoggedIn) -> dict[str, int]:
    """One row of every kind a body route's path names, each created over the API; their ids."""
    h = admin.headers

    async def made(url: str, body: dict[str, Any]) -> int:
        r = await client.post(url, json=body, headers=h)
        assert r.status_code == 201, (url, r.text)
        return int(r.json()["id"])

    script = {"script_type": "bash", "content": "echo hi\n", "status": "active"}
    ids = {"script_id": await made("/api/v1/scripts", {"name": "one", **script})}
    target = await made("/api/v1/scripts", {"name": "two", **script})
    base = f"/api/v1/scripts/{ids['script_id']}"
    ids["secret_id"] = await made("/api/v1/secrets", {"name": "S1", "value": "v"})
    ids["schedule_id"] = await made(f"{base}/schedules", {"name": "s", "cron": "0 * * * *"})
    ids["webhook_id"] = await made(f"{base}/webhooks", {"name": "w"})
    ids["link_id"] = await made(f"{base}/chains", {"target_script_id": target})
    ids["inventory_id"] = await made("/api/v1/inventories", {"name": "i", "content": "[web]\nh1\n"})
    channel = {"name": "c", "kind": "webhook", "config": {"url": "https://hooks.example.com/x"}}
    ids["channel_id"] = await made("/api/v1/notifications/channels", channel)
    rule = {"channel_id": ids["channel_id"], "events": ["failure"]}
    ids["rule_id"] = await made("/api/v1/notifications/rules", rule)
    ids["user_id"] = viewer.id
    return ids


async def test_a_body_that_is_no_json_object_is_422_naming_the_body_on_every_route(
    api_app: FastAPI, client: httpx.AsyncClient, admin: LoggedIn, viewer: LoggedIn
) -> None:
    """A JSON list, null, text, number or boolean where a route takes an object: 422 with the
    field `body` on every route whose rows exist (a notification channel's POST and PUT answered
    500: the service read `kind` from a body that was no object), saying what was sent and never
    a Python class (a rule's PUT said "a valid dictionary or instance of RuleIn"), and nothing
    written."""
    ids = await _one_of_each(client, admin, viewer)
    channels = (await client.get("/api/v1/notifications/channels", headers=admin.headers)).json()
    checked = 0
    for path, methods in api_app.openapi()["paths"].items():
        for method, operation in methods.items():
            content = operation.get("requestBody", {}).get("content", {})
            if method not in ("post", "put") or "application/json" not in content:
                continue
            if path.endswith(("/change-password", "/logout", "/refresh", "/reset-password")):
                continue  # ending the admin's sessions would stop the sweep; their bodies are objects too
            url = path.format_map(collections.defaultdict(lambda: "1", ids, workspace="default"))
            for sent in NOT_OBJECTS:
                r = await client.request(
                    method, url, content=sent, headers={**admin.headers, "content-type": "application/json"}
                )
                assert r.status_code < 500, (method, url, sent, r.text)
                if r.status_code == 422:
                    assert [e["field"] for e in r.json()["errors"]] == ["body"], (method, url, sent, r.text)
                    said = r.json()["errors"][0]["message"]
                    assert said == f"must be a JSON object (it is {NOT_OBJECTS[sent]})", (method, url, said)
                    checked += 1
    assert checked > 40, checked
    assert (await client.get("/api/v1/notifications/channels", headers=admin.headers)).json() == channels


SAID = ['{"reason": "nightly clean-up"}', "[1]", '"stop"', "reason=nightly"]


async def test_a_body_sent_to_a_route_that_reads_none_is_422_and_nothing_happens(
    api_app: FastAPI, client: httpx.AsyncClient, admin: LoggedIn, viewer: LoggedIn
) -> None:
    """A body sent to a route that reads none (a cancel's or a delete's) was ignored: the client's
    `reason` was lost without a word. Now every such route (inbound webhooks and Terraform's state
    backend keep what their senders send) answers 422 naming `body`, before anything runs: every
    row is still there afterwards. A body that says nothing (`{}`, `null`, blank) still passes."""
    ids = await _one_of_each(client, admin, viewer)
    before = {
        url: (await client.get(url, headers=admin.headers)).json()
        for url in ("/api/v1/scripts", "/api/v1/secrets", "/api/v1/inventories", "/api/v1/users")
    }
    checked = 0
    for path, methods in api_app.openapi()["paths"].items():
        if path.startswith(("/api/v1/hooks/", "/api/v1/terraform/state/")):
            continue
        for method, operation in methods.items():
            if method not in ("post", "put", "patch", "delete") or "requestBody" in operation:
                continue
            url = path.format_map(collections.defaultdict(lambda: "1", ids, workspace="default", number="1"))
            for sent in SAID:
                r = await client.request(method, url, content=sent, headers=admin.headers)
                if sent.startswith("reason="):  # no JSON: refused as such before any route
                    assert r.status_code == 400 and "not valid JSON" in r.text, (method, url, r.text)
                    continue
                assert r.status_code == 422, (method, url, sent, r.text)
                assert [e["field"] for e in r.json()["errors"]] == ["body"], (method, url, r.text)
                assert "takes no request body" in r.json()["errors"][0]["message"]
                checked += 1
    assert checked >= 3 * 15, checked
    for url, listed in before.items():
        assert (await client.get(url, headers=admin.headers)).json() == listed, url
    # Nothing said: the delete goes ahead.
    schedule = f"/api/v1/scripts/{ids['script_id']}/schedules/{ids['schedule_id']}"
    for sent in ("{}", " null ", "[]", ""):
        webhook = f"/api/v1/scripts/{ids['script_id']}/webhooks/{ids['webhook_id']}"
        if sent == "":
            r = await client.request("DELETE", webhook, content=sent, headers=admin.headers)
            assert r.status_code == 204, r.text
        else:
            r = await client.request("DELETE", schedule, content=sent, headers=admin.headers)
            assert r.status_code == 204, (sent, r.text)
            made = await client.post(
                f"/api/v1/scripts/{ids['script_id']}/schedules",
                json={"name": f"s{len(sent)}", "cron": "0 * * * *"},
                headers=admin.headers,
            )
            schedule = f"/api/v1/scripts/{ids['script_id']}/schedules/{made.json()['id']}"


MAX_BODY_CHARS = load_settings().max_body_bytes - 64  # room for the rest of the body

# Date-and-time text at the body's largest size (1 MiB, OPSCRAFT_MAX_BODY_BYTES), shaped against
# the pattern that tells a number sent as a time (`bodies._NUMERIC_TEXT`): digits before a letter
# took 65 s per 64 KiB on the event loop, their time growing with the square of their length.
TIME_SHAPES = {
    "digits": "1" * (MAX_BODY_CHARS - 1) + "x",
    "a sign and digits": "-" + "1" * (MAX_BODY_CHARS - 2) + "x",
    "blanks around digits": " " * (MAX_BODY_CHARS // 2) + "1" * (MAX_BODY_CHARS // 2 - 1) + "x",
}


@pytest.mark.parametrize("shape", list(TIME_SHAPES))
def test_a_largest_time_text_of_any_shape_is_read_in_linear_time(shape: str) -> None:
    from opscraft.api.tokens import TokenCreate

    def read(text: str) -> None:
        with pytest.raises(ValidationError):
            TokenCreate.model_validate({"name": "ci", "expires_at": text})

    assert_linear(read, TIME_SHAPES[shape])
