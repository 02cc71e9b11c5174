"""The Workers panel's and `GET /api/v1/workers`' states (services/workers.py): a worker that
another process declared lost (killed, crashed, cut off: `store.end_lost`) is told from one that
stopped cleanly (`store.deregister`), and is alive again once it heartbeats. A worker id belongs
to one live process at a time (`store.register`)."""

from __future__ import annotations

import os
import socket
import subprocess
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import update

from opscraft import runtime
from opscraft.db.models import RegisteredWorker
from opscraft.db.types import utcnow
from opscraft.execution import store
from opscraft.execution.store import WorkerInfo
from tests.conftest import LoggedIn


async def _step(step: object, *args: object) -> object:
    async with runtime.current().db.engine.begin() as conn:
        return await conn.run_sync(step, *args)  # type: ignore[arg-type]


async def _states(client: httpx.AsyncClient, admin: LoggedIn) -> dict[str, str]:
    r = await client.get("/api/v1/workers", headers=admin.headers)
    assert r.status_code == 200, r.text
    return {w["id"]: w["state"] for w in r.json()["items"]}


async def test_a_lost_worker_is_shown_lost_and_a_clean_stop_stopped(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    for name in ("killed", "stopped", "survivor"):
        await _step(store.register, WorkerInfo(name, "host", 1, 2), ["docker"])
    assert {k: v for k, v in (await _states(client, admin)).items() if k in {"killed", "stopped"}} == {
        "killed": "alive",
        "stopped": "alive",
    }
    # "killed" heartbeated last long ago (SIGKILL); "stopped" got SIGTERM and said so.
    long_ago = utcnow() - timedelta(seconds=runtime.current().settings.worker_lost_seconds + 60)
    await _step(
        lambda conn: conn.execute(
            update(RegisteredWorker).where(RegisteredWorker.id == "killed").values(heartbeat_at=long_ago)
        )
    )
    assert (await _states(client, admin))["killed"] == "late", "not yet declared lost"
    await _step(store.deregister, "stopped")
    lost, _ = await _step(store.end_lost, "survivor", utcnow() - timedelta(seconds=30))  # type: ignore[misc]
    assert lost == ["killed"]
    states = await _states(client, admin)
    # Both showed "stopped": an admin could not tell a crash from a clean stop.
    assert states["killed"] == "lost" and states["stopped"] == "stopped", states

    await _step(store.heartbeat, "killed", ["docker"])  # it was only cut off, and is back
    assert (await _states(client, admin))["killed"] == "alive"
    await _step(store.deregister, "killed")
    assert (await _states(client, admin))["killed"] == "stopped"


async def test_a_late_worker_says_how_long_it_has_been_silent(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """Past OPSCRAFT_WORKER_LOST_SECONDS without a heartbeat and not yet declared lost (no live
    process has watched the database that long: all of them restarted, or came out of a database
    outage), a worker is `late`. It lost what `alive` said of it: `silent_seconds` went null and
    the Workers page showed a bare "late", which neither the page nor the docs explain, for the
    most silent worker of all."""
    from opscraft.services import workers
    from opscraft.ui.workers import _rows

    await _step(store.register, WorkerInfo("frozen-long", "host", 1, 2), ["docker"])
    silent = runtime.current().settings.worker_lost_seconds + 60
    long_ago = utcnow() - timedelta(seconds=silent)
    await _step(
        lambda conn: conn.execute(
            update(RegisteredWorker).where(RegisteredWorker.id == "frozen-long").values(heartbeat_at=long_ago)
        )
    )
    r = await client.get("/api/v1/workers", headers=admin.headers)
    late = next(w for w in r.json()["items"] if w["id"] == "frozen-long")
    assert late["state"] == "late" and silent <= late["silent_seconds"] <= silent + 30, late
    async with runtime.current().db.session() as session:
        listed = [w for w in await workers.statuses(session) if w.id == "frozen-long"]
    (row,) = _rows(listed)
    assert row["state"].startswith(f"late, not answering: no heartbeat for {late['silent_seconds']}"), row
    assert "not yet declared lost" in row["state"], row


async def test_a_worker_may_not_start_under_the_id_of_another_live_worker(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """Started with the `--name` of a live worker on another host (a copied command line), a
    worker took the id over: its start ended that worker's running runs as "interrupted by
    server restart" and removed its containers as its own leftovers. It is now refused, with
    what to do; a restart on the same host after a crash, and a lost worker's id, are free."""
    live_since = utcnow() - timedelta(seconds=runtime.current().settings.worker_lost_seconds)
    await _step(store.register, WorkerInfo("build-1", "host-a", 4242, 2), ["docker"], None, live_since)

    with pytest.raises(store.WorkerIdInUse) as refused:
        await _step(store.register, WorkerInfo("build-1", "host-b", 77, 2), ["docker"], None, live_since)
    assert "in use by a live worker on host-a (pid 4242" in str(refused.value)
    assert "another --name" in str(refused.value)
    async with runtime.current().db.session() as session:
        kept = await session.get(RegisteredWorker, "build-1")
    assert kept is not None and (kept.host_name, kept.pid) == ("host-a", 4242), "the row was not taken"

    # On this host: a live other process holds it; once that process is gone (a crash, restarted
    # at once), the id is free.
    host = socket.gethostname()
    await _step(store.register, WorkerInfo("build-2", host, os.getppid(), 2), ["docker"], None, live_since)
    with pytest.raises(store.WorkerIdInUse):
        await _step(store.register, WorkerInfo("build-2", host, os.getpid(), 2), ["docker"], None, live_since)
    await _step(store.register, WorkerInfo("build-3", host, _exited_pid(), 2), ["docker"], None, live_since)
    await _step(store.register, WorkerInfo("build-3", host, os.getpid(), 2), ["docker"], None, live_since)

    # Declared lost, or stopped: free for anyone.
    await _step(store.end_lost, "survivor", utcnow() + timedelta(seconds=1))
    await _step(store.register, WorkerInfo("build-1", "host-b", 77, 2), ["docker"], None, live_since)
    assert (await _states(client, admin))["build-1"] == "alive"


def _exited_pid() -> int:
    """The pid of a process that has exited."""
    done = subprocess.Popen(["true"])
    done.wait()
    return done.pid


async def test_a_restarted_workers_runs_end_cancelled_where_a_cancel_was_asked(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """A worker that crashed and restarts under its id ends its runs left `running`
    (`store.recover`): one a user asked to cancel meanwhile ends `cancelled` by that user (the
    cancel could not land on the dead process), the others `error`, on either database."""
    from opscraft.db.models import Execution
    from tests.history import seeding

    script_id = await seeding.script()
    asked, left = [await seeding.execution(script_id, None) for _ in range(2)]
    cancel = {"cancel_requested": True, "cancelled_by": admin.id, "cancelled_by_name": admin.username}
    for execution_id, values in ((asked, cancel), (left, {})):
        change = update(Execution).where(Execution.id == execution_id).values(worker_id="w-crash", **values)
        await _step(lambda conn, change=change: conn.execute(change))
    count, _ = await _step(store.recover, "w-crash")  # type: ignore[misc]
    assert count == 2
    for execution_id, expected in (
        (asked, ("cancelled", f"cancelled by {admin.username}")),
        (left, ("error", store.RESTART_MESSAGE)),
    ):
        r = await client.get(f"/api/v1/executions/{execution_id}", headers=admin.headers)
        assert (r.json()["status"], r.json()["error_message"]) == expected, r.json()
