"""A worker claims only runs of the runners it offers now, with real processes: a web-only
`opscraft serve --workers 0`, an `opscraft worker` whose Docker engine does not answer (its
DOCKER_HOST names a socket nobody listens on) and whose local runner is off, and one that offers
both, on a private PostgreSQL cluster and Redis. The tests share the cluster and run in file order.
"""

from __future__ import annotations

import secrets
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opscraft.services.executions import UNOFFERED
from tests.executions.conftest import IMAGES, require_docker
from tests.scale.cluster import FINAL, Cluster, Proc, private_cluster, wait_for
from tests.ui_journey import log_in

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.docker]

HEARTBEAT, LOST = 0.5, 4.0
SUFFIX = secrets.token_hex(3)  # worker ids label containers on a Docker host other sessions share
BLIND, ABLE = f"blind-{SUFFIX}", f"able-{SUFFIX}"
ENGINE = Path("/var/run/docker.sock")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    require_docker()
    env = {
        "OPSCRAFT_WORKER_HEARTBEAT_SECONDS": str(HEARTBEAT),
        "OPSCRAFT_WORKER_LOST_SECONDS": str(LOST),
        "OPSCRAFT_WARM_POOL_SIZE": "0",  # a worker killed here leaves no warm container behind
        "OPSCRAFT_SHUTDOWN_GRACE_SECONDS": "5",
        **IMAGES,
    }
    # Both workers forked: their engine and runners are read from the environment after the fork.
    with private_cluster(tmp_path_factory.mktemp("offers"), env, forked_workers=True) as c:
        web = c.web("web")
        # Its engine's socket: absent until the last test links it to the real engine's.
        blind = {"DOCKER_HOST": f"unix://{_blind_socket(c)}", "OPSCRAFT_LOCAL_RUNNER": "0"}
        c.worker(BLIND, slots=4, env=blind)
        c.worker(ABLE, slots=1)
        c.wait_workers_alive(web, {BLIND, ABLE})
        yield c


def _blind_socket(c: Cluster) -> Path:
    return c.root / "blind-engine.sock"


def _worker(c: Cluster, name: str) -> dict[str, object]:
    rows = c.api(c.procs["web"]).get("/api/v1/workers").json()["items"]
    return next(w for w in rows if w["id"] == name)


def test_a_worker_whose_engine_is_down_leaves_docker_runs_to_one_whose_engine_answers(
    cluster: Cluster,
) -> None:
    """The worker without an engine offers nothing; it claimed Docker runs all the same (it
    read the queue with 4 consumer threads to the other's 1) and each ended `error` at once
    ("the Docker engine does not answer"). Now every Docker run is the other worker's."""
    assert _worker(cluster, BLIND)["runners"] == []
    _all_by_able(cluster, "docker")


def test_a_worker_whose_local_runner_is_off_leaves_local_runs_to_one_that_offers_it(
    cluster: Cluster,
) -> None:
    """The local runner is on for one worker (OPSCRAFT_LOCAL_RUNNER) and off for the other (the
    setting is off too): the second claimed local runs and ended each as "the local runner was
    disabled by an admin after this run was queued". Now every local run is the first one's."""
    _all_by_able(cluster, "local")


def _all_by_able(cluster: Cluster, runner: str) -> None:
    """Six runs on `runner` sent at once all run, and all on the worker that offers it."""
    web = cluster.procs["web"]
    script_id = cluster.script(web, f"echo {runner}-run\n")
    runs = [cluster.run(web, script_id, runner=runner) for _ in range(6)]
    for run in runs:
        final = cluster.wait_status(web, run, FINAL)
        assert final["status"] == "success", final
        assert final["worker_id"] == ABLE, final
    assert f"{runner}-run" in cluster.output(web, runs[0])


@pytest.mark.browser
def test_a_docker_run_no_live_worker_offers_waits_saying_why_and_starts_once_one_does(
    page: Any, cluster: Cluster
) -> None:
    """The only worker with an engine stops answering (SIGSTOP, then SIGKILL) with a Docker run
    just sent: the run neither ends nor is taken by the worker without an engine; it stays
    queued, and the API and the run page, open meanwhile (the run's row does not change), say
    why once no live worker offers Docker. When that worker's engine answers (its socket now
    reaches the real engine) it offers Docker at its next heartbeat and runs the waiting run."""
    web = cluster.procs["web"]
    able: Proc = cluster.procs[ABLE]
    assert able.process is not None
    script_id = cluster.script(web, "echo waited\n")
    able.process.send_signal(signal.SIGSTOP)
    try:
        run = cluster.run(web, script_id, runner="docker")  # the web still counts it as live
    finally:
        able.stop(signal.SIGKILL)
    log_in(page, web, "admin", then=f"/executions/{run}")  # type: ignore[arg-type]

    def waiting() -> dict[str, object] | None:
        row = cluster.execution(web, run)
        assert row["status"] == "queued", row
        return row if row["why_queued"] == UNOFFERED["docker"] else None

    row = wait_for(waiting, 60, "the API to say why the Docker run waits", every=0.2)
    assert row["worker_id"] is None, row
    assert _worker(cluster, BLIND)["runners"] == []
    note = page.get_by_test_id("queued-note")
    note.wait_for(timeout=30_000)
    assert "no live worker offers the Docker runner now" in note.inner_text()

    _blind_socket(cluster).symlink_to(ENGINE)  # the engine answers this worker again
    final = cluster.wait_status(web, run, FINAL, timeout=60)
    assert final["status"] == "success", final
    assert final["worker_id"] == BLIND, final
    assert final["why_queued"] is None
    page.get_by_test_id("status-success").wait_for(timeout=30_000)
    assert note.count() == 0
    assert "waited" in cluster.output(web, run)
    assert _worker(cluster, BLIND)["runners"] == ["docker"]
