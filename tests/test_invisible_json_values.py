"""Characters that print as nothing (a zero-width space, a BOM) in the JSON values that come in,
wherever they come in: each place refuses them as it refuses them in a text value, naming the
character (`invisible.value_problem`), or reads them as the API reads a body.

Before: a run's or a schedule's integer `"1\\u200b"` was "must be written with the digits 0-9"
(it shows as `1`); an undeclared name `"A\\u200b"` was listed as "parameters.A: unknown
parameter" beside a declared `A`; a webhook's mapping `/user\\u200b` was saved and never matched;
a U+200B between two values of a form's JSON box said "must be a JSON object" (the API's body
"Expecting value"), and a BOM before the box's text was refused where the API reads past it."""

from __future__ import annotations

import httpx
import pytest
from pydantic import ValidationError

from opscraft.services import parameters
from opscraft.services.schedules import ScheduleIn
from tests.conftest import LoggedIn
from tests.test_parameter_values_shape import value_routes

ZWSP = "\u200b"
UNSEEN = "must not contain characters that print as nothing (U+200B)"
BETWEEN = "line 1, column 7 holds U+200B ZERO WIDTH SPACE, which JSON does not read as white space"


async def _script(client: httpx.AsyncClient, who: LoggedIn, name: str) -> int:
    body = {
        "name": name,
        "script_type": "bash",
        "content": "echo $N $B\n",
        "status": "active",
        "parameters": {"N": {"type": "integer", "default": 1}, "B": {"type": "boolean", "default": True}},
    }
    r = await client.post("/api/v1/scripts", json=body, headers=who.headers)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def test_every_place_values_come_in_names_an_unseen_character(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    sid = await _script(client, operator, "unseen-values")
    for path, payload in value_routes(sid).items():
        for values in ({"N": f"1{ZWSP}"}, {"B": f"{ZWSP}true"}):
            r = await client.post(path, json={**payload, "parameters": values}, headers=operator.headers)
            assert r.status_code == 422, (path, r.text)
            (name,) = values
            errors = {e["field"]: e["message"] for e in r.json()["errors"]}
            assert errors[f"parameters.{name}"].startswith(UNSEEN), (path, r.text)
        # A name holding one is shown with it (it read as the declared N).
        r = await client.post(path, json={**payload, "parameters": {f"N{ZWSP}": 2}}, headers=operator.headers)
        assert r.status_code == 422, (path, r.text)
        errors = {e["field"]: e["message"] for e in r.json()["errors"]}
        assert "its name, N<U+200B>, holds characters that print as nothing" in errors["parameters.N<U+200B>"]
    # A declaration's default, as a run's value.
    body = {"name": "unseen-default", "script_type": "bash", "content": "echo $N\n"}
    declared = {"N": {"type": "integer", "default": f"1{ZWSP}"}}
    r = await client.post("/api/v1/scripts", json={**body, "parameters": declared}, headers=operator.headers)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["message"].startswith(f"default {UNSEEN}"), r.text
    # A choice's option says which (it said the bare rule under the parameter).
    declared = {"C": {"type": "choice", "options": ["a", f"b{ZWSP}"]}}
    r = await client.post("/api/v1/scripts", json={**body, "parameters": declared}, headers=operator.headers)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["message"].startswith(f"option 2 {UNSEEN}"), r.text


async def test_a_mapping_pointer_with_an_unseen_character_is_refused(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    sid = await _script(client, operator, "unseen-pointers")
    for path, payload, pointer in (
        (f"/api/v1/scripts/{sid}/webhooks", {"name": "n"}, f"/user{ZWSP}"),
        (f"/api/v1/scripts/{sid}/chains", {"target_script_id": sid}, f"/parameters/N{ZWSP}"),
    ):
        r = await client.post(path, json={**payload, "mapping": {"N": pointer}}, headers=operator.headers)
        assert r.status_code == 422, (path, r.text)
        errors = {e["field"]: e["message"] for e in r.json()["errors"]}
        assert errors["mapping.N"].startswith(UNSEEN), (path, r.text)
        r = await client.post(path, json={**payload, "mapping": {f"N{ZWSP}": "/n"}}, headers=operator.headers)
        assert "mapping.N<U+200B>" in {e["field"] for e in r.json()["errors"]}, (path, r.text)


async def test_an_unseen_character_between_json_values_is_named_by_the_api_and_a_form_box(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    r = await client.post(
        "/api/v1/executions",
        content=('{"x": 1,' + ZWSP + ' "script_id": 1}').encode(),
        headers={**operator.headers, "content-type": "application/json"},
    )
    assert r.status_code == 400, r.text
    said = f"request body is not valid JSON: {BETWEEN.replace('column 7', 'column 9')}"
    assert r.json()["detail"].startswith(said), r.text
    with pytest.raises(ValidationError) as raised:
        box = parameters.json_from_text('{"N": ' + ZWSP + "1}")
        ScheduleIn.model_validate({"name": "n", "cron": "@daily", "parameters": box})
    (error,) = raised.value.errors()
    assert error["loc"] == ("parameters",) and BETWEEN in error["msg"], error
    # A byte order mark before the text is read past, as the API reads a body's (it said "must
    # be a JSON object").
    assert parameters.json_from_text('\ufeff{"N": 1}') == {"N": 1}
