"""The run page of a run whose worker does not answer (a web process and a worker process on
PostgreSQL and Redis, the worker frozen with SIGSTOP): pressing Cancel says the cancel waits on
that worker and until when, instead of nothing; once the worker runs again it cancels the run
itself and the page shows it cancelled, the note gone."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.scale.cluster import Cluster, PostgresCluster, RedisServer, wait_for
from tests.ui_journey import log_in

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.browser]

HEARTBEAT = 4.0  # the cancel below comes within the grace (8 s) of the last heartbeat


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    redis = RedisServer(tmp_path / "redis")
    pg = PostgresCluster()
    redis.start()
    pg.init()
    pg.start()
    env = {"OPSCRAFT_WORKER_HEARTBEAT_SECONDS": str(HEARTBEAT), "OPSCRAFT_WORKER_LOST_SECONDS": "120"}
    c = Cluster(tmp_path, pg.url, redis.url, env)
    try:
        yield c
    finally:
        for proc in c.procs.values():
            if proc.process is not None and proc.alive():
                proc.process.send_signal(signal.SIGCONT)
        c.stop_all()
        pg.stop()
        pg.remove()
        redis.stop()


def test_a_cancel_waiting_on_a_frozen_worker_says_so_on_the_run_page(page: Any, cluster: Cluster) -> None:
    web = cluster.web("web")
    worker = cluster.worker("frozen", slots=1)
    cluster.wait_workers_alive(web, {"frozen"})
    script_id = cluster.script(web, "echo begun\nsleep 300\n")
    execution_id = cluster.run(web, script_id)
    cluster.wait_status(web, execution_id, {"running"})
    log_in(page, web, "admin", then=f"/executions/{execution_id}")  # type: ignore[arg-type]
    page.get_by_test_id("status-running").wait_for()
    assert worker.process is not None
    os.kill(worker.process.pid, signal.SIGSTOP)

    def silent() -> bool:
        beat = datetime.fromisoformat(_worker(cluster, web)["heartbeat_at"])
        return (datetime.now(UTC) - beat).total_seconds() > 3 * HEARTBEAT

    # Cancelled at once: its worker has not missed two heartbeats yet, the note comes by itself.
    page.get_by_test_id("cancel-button").click()
    page.get_by_test_id("cancel-confirm").click()
    note = page.get_by_test_id("cancel-pending")
    note.wait_for(timeout=30_000)
    assert "Cancel pending: worker frozen has not answered for" in note.inner_text()
    assert "declared lost (120 s without a heartbeat)" in note.inner_text()
    assert cluster.execution(web, execution_id)["status"] == "running"

    # The Workers page said `alive` and nothing else until the worker was declared lost.
    wait_for(silent, 60, "the worker to miss its heartbeats")
    frozen = _worker(cluster, web)
    assert frozen["state"] == "alive" and frozen["silent_seconds"] >= 1, frozen
    page.goto(f"{web.url}/workers")
    state = page.get_by_test_id("workers-table").locator("tr", has_text="frozen")
    state.filter(has_text="alive, not answering: no heartbeat for").wait_for()
    page.goto(f"{web.url}/executions/{execution_id}")
    page.get_by_test_id("cancel-pending").wait_for()

    os.kill(worker.process.pid, signal.SIGCONT)
    page.get_by_test_id("status-cancelled").wait_for(timeout=60_000)
    assert page.get_by_test_id("cancel-pending").count() == 0
    wait_for(lambda: _worker(cluster, web)["silent_seconds"] is None, 30, "the worker to heartbeat again")


def _worker(cluster: Cluster, web: Any) -> dict[str, Any]:
    """The worker `frozen` as `GET /api/v1/workers` lists it."""
    rows = cluster.api(web).get("/api/v1/workers").json()["items"]
    return dict(next(w for w in rows if w["id"] == "frozen"))
