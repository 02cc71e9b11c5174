"""The container limits hold, in real Docker containers: memory, processes, network, filesystem,
user and capabilities, deadline. No test sends traffic anywhere: "network" is judged by the
container's interfaces and routes only.

Every test runs twice: with cold starts only (the warm pool disabled), and on warm containers
(each run's profile is warmed first, and the test checks the run took a warm container).
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from typing import Any

import httpx
import pytest

from opscraft import runtime
from opscraft.execution.worker import worker_identity
from tests.conftest import LoggedIn
from tests.executions import conftest as engine
from tests.executions.conftest import container_of, make_script, pooled, removed, wait_for

pytestmark = pytest.mark.docker

NETWORK_PROBE = "cat /proc/net/dev\necho ROUTES\ncat /proc/net/route\n"


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture(autouse=True)
def _docker(docker_client: Any) -> None:
    """Every test here needs Docker."""


@pytest.fixture(params=["cold", "warm"])
def container_start(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def engine_settings(container_start: str) -> dict[str, Any]:
    return {"OPSCRAFT_WARM_POOL_SIZE": 1 if container_start == "warm" else 0}


async def start(
    client: httpx.AsyncClient, who: LoggedIn, script_id: int, runner: str, **fields: Any
) -> dict[str, Any]:
    """`engine.start_checked`: warm when the pool is on (`fields`: the script's limits)."""
    return await engine.start_checked(client, who, script_id, runner, fields)


async def run(
    client: httpx.AsyncClient, who: LoggedIn, content: str, runner: str, **fields: Any
) -> tuple[dict[str, Any], str]:
    """`engine.run` through `start` above: (final execution, stored output)."""
    script_id = await make_script(client, who, content, **fields)
    started = await start(client, who, script_id, runner, **fields)
    final = await wait_for(client, who, started["id"])
    return final, await engine.output(client, who, started["id"])


def interfaces(text: str) -> set[str]:
    devices = text.split("ROUTES")[0]
    return {line.split(":")[0].strip() for line in devices.splitlines() if ":" in line and "|" not in line}


def has_default_route(text: str) -> bool:
    routes = text.split("ROUTES")[1].splitlines()[1:]
    return any(line.split()[1] == "00000000" for line in routes if line.strip())


async def test_memory_hog_is_oom_killed_and_reported(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    hog = "chunks = []\nwhile True:\n    chunks.append(b'x' * 10_000_000)\n"
    final, _ = await run(client, admin, hog, "docker", script_type="python", memory_mb=64)
    assert final["status"] == "failed" and final["exit_code"] == 137, final
    assert final["error_message"].startswith("out of memory: the script went over its 64 MiB limit")


async def test_fork_bomb_is_contained(client: httpx.AsyncClient, admin: LoggedIn, docker_client: Any) -> None:
    counter = (
        "import os, time\n"
        "children = 0\n"
        "try:\n"
        "    for _ in range(5000):\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(60)\n"
        "            os._exit(0)\n"
        "        children += 1\n"
        "except OSError as exc:\n"
        "    print('fork refused after', children, exc.strerror)\n"
    )
    final, text = await run(client, admin, counter, "docker", script_type="python")
    assert "fork refused after" in text, text
    assert int(text.split("after")[1].split()[0]) < 256
    assert final["status"] == "success"

    script_id = await make_script(client, admin, ":(){ :|:& };:\nsleep 30\n", timeout_seconds=8)
    started = await start(client, admin, script_id, "docker")
    container = container_of(started["id"])
    assert container, "the fork bomb's container should be running"
    await asyncio.sleep(3)  # the fork bomb's time to fill its container: what it does meanwhile is tested
    t0 = time.monotonic()
    subprocess.run(["true"], check=True)
    pids = docker_client.api.inspect_container(container)["HostConfig"]["PidsLimit"]
    assert 0 < pids <= 256
    assert time.monotonic() - t0 < 2, "the host should stay responsive"
    final = await wait_for(client, admin, started["id"], timeout=30)
    assert final["status"] in {"timed_out", "failed", "success"}
    assert await removed(docker_client, container)


async def test_no_network_by_default(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    final, text = await run(client, admin, NETWORK_PROBE, "docker")
    assert final["status"] == "success"
    assert interfaces(text) == {"lo"}
    assert not has_default_route(text)


async def test_network_when_the_script_enables_it(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    final, text = await run(client, admin, NETWORK_PROBE, "docker", network_enabled=True)
    assert final["status"] == "success"
    assert "eth0" in interfaces(text)
    assert has_default_route(text)
    audit = await client.get(
        "/api/v1/audit",
        params={"action": "execution.create", "target_id": str(final["id"])},
        headers=admin.headers,
    )
    assert audit.json()["items"][0]["details"]["network_enabled"] is True


async def test_filesystem_user_and_privileges(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    probe = (
        "id -u\n"
        "touch /usr/opscraft-probe 2>&1 || true\n"
        "touch ./written && echo work-dir-writable\n"
        "printf '#!/bin/sh\\necho ran\\n' > /tmp/x.sh && chmod +x /tmp/x.sh && echo tmp-writable\n"
        "/tmp/x.sh 2>&1 || true\n"
        "grep -E '^(CapEff|NoNewPrivs)' /proc/self/status\n"
        "head -c 200m /dev/zero > /tmp/big 2>&1 || echo tmp-full\n"
        # Orphans (re-parented to PID 1) that ended are reaped while the script still runs.
        "for i in 1 2 3 4 5; do (sleep 0.1 &); done; sleep 1\n"
        "z=0; for f in /proc/[0-9]*/stat; do\n"
        "  [ \"$(cut -d' ' -f3 $f 2>/dev/null)\" = Z ] && z=$((z+1)); done\n"
        "echo zombies=$z\n"
        "cat /proc/1/comm\n"
    )
    final, text = await run(client, admin, probe, "docker")
    assert final["status"] == "success", text
    lines = text.splitlines()
    assert lines[0] == "65534"
    assert "Read-only file system" in text
    assert "work-dir-writable" in text and "tmp-writable" in text
    assert "Permission denied" in text and "\nran" not in text  # /tmp is noexec
    assert "CapEff:\t0000000000000000" in text and "NoNewPrivs:\t1" in text
    assert "tmp-full" in text  # /tmp is 100 MiB
    assert lines[-1] == "sh"  # PID 1 is the loader (`container_job`), which waits for the script
    assert lines[-2] == "zombies=0"


@pytest.mark.parametrize(
    ("runner_name", "container_start"),
    [("docker", "cold"), ("docker", "warm"), ("local", "cold")],
    indirect=True,
)
async def test_timeout_keeps_output(client: httpx.AsyncClient, admin: LoggedIn, runner_name: str) -> None:
    """A run killed at its deadline keeps the output it printed. The local runner starts no
    container: it runs once, not again beside a warm pool that it never takes from."""
    # 5 s: the timeout counts from the run's start, a cold container's creation included, which
    # took over 2 s on a machine at load 20 (the run then ended before its script printed).
    t0 = time.monotonic()
    final, text = await run(
        client, admin, "echo started\nsleep 60\necho never\n", runner_name, timeout_seconds=5
    )
    assert final["status"] == "timed_out", final
    assert final["error_message"] == "timed out after 5 s and was killed"
    assert text == "started\n"
    assert time.monotonic() - t0 < 20


async def test_containers_are_labelled_and_removed(
    client: httpx.AsyncClient, admin: LoggedIn, docker_client: Any
) -> None:
    script_id = await make_script(client, admin, "sleep 2\n")
    started = await start(client, admin, script_id, "docker")
    await wait_for(client, admin, started["id"], {"running"})
    container = container_of(started["id"])
    assert container is not None
    found = docker_client.api.inspect_container(container)["Config"]["Labels"]
    assert found["opscraft.managed"] == "true"
    assert found["opscraft.worker"] == worker_identity(runtime.current().settings)
    warm = pooled()
    assert found.get("opscraft.warm") == ("true" if warm else None)
    assert found.get("opscraft.execution") == (None if warm else str(started["id"]))
    await wait_for(client, admin, started["id"])
    assert await removed(docker_client, container)
