"""OPSCRAFT_DOCKER_RUNTIME: every run container, warm or cold, runs under the OCI runtime it
names, and a worker whose engine has not registered that runtime does not start.

The runtime used is one the test engine registered besides its default (`crun` when it has it,
as tests/run's engine would with `--add-runtime crun=/usr/bin/crun`; else another name it lists,
such as `io.containerd.runc.v2`), so the container's runtime differs from the one it would get
without the setting. The isolation tests (test_isolation.py and the others) run unchanged with
OPSCRAFT_DOCKER_RUNTIME=crun in the environment (docs/benchmarks.md, "Session 41").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from opscraft import lifecycle
from opscraft.execution.docker_runner import LABEL_WORKER, DockerRunner, UnknownRuntime
from opscraft.execution.worker import worker_identity
from tests.conftest import LoggedIn, make_settings
from tests.executions import conftest as engine
from tests.executions.conftest import IMAGES, container_of, make_script, wait_for

pytestmark = pytest.mark.docker


def other_runtime(docker_client: Any) -> str:
    """A runtime the engine registered that is not its default (`crun` first)."""
    info = docker_client.info()
    others = sorted(set(info.get("Runtimes") or {}) - {info.get("DefaultRuntime")})
    assert others, f"the test engine registers no runtime besides its default: {info.get('Runtimes')}"
    return "crun" if "crun" in others else others[0]


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture(params=["cold", "warm"])
def container_start(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def engine_settings(container_start: str, docker_client: Any) -> dict[str, Any]:
    return {
        "OPSCRAFT_WARM_POOL_SIZE": 1 if container_start == "warm" else 0,
        "OPSCRAFT_DOCKER_RUNTIME": other_runtime(docker_client),
    }


async def test_run_containers_use_the_runtime_set(
    client: httpx.AsyncClient, admin: LoggedIn, docker_client: Any, engine_settings: dict[str, Any]
) -> None:
    wanted = engine_settings["OPSCRAFT_DOCKER_RUNTIME"]
    script_id = await make_script(client, admin, "echo started\nsleep 30\n", timeout_seconds=60)
    started = await engine.start_checked(client, admin, script_id, "docker")  # warm or cold, as set
    container = container_of(started["id"])
    assert container, "the run's container should be running"
    inspected = docker_client.api.inspect_container(container)
    assert inspected["HostConfig"]["Runtime"] == wanted, inspected["HostConfig"]
    assert inspected["State"]["Running"]
    cancelled = await client.post(f"/api/v1/executions/{started['id']}/cancel", headers=admin.headers)
    assert cancelled.status_code == 200, cancelled.text
    final = await wait_for(client, admin, started["id"])
    assert final["status"] == "cancelled", final


async def test_an_engine_without_the_runtime_refuses_the_start(tmp_path: Path, docker_client: Any) -> None:
    settings = make_settings(tmp_path, OPSCRAFT_DOCKER_RUNTIME="no-such-runtime", **IMAGES)
    with pytest.raises(UnknownRuntime) as refused:
        await lifecycle.start(settings)
    message = str(refused.value)
    assert "no runtime 'no-such-runtime' (OPSCRAFT_DOCKER_RUNTIME)" in message, message
    assert "--add-runtime no-such-runtime=" in message, message
    mine = f"{LABEL_WORKER}={worker_identity(settings)}"
    assert not docker_client.api.containers(all=True, filters={"label": mine})


def test_an_engine_that_lost_the_runtime_is_not_offered(docker_client: Any) -> None:
    runner = DockerRunner("runtime-check", runtime="no-such-runtime")
    assert not runner.available()
    assert runner.engine_error is not None
    assert "no runtime 'no-such-runtime'" in runner.engine_error
    assert DockerRunner("runtime-check", runtime=other_runtime(docker_client)).available()
    assert DockerRunner("runtime-check").available()  # no runtime set: the engine's default
