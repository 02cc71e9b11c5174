"""Engine behaviour around the runs: secrets in and masked out, missing images, idle wake-up,
leftover containers removed at start."""

from __future__ import annotations

import asyncio
import base64
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from opscraft import lifecycle
from opscraft.execution import queue
from opscraft.execution.docker_runner import LABEL_EXECUTION, LABEL_MANAGED, LABEL_WORKER
from opscraft.execution.worker import worker_identity
from tests.conftest import LoggedIn, make_settings
from tests.executions.conftest import BUSYBOX_IMAGE, make_script, output, run, start, wait_for


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.mark.parametrize("runner_name", ["docker", "local"], indirect=True)
async def test_secrets_are_injected_and_masked(
    client: httpx.AsyncClient, operator: LoggedIn, runner_name: str
) -> None:
    value = "hunter2-s3cr3t-value"
    r = await client.post(
        "/api/v1/secrets", json={"name": "DB_PASSWORD", "value": value}, headers=operator.headers
    )
    assert r.status_code == 201, r.text
    secret_id = r.json()["id"]
    script = (
        'printf "%s\\n" "$DB_PASSWORD"\n'
        'printf "%s" "$DB_PASSWORD" | base64\n'
        'printf "half %s" "${DB_PASSWORD:0:8}"; sleep 0.2; printf "%s end\\n" "${DB_PASSWORD:8}"\n'
        '[ "$DB_PASSWORD" = "' + value + '" ] && echo "value arrived"\n'
    )
    script_id = await make_script(client, operator, script)
    r = await client.post(f"/api/v1/scripts/{script_id}/secrets/{secret_id}", headers=operator.headers)
    assert r.status_code in (200, 201, 204), r.text
    started = await start(client, operator, script_id, runner_name)
    final = await wait_for(client, operator, started["id"])
    text = await output(client, operator, started["id"])
    assert final["status"] == "success", text
    assert "value arrived" in text and "half *** end" in text
    assert value not in text and base64.b64encode(value.encode()).decode() not in text
    assert text.startswith("***\n***")


@pytest.mark.docker
@pytest.mark.parametrize("engine_settings", [{"OPSCRAFT_IMAGE_BASH": "opscraft-test/absent:1"}])
async def test_missing_image_is_an_error_that_says_what_to_do_and_why(
    client: httpx.AsyncClient, admin: LoggedIn, docker_client: Any
) -> None:
    final, _ = await run(client, admin, "echo hi\n", "docker")
    assert final["status"] == "error" and final["image"] == "opscraft-test/absent:1"
    # It said "pull it or configure another": not which setting, nor why the pull failed (a new
    # team without registry access, or a misspelt name, could not tell).
    said = final["error_message"]
    assert said.startswith(
        "image opscraft-test/absent:1 is not available: pull it on the Docker engine, or set "
        "OPSCRAFT_IMAGE_BASH to an image it has (the pull failed: "
    ), said
    reason = said.split("the pull failed: ", 1)[1]  # the engine's answer: no registry, no such image
    assert reason.endswith(")") and len(reason.strip(") ")) > 10, said


@pytest.mark.parametrize("runner_name", ["docker", "local"], indirect=True)
async def test_an_idle_engine_starts_a_job_at_once(
    client: httpx.AsyncClient, admin: LoggedIn, runner_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An idle worker polls the queue only every `IDLE_POLL_SECONDS`; the wake-up on enqueue
    starts a job at once. The poll is stretched to a minute so that only the wake-up can explain
    a pickup within seconds, however busy the machine (no bound on how fast "at once" is here:
    bench/ measures that)."""
    monkeypatch.setattr(queue, "IDLE_POLL_SECONDS", 60.0)
    script_id = await make_script(client, admin, "echo hi\n")
    await asyncio.sleep(3)  # every idle worker's current wait is now a minute-long one
    started = await start(client, admin, script_id, runner_name)
    final = await wait_for(client, admin, started["id"], timeout=30)
    assert final["status"] == "success"
    picked_up = datetime.fromisoformat(final["started_at"]) - datetime.fromisoformat(final["queued_at"])
    assert picked_up.total_seconds() < 20


async def test_leftover_containers_are_removed_at_start(tmp_path: Path, docker_client: Any) -> None:
    settings = make_settings(tmp_path / "other", OPSCRAFT_IMAGE_BASH=BUSYBOX_IMAGE)
    labels = {LABEL_MANAGED: "true", LABEL_WORKER: worker_identity(settings), LABEL_EXECUTION: "1"}
    leftover = docker_client.containers.create(BUSYBOX_IMAGE, ["sleep", "600"], labels=labels)
    leftover.start()
    try:
        await lifecycle.start(settings)
        await lifecycle.stop()
        assert not docker_client.api.containers(all=True, filters={"id": leftover.id})
    finally:
        if docker_client.api.containers(all=True, filters={"id": leftover.id}):
            leftover.remove(force=True)


async def test_final_state_survives_a_briefly_locked_database(
    client: httpx.AsyncClient, admin: LoggedIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import OperationalError

    from opscraft.execution import store

    real_finish, failures = store.finish, []

    def flaky_finish(*args: Any) -> Any:  # the finisher's transaction of ends (finisher.py)
        if not failures:
            failures.append(1)
            raise OperationalError("UPDATE executions", {}, Exception("database is locked"))
        return real_finish(*args)

    monkeypatch.setattr(store, "finish", flaky_finish)
    final, text = await run(client, admin, "echo done\n", "local")
    assert failures and final["status"] == "success" and text == "done\n"


def test_a_missing_image_names_its_types_variable_and_hides_credentials() -> None:
    """The pull's answer is quoted in the run's error: a proxy's password in a URL it quotes is
    not (`ImageMissing.said`, nor the exception's message), and a long answer is cut."""
    from opscraft.execution.docker_runner import ImageMissing

    missing = ImageMissing("py:1", "proxyconnect tcp: http://bob:s3cret@proxy:3128: refused")
    said = missing.said("python")
    assert "OPSCRAFT_IMAGE_PYTHON" in said and "s3cret" not in said and "http://***@proxy:3128" in said
    assert "s3cret" not in str(missing)  # nor in the exception's own message, which a log may print
    assert len(ImageMissing("py:1", "x" * 5000).said("python")) < 500
