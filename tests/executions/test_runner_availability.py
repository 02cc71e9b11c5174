"""A submission's runner decision reads what the live workers offer once.

Field report (CI, tests/scale/test_scale_out.py): Redis froze, both workers said so
(`queue_error`, no runners offered), and a run sent then was refused 409 "no live worker offers the
local runner" where the answer is 503 "no worker can read the job queue". The decision read the
cached availability twice, first for the queue error (the old answer: none) then for the runners,
and a background refresh between the two (the cache is a second old at most) gave the second read
the new answer (no runner). Now both come from one answer (`ports.Offer`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlmodel import update

from opscraft import lifecycle, runtime
from opscraft.db import clock
from opscraft.db.models import RegisteredWorker
from opscraft.execution.ports import Offer, RunnerAvailability
from opscraft.services.executions import QUEUE_RETRY_SECONDS
from tests.conftest import PG_URL, api_app_for, api_client, empty_postgres, make_settings, make_user
from tests.executions.conftest import make_script

ELSEWHERE = "worker-elsewhere"
FROZEN = "Timeout reading from 127.0.0.1:6379"


async def _lose_the_queue() -> None:
    """The other process's worker says, as its heartbeat would, that it cannot read the queue."""
    async with runtime.current().db.session() as session:
        await session.exec(
            update(RegisteredWorker)
            .where(RegisteredWorker.id == ELSEWHERE)  # type: ignore[arg-type]
            .values(runners=[], queue_error=FROZEN, heartbeat_at=clock.now())
        )
        await session.commit()


@dataclass
class LosesTheQueueAfterARead:
    """The process's availability (`client.LiveWorkers`, the workers table), each answer read
    afresh; once `armed`, the worker loses the queue right after the next read: the moment a
    busy server's background refresh lands inside a decision. Stands in for that timing only."""

    live: RunnerAvailability
    armed: bool = False

    async def offered(self) -> Offer:
        self.live.forget()
        answer = await self.live.offered()
        if self.armed:
            self.armed = False
            await _lose_the_queue()
        return answer

    def forget(self) -> None:
        self.live.forget()


@pytest.fixture
async def web(
    backend: str, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, LosesTheQueueAfterARead]]:
    """The API of a process with no worker of its own; one worker of another process offers the
    local runner (its row, written here as its heartbeat would)."""
    url = PG_URL if backend == "postgresql" else None
    if url:
        await empty_postgres(url)
    settings = make_settings(tmp_path, url, OPSCRAFT_LOCAL_RUNNER=True)
    rt = await lifecycle.start(settings, worker=False)
    try:
        async with rt.db.session() as session:
            session.add(
                RegisteredWorker(
                    id=ELSEWHERE,
                    host_name="elsewhere",
                    pid=1,
                    runners=["local"],
                    slots=4,
                    heartbeat_at=clock.now(),
                )
            )
            await session.commit()
        assert rt.executions is not None
        availability = LosesTheQueueAfterARead(rt.executions.availability)
        rt.executions.availability = availability
        async with api_client(api_app_for(settings)) as client:
            yield client, availability
    finally:
        await lifecycle.stop()


async def test_a_run_sent_as_the_workers_lose_the_queue_is_accepted_or_told_so_never_no_worker(
    web: tuple[httpx.AsyncClient, LosesTheQueueAfterARead],
) -> None:
    client, availability = web
    admin = await make_user(client, "admin")
    script = await make_script(client, admin, "echo hi\n")
    body = {"script_id": script, "runner": "local"}
    sent = await client.post("/api/v1/executions", json=body, headers=admin.headers)
    assert sent.status_code == 202, sent.text  # the worker offers the local runner
    availability.armed = True
    sent = await client.post("/api/v1/executions", json=body, headers=admin.headers)
    # The decision read the worker's state before it lost the queue: accepted, queued until a
    # worker reads the queue again (before, the runners were read again: 409 "no live worker").
    assert sent.status_code == 202, sent.text
    assert sent.json()["status"] == "queued"
    sent = await client.post("/api/v1/executions", json=body, headers=admin.headers)
    assert sent.status_code == 503, sent.text
    assert f"no worker can read the job queue ({FROZEN})" in sent.json()["detail"], sent.text
    assert sent.headers["Retry-After"] == str(QUEUE_RETRY_SECONDS)
