"""Real Terraform in the Docker runner (opscraft-test/terraform:1, tests/images/build-terraform.sh)
with OpsCraft's state backend.

The container reaches the server the way the docs describe: the script has network enabled and
OPSCRAFT_STATE_BACKEND_URL is the Docker bridge's gateway address, where the API is served for
this test. The bridge is local to the machine: no traffic leaves it.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from tests.conftest import LoggedIn, free_port
from tests.executions.conftest import make_script, output, require_docker, start, wait_for
from tests.executions.test_terraform_errored_state import LIMIT, MANY_TF
from tests.executions.test_terraform_state import (
    EMPTY_STATE,
    HELD_HTTP_TF,
    MAIN_TF,
    SLOW_TF,
    Slow,
    cancel_midway_and_check_the_graceful_stop,
    terraform_version,
)

GATEWAY = "172.17.0.1"
# Writes 400 MiB into the work directory (flushed to its backing store as it goes), after naming
# the filesystem type of that directory; says `wrote-400MiB` (not in its own command line) after.
FILLING_TF = """resource "terraform_data" "fill" {
  provisioner "local-exec" {
    command = <<-EOT
      stat -f -c workdir-fs=%T . && dd if=/dev/zero of=fill bs=1M count=400 conv=fsync &&
      echo wrote-$((400))MiB
    EOT
  }
}
"""
IMAGE = "opscraft-test/terraform:1"
PORT = free_port()


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture
def engine_settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    """A test's indirect parameter adds settings."""
    return {
        "OPSCRAFT_STATE_BACKEND_URL": f"http://{GATEWAY}:{PORT}",
        "OPSCRAFT_IMAGE_TERRAFORM": IMAGE,
        **getattr(request, "param", {}),
    }


@pytest.fixture
async def served(api_app: FastAPI, docker_client: Any) -> AsyncIterator[None]:
    require_docker()
    try:
        docker_client.images.get(IMAGE)
    except Exception:
        pytest.fail(f"{IMAGE} is missing: run tests/images/build-terraform.sh")
    with socket.socket() as probe:
        probe.bind((GATEWAY, 0))  # fails clearly when the bridge has another address
    server = uvicorn.Server(
        uvicorn.Config(api_app, host=GATEWAY, port=PORT, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        await task


async def test_docker_run_keeps_its_state_in_opscraft(
    client: httpx.AsyncClient, operator: LoggedIn, served: None
) -> None:
    script_id = await make_script(client, operator, MAIN_TF, script_type="terraform", network_enabled=True)
    started = await start(client, operator, script_id, "docker", terraform_action="apply", parameters={})
    final = await wait_for(client, operator, started["id"], timeout=180)
    text = await output(client, operator, started["id"])
    assert final["status"] == "success", text
    assert 'message = "hello from opscraft"' in text
    started = await start(client, operator, script_id, "docker", terraform_action="plan", parameters={})
    final = await wait_for(client, operator, started["id"], timeout=180)
    text = await output(client, operator, started["id"])
    assert final["status"] == "success" and "No changes" in text, text
    r = await client.get(
        f"/api/v1/scripts/{script_id}/terraform/states/default/versions", headers=operator.headers
    )
    assert [v["number"] for v in r.json()["versions"]] == [1], r.text


async def test_docker_plan_is_saved_and_applied_exactly(
    client: httpx.AsyncClient, operator: LoggedIn, served: None
) -> None:
    script_id = await make_script(
        client,
        operator,
        MAIN_TF,
        script_type="terraform",
        network_enabled=True,
        parameters={"greeting": "hello"},
    )
    started = await start(
        client, operator, script_id, "docker", terraform_action="plan", parameters={"greeting": "ahoy"}
    )
    final = await wait_for(client, operator, started["id"], timeout=180)
    assert final["status"] == "success", await output(client, operator, started["id"])
    # The plan file and its JSON came back out of the container.
    r = await client.get(f"/api/v1/executions/{started['id']}/terraform/plan", headers=operator.headers)
    assert r.status_code == 200, r.text
    assert r.json()["outputs"] == [{"name": "message", "actions": ["create"]}] and not r.json()["stale"]
    r = await client.post(
        f"/api/v1/executions/{started['id']}/terraform/plan/apply", headers=operator.headers
    )
    assert r.status_code == 202 and r.json()["runner"] == "docker", r.text
    final = await wait_for(client, operator, r.json()["id"], timeout=180)
    text = await output(client, operator, r.json()["id"])
    assert final["status"] == "success" and 'message = "ahoy from opscraft"' in text, text


@pytest.fixture
def held_over_http() -> Iterator[Slow]:
    """`SLOW_TF`, or before Terraform 1.4 (the image's, which the runs use) `HELD_HTTP_TF`
    reading a state from a server on the bridge's gateway that answers `/held` only once
    released (`/quick` at once)."""
    if terraform_version("docker", "run", "--rm", "--entrypoint", "terraform", IMAGE) >= (1, 4):
        yield Slow(SLOW_TF, {"pause": 0}, {"pause": 300}, None)
        return
    released = threading.Event()

    class States(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/held":
                released.wait(240)
            body = EMPTY_STATE.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((GATEWAY, 0), States)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://{GATEWAY}:{server.server_address[1]}"
    try:
        yield Slow(
            HELD_HTTP_TF, {"source_state": f"{url}/quick"}, {"source_state": f"{url}/held"}, released.set
        )
    finally:
        released.set()
        server.shutdown()
        server.server_close()


async def test_a_cancelled_docker_run_stops_terraform_gracefully(
    client: httpx.AsyncClient, operator: LoggedIn, admin: LoggedIn, served: None, held_over_http: Slow
) -> None:
    """In the container the SIGINT reaches Terraform through `kill -INT -1` run as the run's user
    (the loader, PID 1, waits on and writes the end record)."""
    held = held_over_http
    script_id = await make_script(
        client, operator, held.content, script_type="terraform", parameters=held.quick, network_enabled=True
    )
    await cancel_midway_and_check_the_graceful_stop(client, operator, admin, script_id, "docker", held)


async def test_a_docker_run_that_could_not_reach_the_state_is_refused_before_it_starts(
    client: httpx.AsyncClient, operator: LoggedIn, served: None
) -> None:
    """With the script's network off the container cannot reach the state backend: such a run
    used to be queued, started, and fail at `terraform init` ("dial tcp 172.17.0.1:...: connect:
    network is unreachable", after Terraform's retries). It is refused at once, saying what to
    change; nothing is queued. Turning the network on (a new script version) lets it run."""
    script_id = await make_script(client, operator, MAIN_TF, script_type="terraform")
    body = {"script_id": script_id, "runner": "docker", "terraform_action": "plan", "parameters": {}}
    r = await client.post("/api/v1/executions", json=body, headers=operator.headers)
    assert r.status_code == 409, r.text
    assert [e["field"] for e in r.json()["errors"]] == ["runner"], r.text
    assert "enable Network in the script's run settings, or choose the local runner" in r.json()["detail"]
    runs = await client.get("/api/v1/executions", params={"script_id": script_id}, headers=operator.headers)
    assert runs.status_code == 200 and runs.json()["items"] == [], runs.text
    r = await client.put(
        f"/api/v1/scripts/{script_id}", json={"network_enabled": True}, headers=operator.headers
    )
    assert r.status_code == 200, r.text
    started = await start(client, operator, script_id, "docker", terraform_action="plan", parameters={})
    final = await wait_for(client, operator, started["id"], timeout=180)
    assert final["status"] == "success", await output(client, operator, started["id"])


@pytest.mark.parametrize("engine_settings", [{"OPSCRAFT_MAX_STATE_BYTES": LIMIT}], indirect=True)
async def test_a_docker_runs_errored_state_is_read_from_its_container_and_kept(
    client: httpx.AsyncClient, operator: LoggedIn, served: None
) -> None:
    """The `errored.tfstate` of a state the server refused (over the limit) is read back from
    the ended container's work directory (tests/executions/test_terraform_errored_state.py for
    the local runner and the rules)."""
    script_id = await make_script(
        client, operator, MANY_TF, script_type="terraform", network_enabled=True, parameters={"n": 1}
    )
    started = await start(
        client, operator, script_id, "docker", terraform_action="apply", parameters={"n": 400}
    )
    final = await wait_for(client, operator, started["id"], timeout=180)
    text = await output(client, operator, started["id"])
    assert final["status"] == "failed" and "errored.tfstate" in text, text
    assert (
        "kept the state it wrote to errored.tfstate as version 1, now the current state"
        in final["error_message"]
    )
    r = await client.get(
        f"/api/v1/scripts/{script_id}/terraform/states/default/versions/1", headers=operator.headers
    )
    assert len(r.json()["outputs"]["values"]["value"]) == 400, r.text


async def test_a_docker_run_that_leaves_files_has_its_work_directory_in_its_memory_limit(
    client: httpx.AsyncClient, operator: LoggedIn, served: None
) -> None:
    """A run whose files are read back afterwards (here an apply whose state OpsCraft keeps:
    its `errored.tfstate`) keeps its work directory on a tmpfs charged to its memory limit, as
    every other run. It had it on a volume on the engine's disk, with no bound: a local-exec
    provisioner (or a plan's data source) could fill the host's disk."""
    script_id = await make_script(
        client, operator, FILLING_TF, script_type="terraform", network_enabled=True, memory_mb=256
    )
    started = await start(client, operator, script_id, "docker", terraform_action="apply", parameters={})
    final = await wait_for(client, operator, started["id"], timeout=180)
    text = await output(client, operator, started["id"])
    assert "workdir-fs=tmpfs" in text, text
    assert "wrote-400MiB" not in text and final["status"] == "failed" and final["exit_code"] == 137, text
