"""`base` in a script's or shared inventory's update, on SQLite and PostgreSQL: what each field
held when the edit started. A field the edit changes that someone else changed meanwhile is a 409
naming it with nothing written; a field it leaves as it was keeps the other change; no `base`:
last write wins, as before. Defect: two tabs setting one script's description, the second save
silently replaced the first (the version, which `base_version` guards, did not move)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from opscraft.services.parameters import DECLARATIONS_SHAPE
from tests.conftest import LoggedIn

SCRIPTS = "/api/v1/scripts"
INVENTORIES = "/api/v1/inventories"
INI = "[web]\nweb1 ansible_host=192.0.2.10\n"


async def _created(
    client: httpx.AsyncClient, who: LoggedIn, path: str, body: dict[str, Any]
) -> dict[str, Any]:
    response = await client.post(path, json=body, headers=who.headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def _script(client: httpx.AsyncClient, who: LoggedIn) -> dict[str, Any]:
    body = {
        "name": f"edited-{time.monotonic_ns()}",
        "description": "as created",
        "script_type": "bash",
        "content": "echo hi\n",
        "tags": ["one"],
    }
    return await _created(client, who, SCRIPTS, body)


async def _put(client: httpx.AsyncClient, who: LoggedIn, url: str, body: dict[str, Any]) -> httpx.Response:
    return await client.put(url, json=body, headers=who.headers)


async def _stored(client: httpx.AsyncClient, who: LoggedIn, url: str) -> dict[str, Any]:
    response = await client.get(url, headers=who.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_a_field_changed_meanwhile_is_a_409_naming_it_and_nothing_is_written(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    script = await _script(client, operator)
    url = f"{SCRIPTS}/{script['id']}"
    tab_a = {"description": "from tab A", "base": {"description": "as created"}, "base_version": 1}
    assert (await _put(client, operator, url, tab_a)).status_code == 200
    before = await _stored(client, operator, url)
    tab_b = {
        "description": "from tab B",
        "tags": ["two"],
        "timeout_seconds": 60,
        "base": {"description": "as created", "tags": ["one"], "timeout_seconds": script["timeout_seconds"]},
        "base_version": 1,
    }
    refused = await _put(client, operator, url, tab_b)
    assert refused.status_code == 409, refused.text
    assert [e["field"] for e in refused.json()["errors"]] == ["description"]
    # Both tabs are the operator's: said so (tests/test_conflict_who_saved.py), not "someone else".
    said = "changed by you in another tab, window or API client since your edit started"
    assert said in refused.json()["errors"][0]["message"]
    assert "description of the script" in refused.json()["detail"]
    # Nothing of B's save was written: not its tags, not its timeout (no version either).
    assert await _stored(client, operator, url) == before
    assert (before["description"], before["tags"], before["current_version"]) == ("from tab A", ["one"], 1)


async def test_a_run_setting_changed_meanwhile_is_named_too(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    """`base` covers the versioned fields as well, for a client that sends no `base_version`."""
    script = await _script(client, operator)
    url = f"{SCRIPTS}/{script['id']}"
    assert (await _put(client, operator, url, {"timeout_seconds": 30})).status_code == 200
    body = {"timeout_seconds": 90, "base": {"timeout_seconds": script["timeout_seconds"]}}
    refused = await _put(client, operator, url, body)
    assert refused.status_code == 409, refused.text
    assert [e["field"] for e in refused.json()["errors"]] == ["timeout_seconds"]
    stored = await _stored(client, operator, url)
    assert (stored["timeout_seconds"], stored["current_version"]) == (30, 2)


async def test_edits_of_different_fields_merge(client: httpx.AsyncClient, operator: LoggedIn) -> None:
    script = await _script(client, operator)
    url = f"{SCRIPTS}/{script['id']}"
    base = {"description": "as created", "tags": ["one"], "status": "draft"}
    tab_a = {"description": "from tab A", "status": "draft", "base": base}
    assert (await _put(client, operator, url, tab_a)).status_code == 200
    # B sends its whole form as loaded, changing only the tags and the status.
    tab_b = {"description": "as created", "tags": ["two"], "status": "active", "base": base}
    saved = await _put(client, operator, url, tab_b)
    assert saved.status_code == 200, saved.text
    stored = await _stored(client, operator, url)
    assert (stored["description"], stored["tags"], stored["status"]) == ("from tab A", ["two"], "active")


async def test_a_base_equal_to_the_stored_values_saves(client: httpx.AsyncClient, operator: LoggedIn) -> None:
    script = await _script(client, operator)
    url = f"{SCRIPTS}/{script['id']}"
    body = {
        "description": "new words",
        "tags": ["one", "two"],
        "base": {"description": "as created", "tags": ["one"]},
    }
    saved = await _put(client, operator, url, body)
    assert saved.status_code == 200, saved.text
    stored = await _stored(client, operator, url)
    assert (stored["description"], stored["tags"]) == ("new words", ["one", "two"])
    # The same save again: the stored value is the new one already, nothing to refuse.
    assert (await _put(client, operator, url, body)).status_code == 200


async def test_without_a_base_the_last_write_wins(client: httpx.AsyncClient, operator: LoggedIn) -> None:
    script = await _script(client, operator)
    url = f"{SCRIPTS}/{script['id']}"
    for text in ("from tab A", "from tab B"):
        assert (await _put(client, operator, url, {"description": text})).status_code == 200
    assert (await _stored(client, operator, url))["description"] == "from tab B"


async def test_parameters_in_their_short_form_compare_as_the_declaration_they_stand_for(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    """`{"env": "prod"}` is stored (and shown by GET) as a list of typed parameters: a `base` or a
    body in the short form must not be a false 409 against that list, and a real change of the
    declaration meanwhile must still be one."""
    script = await _created(
        client,
        operator,
        SCRIPTS,
        {
            "name": f"short-{time.monotonic_ns()}",
            "script_type": "bash",
            "content": "echo $ENV\n",
            "parameters": {"env": "prod"},
        },
    )
    url = f"{SCRIPTS}/{script['id']}"
    shown = script["parameters"]  # GET's form: typed parameters keyed by name
    assert shown["env"]["default"] == "prod"
    # The short form as base, the same declaration re-sent in its short form: nothing changes.
    same = {"parameters": {"env": "prod"}, "description": "d1", "base": {"parameters": {"env": "prod"}}}
    saved = await _put(client, operator, url, same)
    assert saved.status_code == 200, saved.text
    assert (await _stored(client, operator, url))["parameters"] == shown
    # GET's form as base, a short-form change: saved, as its base is what is stored.
    saved = await _put(client, operator, url, {"parameters": {"env": "dev"}, "base": {"parameters": shown}})
    assert saved.status_code == 200, saved.text
    assert (await _stored(client, operator, url))["parameters"]["env"]["default"] == "dev"
    # Back to "prod" with GET's form of the new value as base.
    dev = (await _stored(client, operator, url))["parameters"]
    saved = await _put(client, operator, url, {"parameters": shown, "base": {"parameters": dev}})
    assert saved.status_code == 200, saved.text
    # A new default from a short-form base, the stored list being that base: saved.
    changed = {"parameters": {"env": "stage"}, "base": {"parameters": {"env": "prod"}}}
    saved = await _put(client, operator, url, changed)
    assert saved.status_code == 200, saved.text
    assert (await _stored(client, operator, url))["parameters"]["env"]["default"] == "stage"
    # Another tab still starting from "prod": the declaration moved on meanwhile, a 409.
    stale = {"parameters": {"env": "qa"}, "base": {"parameters": {"env": "prod"}}}
    refused = await _put(client, operator, url, stale)
    assert refused.status_code == 409, refused.text
    assert [e["field"] for e in refused.json()["errors"]] == ["parameters"]
    assert (await _stored(client, operator, url))["parameters"]["env"]["default"] == "stage"


@pytest.mark.parametrize(
    ("base", "field"),
    [
        ({"nope": "x"}, "base.nope"),
        ({"content": "echo hi\n"}, "base.content"),
        ({"tags": "one"}, "base.tags"),
        # One problem named by the field, not one per branch of its union ("base.parameters.dict[str,any]").
        ({"parameters": "env=prod"}, "base.parameters"),
        ({"parameters": 5}, "base.parameters"),
        ({"timeout_seconds": "60"}, "base.timeout_seconds"),
        ({"description": None}, "base.description"),
        ({"status": "gone"}, "base.status"),
    ],
)
async def test_a_base_with_an_unknown_field_or_a_wrong_type_is_a_422_naming_it(
    client: httpx.AsyncClient, operator: LoggedIn, base: dict[str, Any], field: str
) -> None:
    script = await _script(client, operator)
    url = f"{SCRIPTS}/{script['id']}"
    refused = await _put(client, operator, url, {"description": "changed", "base": base})
    assert refused.status_code == 422, refused.text
    assert [e["field"] for e in refused.json()["errors"]] == [field], refused.text
    assert (await _stored(client, operator, url))["description"] == "as created"


async def test_an_inventory_name_or_description_changed_meanwhile(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    name = f"inv-{time.monotonic_ns()}"
    inventory = await _created(client, admin, INVENTORIES, {"name": name, "description": "", "content": INI})
    url = f"{INVENTORIES}/{inventory['id']}"
    base = {"name": name, "description": ""}
    assert (await _put(client, admin, url, {"description": "from tab A", "base": base})).status_code == 200
    before = await _stored(client, admin, url)
    refused = await _put(client, admin, url, {"name": f"{name}-b", "description": "from tab B", "base": base})
    assert refused.status_code == 409, refused.text
    assert [e["field"] for e in refused.json()["errors"]] == ["description"]
    assert await _stored(client, admin, url) == before  # not even the new name
    # Another field merges: B renames, sending the description as it loaded it.
    merged = await _put(client, admin, url, {"name": f"{name}-b", "description": "", "base": base})
    assert merged.status_code == 200, merged.text
    stored = await _stored(client, admin, url)
    assert (stored["name"], stored["description"]) == (f"{name}-b", "from tab A")
    # Without a base, last write wins; a bad base is a 422 naming it.
    assert (await _put(client, admin, url, {"description": "api"})).status_code == 200
    assert (await _stored(client, admin, url))["description"] == "api"
    bad = await _put(client, admin, url, {"description": "x", "base": {"content": INI}})
    assert bad.status_code == 422 and "base.content" in [e["field"] for e in bad.json()["errors"]], bad.text


@pytest.mark.parametrize("sent", ["env=prod", 5, True])
async def test_parameters_neither_an_object_nor_a_list_are_one_422_naming_the_field(
    client: httpx.AsyncClient, operator: LoggedIn, sent: Any
) -> None:
    """Defect: `"parameters": "text"` answered two errors named `parameters.dict[str,any]` and
    `parameters.list[any]` (pydantic's union branches), fields no client or form has."""
    script = await _script(client, operator)
    url = f"{SCRIPTS}/{script['id']}"
    for response in (
        await _put(client, operator, url, {"parameters": sent}),
        await client.post(
            SCRIPTS,
            json={"name": "p", "script_type": "bash", "content": "echo\n", "parameters": sent},
            headers=operator.headers,
        ),
    ):
        assert response.status_code == 422, response.text
        assert response.json()["errors"] == [
            {
                "field": "parameters",
                "message": DECLARATIONS_SHAPE,
            }
        ]
    # A test run's declaration from the editor: the same rule.
    body = {"content": "echo\n", "parameter_schema": sent}
    response = await client.post(f"{url}/test-runs", json=body, headers=operator.headers)
    assert response.status_code == 422, response.text
    assert response.json()["errors"] == [{"field": "parameter_schema", "message": DECLARATIONS_SHAPE}]
