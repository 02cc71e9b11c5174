"""One database, one Redis job queue, across a Redis restart without persistence while every web
process is down: real `opscraft serve --workers 0` and `opscraft worker` processes on a private
PostgreSQL cluster and a private Redis (`--save ''`, no AOF), so its queue id is lost.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from opscraft.execution import run_events
from tests.scale.cluster import (
    Cluster,
    Proc,
    RedisServer,
    migrated_sqlite_url,
    private_cluster,
    started_or_ended,
    wait_for,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

# The record of the web's queue stays fresh for the whole test (LOST); a process on another queue
# waits 2 heartbeats and a dispatcher round (4 s) before it stops.
HEARTBEAT, LOST = 1.0, 60.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One private cluster for the module's tests (PostgreSQL's initdb and the first start's
    migrations are seconds of CPU); each test says what it needs of it (`_only_the_web`). Its
    five workers are forked (`forked_workers`): what they check is what they do once started."""
    env = {"OPSCRAFT_WORKER_HEARTBEAT_SECONDS": str(HEARTBEAT), "OPSCRAFT_WORKER_LOST_SECONDS": str(LOST)}
    with private_cluster(tmp_path_factory.mktemp("queue-restart"), env, forked_workers=True) as c:
        yield c


def _started(proc: Proc) -> bool:
    """Whether `proc` (an `opscraft worker` just started) said ready, once it did or exited."""
    wait_for(lambda: started_or_ended(proc), 120, f"{proc.name} to start or stop")
    return proc.alive() and "configuration error" not in proc.log()


def test_a_redis_restart_without_persistence_while_the_web_is_down_refuses_no_legit_start(
    cluster: Cluster,
) -> None:
    """Web down, Redis restarted without its data (a new queue id nobody recorded): a worker
    started then starts at once, and so does the web after it. Both used to wait for a web
    process to record the new id; none was running, so the worker stopped after that wait with
    "the web processes of this database use another Redis job queue" (same Redis, same prefix)
    and the web started only once its own old record went stale. Another prefix or another
    Redis server is still refused in that window."""
    web = cluster.web("web")
    first = cluster.worker("w1")
    assert _started(first), first.log()
    assert first.stop() == 0, first.log()
    web.stop()
    restarted: RedisServer = cluster.redis  # type: ignore[attr-defined]
    restarted.stop()
    restarted.start()

    worker = cluster.worker("w2")
    assert _started(worker), worker.log()
    other = RedisServer(cluster.root / "other-redis")
    other.start()
    try:
        strangers = [
            cluster.worker("wp", env={"OPSCRAFT_REDIS_PREFIX": "another-prefix"}),
            cluster.worker("wr", env={"REDIS_URL": other.url}),
        ]
        for stranger in strangers:
            wait_for(lambda s=stranger: not s.alive(), 120, f"{stranger.name} on another queue to stop")
            assert stranger.stop() == 1, stranger.log()
            assert "REDIS_URL: the web processes of this database use another Redis" in stranger.log()
    finally:
        other.stop()
    cluster.web("web")  # waits until healthy; raises (with its log) if it stopped
    assert worker.alive(), worker.log()


def _only_the_web(cluster: Cluster) -> Proc:
    """The cluster's web process `web` as the only process running: the one an earlier test left
    running (a start is about 5 s of CPU), else a new one; every other process stopped (what an
    earlier test left: its checks were its own)."""
    for name, proc in cluster.procs.items():
        if name != "web":
            proc.stop()
    web = cluster.procs.get("web")
    return web if web is not None and web.alive() else cluster.web("web")


def test_a_running_web_process_claims_the_queue_again_after_a_redis_restart(cluster: Cluster) -> None:
    """Redis restarted without persistence under a running web process: `<prefix>:installation`
    (the database the queue serves) was empty until some process started, so a stray worker on
    another database starting first claimed the queue, and the installation's own processes
    were refused from then on. The web process sets the key again within a heartbeat period
    (and a round of its run event dispatcher), so the stray worker is the one refused."""
    _only_the_web(cluster)
    server: RedisServer = cluster.redis  # type: ignore[attr-defined]
    key = "opscraft:installation"

    def claimed() -> bytes | None:
        client = redis.Redis(port=server.port, socket_timeout=2)
        try:
            return client.get(key)
        finally:
            client.close()

    installation = claimed()
    assert installation, "the web process claimed no queue at start"
    server.stop()
    server.start()
    assert claimed() is None  # no persistence: the claim is gone with the restart
    # Claimed again by the running web process: a heartbeat period plus a dispatcher round (2 s).
    assert wait_for(claimed, 5 * HEARTBEAT + 2 * run_events.POLL_SECONDS, "the claim to be set again") == (
        installation
    )
    stray = cluster.worker("stray", env={"DATABASE_URL": migrated_sqlite_url(cluster.root / "stray")})
    assert not _started(stray), stray.log()
    assert stray.stop() == 1, stray.log()
    assert "REDIS_URL: the job queue there serves another OpsCraft database" in stray.log()
    assert claimed() == installation
