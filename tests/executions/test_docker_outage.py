"""The Docker engine stopped, restarted or frozen under a running worker: runs end with an error
that names the engine, the worker is not wedged, the Workers and warm pool status say what is
wrong meanwhile, and the warm pool comes back with the engine.

The engine here is a `dockerd` of this module's own (its own data root, exec root, pid file and
socket under /tmp, no iptables and no bridge), reached through DOCKER_HOST: stopping or freezing
it disturbs neither the shared engine nor the tests of others running beside these.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from opscraft import runtime
from opscraft.execution import docker_runner, warm_pool
from opscraft.services.executions import UNOFFERED
from tests.conftest import LoggedIn, require_service
from tests.executions.conftest import (
    BUSYBOX_IMAGE,
    make_script,
    output,
    queued_row,
    require_docker,
    start,
    wait_for,
)
from tests.waiting import until

pytestmark = pytest.mark.docker

IMAGE = "opscraft-test/busybox-bash:1"
"""The busybox test image with a `bash` that runs busybox's shell (a bash script's command)."""


class Dockerd:
    """A private Docker engine on a unix socket under a short /tmp directory."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="ocd-", dir="/tmp"))  # short: a socket path is bounded
        self.host = f"unix://{self.dir}/sock"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        # In a network namespace of its own: a dockerd without a default bridge (`--bridge=none`)
        # deletes the `docker0` interface at start, which was the machine's engine's bridge (every
        # later container with a network failed: "could not find bridge docker0").
        args = [
            "unshare",
            "--net",
            "dockerd",
            f"--data-root={self.dir}/root",
            f"--exec-root={self.dir}/exec",
            f"--pidfile={self.dir}/pid",
            f"--host={self.host}",
            "--iptables=false",
            "--ip6tables=false",
            "--bridge=none",
        ]
        with (self.dir / "log").open("ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while self.docker("info", check=False).returncode != 0:
            assert self.process.poll() is None, (self.dir / "log").read_text()[-2000:]
            assert time.monotonic() < deadline, "the private dockerd did not start"
            time.sleep(0.2)

    def stop(self) -> None:
        """Stop it (SIGTERM, as a service restart does) and wait for it to exit."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            self.process.wait(timeout=90)
        self.process = None

    def signal(self, sig: int) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def docker(self, *args: str, check: bool = True, **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
        env = {**os.environ, "DOCKER_HOST": self.host}
        return subprocess.run(["docker", *args], env=env, check=check, capture_output=True, **kwargs)


@pytest.fixture(scope="module")
def dockerd() -> Iterator[Dockerd]:
    require_docker()
    require_service(os.geteuid() == 0 and shutil.which("dockerd") is not None, "dockerd, as root")
    engine = Dockerd()
    engine.start()
    try:
        saved = subprocess.run(["docker", "save", BUSYBOX_IMAGE], check=True, capture_output=True).stdout
        engine.docker("load", input=saved)
        shim = engine.dir / "bash"
        shim.write_text('#!/bin/sh\nexec /bin/sh "$@"\n')
        shim.chmod(0o755)
        engine.docker("create", "--name", "bash-shim", BUSYBOX_IMAGE, "/bin/sh")
        engine.docker("cp", str(shim), "bash-shim:/bin/bash")
        engine.docker("commit", "bash-shim", IMAGE)
        engine.docker("rm", "bash-shim")
        yield engine
    finally:
        engine.stop()
        shutil.rmtree(engine.dir, ignore_errors=True)


@pytest.fixture
def backend() -> str:
    return "sqlite"


# The runner's bounds on a silent engine, shorter here: each test waits one of them out (a
# frozen create waited 20 s, a frozen kill 10 s, the pool's next creation after the engine came
# back 5 s). Each stays well above what the private engine takes to answer on a loaded machine
# (a busy CI machine's container create has taken several seconds).
ENGINE_TIMEOUT_SECONDS = 12
KILL_TIMEOUT_SECONDS = 6
POOL_RETRY_SECONDS = 1.0


@pytest.fixture
def engine_settings(dockerd: Dockerd, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The runtime's settings for the private engine, and the runner's bounds on a silent engine
    (`docker_runner.ENGINE_TIMEOUT_SECONDS`, `KILL_TIMEOUT_SECONDS`, `warm_pool.RETRY_SECONDS`)
    set lower before the runtime starts (its clients are made with them)."""
    if dockerd.process is None:  # a test that failed half-way left it stopped
        dockerd.start()
    monkeypatch.setenv("DOCKER_HOST", dockerd.host)
    monkeypatch.setattr(docker_runner, "ENGINE_TIMEOUT_SECONDS", ENGINE_TIMEOUT_SECONDS)
    monkeypatch.setattr(docker_runner, "KILL_TIMEOUT_SECONDS", KILL_TIMEOUT_SECONDS)
    monkeypatch.setattr(warm_pool, "RETRY_SECONDS", POOL_RETRY_SECONDS)
    return {
        "OPSCRAFT_IMAGE_BASH": IMAGE,
        "OPSCRAFT_WARM_POOL_SIZE": 1,
        "OPSCRAFT_WORKER_HEARTBEAT_SECONDS": 1,
        "OPSCRAFT_WORKER_LOST_SECONDS": 30,
    }


async def _status(client: httpx.AsyncClient, admin: LoggedIn) -> tuple[dict[str, Any], dict[str, Any]]:
    """This process's worker as `/api/v1/workers` and `/api/v1/warm-pools` show it."""
    worker = runtime.current().worker
    assert worker is not None
    workers = (await client.get("/api/v1/workers", headers=admin.headers)).json()["items"]
    pools = (await client.get("/api/v1/warm-pools", headers=admin.headers)).json()["items"]
    mine = [w for w in workers if w["id"] == worker.worker_id]
    pool = [p for p in pools if p["worker_id"] == worker.worker_id]
    return mine[0], (pool[0] if pool else {})


async def _pool_back(client: httpx.AsyncClient, admin: LoggedIn) -> bool:
    """The engine answers again for the worker, and its pool has a live warm container."""
    worker, pool = await _status(client, admin)
    return worker["docker_error"] is None and "docker" in worker["runners"] and pool.get("warm", 0) >= 1


async def _warm_run_succeeds(client: httpx.AsyncClient, admin: LoggedIn, script_id: int) -> None:
    worker = runtime.current().worker
    assert worker is not None
    before = worker.docker.pool.warm_starts
    run = await start(client, admin, script_id, "docker")
    final = await wait_for(client, admin, run["id"], timeout=60)
    assert final["status"] == "success", final
    assert await output(client, admin, run["id"]) == "after\n"
    # A warm start: the pool replaced the container the engine's stop killed (before, it still
    # counted it as warm, so every run found it dead and started cold).
    assert worker.docker.pool.warm_starts == before + 1


async def test_an_engine_stopped_mid_run_ends_it_clearly_says_so_and_the_pool_comes_back(
    client: httpx.AsyncClient, admin: LoggedIn, dockerd: Dockerd
) -> None:
    """The engine stops (SIGTERM, a restart's first half) while a run runs and the pool holds a
    warm container. Before, the run ended as "the docker runner failed unexpectedly" (a
    connection error docker-py does not wrap), nothing said the engine was gone, and once it was
    back the pool counted its dead container as warm: every run started cold."""
    long = await make_script(client, admin, "echo begun\nsleep 120\n")
    after = await make_script(client, admin, "echo after\n")
    run = await start(client, admin, long, "docker")
    await until(lambda: _printed(client, admin, run["id"]), "the run to print")
    await until(_warm, "a warm container")
    dockerd.stop()
    try:
        final = await wait_for(client, admin, run["id"], timeout=60)
        assert final["status"] == "error", final
        assert "Docker engine" in final["error_message"], final
        assert "unexpectedly" not in final["error_message"], final

        async def says_why() -> bool:
            worker, pool = await _status(client, admin)
            return (
                "does not answer" in (worker["docker_error"] or "")
                and "docker" not in worker["runners"]
                and "does not answer" in (pool.get("error") or "")
            )

        await until(says_why, "the Workers and warm pool status to say why")
    finally:
        dockerd.start()
    await until(lambda: _pool_back(client, admin), "the engine and the warm pool to come back")
    await _warm_run_succeeds(client, admin, after)


async def test_a_frozen_engine_does_not_wedge_a_run_past_its_deadline(
    client: httpx.AsyncClient, admin: LoggedIn, dockerd: Dockerd
) -> None:
    """The engine freezes (SIGSTOP: its socket accepts, nothing answers) while a run with a 2 s
    timeout runs. Before, its kill waited on the engine (docker-py's 60 s, then nothing) and the
    run's thread read the silent attach stream for as long as the engine stayed frozen: the run
    stayed `running` past its deadline. Now the kill gives up after `KILL_TIMEOUT_SECONDS`, the
    run is abandoned with an error naming the engine, and the worker carries on once it thaws."""
    script = await make_script(client, admin, "echo begun\nsleep 120\n", timeout_seconds=2)
    after = await make_script(client, admin, "echo after\n")
    run = await start(client, admin, script, "docker")
    await until(lambda: _printed(client, admin, run["id"]), "the run to print")
    dockerd.signal(signal.SIGSTOP)
    try:
        frozen = time.monotonic()
        final = await wait_for(client, admin, run["id"], timeout=40)  # the kill's timeout and more
        took = time.monotonic() - frozen
        assert final["status"] in ("error", "timed_out"), final
        assert "Docker engine did not answer the kill" in final["error_message"], final
        # The run's 2 s deadline, then one kill step given up after its bound (not the scaled 40 s).
        assert took < 2 + docker_runner.KILL_TIMEOUT_SECONDS + 15, took
    finally:
        dockerd.signal(signal.SIGCONT)
    await until(lambda: _pool_back(client, admin), "the engine and the warm pool to come back")
    await _warm_run_succeeds(client, admin, after)
    worker = runtime.current().worker
    assert worker is not None
    # The abandoned run's container is removed once the engine answers.
    await until(
        lambda: _no_container_of(dockerd, run["id"]),
        "the abandoned container's removal",
        timeout=docker_runner.PING_TIMEOUT + warm_pool.RETRY_SECONDS + 30,
    )


async def _offers_docker(client: httpx.AsyncClient, admin: LoggedIn) -> bool:
    worker, _ = await _status(client, admin)
    return worker["docker_error"] is None and "docker" in worker["runners"]


async def _warm() -> bool:
    worker = runtime.current().worker
    assert worker is not None
    return worker.docker.pool.stats()["warm"] >= 1


async def _printed(client: httpx.AsyncClient, admin: LoggedIn, execution_id: int) -> bool:
    return "begun" in await output(client, admin, execution_id)


async def _no_container_of(dockerd: Dockerd, execution_id: int) -> bool:
    listed = dockerd.docker("ps", "-aq", "--filter", f"label={docker_runner.LABEL_EXECUTION}={execution_id}")
    return not listed.stdout.strip()


async def test_a_frozen_engine_at_container_create_ends_the_run_in_error_naming_the_engine(
    client: httpx.AsyncClient, admin: LoggedIn, dockerd: Dockerd
) -> None:
    """The engine freezes (SIGSTOP) just before a cold start creates the run's container (a
    profile no warm container has: 64 MB). Before, the create waited docker-py's default of 60 s
    before the run ended; now it gives up after `ENGINE_TIMEOUT_SECONDS` and the run ends in
    `error` saying the engine did not answer. Submitted before the worker's next heartbeat finds
    the engine frozen (its ping waits `PING_TIMEOUT` first), so the run is accepted."""
    script = await make_script(client, admin, "echo never\n", memory_mb=64)
    after = await make_script(client, admin, "echo after\n")
    await until(lambda: _offers_docker(client, admin), "the worker to offer docker")
    dockerd.signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        run = await start(client, admin, script, "docker")
        final = await wait_for(client, admin, run["id"], timeout=docker_runner.ENGINE_TIMEOUT_SECONDS + 20)
        took = time.monotonic() - started
        assert final["status"] == "error", final
        assert "Docker engine did not answer" in final["error_message"], final
        assert took < docker_runner.ENGINE_TIMEOUT_SECONDS + 15, took
    finally:
        dockerd.signal(signal.SIGCONT)
    await until(lambda: _offers_docker(client, admin), "the worker to offer docker again")
    run = await start(client, admin, after, "docker")
    final = await wait_for(client, admin, run["id"], timeout=60)
    assert final["status"] == "success" and await output(client, admin, run["id"]) == "after\n", final


async def test_a_docker_run_queued_while_the_engine_is_stopped_waits_saying_why_and_runs_once_it_is_back(
    client: httpx.AsyncClient, admin: LoggedIn, dockerd: Dockerd
) -> None:
    """One process on SQLite (its worker takes runs in memory): the engine stops, and a Docker
    run is queued all the same (a submission committed just before the worker's heartbeat
    noticed, or before the stop). Its worker claimed it and ended it `error` ("the Docker engine
    does not answer"), though the engine came back seconds later. It now waits, queued, its page
    and the API saying why, and runs once the heartbeat finds the engine answering again."""
    script_id = await make_script(client, admin, "echo after\n")
    dockerd.stop()
    try:
        await until(lambda: _docker_gone(client, admin), "the worker to stop offering Docker", 60, 0.2)
        # Past the refusal a submission gets while no live worker offers Docker.
        run_id = await queued_row(script_id, admin.id, "docker", "after")
        executions = runtime.current().executions
        assert executions is not None
        executions.enqueue(run_id)

        async def says_why() -> bool:
            row = (await client.get(f"/api/v1/executions/{run_id}", headers=admin.headers)).json()
            assert row["status"] == "queued", row
            return bool(row["why_queued"] == UNOFFERED["docker"])

        await until(says_why, "the API to say why the run waits", 30, 0.2)
    finally:
        dockerd.start()
    final = await wait_for(client, admin, run_id, timeout=60)
    assert final["status"] == "success", final
    assert await output(client, admin, run_id) == "after\n"


async def _docker_gone(client: httpx.AsyncClient, admin: LoggedIn) -> bool:
    """Whether this process's worker no longer offers Docker (its last heartbeat)."""
    worker, _ = await _status(client, admin)
    return "docker" not in worker["runners"]
