"""A schedule, webhook or "then run" link whose script changed its parameters since it was saved
(a parameter dropped, a type changed, a required one added) can still be switched off: Pause,
or a rename while off, keeps its stored values as they are. Pause was a 422 naming the stored
values the script no longer accepts, so a schedule firing every minute into an `error` could
only be deleted or fixed (and webhooks and links were pausable only for a new required
parameter). Switching it on checks every value, and values sent with the save are checked
(`parameters.keeps_stored_values`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.conftest import LoggedIn
from tests.executions.conftest import make_script

BEFORE = [
    {"name": "GONE", "type": "string", "default": "x"},
    {"name": "COUNT", "type": "integer", "default": 1},
]
AFTER = [
    {"name": "COUNT", "type": "boolean", "default": True},
    {"name": "TICKET", "type": "string", "required": True},
]
STORED = {"GONE": "y", "COUNT": 5}


@dataclass
class Kind:
    """Where one kind of preset is posted, and what its body carries besides its values."""

    collection: str
    extra: dict[str, Any]


@pytest.fixture(params=["schedule", "webhook", "link"])
async def kind(
    request: pytest.FixtureRequest, client: httpx.AsyncClient, admin: LoggedIn
) -> tuple[Kind, int]:
    """A preset kind and the script (`BEFORE`'s parameters) whose values it stores."""
    target = await make_script(client, admin, "true\n", parameters=BEFORE)
    if request.param == "schedule":
        body = {"name": "nightly", "cron": "0 3 * * *", "timezone": "UTC"}
        return Kind(f"/api/v1/scripts/{target}/schedules", body), target
    if request.param == "webhook":
        return Kind(f"/api/v1/scripts/{target}/webhooks", {"name": "deploy"}), target
    source = await make_script(client, admin, "true\n")
    return Kind(f"/api/v1/scripts/{source}/chains", {"target_script_id": target}), target


def _fields(response: httpx.Response) -> list[str]:
    return sorted(e["field"] for e in response.json()["errors"])


async def test_a_preset_its_script_broke_can_be_paused_and_renamed_but_not_resumed(
    client: httpx.AsyncClient, operator: LoggedIn, admin: LoggedIn, kind: tuple[Kind, int]
) -> None:
    preset, target = kind
    h = operator.headers
    r = await client.post(preset.collection, json={**preset.extra, "parameters": STORED}, headers=h)
    assert r.status_code == 201, r.text
    item = f"{preset.collection}/{r.json()['id']}"
    r = await client.put(f"/api/v1/scripts/{target}", json={"parameters": AFTER}, headers=admin.headers)
    assert r.status_code == 200 and r.json()["notices"], r.text

    r = await client.put(item, json={"enabled": False}, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["enabled"] is False and r.json()["parameters"] == STORED, r.text
    if "name" in preset.extra:  # a rename while off keeps them too
        r = await client.put(item, json={"name": "renamed"}, headers=h)
        assert r.status_code == 200 and r.json()["parameters"] == STORED, r.text

    r = await client.put(item, json={"enabled": True}, headers=h)
    assert r.status_code == 422, r.text
    assert _fields(r) == ["parameters.COUNT", "parameters.GONE", "parameters.TICKET"], r.text
    # values sent with a save that leaves it off are checked (but for a required one: off, it may lack it)
    r = await client.put(item, json={"parameters": {"COUNT": "maybe"}}, headers=h)
    assert r.status_code == 422 and _fields(r) == ["parameters.COUNT"], r.text
    r = await client.put(item, json={"parameters": {"COUNT": "no"}}, headers=h)
    assert r.status_code == 200 and r.json()["enabled"] is False, r.text
    fixed = {"enabled": True, "parameters": {"COUNT": "no", "TICKET": "T-1"}}
    r = await client.put(item, json=fixed, headers=h)
    assert r.status_code == 200 and r.json()["enabled"] is True, r.text


async def test_a_link_retargeted_while_off_has_its_values_checked_against_the_new_target(
    client: httpx.AsyncClient, operator: LoggedIn, admin: LoggedIn
) -> None:
    """The stored values were checked against the old target only: a new target checks them."""
    source = await make_script(client, admin, "true\n")
    first = await make_script(client, admin, "true\n", parameters=BEFORE)
    other = await make_script(client, admin, "true\n")
    body = {"target_script_id": first, "parameters": STORED, "enabled": False}
    r = await client.post(f"/api/v1/scripts/{source}/chains", json=body, headers=operator.headers)
    assert r.status_code == 201, r.text
    item = f"/api/v1/scripts/{source}/chains/{r.json()['id']}"
    r = await client.put(item, json={"target_script_id": other}, headers=operator.headers)
    assert r.status_code == 422 and _fields(r) == ["parameters.COUNT", "parameters.GONE"], r.text
