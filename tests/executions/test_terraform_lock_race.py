"""Runs asking for the state lock at the same moment: exactly one gets it, on SQLite and
PostgreSQL. Before, on SQLite (where `FOR UPDATE` is ignored) each LOCK read the state unlocked
and then wrote its own lock, so several concurrent runs (a schedule and a chain starting the same
script, retries of `-lock-timeout` coinciding) were all told 200 and applied at once. Runs are rows
written straight to the database; the server, its database and the protocol are real."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.conftest import LoggedIn
from tests.executions.conftest import make_script, terraform_run_row

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
    assert states.json()[0]["locked_by_execution"] == runs[winner][0], states.text
