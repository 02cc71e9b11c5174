"""The 202 of a run claimed in its submission (`Executor.take`: SQLite, a free consumer thread)
says `running` with what the claim wrote; a later GET of the same run agrees on every field the
run's end does not change (worker, start, image, a shared inventory's id and SHA-256)."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import pytest

from tests.conftest import LoggedIn
from tests.executions.conftest import make_script, start, wait_for
from tests.executions.test_shared_inventory_runs import _inventory, shared_inventory_script

ENDED = {"status", "exit_code", "error_message", "finished_at", "output_bytes", "output_truncated"}
ENDED |= {"output_stored_bytes", "duration_seconds", "updated_at"}


@pytest.fixture
def backend() -> str:
    """Runs are claimed in their submission on SQLite only."""
    return "sqlite"


def _unchanged_by_the_end(started: dict[str, Any], final: dict[str, Any]) -> dict[str, Any]:
    """The fields of the 202 that the later GET shows otherwise, apart from those of the end."""
    return {k: (v, final.get(k)) for k, v in started.items() if k not in ENDED and final.get(k) != v}


@pytest.mark.parametrize("runner_name", ["local"], indirect=True)
async def test_a_shared_inventory_runs_answer_agrees_with_its_later_read(
    client: httpx.AsyncClient, operator: LoggedIn, runner_name: str
) -> None:
    content = _inventory("blue")
    inventory, script_id = await shared_inventory_script(client, operator, content)
    started = await start(client, operator, script_id, runner_name, parameters={})
    final = await wait_for(client, operator, started["id"], timeout=180)
    assert final["status"] == "success", final
    assert started["status"] == "running" and started["worker_id"] is not None
    assert started["inventory_id"] == inventory["id"]
    assert started["inventory_sha256"] == hashlib.sha256(content.encode()).hexdigest()
    assert _unchanged_by_the_end(started, final) == {}


@pytest.mark.parametrize("runner_name", ["docker"], indirect=True)
async def test_a_docker_runs_answer_names_its_image_as_its_later_read(
    client: httpx.AsyncClient, operator: LoggedIn, runner_name: str
) -> None:
    script_id = await make_script(client, operator, "echo in a container\n")
    started = await start(client, operator, script_id, runner_name)
    final = await wait_for(client, operator, started["id"], timeout=180)
    assert final["status"] == "success", final
    assert started["status"] == "running" and started["image"] and started["image"] == final["image"]
    assert _unchanged_by_the_end(started, final) == {}
