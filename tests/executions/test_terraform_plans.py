"""Plan -> review -> apply with real Terraform and OpsCraft's state backend (local runner; the
Docker runner in test_terraform_docker.py), and the wait for a state lock another run holds.

The configuration needs no provider download: `terraform_data` (built in since Terraform 1.4)
when the binary has it, else outputs only (Terraform 1.0.3 of tests/run on a clean machine).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from opscraft import runtime
from opscraft.execution import terraform_errors
from opscraft.execution.ports import PlanUnavailable
from opscraft.services import keyring, terraform_plans
from tests.conftest import LoggedIn, make_user
from tests.executions import test_terraform_state as state_tests
from tests.executions.conftest import make_script, output, start, terraform_run_row, wait_for

OUTPUT_TF = """variable "greeting" {
  type    = string
  default = "hello"
}

output "message" {
  value = "${var.greeting} from opscraft"
}
"""
RESOURCE_TF = """
resource "terraform_data" "greeting" {
  input = var.greeting
}
"""


# The same served API and real Terraform on PATH as the state tests (on both databases here).
PORT = state_tests.PORT
served = state_tests.served
terraform_on_path = state_tests.terraform_on_path
WITH_RESOURCE = state_tests.terraform_version() >= (1, 4)
MAIN_TF = OUTPUT_TF + (RESOURCE_TF if WITH_RESOURCE else "")


@pytest.fixture
def engine_settings() -> dict[str, Any]:
    return {
        "OPSCRAFT_STATE_BACKEND_URL": f"http://127.0.0.1:{PORT}",
        "OPSCRAFT_TERRAFORM_LOCK_TIMEOUT_SECONDS": 120,
    }


async def _finished(client: httpx.AsyncClient, who: LoggedIn, execution_id: int) -> tuple[dict, str]:
    final = await wait_for(client, who, execution_id, timeout=180)
    return final, await output(client, who, execution_id)


async def _plan(client: httpx.AsyncClient, who: LoggedIn, script_id: int, **parameters: str) -> int:
    started = await start(client, who, script_id, "local", terraform_action="plan", parameters=parameters)
    final, text = await _finished(client, who, started["id"])
    assert final["status"] == "success", text
    return int(started["id"])


async def _get_plan(client: httpx.AsyncClient, who: LoggedIn, execution_id: int) -> dict[str, Any]:
    r = await client.get(f"/api/v1/executions/{execution_id}/terraform/plan", headers=who.headers)
    assert r.status_code == 200, r.text
    return dict(r.json())


def _apply(client: httpx.AsyncClient, who: LoggedIn, execution_id: int) -> Any:
    return client.post(f"/api/v1/executions/{execution_id}/terraform/plan/apply", headers=who.headers)


async def _apply_awaiting_approval(
    client: httpx.AsyncClient, who: LoggedIn, script_id: int, plan_id: int
) -> int:
    """The id of an apply of `plan_id` held for approval (the script made to require one)."""
    r = await client.put(f"/api/v1/scripts/{script_id}/approval", json={"required": 1}, headers=who.headers)
    assert r.status_code == 200, r.text
    r = await _apply(client, who, plan_id)
    assert r.status_code == 202 and r.json()["status"] == "awaiting_approval", r.text
    return int(r.json()["id"])


async def test_plan_is_saved_summarized_and_applied_exactly_once_then_stale(
    client: httpx.AsyncClient, operator: LoggedIn, viewer: LoggedIn, served: None
) -> None:
    script_id = await make_script(
        client, operator, MAIN_TF, script_type="terraform", parameters={"greeting": "hello"}
    )
    plan_id = await _plan(client, operator, script_id, greeting="hi")

    plan = await _get_plan(client, viewer, plan_id)  # anyone who views runs reads the summary
    assert plan["outputs"] == [{"name": "message", "actions": ["create"]}]
    assert plan["to_add"] == (1 if WITH_RESOURCE else 0) and plan["to_change"] == plan["to_destroy"] == 0
    if WITH_RESOURCE:
        assert plan["resources"] == [{"address": "terraform_data.greeting", "actions": ["create"]}]
    assert (plan["prior_serial"], plan["prior_lineage"], plan["stale"]) == (0, "", False)
    assert plan["apply_execution_id"] is None and plan["size_bytes"] > 0
    # The plan file is kept encrypted: no plaintext zip in the row.
    async with runtime.current().db.session() as session:
        row = await terraform_plans._plan_of(session, plan_id)
        assert not row.ciphertext.startswith(b"PK") and b"from opscraft" not in row.ciphertext

    r = await _apply(client, viewer, plan_id)
    assert r.status_code == 403, r.text
    # What is needed, not the permission it is checked with ("may not edit scripts").
    assert r.json()["detail"] == (
        "your role (viewer) may not apply a reviewed plan: that needs operator or admin"
    )
    r = await _apply(client, operator, plan_id)
    assert r.status_code == 202, r.text
    applying = r.json()
    assert applying["terraform_action"] == "apply_plan" and applying["parameters"] == {"greeting": "hi"}
    final, text = await _finished(client, operator, applying["id"])
    assert final["status"] == "success", text
    assert 'message = "hi from opscraft"' in text, text
    if WITH_RESOURCE:
        assert "Resources: 1 added, 0 changed, 0 destroyed" in text, text
    r = await client.get(
        f"/api/v1/scripts/{script_id}/terraform/states/default/versions", headers=operator.headers
    )
    stored = r.json()["versions"]
    assert [(v["number"], v["execution_id"]) for v in stored] == [(1, applying["id"])]
    assert (await _get_plan(client, operator, plan_id))["apply_execution_id"] == applying["id"]

    r = await _apply(client, operator, plan_id)
    assert r.status_code == 409 and "already applied" in r.json()["detail"], r.text

    # Two plans against the same state: applying one makes the other stale.
    first = await _plan(client, operator, script_id, greeting="one")
    second = await _plan(client, operator, script_id, greeting="two")
    first_plan = await _get_plan(client, operator, first)
    # Made against the stored state: its serial (1; Terraform before 1.4 numbers the first state
    # a remote backend gets 0) and its lineage.
    made_against = (first_plan["prior_serial"], first_plan["prior_lineage"])
    assert made_against == (stored[0]["serial"], stored[0]["lineage"]), stored
    assert stored[0]["serial"] == (1 if state_tests.terraform_version() >= (1, 4) else 0), stored
    assert first_plan["prior_lineage"] and not first_plan["stale"]
    r = await _apply(client, operator, second)
    assert r.status_code == 202, r.text
    final, text = await _finished(client, operator, r.json()["id"])
    assert final["status"] == "success" and 'message = "two from opscraft"' in text, text
    assert (await _get_plan(client, operator, first))["stale"]
    r = await _apply(client, operator, first)
    assert r.status_code == 409, r.text
    assert "the plan is stale" in r.json()["detail"] and "run a new plan" in r.json()["detail"]

    r = await client.get("/api/v1/executions/999999/terraform/plan", headers=operator.headers)
    assert r.status_code == 404
    r = await client.post(
        "/api/v1/executions",
        json={"script_id": script_id, "terraform_action": "apply_plan", "runner": "local"},
        headers=operator.headers,
    )
    assert r.status_code == 422, r.text


async def test_a_plan_is_applied_as_terraform_after_its_script_changed_type(
    client: httpx.AsyncClient, operator: LoggedIn, served: None
) -> None:
    """Applying a saved plan runs the plan's script version, whatever the script is now: its row
    said the script's new type (`bash`), so the state backend refused the run's credentials
    ("HTTP remote state endpoint invalid auth") and a Docker run got the bash image."""
    script_id = await make_script(
        client, operator, MAIN_TF, script_type="terraform", parameters={"greeting": "hello"}
    )
    plan_id = await _plan(client, operator, script_id, greeting="typed")
    r = await client.put(
        f"/api/v1/scripts/{script_id}",
        json={"script_type": "bash", "content": "echo now a bash script\n"},
        headers=operator.headers,
    )
    assert r.status_code == 200 and r.json()["script_type"] == "bash", r.text

    r = await _apply(client, operator, plan_id)
    assert r.status_code == 202, r.text
    assert (r.json()["script_type"], r.json()["script_version"]) == ("terraform", 1), r.text
    final, text = await _finished(client, operator, r.json()["id"])
    assert final["status"] == "success", text
    assert 'message = "typed from opscraft"' in text, text
    versions = await state_tests._versions(client, operator, script_id)
    assert [v["execution_id"] for v in versions] == [r.json()["id"]]


async def test_running_the_apply_of_a_plan_again_says_to_plan_again(
    client: httpx.AsyncClient, operator: LoggedIn, served: None
) -> None:
    """Run again of an apply of a saved plan was a 422 naming `terraform_action`, a field the
    request did not have: each plan is applied once, so it is a 409 saying what to do."""
    script_id = await make_script(client, operator, MAIN_TF, script_type="terraform")
    plan_id = await _plan(client, operator, script_id)
    r = await _apply(client, operator, plan_id)
    assert r.status_code == 202, r.text
    applied = r.json()["id"]
    final, text = await _finished(client, operator, applied)
    assert final["status"] == "success", text

    r = await client.post(f"/api/v1/executions/{applied}/rerun", headers=operator.headers)
    assert r.status_code == 409, r.text
    assert r.json()["detail"] == (
        f"execution {applied} applied a saved plan, and each plan is applied once: run a new plan "
        "and apply that"
    )
    r = await client.get("/api/v1/executions", params={"script_id": script_id}, headers=operator.headers)
    assert [e["id"] for e in r.json()["items"]] == [applied, plan_id]  # nothing queued


async def test_running_again_a_run_of_a_script_that_changed_type_says_so(
    client: httpx.AsyncClient, operator: LoggedIn, served: None
) -> None:
    """Run again repeats a run's Terraform action: after the script became a bash script it was
    a 422 "terraform_action applies only to terraform scripts: leave it out", a field the
    request did not have; and a bash run's Run again became a Terraform plan."""
    script_id = await make_script(client, operator, MAIN_TF, script_type="terraform")
    applied = await start(client, operator, script_id, "local", terraform_action="apply")
    final, text = await _finished(client, operator, applied["id"])
    assert final["status"] == "success", text
    r = await client.put(
        f"/api/v1/scripts/{script_id}",
        json={"script_type": "bash", "content": "echo now bash\n"},
        headers=operator.headers,
    )
    assert r.status_code == 200, r.text
    r = await client.post(f"/api/v1/executions/{applied['id']}/rerun", headers=operator.headers)
    assert r.status_code == 409, r.text
    assert r.json()["detail"] == (
        f"execution {applied['id']} was a terraform run, and its script is a bash script now: "
        "start a new run of it"
    )
    bash = await start(client, operator, script_id, "local")
    final, text = await _finished(client, operator, bash["id"])
    assert final["status"] == "success" and "now bash" in text, text
    r = await client.put(
        f"/api/v1/scripts/{script_id}",
        json={"script_type": "terraform", "content": MAIN_TF},
        headers=operator.headers,
    )
    assert r.status_code == 200, r.text
    r = await client.post(f"/api/v1/executions/{bash['id']}/rerun", headers=operator.headers)
    assert r.status_code == 409, r.text
    assert "was a bash run, and its script is a terraform script now" in r.json()["detail"]
    r = await client.post(f"/api/v1/executions/{applied['id']}/rerun", headers=operator.headers)
    assert r.status_code == 202 and r.json()["terraform_action"] == "apply", r.text  # its type again
    final, text = await _finished(client, operator, r.json()["id"])
    assert final["status"] == "success", text


async def test_applying_a_plan_waits_for_approval_by_someone_else(
    client: httpx.AsyncClient, operator: LoggedIn, admin: LoggedIn, served: None
) -> None:
    script_id = await make_script(
        client, operator, MAIN_TF, script_type="terraform", parameters={"greeting": "hello"}
    )
    r = await client.put(
        f"/api/v1/scripts/{script_id}/approval", json={"required": 1}, headers=operator.headers
    )
    assert r.status_code == 200, r.text
    approver = await make_user(client, "operator")
    started = await start(client, operator, script_id, "local", terraform_action="plan", parameters={})
    assert started["status"] == "awaiting_approval"
    r = await client.post(f"/api/v1/executions/{started['id']}/approve", json={}, headers=approver.headers)
    assert r.status_code == 200, r.text
    final, text = await _finished(client, operator, started["id"])
    assert final["status"] == "success", text

    r = await _apply(client, operator, started["id"])
    assert r.status_code == 202 and r.json()["status"] == "awaiting_approval", r.text
    applying = r.json()["id"]
    r = await client.post(f"/api/v1/executions/{applying}/approve", json={}, headers=operator.headers)
    assert r.status_code == 403  # never one's own run
    r = await client.post(f"/api/v1/executions/{applying}/approve", json={}, headers=approver.headers)
    assert r.status_code == 200, r.text
    final, text = await _finished(client, operator, applying)
    assert final["status"] == "success" and 'message = "hello from opscraft"' in text, text
    r = await client.get("/api/v1/audit", params={"action": "terraform.plan_apply"}, headers=admin.headers)
    assert r.json()["total"] == 1, r.text


async def test_approving_the_apply_of_a_plan_gone_stale_is_refused_naming_the_cause(
    client: httpx.AsyncClient, operator: LoggedIn, served: None
) -> None:
    """The state changed while an apply of a saved plan waited for approval: the approval went
    through and Terraform failed the run ("Saved plan is stale"). Now the approval is a 409
    naming the cause, and the run keeps waiting (to be rejected)."""
    script_id = await make_script(
        client, operator, MAIN_TF, script_type="terraform", parameters={"greeting": "hello"}
    )
    plan_id = await _plan(client, operator, script_id, greeting="hi")
    applying = await _apply_awaiting_approval(client, operator, script_id, plan_id)
    # Another run stores a state meanwhile (a rollback or another apply does the same)
    _, auth = await terraform_run_row(script_id)
    state = '{"version": 4, "serial": 1, "lineage": "other", "outputs": {}, "resources": []}'
    r = await client.post(f"/api/v1/terraform/state/{script_id}/default", content=state, auth=auth)
    assert r.status_code == 200, r.text

    approver = await make_user(client, "operator")
    r = await client.post(f"/api/v1/executions/{applying}/approve", json={}, headers=approver.headers)
    assert r.status_code == 409, r.text
    detail = r.json()["detail"]
    assert "the plan this run applies is stale" in detail and f"plan run {plan_id}" in detail, detail
    assert "serial 0 -> 1" in detail and "plan again" in detail, detail
    r = await client.get(f"/api/v1/executions/{applying}", headers=operator.headers)
    assert r.json()["status"] == "awaiting_approval", r.text
    r = await client.post(f"/api/v1/executions/{applying}/reject", json={}, headers=approver.headers)
    assert r.status_code == 200, r.text


async def test_a_run_of_a_plan_gone_stale_while_it_waited_gets_no_plan(
    client: httpx.AsyncClient, operator: LoggedIn, served: None
) -> None:
    """A plan made with no state, applied after another run stored the first state: Terraform
    before 1.4 numbers that state serial 0, as the plan's, and applied the plan over it (Terraform
    1.0 compares no lineage then). The worker, asking for the plan when the run starts, is
    refused naming the cause, as the request and the approval are."""
    script_id = await make_script(client, operator, MAIN_TF, script_type="terraform")
    plan_id = await _plan(client, operator, script_id)
    applying = await _apply_awaiting_approval(client, operator, script_id, plan_id)
    store = terraform_plans.VaultPlanStore(keyring.current_vault())
    assert (await store.plan_file(runtime.current().db, applying)).startswith(b"PK")  # not stale yet
    _, auth = await terraform_run_row(script_id)  # another run stores the first state meanwhile
    state = '{"version": 4, "serial": 0, "lineage": "other", "outputs": {}, "resources": []}'
    r = await client.post(f"/api/v1/terraform/state/{script_id}/default", content=state, auth=auth)
    assert r.status_code == 200, r.text

    with pytest.raises(PlanUnavailable) as refused:
        await store.plan_file(runtime.current().db, applying)
    assert str(refused.value) == (
        "the plan is stale: the state changed since it was made (serial 0 -> 0, now version 1); "
        "run a new plan and apply that"
    )


async def test_a_run_waits_for_the_state_lock_and_goes_on_once_it_is_released(
    client: httpx.AsyncClient, operator: LoggedIn, admin: LoggedIn, served: None
) -> None:
    script_id = await make_script(
        client, operator, MAIN_TF, script_type="terraform", parameters={"greeting": "hello"}
    )
    _, auth = await terraform_run_row(script_id)  # another run, holding the lock
    r = await client.request(
        "LOCK", f"/api/v1/terraform/state/{script_id}/default/lock", json={"ID": "held-1"}, auth=auth
    )
    assert r.status_code == 200, r.text

    started = await start(client, operator, script_id, "local", terraform_action="apply", parameters={})
    if not state_tests.waits_for_a_lock():  # Terraform before 1.2.4: no wait, the holder named
        final, text = await _finished(client, operator, started["id"])
        assert final["status"] == "failed" and "HTTP remote state already locked: ID=held-1" in text, text
        assert final["error_message"].startswith(
            "the script exited with code 1: Terraform's error: Error acquiring the state lock;"
        ), final
        r = await client.request(
            "UNLOCK", f"/api/v1/terraform/state/{script_id}/default/lock", json={"ID": "held-1"}, auth=auth
        )
        assert r.status_code == 200, r.text
        started = await start(client, operator, script_id, "local", terraform_action="apply", parameters={})
        final, text = await _finished(client, operator, started["id"])
        assert final["status"] == "success" and 'message = "hello from opscraft"' in text, text
        return
    deadline = time.monotonic() + 120
    while "Acquiring state lock" not in await output(client, operator, started["id"]):
        assert time.monotonic() < deadline, "the run never tried the lock"
        await asyncio.sleep(0.2)
    # It keeps waiting (Terraform retries the lock) rather than failing at once.
    await asyncio.sleep(2)
    r = await client.get(f"/api/v1/executions/{started['id']}", headers=operator.headers)
    assert r.json()["status"] == "running", await output(client, operator, started["id"])

    r = await client.request(
        "UNLOCK", f"/api/v1/terraform/state/{script_id}/default/lock", json={"ID": "held-1"}, auth=auth
    )
    assert r.status_code == 200, r.text
    final, text = await _finished(client, operator, started["id"])
    assert final["status"] == "success", text
    assert 'message = "hello from opscraft"' in text


BIG_TF = """variable "tag" {
  type    = string
  default = "a"
}

locals {
  chunk = join("", [for j in range(100) : "0123456789abcdefghij"])
}

output "big" {
  value = [for i in range(1000) : "${var.tag}-${i}-${local.chunk}"]
}

output "bigger" {
  value = [for i in range(1000) : "${var.tag}-${i}-${local.chunk}${local.chunk}"]
}
"""


async def test_the_plan_of_a_large_state_is_saved_and_applied(
    client: httpx.AsyncClient, operator: LoggedIn, served: None
) -> None:
    """A 6 MB state (outputs only: any Terraform version) makes `terraform show -json` of a plan
    about 24 MB, the prior state and every change before and after. The runners used to read back
    at most 16 MiB of it and drop the rest silently: the plan run succeeded with no saved plan,
    nothing to review or apply, for any state over about 4 MiB."""
    script_id = await make_script(client, operator, BIG_TF, script_type="terraform", parameters={"tag": "a"})
    started = await start(client, operator, script_id, "local", terraform_action="apply", parameters={})
    final, text = await _finished(client, operator, started["id"])
    assert final["status"] == "success", text
    versions = f"/api/v1/scripts/{script_id}/terraform/states/default/versions"
    first = (await client.get(versions, headers=operator.headers)).json()["versions"]
    assert first[0]["size_bytes"] > 5_000_000, first

    plan_id = await _plan(client, operator, script_id, tag="b")
    plan = await _get_plan(client, operator, plan_id)
    assert plan["outputs"] == [
        {"name": "big", "actions": ["update"]},
        {"name": "bigger", "actions": ["update"]},
    ], plan
    assert (plan["to_add"], plan["to_change"], plan["to_destroy"], plan["stale"]) == (0, 0, 0, False)
    r = await _apply(client, operator, plan_id)
    assert r.status_code == 202, r.text
    final, text = await _finished(client, operator, r.json()["id"])
    assert final["status"] == "success", text
    after = (await client.get(versions, headers=operator.headers)).json()["versions"]
    assert [v["execution_id"] for v in after] == [r.json()["id"], started["id"]], after


ADOPT_OLD_TF = """
resource "terraform_data" "old" {
  input = "kept"
}
"""
# The same resource renamed by a `moved` block, and one the state does not hold brought in by an
# `import` block (Terraform 1.5+; `terraform_data` takes any ID): neither creates, changes or
# destroys anything, yet the apply writes both into the state.
ADOPT_NEW_TF = """
resource "terraform_data" "renamed" {
  input = "kept"
}

moved {
  from = terraform_data.old
  to   = terraform_data.renamed
}

resource "terraform_data" "adopted" {
}

import {
  to = terraform_data.adopted
  id = "adopted-1"
}
"""


async def test_a_plan_that_only_imports_and_moves_says_so_and_its_apply_adopts_the_resource(
    client: httpx.AsyncClient, operator: LoggedIn, served: None, terraform_on_path: None
) -> None:
    """Terraform says "Plan: 1 to import, 0 to add, 0 to change, 0 to destroy." and lists the
    moved resource; the saved plan's summary read "Plan: 0 to add, 0 to change, 0 to destroy."
    with no resource listed (an import's and a move's actions are `no-op`), so a reviewer saw
    nothing to apply while the apply writes a resource the state never held.

    A Terraform before 1.5 (tests/run's 1.0.3 on a clean machine) has neither block: there the
    plan of the same configuration is refused naming Terraform's error and no plan is kept (the
    summary of an import stays checked on Terraform 1.11's recorded plan JSON,
    tests/test_terraform_plan_storage.py)."""
    if state_tests.terraform_version() < (1, 5):
        script_id = await make_script(client, operator, ADOPT_NEW_TF, script_type="terraform")
        started = await start(client, operator, script_id, "local", terraform_action="plan", parameters={})
        final, text = await _finished(client, operator, started["id"])
        assert final["status"] == "failed", text
        assert final["error_message"].endswith("Terraform's error: Unsupported block type"), final
        r = await client.get(f"/api/v1/executions/{started['id']}/terraform/plan", headers=operator.headers)
        assert r.status_code == 404, r.text
        return
    script_id = await make_script(client, operator, ADOPT_OLD_TF, script_type="terraform")
    started = await start(client, operator, script_id, "local", terraform_action="apply", parameters={})
    final, text = await _finished(client, operator, started["id"])
    assert final["status"] == "success", text
    r = await client.put(
        f"/api/v1/scripts/{script_id}", json={"content": ADOPT_NEW_TF}, headers=operator.headers
    )
    assert r.status_code == 200, r.text

    plan_id = await _plan(client, operator, script_id)
    text = await output(client, operator, plan_id)
    assert " 1 to import, 0 to add, 0 to change, 0 to destroy." in text, text  # Terraform says so
    plan = await _get_plan(client, operator, plan_id)
    assert (plan["to_import"], plan["to_add"], plan["to_change"], plan["to_destroy"]) == (1, 0, 0, 0)
    assert plan["resources"] == [
        {"address": "terraform_data.adopted", "actions": ["no-op"], "importing": True},
        {"address": "terraform_data.renamed", "actions": ["no-op"], "previous_address": "terraform_data.old"},
    ], plan
    # The import's ID is not kept in the summary (only that the resource is imported).
    async with runtime.current().db.session() as session:
        row = await terraform_plans._plan_of(session, plan_id)
    assert "adopted-1" not in str(row.summary)

    r = await _apply(client, operator, plan_id)
    assert r.status_code == 202, r.text
    final, text = await _finished(client, operator, r.json()["id"])
    assert final["status"] == "success", text
    assert "Resources: 1 imported, 0 added, 0 changed, 0 destroyed." in text, text
    versions = f"/api/v1/scripts/{script_id}/terraform/states/default/versions"
    newest = (await client.get(versions, headers=operator.headers)).json()["versions"][0]
    r = await client.get(f"{versions}/{newest['number']}", headers=operator.headers)
    assert r.status_code == 200, r.text
    held = {(res["type"], res["name"]) for res in r.json()["resources"]}
    assert held == {("terraform_data", "adopted"), ("terraform_data", "renamed")}, r.json()


async def test_a_failing_plan_names_terraforms_error_and_keeps_no_plan(
    client: httpx.AsyncClient, operator: LoggedIn, served: None, terraform_on_path: None
) -> None:
    """A plan Terraform refuses ended with "the script exited with code 1" only: the message now
    names Terraform's error, and no plan is kept to apply."""
    validated = OUTPUT_TF.replace(
        '  default = "hello"\n',
        '  default = "hello"\n  validation {\n    condition     = length(var.greeting) > 10\n'
        '    error_message = "The greeting must be longer than 10 characters."\n  }\n',
    )
    script_id = await make_script(
        client, operator, validated, script_type="terraform", parameters={"greeting": "hello"}
    )
    started = await start(client, operator, script_id, "local", terraform_action="plan", parameters={})
    final, text = await _finished(client, operator, started["id"])
    assert final["status"] == "failed" and "must be longer than 10 characters" in text, text
    assert final["error_message"] == (
        "the script exited with code 1: Terraform's error: Invalid value for variable"
    ), text
    r = await client.get(f"/api/v1/executions/{started['id']}/terraform/plan", headers=operator.headers)
    assert r.status_code == 404, r.text


async def test_applying_a_plan_whose_runs_parameters_cannot_be_read_is_a_409_naming_them(
    client: httpx.AsyncClient, operator: LoggedIn, served: None, terraform_on_path: None
) -> None:
    """The plan run's parameters stored as a list read as `{}`: the apply recorded `{}` as its
    parameters, silently. It is a 409 whose `errors` name `parameters` (as a run again's), no
    run queued and the plan still unapplied."""
    script_id = await make_script(
        client, operator, MAIN_TF, script_type="terraform", parameters={"greeting": "hello"}
    )
    plan_id = await _plan(client, operator, script_id, greeting="hi")
    async with runtime.current().db.session() as session:
        await session.exec(text(f"UPDATE executions SET parameters = '[1]' WHERE id = {plan_id}"))  # type: ignore[call-overload]
        await session.commit()
    r = await _apply(client, operator, plan_id)
    assert r.status_code == 409, r.text
    said = "stored as a list ([1]), not an object"
    assert f"the stored parameters of plan run {plan_id} cannot be read: parameters: {said}" in r.text
    assert r.json()["errors"] == [{"field": "parameters", "message": said}], r.text
    assert (await _get_plan(client, operator, plan_id))["apply_execution_id"] is None
    listed = await client.get("/api/v1/executions", params={"script_id": script_id}, headers=operator.headers)
    assert [e["id"] for e in listed.json()["items"]] == [plan_id], listed.text


def test_a_stale_saved_plan_is_named_with_what_to_do(terraform_on_path: None, tmp_path: Path) -> None:
    """Terraform's own refusal of a stale saved plan (a change landed between the request and
    the run), read from real Terraform's stderr as the worker reads a run's. The plan is made
    against a state: Terraform 1.0 refuses no plan made with none."""
    (tmp_path / "main.tf").write_text(OUTPUT_TF)
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "CHECKPOINT_DISABLE": "1"}

    def terraform(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["terraform", *args], cwd=tmp_path, env=env, capture_output=True, text=True)

    assert terraform("init", "-input=false").returncode == 0
    assert terraform("apply", "-input=false", "-auto-approve").returncode == 0
    assert terraform("plan", "-input=false", "-out=saved.tfplan").returncode == 0
    assert terraform("apply", "-input=false", "-auto-approve", "-var=greeting=hi").returncode == 0
    stale = terraform("apply", "-input=false", "saved.tfplan")
    assert stale.returncode == 1 and "Saved plan is stale" in stale.stderr, stale.stderr
    assert terraform_errors.exit_message(1, stale.stderr) == (
        "the script exited with code 1: Terraform's error: Saved plan is stale; the state changed "
        "since the plan was made: plan again and apply the new plan"
    )
