"""What Terraform's http backend may POST as a state, on SQLite and PostgreSQL: a large state is
stored and read back byte for byte; a body that is no state is refused with a 4xx naming why
(never stored, never served back to the next run)."""

from __future__ import annotations

import json

import httpx
from nicegui import Client, ui
from nicegui.page import page as page_route

from opscraft import runtime
from opscraft.db.models import Execution, User
from opscraft.services.actor import Actor
from opscraft.ui.terraform_panel import TerraformPanel
from tests.conftest import LoggedIn
from tests.executions.conftest import make_script, terraform_run_row

TF = 'output "x" {\n  value = 1\n}\n'


def _url(script_id: int) -> str:
    return f"/api/v1/terraform/state/{script_id}/default"


def _state(resources: int) -> bytes:
    """A state of `resources` resources, about 2.3 KB each (what `terraform show` of a real
    provider's resources looks like in size)."""
    attributes = {f"attr_{i}": "v" * 40 for i in range(40)}
    body = {
        "version": 4,
        "terraform_version": "1.9.8",
        "serial": 3,
        "lineage": "l-big",
        "outputs": {},
        "resources": [
            {
                "mode": "managed",
                "type": "null_resource",
                "name": f"r{n}",
                "provider": 'provider["registry.terraform.io/hashicorp/null"]',
                "instances": [{"schema_version": 0, "attributes": attributes}],
            }
            for n in range(resources)
        ],
    }
    return json.dumps(body, indent=2).encode()


async def test_a_state_larger_than_an_api_body_is_stored(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    script_id = await make_script(client, operator, TF, script_type="terraform")
    _, auth = await terraform_run_row(script_id)
    big = _state(3000)
    assert len(big) > 4 * 1024 * 1024, "beyond the API's 1 MiB request body limit"
    headers = {"Content-Type": "application/json"}
    r = await client.post(_url(script_id), content=big, auth=auth, headers=headers)
    assert r.status_code == 200, r.text[:300]
    r = await client.get(_url(script_id), auth=auth)
    assert r.status_code == 200 and r.content == big


# Bodies that are no state, and what the 422 says of each.
NO_STATES = [
    (b'{"version": 4, "serial": NaN, "lineage": "l"}', "NaN"),
    (b'{"version": 4, "serial": 1, "lineage": "l", "x": Infinity}', "Infinity"),
    (b"[1, 2]", "JSON object"),
    (b"", "JSON"),
    (b'{"version": 4, "serial": 1e999}', "Infinity"),
    # Objects Terraform's state reader refuses (1.11: "Unsupported state file format", "Invalid
    # state file format"): they were stored as the current state, and every later run failed.
    (b'{"serial": 1, "lineage": "l"}', '"version" must be a whole number (it has none)'),
    (b'{"version": "4"}', '"version" must be a whole number (it is a JSON string)'),
    (b'{"version": 4, "serial": "7"}', '"serial" must be a whole number of at least 0 (it is a JSON string)'),
    (b'{"version": 4, "serial": -1}', '"serial" must be a whole number of at least 0 (it is the number -1)'),
    (b'{"version": 4, "serial": 1.5}', "(it is the number 1.5)"),
    (b'{"version": 4, "lineage": 5}', '"lineage" must be a string (it is the number 5)'),
    (b'{"version": 4, "resources": {}}', '"resources" must be a JSON array (it is a JSON object)'),
    (b'{"version": 4, "outputs": []}', '"outputs" must be a JSON object (it is a JSON array)'),
    (b'{"version": 4, "terraform_version": 1}', '"terraform_version" must be a string'),
]


async def test_a_body_that_is_no_state_is_refused(client: httpx.AsyncClient, operator: LoggedIn) -> None:
    """Each of `NO_STATES` in turn (a script and a run of its own each), in one test: one server
    per database, not one per body."""
    for body, says in NO_STATES:
        script_id = await make_script(client, operator, TF, script_type="terraform")
        _, auth = await terraform_run_row(script_id)
        r = await client.post(
            _url(script_id), content=body, auth=auth, headers={"Content-Type": "application/json"}
        )
        assert r.status_code == 422 and says in r.json()["detail"], (body, r.text)
        assert (await client.get(_url(script_id), auth=auth)).status_code == 204, ("nothing stored", body)


async def test_a_script_changed_to_another_type_keeps_its_state_readable(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    """The states of a script that was Terraform stay listed, versioned and downloadable after its
    type is changed (they were a 404 "not a terraform script" until it was changed back); a
    script that never had one still says it has no state."""
    script_id = await make_script(client, operator, TF, script_type="terraform")
    _, auth = await terraform_run_row(script_id)
    stored = _state(1)
    r = await client.post(
        _url(script_id), content=stored, auth=auth, headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 200, r.text
    r = await client.put(
        f"/api/v1/scripts/{script_id}",
        json={"script_type": "bash", "content": "#!/bin/bash\necho now bash\n", "acknowledge_risks": True},
        headers=operator.headers,
    )
    assert r.status_code == 200 and r.json()["script_type"] == "bash", r.text
    states = f"/api/v1/scripts/{script_id}/terraform/states"
    r = await client.get(states, headers=operator.headers)
    assert r.status_code == 200 and [s["workspace"] for s in r.json()["items"]] == ["default"], r.text
    r = await client.get(f"{states}/default/versions", headers=operator.headers)
    assert r.status_code == 200 and [v["number"] for v in r.json()["versions"]] == [1], r.text
    r = await client.get(f"{states}/default/versions/1", headers=operator.headers)
    assert r.status_code == 200 and r.content == stored, r.text[:200]
    bash = await make_script(client, operator, "#!/bin/bash\necho hi\n")
    r = await client.get(f"/api/v1/scripts/{bash}/terraform/states", headers=operator.headers)
    assert r.status_code == 404, r.text
    assert r.json()["detail"] == "this script is not a Terraform script: it has no state", r.text


async def test_the_versions_of_a_long_lived_state_page(client: httpx.AsyncClient, operator: LoggedIn) -> None:
    """Every write of a run is a version (Terraform also writes during a long apply): the versions
    list used to answer all of them at once, and the run page loaded all to show 10. It pages like
    every list (`skip`, `limit`, `total`), and the run page loads its 10 and says how many more."""
    script_id = await make_script(client, operator, TF, script_type="terraform")
    run_id, auth = await terraform_run_row(script_id)
    for serial in range(1, 13):
        body = {"version": 4, "serial": serial, "lineage": "l-long", "outputs": {}, "resources": []}
        assert (await client.post(_url(script_id), json=body, auth=auth)).status_code == 200
    url = f"/api/v1/scripts/{script_id}/terraform/states/default/versions"
    r = await client.get(url, params={"skip": 2, "limit": 3}, headers=operator.headers)
    assert r.status_code == 200, r.text
    page = r.json()
    assert (page["total"], page["skip"], page["limit"]) == (12, 2, 3), page
    assert [(v["number"], v["serial"], v["current"]) for v in page["versions"]] == [
        (10, 10, False),
        (9, 9, False),
        (8, 8, False),
    ], page
    first = (await client.get(url, headers=operator.headers)).json()
    assert first["limit"] == 50 and [v["number"] for v in first["versions"]] == list(range(12, 0, -1))
    assert first["versions"][0]["current"], first
    r = await client.get(url, params={"limit": 501}, headers=operator.headers)
    assert r.status_code == 422 and [e["field"] for e in r.json()["errors"]] == ["limit"], r.text

    async with runtime.current().db.session() as session:
        execution = await session.get(Execution, run_id)
        viewer = await session.get(User, operator.id)
    assert execution is not None
    with Client(page_route("/run-panel")), ui.column() as panel:
        await TerraformPanel(Actor(viewer), execution)._state()
    ids = [e.props.get("data-testid") for e in panel.descendants()]
    assert [i for i in ids if str(i).startswith("state-version-")] == [
        f"state-version-{n}" for n in range(12, 2, -1)
    ], ids
    more = next(e for e in panel.descendants() if e.props.get("data-testid") == "state-versions-more")
    assert str(more.text).startswith("The latest 10 of 12 versions"), more.text
    assert f"/api/v1/scripts/{script_id}/terraform/states/default/versions?skip=10" in str(more.text)
