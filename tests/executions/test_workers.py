"""Several execution workers on one PostgreSQL database: identity, recovery of their own runs only,
and a SIGKILLed worker's runs ended as "worker lost" by a survivor within the configured limit."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import col, select, update

from opscraft import runtime
from opscraft.db import clock
from opscraft.db.models import AuditEvent, Execution, RegisteredWorker
from opscraft.db.types import utcnow
from opscraft.execution import store
from opscraft.execution.local_runner import RUN_MARKER, LocalRunner, swept_owners
from opscraft.execution.store import LOST_MESSAGE
from opscraft.execution.worker import Worker, worker_identity
from opscraft.security.vault import KEY_FILE
from tests.conftest import (
    PASSWORD,
    PG_URL,
    LiveServer,
    LoggedIn,
    make_settings,
    require_service,
    start_server,
    stop_server,
)
from tests.executions.conftest import (
    IMAGES,
    TEST_IMAGE,
    make_script,
    queued_row,
    start,
    wait_for,
    wait_output,
)
from tests.scale.cluster import RedisServer
from tests.waiting import until

LONG = 'echo "begun $N"\nsleep "$S"\necho "ended $N"\n'
# Runs until the test creates the file GATE: a run that must outlast a worker's start or restart
# (any length of time on a loaded machine) ends when the test says, not after a guessed sleep.
GATED = 'echo "begun $N"\nwhile [ ! -e "$GATE" ]; do sleep 0.05; done\necho "ended $N"\n'


@pytest.fixture
def backend() -> str:
    """These tests need several processes or workers on one database server: PostgreSQL only."""
    require_service(bool(PG_URL), "PostgreSQL (OPSCRAFT_TEST_PG_URL)")
    return "postgresql"


async def _row(execution_id: int) -> Execution:
    async with runtime.current().db.session() as session:
        execution = await session.get(Execution, execution_id)
    assert execution is not None
    return execution


async def _enqueue_row(script_id: int, user_id: int, queue_of: Worker, **parameters: Any) -> int:
    """A queued run written straight to the database and handed to one worker's queue."""
    execution_id = await queued_row(script_id, user_id, "local", "long", **parameters)
    queue_of.queue.enqueue(execution_id)
    return execution_id


async def test_two_workers_keep_their_runs_through_each_others_start(
    client: httpx.AsyncClient, admin: LoggedIn, tmp_path: Path
) -> None:
    first = runtime.current().worker
    assert first is not None
    script_id = await make_script(client, admin, GATED, parameters={"N": 0, "GATE": "none"})
    a_gate, b_gate = tmp_path / "a-ends", tmp_path / "b-ends"
    a_run = await start(client, admin, script_id, "local", parameters={"N": 1, "GATE": str(a_gate)})
    await wait_for(client, admin, a_run["id"], {"running"})

    other_settings = make_settings(
        tmp_path / "b", PG_URL, OPSCRAFT_LOCAL_RUNNER=True, OPSCRAFT_MASTER_KEY=_key(tmp_path), **IMAGES
    )
    second = Worker(other_settings, secrets=None)
    assert second.worker_id != first.worker_id
    await asyncio.to_thread(second.start)
    restarted: Worker | None = None
    try:
        # The second worker's start recovered and swept only its own (none): the first run goes on.
        assert (await _row(a_run["id"])).status == "running"
        b_run = await _enqueue_row(script_id, admin.id, second, N=2, GATE=b_gate)
        await wait_for(client, admin, b_run, {"running"})
        assert (await _row(b_run)).worker_id == second.worker_id
        a_gate.touch()
        a_final = await wait_for(client, admin, a_run["id"])
        assert a_final["status"] == "success", a_final
        assert (await _row(a_run["id"])).worker_id == first.worker_id

        # The first worker restarts (same identity) while the second one's run is in progress.
        await asyncio.to_thread(first.stop)
        restarted = Worker(runtime.current().settings, secrets=None)
        assert restarted.worker_id == first.worker_id
        await asyncio.to_thread(restarted.start)
        runtime.current().worker = restarted  # lifecycle.stop stops it
        assert (await _row(b_run)).status == "running"
        b_gate.touch()
        b_final = await wait_for(client, admin, b_run)
        assert b_final["status"] == "success", b_final
        async with runtime.current().db.session() as session:
            rows = (await session.exec(select(RegisteredWorker))).all()
        live = {w.id for w in rows if w.stopped_at is None}
        assert live == {first.worker_id, second.worker_id}
        assert {w.id: w.slots for w in rows}[second.worker_id] == other_settings.workers
        assert all("local" in w.runners and w.pid == os.getpid() for w in rows)
    finally:
        await asyncio.to_thread(second.stop)


async def test_a_worker_limited_to_other_runners_leaves_the_run_to_one_that_offers_it(
    client: httpx.AsyncClient, admin: LoggedIn, tmp_path: Path
) -> None:
    """`opscraft worker --runner docker` handed a local run: its claim (limited to its runners
    in the UPDATE itself) takes nothing, the run stays queued and goes back to the queue; a
    worker that offers the local runner runs it."""
    first = runtime.current().worker
    assert first is not None
    script_id = await make_script(client, admin, LONG, parameters={"N": 0, "S": 0})
    other_settings = make_settings(
        tmp_path / "b", PG_URL, OPSCRAFT_LOCAL_RUNNER=True, OPSCRAFT_MASTER_KEY=_key(tmp_path), **IMAGES
    )
    docker_only = Worker(other_settings, secrets=None, runners=frozenset({"docker"}))
    handed_back: list[int] = []
    enqueue = docker_only.queue.enqueue
    docker_only.queue.enqueue = lambda eid: (handed_back.append(eid), enqueue(eid))  # type: ignore[method-assign]
    await asyncio.to_thread(docker_only.start)
    try:
        run = await _enqueue_row(script_id, admin.id, docker_only, N=1, S=0)
        # the row's enqueue, then at least one hand-back
        await until(lambda: len(handed_back) >= 2, "the docker-only worker to hand the run back", 60, 0.05)
        row = await _row(run)
        assert row.status == "queued" and row.worker_id is None
        first.queue.enqueue(run)
        final = await wait_for(client, admin, run)
        assert final["status"] == "success", final
        assert (await _row(run)).worker_id == first.worker_id
    finally:
        await asyncio.to_thread(docker_only.stop)


def _key(tmp_path: Path) -> str:
    """The master key the runtime under test created in its data directory."""
    return (tmp_path / KEY_FILE).read_text().strip()


LOST_LIMIT = 3.0
HEARTBEAT = 0.5


def start_worker_server(
    tmp_path: Path, lost: float, heartbeat: float, **extra: str
) -> tuple[LiveServer, str]:
    """A real `opscraft serve` (web + worker, local runner allowed) on the test's PostgreSQL
    database with the runtime's master key, heartbeating every `heartbeat` s and declaring
    workers lost after `lost` s (`extra`: more environment): (the server, its worker id)."""
    server_dir = tmp_path / "server"
    server_dir.mkdir()
    shutil.copy(tmp_path / KEY_FILE, server_dir / KEY_FILE)
    assert PG_URL
    env = {
        "DATABASE_URL": PG_URL,
        "OPSCRAFT_LOCAL_RUNNER": "1",
        "OPSCRAFT_WORKER_LOST_SECONDS": str(lost),
        "OPSCRAFT_WORKER_HEARTBEAT_SECONDS": str(heartbeat),
        **IMAGES,
        **extra,
    }
    server = start_server(server_dir, env)
    return server, worker_identity(make_settings(server_dir))


async def _audited_once(execution_id: int, status: str) -> None:
    """The run's end was written once, with its run event, and the survivor's dispatcher audited
    it (`execution.finished` with `status`), within 20 s."""
    deadline = time.monotonic() + 20
    while True:
        async with runtime.current().db.session() as session:
            audited = (
                await session.exec(
                    select(AuditEvent).where(
                        col(AuditEvent.action) == "execution.finished",
                        col(AuditEvent.target_id) == str(execution_id),
                    )
                )
            ).all()
        if audited or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert len(audited) == 1 and audited[0].details["status"] == status, audited


@pytest.mark.parametrize(
    "engine_settings",
    [{"OPSCRAFT_WORKER_LOST_SECONDS": LOST_LIMIT, "OPSCRAFT_WORKER_HEARTBEAT_SECONDS": HEARTBEAT}],
)
async def test_a_run_cancelled_after_its_worker_was_killed_ends_cancelled_by_a_survivor(
    client: httpx.AsyncClient, admin: LoggedIn, tmp_path: Path
) -> None:
    """A user cancels the run after its worker died (the cancel cannot land): the survivor ends
    it `cancelled` by that user. It ended `error` ("worker lost"), where the docs promise the page
    turns to cancelled and a notification rule on errors reported a run someone stopped. (Runs
    nobody cancels are ended by the lost limit: the next test. Its server is not this one's: a
    cancel pending on a dead worker ends all its runs at once, `Worker.end_dead`.)"""
    server, server_worker = start_worker_server(tmp_path, LOST_LIMIT, HEARTBEAT)
    try:
        login = httpx.post(
            f"{server.url}/api/v1/auth/login", json={"username": "admin", "password": PASSWORD}
        ).json()
        headers = {"Authorization": f"Bearer {login['access_token']}"}
        script_id = await make_script(client, admin, LONG, parameters={"N": 0, "S": 120})
        r = httpx.post(
            f"{server.url}/api/v1/executions",
            json={"script_id": script_id, "runner": "local", "parameters": {"N": 1, "S": 120}},
            headers=headers,
        )
        assert r.status_code == 202, r.text
        execution_id = r.json()["id"]
        await wait_for(client, admin, execution_id, {"running"})
        assert (await _row(execution_id)).worker_id == server_worker

        server.process.send_signal(signal.SIGKILL)
        server.process.wait()
        killed_at = time.monotonic()
        asked = await client.post(f"/api/v1/executions/{execution_id}/cancel", headers=admin.headers)
        assert asked.status_code == 200 and asked.json()["cancel_requested"], asked.text
        final = await wait_for(client, admin, execution_id, timeout=LOST_LIMIT + 30)
        took = time.monotonic() - killed_at
        expected = ("cancelled", f"cancelled by {admin.username}")
        assert (final["status"], final["error_message"]) == expected, final
        assert took <= LOST_LIMIT + 4 * HEARTBEAT + 2, took
        await _audited_once(execution_id, "cancelled")
        async with runtime.current().db.session() as session:
            lost = await session.get(RegisteredWorker, server_worker)
        assert lost is not None and lost.stopped_at is not None
    finally:
        LocalRunner(server_worker).sweep()  # the killed server's orphaned `sleep`
        if server.process.poll() is None:
            stop_server(server)


@pytest.mark.parametrize(
    "engine_settings",
    [{"OPSCRAFT_WORKER_LOST_SECONDS": LOST_LIMIT, "OPSCRAFT_WORKER_HEARTBEAT_SECONDS": HEARTBEAT}],
)
async def test_a_killed_workers_runs_are_ended_as_lost_by_a_survivor_which_stops_their_scripts(
    client: httpx.AsyncClient, admin: LoggedIn, tmp_path: Path, docker_client: Any
) -> None:
    """A SIGKILLed worker's runs, a local one and a Docker one: a survivor ends them `error`
    ("worker lost") once the worker's heartbeat is older than the lost limit. Their scripts went
    on in their container or processes, unwatched, until that worker came back: a survivor that
    reaches the same Docker engine, or machine, now removes what the lost worker left. (One killed
    server for both runners: a server start is about 5 s of CPU, and the local run's end, its
    script and the Docker run's script each had a test and a server of their own.)"""
    server, server_worker = start_worker_server(tmp_path, LOST_LIMIT, HEARTBEAT, OPSCRAFT_WARM_POOL_SIZE="1")

    def left(runner: str) -> int:
        if runner == "local":
            return _marked_processes(server_worker)
        # The low-level list: `containers.list` inspects each one found, a 404 when the survivor
        # removes it in between.
        labels = {"label": f"opscraft.worker={server_worker}"}
        return len(docker_client.api.containers(all=True, filters=labels))

    try:
        login = httpx.post(
            f"{server.url}/api/v1/auth/login", json={"username": "admin", "password": PASSWORD}
        ).json()
        headers = {"Authorization": f"Bearer {login['access_token']}"}
        script_id = await make_script(client, admin, LONG, parameters={"N": 0, "S": 120})
        runs: dict[str, int] = {}
        for runner in ("local", "docker"):
            r = httpx.post(
                f"{server.url}/api/v1/executions",
                json={"script_id": script_id, "runner": runner, "parameters": {"N": 1, "S": 120}},
                headers=headers,
            )
            assert r.status_code == 202, r.text
            runs[runner] = r.json()["id"]
        for runner, execution_id in runs.items():
            await wait_for(client, admin, execution_id, {"running"}, timeout=120)
            assert (await _row(execution_id)).worker_id == server_worker
            # "running" comes before the start: the script has begun.
            await wait_output(client, admin, execution_id, "begun 1", timeout=60)
            assert left(runner) >= 1, f"the {runner} run's container or process"

        server.process.send_signal(signal.SIGKILL)
        server.process.wait()
        killed_at = time.monotonic()
        for runner, execution_id in runs.items():
            final = await wait_for(client, admin, execution_id, timeout=LOST_LIMIT + 30)
            took = time.monotonic() - killed_at
            assert (final["status"], final["error_message"]) == ("error", LOST_MESSAGE), (runner, final)
            # Lost once the heartbeat is older than the limit; noticed within a heartbeat or two after.
            assert took <= LOST_LIMIT + 4 * HEARTBEAT + 2, (runner, took)
            await _audited_once(execution_id, "error")
        async with runtime.current().db.session() as session:
            lost = await session.get(RegisteredWorker, server_worker)
        assert lost is not None and lost.stopped_at is not None
        for runner in ("local", "docker"):
            await until(
                lambda r=runner: left(r) == 0,
                f"the lost worker's {runner} script to be stopped (it ran on, unwatched)",
                30,
                0.2,
            )
    finally:
        LocalRunner(server_worker).sweep()  # the killed server's orphaned `sleep`
        for container in docker_client.api.containers(
            all=True, filters={"label": f"opscraft.worker={server_worker}"}
        ):
            with contextlib.suppress(Exception):
                docker_client.api.remove_container(container["Id"], force=True)
        if server.process.poll() is None:
            stop_server(server)


def _marked_processes(worker_id: str) -> int:
    """Processes of this machine carrying the local run marker of `worker_id` (of any
    installation: `local_runner.swept_owners`)."""
    marker = re.compile(f"{RUN_MARKER}={swept_owners(worker_id, '')}:[0-9]+".encode())
    count = 0
    for entry in Path("/proc").iterdir():
        try:
            environ = (entry / "environ").read_bytes() if entry.name.isdigit() else b""
        except OSError:
            continue
        count += any(marker.fullmatch(item) for item in environ.split(b"\0"))
    return count


async def test_a_loss_declared_by_another_process_is_swept_and_a_restart_keeps_its_new_runs(
    backend: str, client: httpx.AsyncClient, docker_client: Any
) -> None:
    """Any process may declare a worker lost (a web process has no Docker engine to sweep): the
    workers sweep it at their next heartbeat all the same. Only what the lost worker started
    before the loss goes; a container or process it started after, back under the same id
    (before a survivor got to the sweep), is left to it (it was a CI flake: a web process won
    the race to declare the loss, and no worker ever removed the container)."""
    rt = runtime.current()
    worker = rt.worker
    assert worker is not None
    ghost = f"ghost-{os.getpid()}-{time.monotonic_ns()}"
    labels = {"opscraft.managed": "true", "opscraft.worker": ghost}
    env = {"PATH": os.environ["PATH"], RUN_MARKER: f"{ghost}:1"}
    async with rt.db.engine.begin() as conn:
        await conn.run_sync(store.register, store.WorkerInfo(ghost, "elsewhere", 1, 1), ["docker", "local"])
        await conn.execute(
            update(RegisteredWorker)
            .where(col(RegisteredWorker.id) == ghost)
            .values(heartbeat_at=utcnow() - timedelta(hours=1))
        )
    docker_client.containers.run(TEST_IMAGE, "sleep 300", labels=labels, detach=True)
    processes = [subprocess.Popen(["sleep", "300"], env=env)]
    try:
        async with rt.db.engine.begin() as conn:  # as a web-only process does (`lifecycle`)
            lost, _ = await conn.run_sync(store.end_lost, "", utcnow() - timedelta(seconds=60))
        assert lost == [ghost]
        async with rt.db.engine.begin() as conn:
            [(_, lost_at)] = [
                row
                for row in await conn.run_sync(store.lost_since, utcnow() - timedelta(hours=1))
                if row[0] == ghost
            ]
        # The engine lists creation times in whole seconds: "after the loss" starts at the next one.
        while time.time() < lost_at.timestamp() + 1:
            await asyncio.sleep(0.05)
        after = docker_client.containers.run(TEST_IMAGE, "sleep 300", labels=labels, detach=True)
        processes.append(subprocess.Popen(["sleep", "300"], env=env))
        await asyncio.to_thread(worker.sweep_lost)  # its housekeeping may have done it already
        assert processes[0].wait(timeout=30) == -signal.SIGKILL
        assert processes[1].poll() is None, "a process started after the loss was killed"
        remaining = [
            c["Id"]
            for c in docker_client.api.containers(all=True, filters={"label": f"opscraft.worker={ghost}"})
        ]
        assert remaining == [after.id]
    finally:
        for process in processes:
            process.kill()
            process.wait()
        for container in docker_client.api.containers(
            all=True, filters={"label": f"opscraft.worker={ghost}"}
        ):
            with contextlib.suppress(Exception):
                docker_client.api.remove_container(container["Id"], force=True)


async def test_a_worker_declared_lost_while_frozen_stops_the_scripts_of_its_ended_runs(
    backend: str, client: httpx.AsyncClient, admin: LoggedIn, tmp_path: Path
) -> None:
    """A worker that stopped heartbeating without dying (frozen by SIGSTOP, a paused VM, a long
    swap stall) past OPSCRAFT_WORKER_LOST_SECONDS has its runs ended by another process ("worker
    lost"). Going on, it ran their scripts to their end, unwatched, and stored their output after
    the runs' end, unless another worker shared its machine or Docker engine to sweep them (a
    worker on a machine of its own: none does). Now it stops them within a housekeeping tick."""
    rt = runtime.current()
    worker = rt.worker
    assert worker is not None
    gate = {"N": 1, "GATE": str(tmp_path / "never")}  # runs until killed
    script_id = await make_script(client, admin, GATED, parameters={"N": 0, "GATE": "unset"})
    r = await client.post(
        "/api/v1/executions",
        json={"script_id": script_id, "runner": "local", "parameters": gate},
        headers=admin.headers,
    )
    assert r.status_code == 202, r.text
    execution_id = r.json()["id"]
    await wait_for(client, admin, execution_id, {"running"}, timeout=120)
    await until(lambda: _marked_processes(worker.worker_id) >= 1, "the run's process", 60)
    async with rt.db.engine.begin() as conn:  # another process, to which its heartbeat is stale
        lost, ended = await conn.run_sync(store.end_lost, "", clock.now() + timedelta(hours=1))
    assert worker.worker_id in lost and execution_id in ended
    await until(lambda: _marked_processes(worker.worker_id) == 0, "its script to be stopped", 30)
    row = await _row(execution_id)
    assert (row.status, row.error_message) == ("error", LOST_MESSAGE)


async def test_the_tick_stops_only_runs_ended_elsewhere_or_cancelled_not_those_yet_to_start(
    backend: str, client: httpx.AsyncClient, admin: LoggedIn, tmp_path: Path
) -> None:
    """The executor watches a run before claiming it (so a cancel landing after the claim finds
    its watcher): the housekeeping tick's check then reads it `queued`. Taken for "ended
    elsewhere" (anything but `running`), it was stopped as it started: 1 of 100 runs of
    tests/scale/test_scale_out.py ended `cancelled`. Queued and awaiting-approval runs are
    neither cancelled nor ended; a run that ended is ended."""
    rt = runtime.current()
    worker = rt.worker
    assert worker is not None
    gate = {"N": 1, "GATE": str(tmp_path / "open")}
    limited = await make_script(client, admin, GATED, parameters={"N": 0, "GATE": "unset"}, max_concurrent=1)
    running = await start(client, admin, limited, "local", parameters=gate)
    await wait_for(client, admin, running["id"], {"running"}, timeout=120)
    queued = await start(client, admin, limited, "local", parameters=gate)
    held = await make_script(client, admin, "echo held\n")
    r = await client.put(f"/api/v1/scripts/{held}/approval", json={"required": 1}, headers=admin.headers)
    assert r.status_code == 200, r.text
    waiting = await start(client, admin, held, "local", parameters={})
    assert (queued["status"], waiting["status"]) == ("queued", "awaiting_approval")
    ids = [queued["id"], waiting["id"]]
    assert worker.store.run(store.to_stop, worker.worker_id, ids) == ([], [])
    (tmp_path / "open").touch()
    for execution_id in (running["id"], queued["id"]):
        assert (await wait_for(client, admin, execution_id, timeout=120))["status"] == "success"
    assert worker.store.run(store.to_stop, worker.worker_id, ids) == ([], [queued["id"]])


async def test_a_database_on_this_machines_clock_is_measured_without_offset(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL on the same clock (this machine, or one kept in step by NTP) is no offset:
    one within half the measuring round trip is taken as 0. It was the round trip's jitter
    (milliseconds on a loaded machine), added to every time a process stored, so a row's
    `created_at` could come before the moment a client on that machine sent it."""
    assert PG_URL
    monkeypatch.setattr(clock, "_offset", clock._offset)  # this process's, back after the test
    engine = create_async_engine(PG_URL)
    try:
        for _ in range(20):
            async with engine.connect() as conn:
                await conn.run_sync(clock.measure)
            assert clock._offset == timedelta(0)
    finally:
        await engine.dispose()


async def test_a_worker_says_at_once_when_it_cannot_read_the_job_queue_and_when_it_can_again(
    backend: str, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    """A worker's row says why its consumers cannot read the job queue (`queue_error`: the web
    refuses submissions with a 503 meanwhile, and offers no runner of it) as soon as that
    changes, both ways. Written only at the next heartbeat, a Redis back after a restart still
    had every submission refused for up to a heartbeat period (300 s here), and a Redis gone
    had them queued where no worker read for as long."""
    redis_server = RedisServer(tmp_path / "redis")
    redis_server.start()
    settings = make_settings(
        tmp_path / "b",
        PG_URL,
        REDIS_URL=redis_server.url,
        OPSCRAFT_LOCAL_RUNNER=True,
        OPSCRAFT_MASTER_KEY=_key(tmp_path),
        OPSCRAFT_WORKER_HEARTBEAT_SECONDS=300,
        OPSCRAFT_WORKER_LOST_SECONDS=900,
        **IMAGES,
    )
    worker = Worker(settings, secrets=None)
    await asyncio.to_thread(worker.start)

    async def queue_error() -> str | None:
        async with runtime.current().db.session() as session:
            row = await session.get(RegisteredWorker, worker.worker_id)
        assert row is not None
        return row.queue_error

    async def readable() -> bool:
        return await queue_error() is None

    try:
        assert await queue_error() is None
        redis_server.stop()
        error = await until(queue_error, "the worker's row to say it cannot read the queue", 20)
        assert "redis" in error.lower() or "connect" in error.lower(), error
        redis_server.start()  # the same port: the consumers' next read works
        await until(readable, "the worker's row to say it can read again", 20)
    finally:
        await asyncio.to_thread(worker.stop)
        redis_server.stop()
