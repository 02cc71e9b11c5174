"""What Terraform's http backend may POST as a state, on SQLite and PostgreSQL: a large state is
stored and read back byte for byte; a body that is no state is refused with a 4xx naming why
(never stored, never served back to the next run)."""

from __future__ import annotations

import json

import httpx
import pytest

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


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b'{"version": 4, "serial": NaN, "lineage": "l"}', "NaN"),
        (b'{"version": 4, "serial": 1, "lineage": "l", "x": Infinity}', "Infinity"),
        (b"[1, 2]", "JSON object"),
        (b"", "JSON"),
        (b'{"version": 4, "serial": 1e999}', "Infinity"),
    ],
)
async def test_a_body_that_is_no_state_is_refused(
    client: httpx.AsyncClient, operator: LoggedIn, body: bytes, says: str
) -> None:
    script_id = await make_script(client, operator, TF, script_type="terraform")
    _, auth = await terraform_run_row(script_id)
    r = await client.post(
        _url(script_id), content=body, auth=auth, headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 422 and says in r.json()["detail"], r.text
    assert (await client.get(_url(script_id), auth=auth)).status_code == 204, "nothing stored"


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
    assert r.status_code == 200 and [s["workspace"] for s in r.json()] == ["default"], r.text
    r = await client.get(f"{states}/default/versions", headers=operator.headers)
    assert r.status_code == 200 and [v["number"] for v in r.json()["versions"]] == [1], r.text
    r = await client.get(f"{states}/default/versions/1", headers=operator.headers)
    assert r.status_code == 200 and r.content == stored, r.text[:200]
    bash = await make_script(client, operator, "#!/bin/bash\necho hi\n")
    r = await client.get(f"/api/v1/scripts/{bash}/terraform/states", headers=operator.headers)
    assert r.status_code == 404 and "not a terraform script" in r.json()["detail"], r.text
