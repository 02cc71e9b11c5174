"""A cancel of a run whose worker died (SIGKILL) ends it `cancelled` within seconds, proved by a
worker on the same machine finding the dead worker's process gone; a worker that is only slow
(stopped with SIGSTOP: no heartbeat, process alive) keeps its run and cancels it itself once it
runs again, while the API tells the user the cancel waits on a worker that is not answering."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from opscraft import runtime
from opscraft.db import clock
from opscraft.db.models import RegisteredWorker
from opscraft.execution import liveness
from opscraft.execution.local_runner import LocalRunner
from tests.conftest import (
    PASSWORD,
    PG_URL,
    LiveServer,
    LoggedIn,
    require_service,
    stop_server,
)
from tests.executions.conftest import make_script, wait_for
from tests.executions.test_workers import LONG, _marked_processes, _row, start_worker_server
from tests.waiting import until

LOST_LIMIT = 120.0  # far beyond each test: only the proof of death may end a run early
HEARTBEAT = 0.5
GRACE = 2 * HEARTBEAT
SETTINGS = [{"OPSCRAFT_WORKER_LOST_SECONDS": LOST_LIMIT, "OPSCRAFT_WORKER_HEARTBEAT_SECONDS": HEARTBEAT}]


@pytest.fixture
def backend() -> str:
    """A web process and a worker process on one database server: PostgreSQL only."""
    require_service(bool(PG_URL), "PostgreSQL (OPSCRAFT_TEST_PG_URL)")
    return "postgresql"


def test_only_an_ended_process_of_this_machine_and_namespace_is_proven_gone() -> None:
    """Another key (another machine, boot or PID namespace) or none proves nothing; a live pid is
    alive; an exited one, reaped or not yet (a zombie), is gone."""
    key = liveness.process_key()
    assert key is not None
    assert not liveness.proven_gone(key, os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    until_exited = time.monotonic() + 30
    while Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] != "Z":
        assert time.monotonic() < until_exited, "the child never exited"
        time.sleep(0.01)
    assert liveness.proven_gone(key, child.pid)  # a zombie
    assert not liveness.proven_gone(key + "x", child.pid)
    assert not liveness.proven_gone(None, child.pid)
    child.wait()
    assert liveness.proven_gone(key, child.pid)


@contextlib.contextmanager
def _server(tmp_path: Path) -> Iterator[tuple[LiveServer, str, dict[str, str]]]:
    """A real `opscraft serve` (web + worker) on the test's PostgreSQL database: (server, its
    worker id, an admin's headers); its orphans are swept and it is stopped after."""
    server, worker_id = start_worker_server(tmp_path, LOST_LIMIT, HEARTBEAT, OPSCRAFT_WARM_POOL_SIZE="0")
    try:
        login = httpx.post(
            f"{server.url}/api/v1/auth/login", json={"username": "admin", "password": PASSWORD}
        ).json()
        yield server, worker_id, {"Authorization": f"Bearer {login['access_token']}"}
    finally:
        if server.process.poll() is None:
            server.process.send_signal(signal.SIGCONT)
            stop_server(server)
        LocalRunner(worker_id).sweep()


async def _start_on(server: LiveServer, headers: dict[str, str], script_id: int, runner: str) -> int:
    r = httpx.post(
        f"{server.url}/api/v1/executions",
        json={"script_id": script_id, "runner": runner, "parameters": {"N": 1, "S": 300}},
        headers=headers,
    )
    assert r.status_code == 202, r.text
    return int(r.json()["id"])


async def _silent_for(worker_id: str) -> float:
    """Seconds since `worker_id`'s last heartbeat, in the database's clock."""
    async with runtime.current().db.session() as session:
        row = await session.get(RegisteredWorker, worker_id)
    assert row is not None
    return (clock.now() - row.heartbeat_at).total_seconds()


async def _killed_then_cancelled(
    client: httpx.AsyncClient,
    admin: LoggedIn,
    server: LiveServer,
    worker_id: str,
    execution_id: int,
    left: Callable[[], int],
) -> None:
    """Once run `execution_id` of `server`'s worker runs (`left()`, its container or processes
    on this machine, at least 1), SIGKILL the server and cancel the run: it ends `cancelled` by
    `admin` within the cancel's grace and a check (not the lost limit), `left()` comes to 0,
    and the worker is recorded lost and stopped."""
    await wait_for(client, admin, execution_id, {"running"}, timeout=120)
    await until(lambda: left() >= 1, "the run's container or process", 60, 0.1)
    server.process.send_signal(signal.SIGKILL)
    server.process.wait()
    killed_at = time.monotonic()
    asked = await client.post(f"/api/v1/executions/{execution_id}/cancel", headers=admin.headers)
    assert asked.status_code == 200 and asked.json()["cancel_requested"], asked.text
    final = await wait_for(client, admin, execution_id, timeout=60)
    took = time.monotonic() - killed_at
    assert (final["status"], final["error_message"]) == ("cancelled", f"cancelled by {admin.username}")
    assert final["cancel_pending"] is None
    assert took < LOST_LIMIT / 4, took  # the grace (1 s) and a check, not the lost limit
    await until(lambda: left() == 0, "the dead worker's script to be stopped", 30, 0.2)
    async with runtime.current().db.session() as session:
        row = await session.get(RegisteredWorker, worker_id)
    assert row is not None and row.lost and row.stopped_at is not None


@pytest.mark.parametrize("engine_settings", SETTINGS)
async def test_a_cancel_on_a_killed_worker_ends_cancelled_within_seconds(
    client: httpx.AsyncClient, admin: LoggedIn, tmp_path: Path
) -> None:
    """It waited for OPSCRAFT_WORKER_LOST_SECONDS (30 s by default, 120 here) with no word why.
    A local run here; a Docker run the same way at the end of the slow worker's test below, on
    its server (a server start is about 5 s of CPU: each runner had a server of its own here)."""
    script_id = await make_script(client, admin, LONG, parameters={"N": 0, "S": 300})
    with _server(tmp_path) as (server, worker_id, headers):
        execution_id = await _start_on(server, headers, script_id, "local")
        await _killed_then_cancelled(
            client, admin, server, worker_id, execution_id, lambda: _marked_processes(worker_id)
        )


@pytest.mark.parametrize("engine_settings", SETTINGS)
async def test_a_cancel_on_a_slow_worker_waits_for_it_and_says_why(
    client: httpx.AsyncClient, admin: LoggedIn, tmp_path: Path, docker_client: Any
) -> None:
    """A worker that does not answer but whose process lives (SIGSTOP: a frozen or overloaded
    machine) keeps its run: the API answers the cancel with `cancel_pending`, the run stays
    `running` with its script alive however long the worker is silent (short of the lost
    limit), and once the worker runs again it kills the script and ends the run itself. Then
    the worker is killed under a Docker run: a cancel ends that one within seconds."""
    script_id = await make_script(client, admin, LONG, parameters={"N": 0, "S": 300})
    with _server(tmp_path) as (server, worker_id, headers):
        execution_id = await _start_on(server, headers, script_id, "local")
        await wait_for(client, admin, execution_id, {"running"}, timeout=120)
        await until(lambda: _marked_processes(worker_id) >= 1, "the run's process", 60, 0.1)
        server.process.send_signal(signal.SIGSTOP)

        async def silent_past(seconds: float) -> bool:
            return await _silent_for(worker_id) > seconds

        await until(lambda: silent_past(GRACE + HEARTBEAT), "the worker to miss its heartbeats", 30, 0.1)
        asked = await client.post(f"/api/v1/executions/{execution_id}/cancel", headers=admin.headers)
        assert asked.status_code == 200, asked.text
        body: dict[str, Any] = asked.json()
        assert body["status"] == "running" and body["cancel_requested"], body
        assert body["cancel_pending"].startswith(f"Cancel pending: worker {worker_id} has not answered for ")
        assert f"declared lost ({LOST_LIMIT:g} s" in body["cancel_pending"]
        # Many checks of the survivor (every 0.5 s) later, nothing was ended under the frozen worker.
        await until(lambda: silent_past(GRACE * 6), "the worker to stay silent", 60, 0.2)
        shown = (await client.get(f"/api/v1/executions/{execution_id}", headers=admin.headers)).json()
        assert shown["status"] == "running" and shown["cancel_pending"], shown
        assert _marked_processes(worker_id) >= 1, "the slow worker's script was killed under it"
        row = await _row(execution_id)
        assert row.status == "running" and row.worker_id == worker_id

        server.process.send_signal(signal.SIGCONT)
        final = await wait_for(client, admin, execution_id, timeout=60)
        assert (final["status"], final["error_message"]) == ("cancelled", f"cancelled by {admin.username}")
        await until(lambda: _marked_processes(worker_id) == 0, "the script to be killed", 30, 0.1)
        async with runtime.current().db.session() as session:
            worker = await session.get(RegisteredWorker, worker_id)
        assert worker is not None and not worker.lost and worker.stopped_at is None

        # Then the worker is killed under a Docker run, which a cancel ends within seconds
        # (test_a_cancel_on_a_killed_worker_ends_cancelled_within_seconds, on the Docker runner).
        labels = {"label": f"opscraft.worker={worker_id}"}
        try:
            execution_id = await _start_on(server, headers, script_id, "docker")
            await _killed_then_cancelled(
                client,
                admin,
                server,
                worker_id,
                execution_id,
                lambda: len(docker_client.api.containers(all=True, filters=labels)),
            )
        finally:
            for container in docker_client.api.containers(all=True, filters=labels):
                with contextlib.suppress(Exception):
                    docker_client.api.remove_container(container["Id"], force=True)
