"""File secrets in real runs: a tmpfs file of the run's user (0400), its path in the variable,
never in Docker's stored configuration, gone after the run, masked line by line."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from opscraft.execution.docker_runner import LABEL_EXECUTION, LABEL_WORKER
from tests.conftest import LoggedIn
from tests.executions.conftest import make_script, output, start, wait_for

KEY = (
    "-----BEGIN TEST KEY-----\n"
    "c2VjcmV0LWxpbmUtb25lLW9mLXRoZS1rZXk=\n"
    "bGluZS10d28tb2YtdGhlLXNlY3JldC1rZXk=\n"
    "-----END TEST KEY-----\n"
)
SCRIPT = """set -e
echo "path=$KUBECONFIG"
stat -c 'mode=%a owner=%u' "$KUBECONFIG"
[ "$(id -u)" = "$(stat -c %u "$KUBECONFIG")" ] && echo "owned by the run's user"
grep -q tmpfs /proc/mounts && df -P "$(dirname "$KUBECONFIG")" | tail -n 1 | awk '{print "fs=" $1}'
sha256sum < "$KUBECONFIG"
cat "$KUBECONFIG"
sleep "${PAUSE:-0}"
"""


@pytest.fixture
def backend() -> str:
    return "sqlite"


async def _script(client: httpx.AsyncClient, who: LoggedIn) -> int:
    r = await client.post(
        "/api/v1/secrets",
        json={"name": "KUBECONFIG", "value": KEY, "kind": "file"},
        headers=who.headers,
    )
    assert r.status_code == 201, r.text
    script_id = await make_script(client, who, SCRIPT, parameters={"PAUSE": "0"})
    r = await client.post(f"/api/v1/scripts/{script_id}/secrets/{r.json()['id']}", headers=who.headers)
    assert r.status_code == 201, r.text
    return script_id


@pytest.mark.parametrize("runner_name", ["docker", "local"], indirect=True)
async def test_file_secret_is_a_private_tmpfs_file_masked_line_by_line(
    client: httpx.AsyncClient, operator: LoggedIn, runner_name: str
) -> None:

    script_id = await _script(client, operator)
    started = await start(client, operator, script_id, runner_name, parameters={})
    final = await wait_for(client, operator, started["id"])
    text = await output(client, operator, started["id"])
    assert final["status"] == "success", text
    assert "mode=400" in text and "owned by the run's user" in text, text
    assert "fs=tmpfs" in text, text
    assert hashlib.sha256(KEY.encode()).hexdigest() in text  # the file holds exactly the value
    for line in KEY.splitlines():
        assert line not in text, text  # each line of the multi-line value is masked
    path = next(line for line in text.splitlines() if line.startswith("path=")).removeprefix("path=")
    assert path.endswith("/KUBECONFIG")
    if runner_name == "local":
        assert not Path(path).exists() and not Path(path).parent.exists()  # removed with the run


async def test_docker_keeps_the_file_secret_out_of_the_container_config(
    client: httpx.AsyncClient, operator: LoggedIn, docker_client: Any
) -> None:
    script_id = await _script(client, operator)
    started = await start(client, operator, script_id, "docker", parameters={"PAUSE": "30"})
    running = await wait_for(client, operator, started["id"], {"running"})
    # Other test sessions on this Docker host have an execution of this id too: name the worker.
    labels = [f"{LABEL_WORKER}={running['worker_id']}", f"{LABEL_EXECUTION}={started['id']}"]
    found: list[Any] = []
    for _ in range(200):
        found = docker_client.containers.list(filters={"label": labels})
        if found:
            break
        await asyncio.sleep(0.05)
    assert found
    stored = json.dumps(found[0].attrs)
    assert all(line not in stored for line in KEY.splitlines())
    assert "KUBECONFIG=/run/opscraft/secrets/KUBECONFIG" in found[0].attrs["Config"]["Env"]
    assert "KUBECONFIG" not in " ".join(found[0].attrs["Config"].get("Cmd") or [])
    r = await client.post(f"/api/v1/executions/{started['id']}/cancel", headers=operator.headers)
    assert r.status_code in (200, 202), r.text
    await wait_for(client, operator, started["id"])


async def test_kind_is_checked_and_shown(client: httpx.AsyncClient, operator: LoggedIn) -> None:
    r = await client.post(
        "/api/v1/secrets", json={"name": "X_KEY", "value": "abc", "kind": "disk"}, headers=operator.headers
    )
    assert r.status_code == 422 and "kind" in r.text
    r = await client.post(
        "/api/v1/secrets", json={"name": "ENV_ONE", "value": "abcd"}, headers=operator.headers
    )
    assert r.status_code == 201 and r.json()["kind"] == "env"
