"""A process with no execution worker of its own (SQLite): its services still enqueue, choose a
runner from the live workers, follow a run to its end and cancel it, while a separate
`opscraft serve` process on the same data directory runs the work."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from opscraft import lifecycle, runtime
from opscraft.db.models import Execution, RegisteredWorker, User
from opscraft.execution.events import LogEvent, StatusEvent
from opscraft.execution.worker import worker_identity
from tests.conftest import PASSWORD, LiveServer, make_settings, start_server, stop_server
from tests.executions.conftest import IMAGES
from tests.waiting import until


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = start_server(tmp_path / "shared", {"OPSCRAFT_LOCAL_RUNNER": "1", **IMAGES})
    try:
        yield live
    finally:
        stop_server(live)


async def _wait_status(execution_id: int, wanted: set[str], timeout: float = 30) -> Execution:
    """The execution's row once its status is one of `wanted`."""

    async def reached() -> Execution | None:
        async with runtime.current().db.session() as session:
            row = await session.get(Execution, execution_id)
        assert row is not None
        return row if row.status in wanted else None

    return await until(reached, f"execution {execution_id} to be {sorted(wanted)}", timeout, 0.05)


async def test_services_without_a_worker_here_use_a_worker_elsewhere(server: LiveServer) -> None:
    from opscraft.services import executions
    from opscraft.services.actor import Actor

    r = httpx.post(
        f"{server.url}/api/v1/auth/register",
        json={"username": "admin", "email": "admin@example.com", "password": PASSWORD},
    )
    assert r.status_code in (200, 201), r.text
    token = httpx.post(
        f"{server.url}/api/v1/auth/login", json={"username": "admin", "password": PASSWORD}
    ).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}

    def script(content: str) -> int:
        body = {
            "name": f"remote-{time.monotonic_ns()}",
            "script_type": "bash",
            "content": content,
            "status": "active",
            "acknowledge_risks": True,
        }
        response = httpx.post(f"{server.url}/api/v1/scripts", json=body, headers=headers)
        assert response.status_code == 201, response.text
        return int(response.json()["id"])

    printing = script('for i in 1 2 3; do echo "line $i"; sleep 0.3; done\n')
    sleeping = script("echo begun\nsleep 60\n")
    rt = await lifecycle.start(make_settings(server.data_dir, OPSCRAFT_LOCAL_RUNNER=True), worker=False)
    try:
        assert rt.worker is None
        async with rt.db.session() as session:
            admin = await session.get(User, 1)
            options = await executions.runner_options(session)
            offered = (
                await session.get(RegisteredWorker, worker_identity(make_settings(server.data_dir)))
            ).runners
            assert options.local and options.docker == ("docker" in offered)  # from the live worker
            started = await executions.create(session, Actor(admin), printing, {}, runner="local")
        events = []
        async with asyncio.timeout(60):
            async for event in executions.follow(Actor(admin), started.id):
                events.append(event)
        logs = "".join(e.content for e in events if isinstance(e, LogEvent))
        assert logs == "line 1\nline 2\nline 3\n"
        final = events[-1]
        assert isinstance(final, StatusEvent) and final.final and final.status == "success"
        assert next(e.status for e in events if isinstance(e, StatusEvent)) in {"queued", "running"}
        row = await _wait_status(started.id, {"success"})
        assert row.worker_id == worker_identity(make_settings(server.data_dir))

        async with rt.db.session() as session:
            long = await executions.create(session, Actor(admin), sleeping, {}, runner="local")
        await _wait_status(long.id, {"running"})
        t0 = time.monotonic()
        async with rt.db.session() as session:
            await executions.cancel(session, Actor(admin), long.id)
        cancelled = await _wait_status(long.id, {"cancelled", "error", "success", "failed"})
        assert cancelled.status == "cancelled"
        assert time.monotonic() - t0 < 10
    finally:
        await lifecycle.stop()
