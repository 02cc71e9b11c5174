"""A state Terraform could not store in OpsCraft (real Terraform, local runner, the served API):
Terraform writes it to `errored.tfstate` in the run's work directory "to allow for recovery", and
that directory was thrown away with the run: the state was lost, and the next plan knew nothing
of what the failed run had made. The run now collects the file and the worker keeps it as a
version (services/terraform_state.recover)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from opscraft import runtime
from opscraft.db.models import Execution
from opscraft.execution import terraform_plan
from opscraft.services import terraform_state
from tests.conftest import LoggedIn
from tests.executions import test_terraform_state as state_tests
from tests.executions.conftest import make_script, output, start, terraform_run_row, wait_for

backend = state_tests.backend
served = state_tests.served
terraform_on_path = state_tests.terraform_on_path
engine_settings = state_tests.engine_settings
# Outputs only (any Terraform version): `n` values of about 60 bytes each.
MANY_TF = """variable "n" {
  type = number
}

output "values" {
  value = [for i in range(var.n) : "value-${i}-abcdefghijklmnopqrstuvwxyz0123456789"]
}
"""
LIMIT = 20_000


async def _apply(
    client: httpx.AsyncClient, who: LoggedIn, script_id: int, n: int, action: str
) -> tuple[dict, str]:
    started = await start(client, who, script_id, "local", terraform_action=action, parameters={"n": n})
    final = await wait_for(client, who, started["id"], timeout=180)
    return final, await output(client, who, started["id"])


async def _versions(client: httpx.AsyncClient, who: LoggedIn, script_id: int) -> list[dict[str, Any]]:
    r = await client.get(
        f"/api/v1/scripts/{script_id}/terraform/states/default/versions", headers=who.headers
    )
    assert r.status_code == 200, r.text
    return list(r.json()["versions"])


@pytest.mark.parametrize("engine_settings", [{"OPSCRAFT_MAX_STATE_BYTES": LIMIT}], indirect=True)
async def test_a_state_over_the_limit_is_kept_from_errored_tfstate_and_the_next_plan_knows_it(
    client: httpx.AsyncClient, operator: LoggedIn, admin: LoggedIn, served: None, terraform_on_path: None
) -> None:
    script_id = await make_script(client, operator, MANY_TF, script_type="terraform", parameters={"n": 1})
    final, text = await _apply(client, operator, script_id, 1, "apply")
    assert final["status"] == "success", text

    final, text = await _apply(client, operator, script_id, 400, "apply")  # about 30 KB of state
    assert final["status"] == "failed", text
    assert "errored.tfstate" in text and "413" in text, text  # Terraform's own words
    message = final["error_message"]
    assert "Terraform's error: Failed to save state" in message and "OPSCRAFT_MAX_STATE_BYTES" in message
    assert (
        "OpsCraft kept the state it wrote to errored.tfstate as version 2, now the current state" in message
    )
    newest = (await _versions(client, operator, script_id))[0]
    assert (newest["number"], newest["current"], newest["execution_id"]) == (2, True, final["id"])
    assert newest["note"] == f"errored.tfstate of execution {final['id']}" and newest["size_bytes"] > LIMIT
    r = await client.get(
        f"/api/v1/scripts/{script_id}/terraform/states/default/versions/2", headers=operator.headers
    )
    assert len(r.json()["outputs"]["values"]["value"]) == 400
    r = await client.get("/api/v1/audit", params={"action": "terraform.state_recover"}, headers=admin.headers)
    assert [(e["details"]["version"], e["details"]["current"]) for e in r.json()["items"]] == [(2, True)], (
        r.text
    )

    # The next plan starts from the kept state: the 400 values are known, nothing changes.
    final, text = await _apply(client, operator, script_id, 400, "plan")
    assert final["status"] == "success", text
    assert "No changes" in text, text


async def _held_run(script_id: int, **fields: Any) -> int:
    execution_id, _ = await terraform_run_row(script_id, **fields)
    return execution_id


def _state(serial: int, lineage: str) -> bytes:
    return json.dumps(
        {"version": 4, "serial": serial, "lineage": lineage, "outputs": {}, "resources": []}
    ).encode()


async def test_an_errored_state_that_does_not_follow_the_current_one_is_kept_but_not_made_current(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    """`terraform state push` refuses a state of another lineage or a serial not above the current
    one, and a run holding the lock read the state before: such an errored state is kept as a
    version to roll back to, never made current; one that is no state, or was too large to read
    back, is said, and nothing is stored."""
    script_id = await make_script(client, operator, MANY_TF, script_type="terraform", parameters={"n": 1})
    db = runtime.current().db

    async def recover(content: bytes, **fields: Any) -> str:
        execution_id = await _held_run(script_id, **fields)
        async with db.session() as session:
            return await terraform_state.recover(session, execution_id, content)

    assert "now the current state" in await recover(_state(3, "lin-a"), status="failed")
    said = await recover(_state(2, "lin-a"), status="failed")  # a serial not above 3
    assert "as version 2, not made current because the current state is not the one" in said, said
    said = await recover(_state(9, "lin-b"), status="failed")  # another lineage
    assert "as version 3, not made current" in said, said
    holder = await _held_run(script_id)  # running, holding the lock
    async with db.session() as session:
        await terraform_state.lock(
            session, await session.get(Execution, holder), "default", json.dumps({"ID": "held"}).encode()
        )
    said = await recover(_state(4, "lin-a"), status="failed")
    assert f"as version 4, not made current because execution {holder} holds the state's lock" in said, said
    assert "is lost" in await recover(terraform_plan.TOO_LARGE, status="failed")
    assert "is not a Terraform state" in await recover(b"[1, 2", status="failed")
    versions = await _versions(client, operator, script_id)
    assert [(v["number"], v["current"]) for v in versions] == [(4, False), (3, False), (2, False), (1, True)]
