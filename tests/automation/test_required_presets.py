"""A webhook or "then run" link that neither maps nor gives a value to a required parameter of
its script (no default) is refused when it is created or replaced: every call or chained run
would otherwise be a 422 "is required", and nothing said so when it was saved
(`parameters.check_preset`). Reading and listing one saved before the script gained such a
parameter still works, and it can be paused; switching it on, or an edit of another field,
names what to fix."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from opscraft.services.parameters import BLANK_REQUIRED
from tests.conftest import LoggedIn
from tests.executions.conftest import make_script

PARAMS = [
    {"name": "BRANCH", "type": "string", "required": True},
    {"name": "COUNT", "type": "integer", "default": 1},
    {"name": "TARGET", "type": "integer", "required": True},
]


@dataclass
class Preset:
    """How the test reaches one kind of preset: the collection to post to, what each of three
    bodies carries besides the mapping and fixed values (distinct: a webhook's name, a link's
    target and outcome), and where the message says to map from."""

    collection: str
    extra: list[dict[str, Any]]
    mapped_from: str
    pointer: str

    def missing(self, name: str) -> dict[str, str]:
        return {
            "field": f"parameters.{name}",
            "message": f"is required: map it from {self.mapped_from} or give it a fixed value",
        }


@pytest.fixture(params=["webhook", "link"])
async def preset(
    request: pytest.FixtureRequest, client: httpx.AsyncClient, admin: LoggedIn
) -> tuple[Preset, int]:
    """A preset kind and the script whose parameters it fills (`PARAMS`)."""
    target = await make_script(client, admin, "true\n", parameters=PARAMS)
    if request.param == "webhook":
        names = [{"name": name} for name in ("p", "q", "r")]
        return Preset(f"/api/v1/scripts/{target}/webhooks", names, "the request body", "/ref"), target
    source = await make_script(client, admin, "true\n")
    outcomes = [{"target_script_id": target, "outcome": o} for o in ("success", "failure", "any")]
    return Preset(f"/api/v1/scripts/{source}/chains", outcomes, "the source run", "/run/id"), target


async def test_a_required_parameter_must_be_mapped_or_fixed(
    client: httpx.AsyncClient, operator: LoggedIn, preset: tuple[Preset, int]
) -> None:
    kind, _ = preset
    h = operator.headers

    async def post(which: int = 0, **body: Any) -> httpx.Response:
        return await client.post(kind.collection, json={**kind.extra[which], **body}, headers=h)

    r = await post()
    assert r.status_code == 422, r.text
    assert r.json()["errors"] == [kind.missing("BRANCH"), kind.missing("TARGET")], "COUNT has a default"
    # with the body's other problems, in the same answer; "" is no value, blanks are refused
    r = await post(mapping={"BRANCH": kind.pointer}, parameters={"TARGET": "", "COUNT": "x"}, enabled="maybe")
    assert r.status_code == 422, r.text
    fields = [e["field"] for e in r.json()["errors"]]
    assert fields == ["enabled", "parameters.COUNT", "parameters.TARGET"], r.text
    assert r.json()["errors"][2] == kind.missing("TARGET")
    r = await post(mapping={"TARGET": kind.pointer}, parameters={"BRANCH": " \t"})
    assert r.status_code == 422 and r.json()["errors"] == [
        {"field": "parameters.BRANCH", "message": BLANK_REQUIRED}
    ], r.text
    # a mapping the body's model refuses is said alone: which parameters it maps is not known
    r = await post(mapping=[1])
    assert r.status_code == 422 and [e["field"] for e in r.json()["errors"]] == ["mapping"], r.text
    assert (await client.get(kind.collection, headers=h)).json()["items"] == [], "nothing saved"

    mapped = await post(mapping={"BRANCH": kind.pointer, "TARGET": kind.pointer})
    assert mapped.status_code == 201, mapped.text
    r = await post(1, parameters={"BRANCH": "main", "TARGET": 3})
    assert r.status_code == 201, r.text
    r = await post(2, mapping={"TARGET": kind.pointer}, parameters={"BRANCH": "m"})
    assert r.status_code == 201, r.text

    item = f"{kind.collection}/{mapped.json()['id']}"
    r = await client.put(item, json={"mapping": {"BRANCH": kind.pointer}}, headers=h)  # replaced
    assert r.status_code == 422 and r.json()["errors"] == [kind.missing("TARGET")], r.text
    assert (await client.get(item, headers=h)).json()["mapping"] == mapped.json()["mapping"], "unchanged"
    r = await client.put(
        item, json={"mapping": {"BRANCH": kind.pointer}, "parameters": {"TARGET": 5}}, headers=h
    )
    assert r.status_code == 200, r.text
    # saved switched off, it may lack a value until it is switched on
    r = await client.put(item, json={"mapping": {}, "parameters": {}, "enabled": False}, headers=h)
    assert r.status_code == 200, r.text
    r = await client.put(item, json={"enabled": True}, headers=h)
    assert r.status_code == 422 and r.json()["errors"] == [kind.missing("BRANCH"), kind.missing("TARGET")]


async def test_a_preset_saved_before_a_new_required_parameter_still_reads_and_says_what_to_fix(
    client: httpx.AsyncClient, operator: LoggedIn, admin: LoggedIn, preset: tuple[Preset, int]
) -> None:
    kind, target = preset
    h = operator.headers
    body = {**kind.extra[0], "mapping": {"BRANCH": kind.pointer}, "parameters": {"TARGET": 2}}
    r = await client.post(kind.collection, json=body, headers=h)
    assert r.status_code == 201, r.text
    item = f"{kind.collection}/{r.json()['id']}"
    grown = [*PARAMS, {"name": "REGION", "type": "string", "required": True}]
    r = await client.put(f"/api/v1/scripts/{target}", json={"parameters": grown}, headers=admin.headers)
    assert r.status_code == 200, r.text
    assert "parameters.REGION: is required" in r.json()["notices"][0]["message"], r.text

    listed = await client.get(kind.collection, headers=h)
    assert listed.status_code == 200 and len(listed.json()["items"]) == 1, listed.text
    assert (await client.get(item, headers=h)).status_code == 200
    # It can be paused as it is (it starts no run); switched on, it must be complete.
    r = await client.put(item, json={"enabled": False}, headers=h)
    assert r.status_code == 200 and r.json()["enabled"] is False, r.text
    r = await client.put(item, json={"enabled": True}, headers=h)
    assert r.status_code == 422 and r.json()["errors"] == [kind.missing("REGION")], r.text
    r = await client.put(item, json={"enabled": True, "parameters": {"TARGET": 2, "REGION": "eu"}}, headers=h)
    assert r.status_code == 200 and r.json()["enabled"] is True, r.text
