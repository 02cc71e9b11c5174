"""Secrets in real runs: injected as environment variables, masked in stored, streamed and API output."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import websockets
from sqlmodel import col, update

from opscraft import runtime
from opscraft.db.models import Secret
from opscraft.execution.commands import build
from opscraft.execution.spec import RunSpec
from tests.conftest import LoggedIn
from tests.executions.conftest import (
    container_of,
    make_script,
    output,
    start,
    start_checked,
    wait_for,
    wait_output,
)

RUNNERS = pytest.mark.parametrize("runner_name", ["docker", "local"], indirect=True)
VALUE = "Hunter2/correct+horse Zx9!"
FORMS = (VALUE, base64.b64encode(VALUE.encode()).decode(), quote(VALUE, safe=""))
# Prints the value, its base64 and URL forms, and the value split across two output chunks.
SCRIPT = """sleep 1
echo "plain: $DB_PASSWORD"
printf '%s' "$DB_PASSWORD" | base64
python3 -c 'import os, urllib.parse; print("url:", urllib.parse.quote(os.environ["DB_PASSWORD"], safe=""))'
printf 'split: %s' "${DB_PASSWORD:0:9}"; sleep 0.5; printf '%s\\n' "${DB_PASSWORD:9}"
echo done
"""


@pytest.fixture
def backend() -> str:
    """Injection does not depend on the database: SQLite (the secrets API tests cover PostgreSQL)."""
    return "sqlite"


async def secret_with_script(client: httpx.AsyncClient, operator: LoggedIn, content: str) -> tuple[int, int]:
    r = await client.post(
        "/api/v1/secrets", json={"name": "DB_PASSWORD", "value": VALUE}, headers=operator.headers
    )
    assert r.status_code == 201, r.text
    secret_id = int(r.json()["id"])
    script_id = await make_script(client, operator, content)
    r = await client.post(f"/api/v1/scripts/{script_id}/secrets/{secret_id}", headers=operator.headers)
    assert r.status_code == 201, r.text
    return secret_id, script_id


async def stream(live_api: str, who: LoggedIn, execution_id: int) -> list[dict[str, Any]]:
    token = who.headers["Authorization"].removeprefix("Bearer ")
    messages = []
    async with websockets.connect(f"ws://{live_api}/ws/executions/{execution_id}?token={token}") as ws:
        async for raw in ws:
            messages.append(json.loads(raw))
            if messages[-1]["type"] == "end":
                break
    return messages


def assert_no_value(text: str) -> None:
    for form in FORMS:
        assert form not in text


@RUNNERS
async def test_secret_is_injected_and_masked_everywhere(
    client: httpx.AsyncClient,
    operator: LoggedIn,
    viewer: LoggedIn,
    live_api: str,
    runner_name: str,
) -> None:
    secret_id, script_id = await secret_with_script(client, operator, SCRIPT)
    # A viewer may run a script that uses secrets without being able to read them.
    execution = await start(client, viewer, script_id, runner_name)
    live = await stream(live_api, viewer, execution["id"])
    final = await wait_for(client, viewer, execution["id"])
    assert final["status"] == "success", final
    stored = await output(client, viewer, execution["id"])
    streamed = "".join(m["content"] for m in live if m["type"] == "log")
    assert stored == streamed
    assert "plain: ***\n" in stored and "url: ***\n" in stored and "split: ***\n" in stored
    assert "***\n" in stored.split("plain: ***\n", 1)[1]  # the base64 line
    assert "done\n" in stored
    for text in (stored, json.dumps(live), json.dumps(final)):
        assert_no_value(text)
    r = await client.get(f"/api/v1/executions/{execution['id']}/logs", headers=viewer.headers)
    assert_no_value(r.text)

    events = (await client.get(f"/api/v1/secrets/{secret_id}/audit-logs", headers=operator.headers)).json()
    inject = [e for e in events["items"] if e["action"] == "secret.inject"]
    assert len(inject) == 1 and inject[0]["execution_id"] == execution["id"]
    assert inject[0]["actor_name"] == "viewer"
    used = (await client.get(f"/api/v1/secrets/{secret_id}", headers=operator.headers)).json()
    assert used["last_used_at"] is not None


@RUNNERS
async def test_tampered_secret_ends_the_run_in_error_before_it_starts(
    client: httpx.AsyncClient, operator: LoggedIn, runner_name: str
) -> None:
    secret_id, script_id = await secret_with_script(client, operator, "echo started\n")
    async with runtime.current().db.session() as session:
        row = await session.get(Secret, secret_id)
        assert row is not None
        flipped = bytes([row.ciphertext[0] ^ 1]) + row.ciphertext[1:]
        await session.exec(update(Secret).where(col(Secret.id) == secret_id).values(ciphertext=flipped))
        await session.commit()
    execution = await start(client, operator, script_id, runner_name)
    final = await wait_for(client, operator, execution["id"])
    assert final["status"] == "error"
    assert "secret DB_PASSWORD could not be decrypted" in final["error_message"]
    assert await output(client, operator, execution["id"]) == ""
    events = (await client.get(f"/api/v1/secrets/{secret_id}/audit-logs", headers=operator.headers)).json()
    failed = [e for e in events["items"] if e["action"] == "secret.inject_failed"]
    assert [e["execution_id"] for e in failed] == [execution["id"]]


async def test_parameter_shadowing_an_attached_secret_is_rejected(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    """Editing (or rolling back to) parameters that clash with an attached secret is refused."""
    _, script_id = await secret_with_script(client, operator, "echo $DB_PASSWORD\n")
    r = await client.put(
        f"/api/v1/scripts/{script_id}", json={"parameters": {"DB_PASSWORD": "x"}}, headers=operator.headers
    )
    assert r.status_code == 422
    assert "parameter DB_PASSWORD would shadow the attached secret" in r.json()["detail"]
    script = (await client.get(f"/api/v1/scripts/{script_id}", headers=operator.headers)).json()
    assert "DB_PASSWORD" not in script["parameters"]
    r = await client.post(
        "/api/v1/executions",
        json={"script_id": script_id, "parameters": {"DB_PASSWORD": "x"}, "runner": "local"},
        headers=operator.headers,
    )
    assert r.status_code == 422


def test_run_spec_and_command_do_not_show_values_in_repr() -> None:
    spec = RunSpec(
        execution_id=1,
        script_type="bash",
        content="echo",
        parameters={},
        env={"DB_PASSWORD": VALUE},
        timeout_seconds=5,
        memory_mb=64,
        cpus=0.5,
        network_enabled=False,
        secret_values=[VALUE],
    )
    assert VALUE not in repr(spec) and VALUE not in repr(build(spec, "/run/s"))


@pytest.mark.parametrize(
    "engine_settings", [{"OPSCRAFT_WARM_POOL_SIZE": 0}, {"OPSCRAFT_WARM_POOL_SIZE": 1}], ids=["cold", "warm"]
)
async def test_docker_gets_secrets_on_stdin_not_in_its_stored_config(
    client: httpx.AsyncClient, operator: LoggedIn, docker_client: Any
) -> None:
    """Docker keeps a container's environment on disk: the values must not be in it (a warm
    container as well as a cold one)."""
    value = "line one\nline 'two' $(id) \"3\"\n"
    r = await client.post("/api/v1/secrets", json={"name": "MULTI", "value": value}, headers=operator.headers)
    assert r.status_code == 201, r.text
    script = 'printf %s "$MULTI" | sha256sum\necho ready\nsleep 30\n'
    script_id = await make_script(client, operator, script)
    r = await client.post(f"/api/v1/scripts/{script_id}/secrets/{r.json()['id']}", headers=operator.headers)
    assert r.status_code == 201, r.text
    execution = await start_checked(client, operator, script_id, "docker", parameters={})
    container = container_of(execution["id"])
    assert container is not None
    await wait_output(client, operator, execution["id"], "ready", 60)
    config = docker_client.api.inspect_container(container)
    assert "MULTI=" not in json.dumps(config["Config"]["Env"])
    assert "line one" not in json.dumps(config)
    r = await client.post(f"/api/v1/executions/{execution['id']}/cancel", headers=operator.headers)
    assert r.status_code in (200, 202), r.text
    await wait_for(client, operator, execution["id"])
    stored = await output(client, operator, execution["id"])
    assert hashlib.sha256(value.encode()).hexdigest() in stored, stored
