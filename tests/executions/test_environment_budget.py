"""A run's parameter values and the `env` secrets attached to its script share one budget
(1 MiB, `parameters.MAX_TOTAL_BYTES`): the secrets were not counted, and a run with large ones
was accepted and then failed as it started ("Argument list too long"). Now every way a run starts
refuses it up front, naming the sizes, never a value; approving a waiting run checks again."""

from __future__ import annotations

import json
from typing import Any

import httpx

from opscraft import runtime
from opscraft.db.models import ScriptSecret
from opscraft.services.parameters import MAX_TOTAL_BYTES
from opscraft.services.secrets import MAX_VALUE_BYTES
from tests.conftest import LoggedIn
from tests.executions.conftest import make_script, wait_for

# Each secret's value is a different letter: a message quoting one would show it.
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


async def large_secrets(
    client: httpx.AsyncClient, who: LoggedIn, script_id: int, count: int, kind: str = "env", first: int = 0
) -> int:
    """Attach `count` secrets of the largest value to the script (numbered from `first`);
    returns the bytes their names and values take in a run's environment."""
    size = 0
    for i in range(first, first + count):
        name = f"BIG_{kind.upper()}_{script_id}_{i}"
        body = {"name": name, "value": LETTERS[i] * MAX_VALUE_BYTES, "kind": kind}
        r = await client.post("/api/v1/secrets", json=body, headers=who.headers)
        assert r.status_code == 201, r.text
        r = await client.post(f"/api/v1/scripts/{script_id}/secrets/{r.json()['id']}", headers=who.headers)
        assert r.status_code == 201, r.text
        size += len(name) + MAX_VALUE_BYTES
    return size


def no_value_in(response: httpx.Response) -> None:
    assert all(letter * 64 not in response.text for letter in LETTERS), "a secret's value in the answer"


async def submit(client: httpx.AsyncClient, who: LoggedIn, script_id: int, **body: Any) -> httpx.Response:
    # Sent as UTF-8 (not \u escapes): the values are near the request body's limit otherwise.
    content = json.dumps({"script_id": script_id, "runner": "local", **body}, ensure_ascii=False)
    headers = {**who.headers, "Content-Type": "application/json"}
    return await client.post("/api/v1/executions", content=content.encode(), headers=headers)


async def test_secrets_over_the_budget_are_refused_when_attached_or_grown_and_at_every_start(
    client: httpx.AsyncClient, operator: LoggedIn, admin: LoggedIn
) -> None:
    script_id = await make_script(client, operator, "echo ran\n")
    count = MAX_TOTAL_BYTES // MAX_VALUE_BYTES - 1
    fits = await large_secrets(client, operator, script_id, count)
    r = await submit(client, operator, script_id)
    assert r.status_code == 202, r.text
    assert (await wait_for(client, operator, r.json()["id"]))["status"] == "success"

    # One more large secret would leave no run room to start: refused when it is attached...
    body = {"name": f"ONE_MORE_{script_id}", "value": "Z" * MAX_VALUE_BYTES}
    extra = (await client.post("/api/v1/secrets", json=body, headers=operator.headers)).json()["id"]
    r = await client.post(f"/api/v1/scripts/{script_id}/secrets/{extra}", headers=operator.headers)
    assert r.status_code == 409 and "none of its runs could start" in r.json()["detail"], r.text
    assert r.json()["errors"][0]["field"] == "secret_id"
    no_value_in(r)
    # ... and when a small one already attached grows past the room left.
    body = {"name": f"SMALL_{script_id}", "value": "z"}
    small = (await client.post("/api/v1/secrets", json=body, headers=operator.headers)).json()["id"]
    r = await client.post(f"/api/v1/scripts/{script_id}/secrets/{small}", headers=operator.headers)
    assert r.status_code == 201, r.text
    r = await client.put(
        f"/api/v1/secrets/{small}", json={"value": "Z" * MAX_VALUE_BYTES}, headers=admin.headers
    )
    assert r.status_code == 409 and r.json()["errors"][0]["field"] == "value", r.text
    no_value_in(r)

    # Attached all the same (two requests racing past the check): every way a run starts
    # refuses it with the sizes, and no row is written.
    async with runtime.current().db.session() as session:
        session.add(ScriptSecret(script_id=script_id, secret_id=extra))
        await session.commit()
    total = fits + len(f"SMALL_{script_id}") + 1 + len(f"ONE_MORE_{script_id}") + MAX_VALUE_BYTES
    r = await submit(client, operator, script_id)
    assert r.status_code == 409, r.text
    assert f"take {total} bytes" in r.json()["detail"] and "Detach" in r.json()["detail"]
    no_value_in(r)
    previous = (await client.get("/api/v1/executions", headers=operator.headers)).json()["items"][0]
    r = await client.post(f"/api/v1/executions/{previous['id']}/rerun", headers=operator.headers)
    assert r.status_code == 409 and f"take {total} bytes" in r.json()["detail"], r.text
    hook = await client.post(
        f"/api/v1/scripts/{script_id}/webhooks", json={"name": "budget"}, headers=operator.headers
    )
    assert hook.status_code == 201, hook.text
    r = await client.post(hook.json()["url_path"], json={})
    assert r.status_code == 409 and f"take {total} bytes" in r.json()["detail"], r.text
    no_value_in(r)
    assert (await client.get("/api/v1/executions", headers=operator.headers)).json()["total"] == 1


async def test_file_secrets_are_not_in_the_environment(client: httpx.AsyncClient, operator: LoggedIn) -> None:
    script_id = await make_script(client, operator, "echo ran\n")
    await large_secrets(client, operator, script_id, MAX_TOTAL_BYTES // MAX_VALUE_BYTES + 2, kind="file")
    r = await submit(client, operator, script_id)
    assert r.status_code == 202, r.text


async def test_values_that_fit_alone_but_not_with_the_secrets_are_a_422_on_parameters(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    names = [f"P{i}" for i in range(6)]
    script_id = await make_script(client, operator, "echo ran\n", parameters={n: "" for n in names})
    secrets = await large_secrets(client, operator, script_id, 8)
    values = {n: "€" * 32_000 for n in names}  # 96,000 bytes each in UTF-8
    used = 6 * 96_000
    assert used < MAX_TOTAL_BYTES < used + secrets
    r = await submit(client, operator, script_id, parameters=values)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert f"values take {used} bytes" in detail
    assert f"{secrets} (names and values)" in detail
    assert [e["field"] for e in r.json()["errors"]] == ["parameters"]
    no_value_in(r)
    r = await submit(client, operator, script_id, parameters={n: "é" * 1000 for n in names})
    assert r.status_code == 202, r.text


async def test_approving_a_run_whose_secrets_grew_while_it_waited_is_a_conflict(
    client: httpx.AsyncClient, operator: LoggedIn, admin: LoggedIn, viewer: LoggedIn
) -> None:
    names = [f"P{i}" for i in range(6)]
    script_id = await make_script(client, operator, "echo ran\n", parameters={n: "" for n in names})
    r = await client.put(f"/api/v1/scripts/{script_id}/approval", json={"required": 1}, headers=admin.headers)
    assert r.status_code == 200, r.text
    r = await submit(client, viewer, script_id, parameters={n: "€" * 32_000 for n in names})
    assert r.status_code == 202 and r.json()["status"] == "awaiting_approval", r.text
    run_id = r.json()["id"]
    await large_secrets(client, operator, script_id, 8)  # fits alone, not with the waiting values
    r = await client.post(f"/api/v1/executions/{run_id}/approve", json={}, headers=admin.headers)
    assert r.status_code == 409 and "can no longer be approved" in r.json()["detail"], r.text
    assert "parameter values take 576000 bytes" in r.json()["detail"]
    no_value_in(r)
    status = (await client.get(f"/api/v1/executions/{run_id}", headers=viewer.headers)).json()["status"]
    assert status == "awaiting_approval"
