"""Cancel, concurrency limits, graceful shutdown, and recovery after the server is SIGKILLed."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import col, update

from opscraft import runtime
from opscraft.db.models import AppSetting, Execution, User
from opscraft.execution.worker import worker_identity
from opscraft.services import executions
from opscraft.services.actor import Actor
from tests.conftest import LoggedIn, make_settings, make_user, start_server, stop_server
from tests.executions.conftest import (
    IMAGES,
    make_script,
    output,
    require_docker,
    start,
    wait_for,
    wait_output,
)
from tests.waiting import wait_until

RUNNERS = pytest.mark.parametrize("runner_name", ["docker", "local"], indirect=True)


@pytest.fixture
def backend() -> str:
    return "sqlite"


@RUNNERS
async def test_cancel_running_within_two_seconds(
    client: httpx.AsyncClient, viewer: LoggedIn, runner_name: str, admin: LoggedIn
) -> None:
    script_id = await make_script(client, admin, "echo started\nsleep 60\necho never\n")
    started = await start(client, viewer, script_id, runner_name)
    await wait_output(client, viewer, started["id"], "started")
    t0 = time.monotonic()
    response = await client.post(f"/api/v1/executions/{started['id']}/cancel", headers=viewer.headers)
    assert response.status_code == 200 and response.json()["cancel_requested"] is True
    final = await wait_for(client, viewer, started["id"], timeout=5)
    assert time.monotonic() - t0 < 2
    assert final["status"] == "cancelled" and final["error_message"] == "cancelled by viewer"
    assert (final["cancelled_by"], final["cancelled_by_name"]) == (viewer.id, "viewer")
    assert await output(client, viewer, started["id"]) == "started\n"
    again = await client.post(f"/api/v1/executions/{started['id']}/cancel", headers=viewer.headers)
    assert again.status_code == 409 and "already finished (cancelled)" in again.json()["detail"]


@pytest.mark.parametrize("engine_settings", [{"OPSCRAFT_WORKERS": 1}])
async def test_cancel_queued_never_starts(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    blocker_id = await make_script(client, admin, "sleep 60\n")
    waiting_id = await make_script(client, admin, "echo should-not-run\n")
    blocker = await start(client, admin, blocker_id, "local")
    await wait_for(client, admin, blocker["id"], {"running"})
    waiting = await start(client, admin, waiting_id, "local")
    response = await client.post(f"/api/v1/executions/{waiting['id']}/cancel", headers=admin.headers)
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert response.json()["cancelled_by_name"] == "admin"
    assert response.json()["error_message"] == "cancelled by admin"
    await client.post(f"/api/v1/executions/{blocker['id']}/cancel", headers=admin.headers)
    await wait_for(client, admin, blocker["id"])
    await asyncio.sleep(0.5)  # the worker is free: it would have picked the cancelled run up by now
    final = await wait_for(client, admin, waiting["id"])
    assert final["status"] == "cancelled" and final["started_at"] is None
    assert await output(client, admin, waiting["id"]) == ""


async def test_who_may_cancel(
    client: httpx.AsyncClient, viewer: LoggedIn, operator: LoggedIn, admin: LoggedIn
) -> None:
    other = await make_user(client, "viewer", "other-viewer")
    script_id = await make_script(client, admin, "sleep 60\n")
    runs = [await start(client, viewer, script_id, "local") for _ in range(2)]
    denied = await client.post(f"/api/v1/executions/{runs[0]['id']}/cancel", headers=other.headers)
    assert denied.status_code == 403 and "only the user who started" in denied.json()["detail"]
    own = await client.post(f"/api/v1/executions/{runs[0]['id']}/cancel", headers=viewer.headers)
    by_operator = await client.post(f"/api/v1/executions/{runs[1]['id']}/cancel", headers=operator.headers)
    assert own.status_code == 200 and by_operator.status_code == 200
    audit = await client.get("/api/v1/audit", params={"action": "execution.cancel"}, headers=admin.headers)
    assert {e["actor_name"] for e in audit.json()["items"]} == {"viewer", "operator"}
    # The run names who cancelled it, not only the audit trail; a second request of a run still
    # stopping does not take the first one's place.
    again = await client.post(f"/api/v1/executions/{runs[1]['id']}/cancel", headers=admin.headers)
    assert again.status_code in (200, 409), again.text
    ended = [await wait_for(client, admin, run["id"]) for run in runs]
    assert [(e["status"], e["cancelled_by_name"], e["error_message"]) for e in ended] == [
        ("cancelled", "viewer", "cancelled by viewer"),
        ("cancelled", "operator", "cancelled by operator"),
    ]
    assert ended[1]["cancelled_by"] == operator.id


async def observe_running(
    client: httpx.AsyncClient, who: LoggedIn, ids: list[int], timeout: float = 60
) -> int:
    """Poll until every run has finished; returns the most runs seen `running` at once."""
    most, deadline = 0, time.monotonic() + timeout
    while True:
        page = (await client.get("/api/v1/executions", params={"limit": 100}, headers=who.headers)).json()
        states = {e["id"]: e["status"] for e in page["items"] if e["id"] in ids}
        most = max(most, sum(s == "running" for s in states.values()))
        if all(s in {"success", "failed", "error", "cancelled", "timed_out"} for s in states.values()):
            return most
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)


async def test_per_script_limit_makes_runs_wait(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    script_id = await make_script(client, admin, "sleep 0.5\necho done\n", max_concurrent=1)
    runs = [await start(client, admin, script_id, "local") for _ in range(3)]
    queued = (
        await client.get("/api/v1/executions", params={"status": "pending"}, headers=admin.headers)
    ).json()
    assert queued["total"] >= 2  # the extra runs wait, visibly
    assert await observe_running(client, admin, [r["id"] for r in runs]) == 1
    for r in runs:
        assert (await wait_for(client, admin, r["id"]))["status"] == "success"


@pytest.mark.parametrize("engine_settings", [{"OPSCRAFT_WORKERS": 2}])
async def test_global_limit_is_the_worker_count(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    """At most OPSCRAFT_WORKERS (2 here) scripts execute at once, judged by the scripts' own
    clocks: each prints when it starts and ends. Rows are not the measure: a run's final state is
    committed by the finisher thread after its consumer thread is free again, so for that commit's
    duration a third row may still say `running` while only two scripts execute (seen at load 18)."""
    script_id = await make_script(client, admin, 'echo "$(date +%s%N)"\nsleep 0.5\necho "$(date +%s%N)"\n')
    runs = [await start(client, admin, script_id, "local") for _ in range(5)]
    spans = []
    for r in runs:
        assert (await wait_for(client, admin, r["id"]))["status"] == "success"
        begun, ended = map(int, (await output(client, admin, r["id"])).split())
        spans.append((begun, ended))
    at_once = max(sum(b <= t < e for b, e in spans) for t, _ in spans)
    assert at_once == 2, spans


@pytest.mark.docker
@pytest.mark.parametrize("engine_settings", [{"OPSCRAFT_WORKERS": 20}])
async def test_twenty_concurrent_containers(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    require_docker()
    script_id = await make_script(
        client, admin, 'echo "run $N begins"\nsleep 3\necho "run $N ends"\n', parameters={"N": 0}
    )
    runs = [await start(client, admin, script_id, "docker", parameters={"N": n}) for n in range(20)]
    assert await observe_running(client, admin, [r["id"] for r in runs], timeout=120) >= 10
    for n, r in enumerate(runs):
        final = await wait_for(client, admin, r["id"])
        assert final["status"] == "success", final
        assert await output(client, admin, r["id"]) == f"run {n} begins\nrun {n} ends\n"


@pytest.mark.parametrize("engine_settings", [{"OPSCRAFT_SHUTDOWN_GRACE_SECONDS": 1}])
async def test_shutdown_interrupts_after_the_grace_period(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    short = await start(
        client, admin, await make_script(client, admin, "sleep 0.3\necho finished\n"), "local"
    )
    long = await start(client, admin, await make_script(client, admin, "echo begun\nsleep 60\n"), "local")
    await wait_for(client, admin, long["id"], {"running"})
    await wait_output(client, admin, long["id"], "begun")
    worker = runtime.current().worker
    assert worker is not None
    t0 = time.monotonic()
    await asyncio.to_thread(worker.stop)
    assert time.monotonic() - t0 < 5
    async with runtime.current().db.session() as session:
        done = await session.get(Execution, short["id"])
        interrupted = await session.get(Execution, long["id"])
    assert done is not None and done.status == "success"
    assert interrupted is not None and interrupted.status == "error"
    assert interrupted.error_message == "interrupted by server shutdown"


# --- recovery after SIGKILL of a real server process ------------------------------------------

RECOVERY_SCRIPT = (
    'echo "run $MODE"\nif [ "$MODE" = long ]; then setsid sleep 121 & sleep 120; fi\necho "run $MODE done"\n'
)


def _login(server_url: str, *, register: bool = False) -> dict[str, str]:
    if register:
        httpx.post(
            f"{server_url}/api/v1/auth/register",
            json={"username": "admin", "email": "admin@example.com", "password": "Correct-Horse-9"},
        ).raise_for_status()
    r = httpx.post(
        f"{server_url}/api/v1/auth/login", json={"username": "admin", "password": "Correct-Horse-9"}
    )
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _wait(url: str, headers: dict[str, str], check: Any, timeout: float = 60) -> Any:
    """The JSON body of `url` once `check(body)` holds."""

    def passed() -> Any:
        body = httpx.get(url, headers=headers).json()
        return body if check(body) else None

    return wait_until(passed, f"{url} to pass the check", timeout, 0.1)


def _orphans(data_dir: Path, execution_id: int) -> list[int]:
    """Processes of one local run of the server on `data_dir` (found by their OPSCRAFT_RUN mark,
    `<worker id>@<installation>:<execution id>`: `local_runner.owner_name`)."""
    worker = worker_identity(make_settings(data_dir))
    mark = re.compile(rf"OPSCRAFT_RUN={re.escape(worker)}@[0-9a-f]{{12}}:{execution_id}".encode())
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                environ = (entry / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if any(mark.fullmatch(item) for item in environ):
                found.append(int(entry.name))
    return found


def _scratch(data_dir: Path, execution_id: int) -> list[Path]:
    """The work directories of one local run of the server on `data_dir` (`local_runner.py`)."""
    worker = worker_identity(make_settings(data_dir))
    return list(Path(tempfile.gettempdir()).glob(f"opscraft-work-{worker}@*-{execution_id}-*"))


def test_recovery_after_sigkill(tmp_path: Path) -> None:
    """A long run on each runner (local and Docker) is running, and a third run waits behind them
    (two workers), when the server process is SIGKILLed. The local run's supervisor kills its
    processes and removes its work directory; after a restart both long runs are `error`
    ("interrupted by server restart") with the output they had, the queued one runs, and the
    Docker run's container is gone. (One test, one killed server and one restart for both
    runners: a server start is about 5 s of CPU, and each runner had a test of its own.)"""
    require_docker()
    env = {"OPSCRAFT_LOCAL_RUNNER": "1", "OPSCRAFT_WORKERS": "2", **IMAGES}
    server = start_server(tmp_path / "server", env)
    try:
        headers = _login(server.url, register=True)
        r = httpx.post(
            f"{server.url}/api/v1/scripts",
            json={
                "name": "recover",
                "script_type": "bash",
                "content": RECOVERY_SCRIPT,
                "status": "active",
                "parameters": {"MODE": "short"},
            },
            headers=headers,
        )
        script_id = r.json()["id"]

        def run(mode: str, runner: str) -> int:
            body = {"script_id": script_id, "parameters": {"MODE": mode}, "runner": runner}
            response = httpx.post(f"{server.url}/api/v1/executions", json=body, headers=headers)
            assert response.status_code == 202, response.text
            return int(response.json()["id"])

        long_ids = {runner: run("long", runner) for runner in ("local", "docker")}
        queued_id = run("short", "local")  # behind the two long runs: both workers are busy
        for long_id in long_ids.values():
            _wait(
                f"{server.url}/api/v1/executions/{long_id}/logs",
                headers,
                lambda page: any("run long" in c["content"] for c in page["items"]),
            )
        local_id = long_ids["local"]
        # The local run's script, its detached sleep and the other one (the supervisor, forked
        # from the fork server, carries no mark).
        wait_until(lambda: len(_orphans(server.data_dir, local_id)) == 3, "the local run's 3 processes")
        assert len(_scratch(server.data_dir, local_id)) == 1  # the run's work directory
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait()
        # The supervisor notices the server's death and kills the whole local run ...
        wait_until(lambda: not _orphans(server.data_dir, local_id), "no process outliving the server")
        # ... and removes the work directory it made (before session 50 the server did, so a
        # killed server left it for the next start's sweep: tests/executions/test_local_supervisor.py)
        wait_until(
            lambda: not _scratch(server.data_dir, local_id), "the supervisor removes the work directory"
        )
    finally:
        if server.process.poll() is None:
            stop_server(server)

    server = start_server(tmp_path / "server", env)
    try:
        headers = _login(server.url)
        for long_id in long_ids.values():
            crashed = httpx.get(f"{server.url}/api/v1/executions/{long_id}", headers=headers).json()
            assert crashed["status"] == "error", crashed
            assert crashed["error_message"] == "interrupted by server restart", crashed
            logs = httpx.get(f"{server.url}/api/v1/executions/{long_id}/logs", headers=headers).json()
            assert "".join(c["content"] for c in logs["items"]) == "run long\n"
        finished = _wait(
            f"{server.url}/api/v1/executions/{queued_id}",
            headers,
            lambda e: e["status"] not in {"queued", "running"},
        )
        assert finished["status"] == "success"
        assert not _orphans(server.data_dir, local_id)
        assert not _scratch(server.data_dir, local_id)
        import docker

        labels = [
            f"opscraft.worker={worker_identity(make_settings(server.data_dir))}",
            f"opscraft.execution={long_ids['docker']}",
        ]  # other test sessions on this Docker host have an execution 1 too
        client = docker.from_env()
        assert not client.api.containers(all=True, filters={"label": labels})
        client.close()
    finally:
        stop_server(server)


@pytest.fixture
def quick_stall_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """Requested before the runtime starts, so the worker checks for stalled runs every 0.3 s."""
    from opscraft.execution import worker

    monkeypatch.setattr(worker, "STALL_CHECK_SECONDS", 0.3)


async def _why_queued(who: LoggedIn, execution_id: int) -> str | None:
    async with runtime.current().db.session() as session:
        user = await session.get(User, who.id)
        execution = await session.get(Execution, execution_id)
        assert execution is not None
        return await executions.why_queued(session, Actor(user), execution)


async def test_held_back_run_starts_when_the_limit_is_lifted(
    quick_stall_check: None, client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    script_id = await make_script(client, admin, "sleep 60\n", max_concurrent=1)
    first = await start(client, admin, script_id, "local")
    await wait_for(client, admin, first["id"], {"running"})
    second = await start(client, admin, script_id, "local")
    await asyncio.sleep(0.8)  # the second, were max_concurrent not kept, would be running by now
    assert (await wait_for(client, admin, second["id"], {"queued"}))["status"] == "queued"
    # The run page and the API say why it waits (executions.why_queued), and stop once it runs.
    waiting = (
        "Waiting: this script allows 1 run at a time (Max concurrent runs) and 1 running now; "
        "this run starts when one of them ends."
    )
    assert await _why_queued(admin, second["id"]) == waiting
    r = await client.get(f"/api/v1/executions/{second['id']}", headers=admin.headers)
    assert r.json()["why_queued"] == waiting, r.text
    assert await _why_queued(admin, first["id"]) is None, "a running run waits for nothing"
    r = await client.put(f"/api/v1/scripts/{script_id}", json={"max_concurrent": None}, headers=admin.headers)
    assert r.status_code == 200 and r.json()["max_concurrent"] is None, r.text
    assert (await wait_for(client, admin, second["id"], {"running"}, timeout=10))["status"] == "running"
    assert await _why_queued(admin, second["id"]) is None
    for run in (first, second):
        await client.post(f"/api/v1/executions/{run['id']}/cancel", headers=admin.headers)


@pytest.mark.parametrize("turned_off", [False, "false", 1], ids=["saved", "text", "number"])
@pytest.mark.parametrize("engine_settings", [{"OPSCRAFT_LOCAL_RUNNER": False, "OPSCRAFT_WORKERS": 1}])
async def test_local_runs_queued_before_an_admin_disables_it_do_not_start(
    client: httpx.AsyncClient, admin: LoggedIn, turned_off: Any
) -> None:
    """Also when the setting's row holds what the settings read as off (an older version's or a
    manual edit's text "false" or number 1): the worker took any such value as on."""
    await client.put("/api/v1/settings", json={"local_runner_enabled": True}, headers=admin.headers)
    script_id = await make_script(client, admin, "sleep 60\n")
    blocker = await start(client, admin, script_id, "local")
    await wait_for(client, admin, blocker["id"], {"running"})
    waiting = await start(client, admin, script_id, "local")
    if turned_off is False:
        await client.put("/api/v1/settings", json={"local_runner_enabled": False}, headers=admin.headers)
    else:
        stored = update(AppSetting).where(col(AppSetting.key) == "local_runner_enabled")
        async with runtime.current().db.session() as session:  # not the ORM's: 1 == True to it
            assert (await session.exec(stored.values(value=turned_off))).rowcount == 1
            await session.commit()
    await client.post(f"/api/v1/executions/{blocker['id']}/cancel", headers=admin.headers)
    final = await wait_for(client, admin, waiting["id"])
    assert final["status"] == "error"
    assert final["error_message"] == "the local runner was disabled by an admin after this run was queued"
