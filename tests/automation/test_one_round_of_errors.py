"""A webhook, "then run" link or schedule save names every problem of its body in one 422: a bad
name (or outcome) together with a bad mapping, fixed value or parameter, instead of the first
round naming the model's fields and a second one the service's checks (services/errors.Problems
`body`, as script, inventory and channel saves do)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import LoggedIn
from tests.executions.conftest import make_script

PARAMS = [{"name": "N", "type": "integer", "default": 1}]


def fields_of(response: httpx.Response) -> set[str]:
    assert response.status_code == 422, response.text
    return {e["field"] for e in response.json()["errors"]}


async def test_every_problem_of_a_webhook_link_or_schedule_in_one_answer(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    script_id = await make_script(client, operator, 'echo "$N"\n', parameters=PARAMS)
    target_id = await make_script(client, operator, 'echo "$N"\n', parameters=PARAMS)
    h = operator.headers

    hooks = f"/api/v1/scripts/{script_id}/webhooks"
    bad_hook: dict[str, Any] = {
        "name": "",
        "mapping": {"N": "no-slash", "X": "/x"},
        "parameters": {"N": "abc"},
    }
    assert fields_of(await client.post(hooks, json={**bad_hook, "secret_id": 999}, headers=h)) == {
        "name",
        "mapping.N",
        "mapping.X",
        "parameters.N",
        "secret_id",
    }
    r = await client.post(hooks, json={"name": "ok"}, headers=h)
    assert r.status_code == 201, r.text
    assert fields_of(await client.put(f"{hooks}/{r.json()['id']}", json=bad_hook, headers=h)) == {
        "name",
        "mapping.N",
        "mapping.X",
        "parameters.N",
    }

    chains = f"/api/v1/scripts/{script_id}/chains"
    bad_link = {"target_script_id": target_id, "outcome": "sometimes", "mapping": {"N": "/nowhere/x"}}
    assert fields_of(await client.post(chains, json={**bad_link, "parameters": {"Y": 1}}, headers=h)) == {
        "outcome",
        "mapping.N",
        "parameters.Y",
    }
    r = await client.post(
        chains, json={**bad_link, "target_script_id": 2_000_000, "enabled": "no"}, headers=h
    )
    assert fields_of(r) == {"outcome", "enabled", "target_script_id", "mapping.N"}

    schedules = f"/api/v1/scripts/{script_id}/schedules"
    bad = {"name": "", "cron": "61 * * * *", "parameters": {"N": "abc"}}
    assert fields_of(await client.post(schedules, json=bad, headers=h)) == {"name", "cron", "parameters.N"}
    for url in (hooks, chains, schedules):
        assert len((await client.get(url, headers=h)).json()["items"]) == (1 if url == hooks else 0), url


async def test_a_body_that_is_no_object_is_a_422(client: httpx.AsyncClient, operator: LoggedIn) -> None:
    script_id = await make_script(client, operator, "true\n")
    for kind in ("webhooks", "chains", "schedules"):
        for body in ([1], "x", 3):
            r = await client.post(f"/api/v1/scripts/{script_id}/{kind}", json=body, headers=operator.headers)
            assert r.status_code == 422, (kind, body, r.text)
    hook = await client.post(
        f"/api/v1/scripts/{script_id}/webhooks", json={"name": "h"}, headers=operator.headers
    )
    inventory = await client.post(
        "/api/v1/inventories", json={"name": "inv", "content": "[web]\nw1\n"}, headers=operator.headers
    )
    for url in (
        f"/api/v1/scripts/{script_id}/webhooks/{hook.json()['id']}",
        f"/api/v1/inventories/{inventory.json()['id']}",
    ):
        r = await client.put(url, json=[1], headers=operator.headers)
        assert r.status_code == 422, (url, r.text)
