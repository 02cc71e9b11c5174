"""A 404 about a thing the user is looking at says it in their words: "this script has no
version 9: its versions are 1 to 3", never the row's id ("script 12 has no version 9"), which
no page shows; what the address gave (the version number, a workspace's name) may be echoed."""

from __future__ import annotations

import httpx

from tests.conftest import LoggedIn

BASH = {"name": "words", "script_type": "bash", "content": "echo hi\n"}


async def _detail(client: httpx.AsyncClient, who: LoggedIn, method: str, url: str) -> str:
    answer = await client.request(method, url, headers=who.headers)
    assert answer.status_code == 404, answer.text
    return str(answer.json()["detail"])


async def test_a_missing_script_version_is_said_with_the_versions_it_has(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    created = await client.post("/api/v1/scripts", json=BASH, headers=admin.headers)
    script_id = created.json()["id"]
    url = f"/api/v1/scripts/{script_id}/versions/9"
    assert await _detail(client, admin, "GET", url) == "this script has no version 9: its only version is 1"
    for content in ("echo two\n", "echo three\n"):
        r = await client.put(f"/api/v1/scripts/{script_id}", json={"content": content}, headers=admin.headers)
        assert r.status_code == 200, r.text
    said = await _detail(client, admin, "GET", url)
    assert said == "this script has no version 9: its versions are 1 to 3"
    assert await _detail(client, admin, "DELETE", f"/api/v1/scripts/{script_id}/approval") == (
        "this script requires no approval"
    )
    said = await _detail(client, admin, "GET", f"/api/v1/scripts/{script_id}/terraform/states")
    assert said == "this script is not a Terraform script: it has no state"


async def test_a_missing_inventory_version_is_said_with_the_versions_it_has(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    body = {"name": "words", "content": "[web]\nweb1\n"}
    inventory_id = (await client.post("/api/v1/inventories", json=body, headers=admin.headers)).json()["id"]
    said = await _detail(client, admin, "GET", f"/api/v1/inventories/{inventory_id}/versions/4")
    assert said == "this inventory has no version 4: its only version is 1"


async def test_a_terraform_workspace_without_state_is_named_not_the_script_id(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    body = {"name": "tf-words", "script_type": "terraform", "content": "terraform {}\n"}
    created = await client.post("/api/v1/scripts", json=body, headers=admin.headers)
    assert created.status_code == 201, created.text
    url = f"/api/v1/scripts/{created.json()['id']}/terraform/states/staging/versions"
    assert await _detail(client, admin, "GET", url) == "this script has no state in the workspace 'staging'"
