"""Runs asking for the state lock at the same moment: exactly one gets it, on SQLite and
PostgreSQL. Before, on SQLite (where `FOR UPDATE` is ignored) each LOCK read the state unlocked
and then wrote its own lock, so several concurrent runs (a schedule and a chain starting the same
script, retries of `-lock-timeout` coinciding) were all told 200 and applied at once. Runs are rows
written straight to the database; the server, its database and the protocol are real."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from opscraft import runtime
from opscraft.db.models.executions import ExecutionStatus
from opscraft.execution import terraform_plan
from opscraft.services import keyring
from opscraft.services.terraform_plans import VaultPlanStore
from tests.conftest import LoggedIn
from tests.executions.conftest import make_script, terraform_run_row
from tests.rbac_cases.terraform import plan_file

TF = 'output "x" {\n  value = 1\n}\n'
RUNS = 6


@pytest.mark.parametrize("existing", [False, True], ids=["new state", "existing state"])
async def test_concurrent_locks_give_the_lock_to_exactly_one_run(
    client: httpx.AsyncClient, operator: LoggedIn, existing: bool
) -> None:
    script_id = await make_script(client, operator, TF, script_type="terraform")
    url = f"/api/v1/terraform/state/{script_id}/default/lock"
    if existing:  # the state's row exists: the race is on its lock columns, not on creating it
        _, first = await terraform_run_row(script_id)
        lock = {"ID": "first"}
        assert (await client.request("LOCK", url, json=lock, auth=first)).status_code == 200
        assert (await client.request("UNLOCK", url, json=lock, auth=first)).status_code == 200
    runs = [await terraform_run_row(script_id) for _ in range(RUNS)]
    answers = await asyncio.gather(
        *(client.request("LOCK", url, json={"ID": f"lock-{i}"}, auth=a) for i, (_, a) in enumerate(runs))
    )
    codes = sorted(r.status_code for r in answers)
    assert codes == [200] + [423] * (RUNS - 1), [r.text for r in answers]
    winner = next(i for i, r in enumerate(answers) if r.status_code == 200)
    # Every refusal names the one holder, which is the one the operators see.
    assert {r.json()["ID"] for r in answers} == {f"lock-{winner}"}, [r.text for r in answers]
    states = await client.get(f"/api/v1/scripts/{script_id}/terraform/states", headers=operator.headers)
    assert states.status_code == 200, states.text
    assert states.json()["items"][0]["locked_by_execution"] == runs[winner][0], states.text


async def test_concurrent_applies_of_one_plan_start_one_run(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    """A plan is applied once: of "Apply this plan" requests arriving together (a double click
    through the API, two operators), one starts a run and the others are 409. Each used to read
    the plan unapplied (SQLite ignores FOR UPDATE; PostgreSQL waited, then took the plan from the
    session as read before) and start a run: 5 or 6 runs, all but one without their plan."""
    script_id = await make_script(client, operator, TF, script_type="terraform")
    plan_run, _ = await terraform_run_row(script_id, status=ExecutionStatus.success, terraform_action="plan")
    files = {terraform_plan.PLAN_FILE: plan_file(), terraform_plan.PLAN_JSON_FILE: b"{}"}
    await VaultPlanStore(keyring.current_vault()).keep(runtime.current().db, plan_run, files)
    url = f"/api/v1/executions/{plan_run}/terraform/plan/apply"
    answers = await asyncio.gather(
        *(client.post(url, json={"runner": "local"}, headers=operator.headers) for _ in range(RUNS))
    )
    assert sorted(r.status_code for r in answers) == [202] + [409] * (RUNS - 1), [r.text for r in answers]
    started = next(r.json()["id"] for r in answers if r.status_code == 202)
    assert all("already applied by execution" in r.json()["detail"] for r in answers if r.status_code == 409)
    runs = await client.get("/api/v1/executions", params={"script_id": script_id}, headers=operator.headers)
    assert sorted(e["id"] for e in runs.json()["items"]) == [plan_run, started], runs.text
