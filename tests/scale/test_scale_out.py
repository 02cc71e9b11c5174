"""Scale-out with real processes: one web-only `opscraft serve --workers 0`, two `opscraft worker`
processes, a private PostgreSQL cluster and a private Redis (both started here, so restarting
them disturbs nobody else), local and Docker runners. The workers are forked from one process that
imported OpsCraft once (tests/process_forks.py), but for the start-up test's and those whose clock
libfaketime moves, which start afresh, as the web processes do (`Cluster.web`).

The tests share one cluster (module scope) and run in file order; the destructive ones (killing a
worker, restarting Redis and PostgreSQL) come last and leave the cluster working.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from tests import migrated_sqlite
from tests.automation.test_webhooks import signed
from tests.conftest import ROOT, require_service
from tests.executions.conftest import IMAGES, require_docker
from tests.scale.cluster import (
    FINAL,
    Cluster,
    PostgresCluster,
    Proc,
    RedisServer,
    migrated_sqlite_url,
    private_cluster,
    started_or_ended,
    wait_for,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

HEARTBEAT, LOST = 1.0, 4.0
SUFFIX = secrets.token_hex(3)  # worker ids label containers on a Docker host other sessions share
WA, WB = f"wa-{SUFFIX}", f"wb-{SUFFIX}"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    env = {
        "OPSCRAFT_WORKER_HEARTBEAT_SECONDS": str(HEARTBEAT),
        "OPSCRAFT_WORKER_LOST_SECONDS": str(LOST),
        "OPSCRAFT_SHUTDOWN_GRACE_SECONDS": "5",
        **IMAGES,
    }
    # The imports spared at each of the module's dozen worker starts.
    with private_cluster(tmp_path_factory.mktemp("scale"), env, forked_workers=True) as c:
        web = c.web("web")
        c.worker(WA)
        c.worker(WB)
        c.wait_workers_alive(web, {WA, WB})
        yield c


def _web(c: Cluster) -> Proc:
    return c.procs["web"]


# Issue 13's start-up bound, and what the bare imports of `LIBRARIES` cost on the quiet machine
# it held on (CPU seconds).
START_SECONDS = 2.0
REFERENCE_BARE_SECONDS = 0.70
LIBRARIES = (
    "import sqlalchemy.ext.asyncio, asyncpg, alembic, docker, redis, huey, pydantic_settings, sqlmodel"
)
# Python code printing the CPU seconds (user + system) its interpreter took to import `LIBRARIES`.
BARE_IMPORT_CPU = f"{LIBRARIES}; import os, sys; print(sum(os.times()[:2]))"


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process (/proc/<pid>/stat fields 14 and 15, in ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_worker_imports_no_nicegui_and_starts_fast(cluster: Cluster) -> None:
    # One fresh interpreter: the bare imports of the worker's libraries first (their CPU, the
    # baseline below), then the worker's own modules, which must not bring in the web's.
    probe = (
        f"{BARE_IMPORT_CPU}; import opscraft.cli, opscraft.cli.worker, opscraft.lifecycle,"
        " opscraft.execution.transport; opscraft.cli.build_parser();"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('nicegui', 'fastapi', 'uvicorn')))"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    bare, web_modules = out.stdout.splitlines()
    assert web_modules == "[]", out.stdout
    # Issue 13: the worker "starts in under 2 s". Measured as CPU seconds until it registered
    # (wall time on a shared 2-core machine measures the neighbours), scaled by this machine's
    # speed: the bare import of the libraries it needs took REFERENCE_BARE_SECONDS on the quiet
    # machine the 2 s were set on, so the bound is 2 s times how much slower the same imports
    # are here (1.39-1.70 s on a slower machine, quiet, where the worker took 3.2-3.4 s: 2.0-2.5
    # times the bare imports, 1.4-1.75 s on the reference machine). Contention changes within
    # seconds at a load of 8, so the bare imports are measured just before and just after the
    # start and the slower counts (1.01 s before a 2.02 s start failed a CI run whose load moved).
    baseline = float(bare)
    web = _web(cluster)
    name = f"wc-{SUFFIX}"
    started = time.monotonic()
    proc = cluster.worker(name, slots=1, real=True)  # its interpreter's start is what is measured
    try:
        cluster.wait_workers_alive(web, {name})
        wall = time.monotonic() - started
        assert proc.process is not None
        cpu = _cpu_seconds(proc.process.pid)
        baseline = max(baseline, _bare_import_cpu())
        print(
            f"worker start-up: {cpu:.2f} s CPU (bare library imports {baseline:.2f} s), {wall:.2f} s wall, "
            f"load average {os.getloadavg()[0]:.1f}"
        )
        bound = START_SECONDS * max(1.0, baseline / REFERENCE_BARE_SECONDS)
        assert cpu < bound, (
            f"worker start-up took {cpu:.2f} s CPU, over {bound:.2f} s: {START_SECONDS} s on a machine "
            f"importing the bare libraries in {REFERENCE_BARE_SECONDS} s (here {baseline:.2f} s)"
        )
    finally:
        # Stopped with SIGTERM whatever the outcome: it deregisters, so the next test counts
        # only the module's two workers (a killed one would stay "alive" for LOST seconds).
        assert proc.stop(signal.SIGTERM) == 0, proc.log()
    rows = cluster.api(web).get("/api/v1/workers").json()["items"]
    assert next(w for w in rows if w["id"] == name)["state"] == "stopped"
    assert "ready" in proc.log() and "stopping" in proc.log()
    # Its last line says the stop is done (it ended at "stopping": had it drained, or hung?).
    assert proc.log().rstrip().endswith(f"worker {name} stopped"), proc.log()


def _bare_import_cpu() -> float:
    """CPU seconds (user + system) a fresh interpreter spends importing the worker's libraries."""
    bare = subprocess.run([sys.executable, "-c", BARE_IMPORT_CPU], capture_output=True, text=True, check=True)
    return float(bare.stdout)


def test_workers_panel_api_health_and_metrics(cluster: Cluster) -> None:
    web = _web(cluster)
    client = cluster.api(web)
    rows = {w["id"]: w for w in client.get("/api/v1/workers").json()["items"]}
    assert rows[WA]["state"] == rows[WB]["state"] == "alive"
    assert rows[WA]["slots"] == 4 and "local" in rows[WA]["runners"]
    health = client.get("/api/v1/health").json()
    assert health["workers"] >= 2 and health["queue"] == 0 and health["redis"] == "connected"
    text = client.get("/metrics").text
    assert "opscraft_workers_alive 2.0" in text
    assert f'opscraft_worker_free_slots{{worker="{WA}"}} 4.0' in text
    assert "opscraft_queue_depth 0.0" in text
    assert 'opscraft_http_requests_total{method="GET",route="/api/v1/workers",status="200"}' in text


def _http_count(client: httpx.Client, route: str, method: str, status: str) -> float:
    """`opscraft_http_requests_total{route, method, status}` in one scrape of `client`'s web process."""
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == "opscraft_http_requests_total" and sample.labels == {
                "route": route,
                "method": method,
                "status": status,
            }:
                return sample.value
    return 0.0


def test_hundred_runs_over_both_workers_each_exactly_once(cluster: Cluster, tmp_path: Path) -> None:
    web = _web(cluster)
    marker = tmp_path / "executions.log"
    script = cluster.script(
        web, f'echo "$$" >> {marker}\nfor i in $(seq 1 20); do echo "line $i of 20"; done\n'
    )
    ids = [cluster.run(web, script) for _ in range(100)]
    expected = "".join(f"line {i} of 20\n" for i in range(1, 21))

    def ended() -> bool:
        # Two counts of the script's runs not yet ended (not a read of each run every 0.05 s:
        # 20 requests a second the web process answered while it was to hand out the runs).
        client = cluster.api(web)
        return not any(
            client.get(
                "/api/v1/executions", params={"script_id": script, "status": status, "limit": 1}
            ).json()["total"]
            for status in ("queued", "running")
        )

    wait_for(ended, 300, "the hundred runs to end", every=0.25)
    params = {"script_id": script, "limit": 500}
    rows = cluster.api(web).get("/api/v1/executions", params=params).json()["items"]
    assert sorted(r["id"] for r in rows) == sorted(ids)
    assert [r for r in rows if r["status"] != "success"] == []
    assert {r["worker_id"] for r in rows} == {WA, WB}
    for execution_id in ids:
        assert cluster.output(web, execution_id) == expected
    assert len(marker.read_text().split()) == 100  # 100 runs, 100 executions: none ran twice


def _watch(
    cluster: Cluster, web: Proc, execution_id: int, after: int = 0, stop_after: int | None = None
) -> list[dict[str, Any]]:
    """Messages of the execution's WebSocket from `after` until its end (or `stop_after` logs)."""
    import websockets

    assert web.url
    query = f"token={cluster.admin_token(web)}&after={after}"
    url = f"{web.url.replace('http', 'ws')}/ws/executions/{execution_id}?{query}"

    async def read() -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        async with websockets.connect(url, open_timeout=30) as ws:
            async for raw in ws:
                message = json.loads(raw)
                messages.append(message)
                if message["type"] == "end":
                    break
                if stop_after is not None and sum(m["type"] == "log" for m in messages) >= stop_after:
                    break
        return messages

    return asyncio.run(asyncio.wait_for(read(), 300))


def _check_lines(logs: list[dict[str, Any]], count: int) -> None:
    seqs = [m["seq"] for m in logs]
    assert seqs == sorted(set(seqs)), "a line came twice or out of order"
    text = "".join(m["content"] for m in logs)
    assert text == "".join(f"tick {i}\n" for i in range(1, count + 1))


def _count_on_both(a: httpx.Client, b: httpx.Client) -> None:
    route, method, status = "/api/v1/executions/{execution_id}", "GET", "404"
    before = _http_count(a, route, method, status)
    assert a.get("/api/v1/executions/987654321").status_code == 404
    assert b.get("/api/v1/executions/987654321").status_code == 404
    wait_for(lambda: _http_count(a, route, method, status) == before + 2, 30, "both requests in A's scrape")
    # The scrapes on B and on A agree, and stay at + 2 (nothing counted twice or later again).
    assert _http_count(b, route, method, status) == before + 2
    assert _http_count(a, route, method, status) == before + 2
    executions = [
        s
        for f in text_string_to_metric_families(a.get("/metrics").text)
        for s in f.samples
        if s.name == "opscraft_executions_total"
    ]
    assert {s.labels["status"] for s in executions} <= FINAL  # queued/running are gauges
    done = {(s.labels["status"], s.labels["script_type"]): s.value for s in executions}
    assert done[("success", "bash")] >= 100  # the hundred runs above


def test_watcher_on_web_follows_a_run_on_a_worker_and_resumes(cluster: Cluster) -> None:
    web = _web(cluster)
    script = cluster.script(web, 'for i in $(seq 1 60); do echo "tick $i"; sleep 0.05; done\n')
    execution_id = cluster.run(web, script)
    first = [m for m in _watch(cluster, web, execution_id, stop_after=10) if m["type"] == "log"]
    rest = _watch(cluster, web, execution_id, after=first[-1]["seq"])
    assert rest[-1]["type"] == "end" and rest[-1]["status"] == "success"
    _check_lines(first + [m for m in rest if m["type"] == "log"], 60)


def test_cancel_from_web_kills_a_run_on_a_worker_within_two_seconds(cluster: Cluster, tmp_path: Path) -> None:
    web = _web(cluster)
    pid_file = tmp_path / "pid"
    script = cluster.script(web, f"echo $$ > {pid_file}\necho begun\nsleep 120\n")
    execution_id = cluster.run(web, script)
    cluster.wait_status(web, execution_id, {"running"})
    wait_for(lambda: "begun" in cluster.output(web, execution_id), 60, "the run's first line")
    script_pid = int(pid_file.read_text())
    asked = time.monotonic()
    response = cluster.api(web).post(f"/api/v1/executions/{execution_id}/cancel")
    assert response.status_code == 200, response.text
    # Killed: the script's process (on this machine: the local runner) is gone. Measured at the
    # process, not through the API, whose answers on a loaded machine add their own delay.
    wait_for(lambda: not Path(f"/proc/{script_pid}").exists(), 30, "the script's process to die", every=0.01)
    took = time.monotonic() - asked
    row = cluster.wait_status(web, execution_id, FINAL, timeout=30)
    assert row["status"] == "cancelled"
    assert took < 2.0, f"the kill took {took:.2f} s (load {os.getloadavg()[0]:.1f})"


OTHER_INSTALLATION = {"DATABASE_URL", "REDIS_URL"}  # left out: a SQLite database in its data directory


def test_a_worker_of_another_installation_under_the_same_name_spares_this_ones_runs(
    cluster: Cluster,
) -> None:
    """Two installations on one machine and Docker engine (two compose projects: both name their
    workers `worker-1`, `docker-compose.yml`). A worker of the other one starting under the name
    of a worker here sweeps what it takes for its own leftovers: it used to kill this worker's
    local runs (their `OPSCRAFT_RUN` mark) and remove its containers, running ones and warm ones
    (their `opscraft.worker` label), and the runs ended `failed`, "the script exited with code
    137". Each installation now sweeps only its own (`installation.stored_id`)."""
    require_docker()
    web = _web(cluster)
    script = cluster.script(web, "echo begun\nfor i in $(seq 1 1500); do sleep 0.2; done\n")
    runs = [cluster.run(web, script, runner) for runner in ("local", "docker", "local", "docker")]
    for execution_id in runs:
        cluster.wait_status(web, execution_id, {"running"})
        wait_for(lambda: "begun" in cluster.output(web, execution_id), 60, "the run's first line")  # noqa: B023
    names = sorted({cluster.execution(web, execution_id)["worker_id"] for execution_id in runs})
    for name in names:
        env = {k: v for k, v in cluster.env(f"other-{name}").items() if k not in OTHER_INSTALLATION}
        migrated_sqlite.seed(Path(env["OPSCRAFT_DATA_DIR"]))  # an installation that started before
        other = Proc(
            f"other-{name}",
            ["worker", "--name", name],
            env,
            cluster.root / f"other-{name}.log",
            forks=cluster.forks_for(env, real=False),
        )
        other.start()
        try:
            wait_for(lambda: started_or_ended(other), 120, "the other installation's worker to start")  # noqa: B023
            assert other.alive(), other.log()
        finally:
            assert other.stop() == 0, other.log()
    for execution_id in runs:
        assert cluster.api(web).post(f"/api/v1/executions/{execution_id}/cancel").status_code == 200
    ended = [cluster.wait_status(web, execution_id, FINAL, timeout=60) for execution_id in runs]
    assert [row["status"] for row in ended] == ["cancelled"] * len(runs), ended


FAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")


def _skewed(offset: str) -> dict[str, str]:
    """The environment of a process whose wall clock is `offset` ("-90", "+90": seconds) off
    (libfaketime; its monotonic clock is left alone, or timed waits would end 90 s early or
    late; then `time.sleep` fails with EINVAL, so such a process is stopped with SIGKILL)."""
    require_service(FAKETIME.exists(), "libfaketime (apt package libfaketime)")
    return {"LD_PRELOAD": str(FAKETIME), "FAKETIME": offset, "FAKETIME_DONT_FAKE_MONOTONIC": "1"}


SKEW_SECONDS = 90


def test_workers_with_skewed_clocks_are_judged_by_the_database_clock(cluster: Cluster) -> None:
    """A worker whose clock is 90 s behind stays `alive` (it was shown `late`, then `lost` at
    every check: its runs ended as "worker lost", its runners not offered, so runs were refused
    with "no worker is running"); one 90 s ahead that is SIGKILLed is declared lost within the
    limit (it stayed `alive` 90 s longer). Heartbeats are written and judged in the database's
    clock (`db.clock`)."""
    web = _web(cluster)
    behind, ahead = f"wbehind-{SUFFIX}", f"wahead-{SUFFIX}"
    slow = cluster.worker(behind, slots=1, runner="local", env=_skewed(f"-{SKEW_SECONDS}"))
    fast = cluster.worker(ahead, slots=1, runner="local", env=_skewed(f"+{SKEW_SECONDS}"))
    try:
        cluster.wait_workers_alive(web, {behind, ahead})
        # Several heartbeats and lost-worker checks (each process checks every HEARTBEAT): a
        # heartbeat judged in a skewed clock is 90 s off, so the first check after it shows it
        # silent for 90 s, and lost; a whole LOST period and one more check is ample (it was
        # 2 * LOST). A loaded machine may delay a heartbeat past LOST (`late` for a moment):
        # seconds, never the skew's 90.
        until = time.monotonic() + LOST + HEARTBEAT
        while time.monotonic() < until:
            rows = {w["id"]: w for w in cluster.api(web).get("/api/v1/workers").json()["items"]}
            for name in (behind, ahead):
                assert rows[name]["state"] in ("alive", "late"), rows[name]
                assert (rows[name]["silent_seconds"] or 0) < SKEW_SECONDS / 2, rows[name]
            time.sleep(HEARTBEAT / 2)
        fast.stop(signal.SIGKILL)
        killed = time.monotonic()

        def lost() -> bool:
            rows = {w["id"]: w for w in cluster.api(web).get("/api/v1/workers").json()["items"]}
            return rows[ahead]["state"] == "lost"

        wait_for(lost, 60, "the killed worker to be declared lost")
        # Within the limit and its checks (`LOST + 3 * HEARTBEAT`), with room for a loaded
        # machine, and far from the skew it was declared after.
        assert time.monotonic() - killed < SKEW_SECONDS / 2
        assert slow.alive(), slow.log()
    finally:
        for name in (behind, ahead):
            cluster.procs.pop(name).stop(signal.SIGKILL)


class TestAWebProcessWhoseClockIsAnHourAhead:
    """One web process whose clock is an hour ahead (libfaketime; every `serve` runs the
    scheduler, here ticking every 0.2 s) for the three tests: a start of a web process is
    seconds of CPU, and none of them needs one of its own. It is also the second web process of
    the request counts' test (counted in Redis, whatever either process's clock says)."""

    @pytest.fixture(scope="class")
    @classmethod
    def ahead(cls, cluster: Cluster) -> Iterator[Proc]:
        web = cluster.web(
            "web-hour-ahead", env={**_skewed("+3600"), "OPSCRAFT_SCHEDULER_IDLE_SECONDS": "0.2"}
        )
        yield web
        client = cluster.clients.pop(web.name, None)
        if client is not None:
            client.close()
        cluster.procs.pop(web.name).stop(signal.SIGKILL)

    def test_metrics_count_requests_of_every_web_process_once(self, cluster: Cluster, ahead: Proc) -> None:
        """Two web processes: a request answered by each is in one scrape of either, each once
        (HTTP counts are kept in Redis, not in the memory of the process that answered)."""
        _count_on_both(cluster.api(_web(cluster)), cluster.api(ahead))

    def test_it_queues_runs_in_the_database_clock(self, cluster: Cluster, ahead: Proc) -> None:
        """A run submitted through it: its `queued_at` was that process's clock, so the run was
        queued an hour after its worker started it (`started_at` and `finished_at` are in the
        database's clock); now all three are in the database's clock."""
        execution_id = cluster.run(ahead, cluster.script(ahead, "echo queued-then-started\n"))
        row = cluster.wait_status(ahead, execution_id, FINAL, timeout=120)
        assert row["status"] == "success", row
        queued, started, finished = (
            datetime.fromisoformat(row[k]) for k in ("queued_at", "started_at", "finished_at")
        )
        assert queued <= started <= finished, row
        assert (started - queued).total_seconds() < 30, row

    def test_it_fires_schedules_and_takes_signed_calls_in_the_database_clock(
        self, cluster: Cluster, ahead: Proc
    ) -> None:
        """It fires a schedule at its time in the database's clock, and one saved through it is
        due at that time. It fired every schedule due within the hour at once, 20 minutes early
        here (fire times were judged in its own clock), and a schedule saved through it skipped
        the fires of the next hour (its first fire time was counted from its clock): the same
        for approvals expiring, chain runs judged lost, notifications retried, tokens and
        sign-ins ending (`db.types.utcnow`). A signed webhook call made now was refused there
        ("timestamp outside the 300 s window"), and its replay window judged in its clock: now
        both are the database's."""
        web = _web(cluster)
        script_id = cluster.script(web, "echo fired")
        path = f"/api/v1/scripts/{script_id}/schedules"
        due = (datetime.now(UTC) + timedelta(minutes=20)).replace(second=0, microsecond=0)  # the database's
        cron = f"{due.minute} {due.hour} * * *"
        made = [cluster.api(web).post(path, json={"name": "on-time", "cron": cron}).json()["id"]]
        try:
            through_ahead = cluster.api(ahead).post(path, json={"name": "made-ahead", "cron": cron})
            assert through_ahead.status_code == 201, through_ahead.text
            made.append(through_ahead.json()["id"])
            assert datetime.fromisoformat(through_ahead.json()["next_fire_times"][0]) == due
            until = time.monotonic() + 3  # 15 ticks of the process ahead; it fired at its first one
            while time.monotonic() < until:
                rows = cluster.api(web).get(path).json()["items"]
                assert [r["last_fire_at"] for r in rows] == [None, None], rows
                assert all(datetime.fromisoformat(r["next_fire_times"][0]) == due for r in rows), rows
                time.sleep(0.2)
            key = cluster.api(web).post(
                "/api/v1/secrets", json={"name": f"HOOK_KEY_{SUFFIX}", "value": "k3y"}
            )
            assert key.status_code == 201, key.text
            hook = cluster.api(web).post(
                f"/api/v1/scripts/{script_id}/webhooks",
                json={"name": "signed", "secret_id": key.json()["id"]},
            )
            assert hook.status_code == 201, hook.text
            url = hook.json()["url_path"]
            for body in (b"{}", b'{"again": 1}'):  # signed now, on a right clock
                call = {"content": body, "headers": signed("k3y", body)}
                taken = cluster.api(web if body == b"{}" else ahead).post(url, **call)
                assert taken.status_code == 202, taken.text
                # The process ahead kept the first call's record (it dropped those older than 10
                # minutes by its clock: all of them) and refuses its replay.
                replay = cluster.api(ahead).post(url, **call)
                assert replay.status_code == 401 and "replay" in replay.text, replay.text
        finally:
            for schedule_id in made:
                cluster.api(web).delete(f"{path}/{schedule_id}")


def _watched_ticks(
    cluster: Cluster, web: Proc, count: int, pause: float
) -> tuple[int, threading.Thread, list[dict[str, Any]]]:
    """A run printing `tick 1`..`tick <count>`, one per `pause` seconds, and a WebSocket watcher
    of it in a thread (its messages in the list), once the run printed more than 40 %."""
    script = cluster.script(web, f'for i in $(seq 1 {count}); do echo "tick $i"; sleep {pause}; done\n')
    execution_id = cluster.run(web, script)
    watched: list[dict[str, Any]] = []
    watcher = threading.Thread(target=lambda: watched.extend(_watch(cluster, web, execution_id)))
    watcher.start()
    printed = len("".join(f"tick {i}\n" for i in range(1, count + 1))) * 0.4
    wait_for(lambda: len(cluster.output(web, execution_id)) > printed, 60, "the run to print")
    return execution_id, watcher, watched


def test_redis_restart_mid_run_loses_and_duplicates_nothing(cluster: Cluster) -> None:
    web = _web(cluster)
    redis: RedisServer = cluster.redis  # type: ignore[attr-defined]
    execution_id, watcher, watched = _watched_ticks(cluster, web, 120, 0.05)
    redis.stop()
    time.sleep(0.5)  # the outage: publishing and reading fail meanwhile
    redis.start()
    watcher.join(300)
    assert not watcher.is_alive()
    assert watched[-1]["type"] == "end" and watched[-1]["status"] == "success", watched[-1]
    _check_lines([m for m in watched if m["type"] == "log"], 120)
    assert cluster.output(web, execution_id) == "".join(f"tick {i}\n" for i in range(1, 121))
    # The queue works again: new runs are taken by the workers, once each.
    quick = cluster.script(web, "echo after-restart\n")
    for execution_id in [cluster.run(web, quick) for _ in range(6)]:
        row = cluster.wait_status(web, execution_id, FINAL, timeout=120)
        assert row["status"] == "success" and cluster.output(web, execution_id) == "after-restart\n"


def test_session_storages_follow_other_processes_changes_after_a_redis_restart(cluster: Cluster) -> None:
    """A web process's session storages (NiceGUI's, on Redis) follow what other web processes
    change in them over a subscription. NiceGUI's ended at the first connection error with
    tracebacks at ERROR: after a Redis restart no storage of the process followed changes until
    it restarted. They subscribe again, and the outage is one warning.

    Waited for: the `general` storage's channel and this browser session's own, which its page
    keeps 60 s at least (NiceGUI drops a page that never connected after 60 s; subscribing again
    takes about a second). It waited for every channel there was at the start, but NiceGUI closes
    the storage of a session with no page open 10-20 s after its last use, Redis or not (a
    cookie-less `/metrics` scrape makes one per request), and one closed during the outage or the
    wait never comes back: with one there and Redis down 25 s, that wait never ended, this one
    0.1 s after Redis was back. A CI run waited its whole 121 s there, under load; which storage
    it missed is not known (its log was not kept)."""
    web = _web(cluster)
    server: RedisServer = cluster.redis  # type: ignore[attr-defined]
    with httpx.Client(base_url=web.url, timeout=30) as browser:  # a session, so a user storage
        browser.get("/login")
        session = _session_id(browser.cookies["session"])
    ours = {"opscraft:nicegui:generalchanges", f"opscraft:nicegui:user-{session}changes"}

    def following() -> bool:
        client = redis.Redis(port=server.port, socket_timeout=2)
        try:
            return ours <= {channel.decode() for channel in client.pubsub_channels("opscraft:nicegui:*")}
        finally:
            client.close()

    wait_for(following, 60, "the web's storages to follow their changes")
    logged = len(web.log())
    server.stop()
    server.start()
    wait_for(following, 60, "the storages to follow their changes again")
    after = web.log()[logged:]
    assert "session storages: Redis does not answer" in after, after
    assert "Traceback" not in after and " ERROR " not in after, after

    def reading() -> bool:  # the cluster as the next tests need it: the workers read the queue again
        rows = cluster.api(web).get("/api/v1/workers").json()["items"]
        return {WA, WB} <= {w["id"] for w in rows if w["state"] == "alive" and not w["queue_error"]}

    wait_for(reading, 60, "the workers to read the job queue again")


def _session_id(cookie: str) -> str:
    """The NiceGUI session id in a `session` cookie (Starlette's: base64 JSON, a timestamp and a
    signature, dot-separated)."""
    payload = cookie.split(".", 1)[0]
    return str(json.loads(base64.b64decode(payload + "=" * (-len(payload) % 4)))["id"])


def test_redis_restart_with_runs_queued_runs_each_once_promptly(cluster: Cluster, tmp_path: Path) -> None:
    """Redis (no persistence) restarts while many of 40 runs wait in its queue behind the 8 slots: the
    queue's jobs are gone, and a worker enqueues every queued run again within a heartbeat
    (`JobQueue.emptied`). Every run runs once, and they are done in seconds; before, the stall
    check brought back one run per script every 10 s (here over 5 minutes).

    The runs hold their slots until the gate file exists (created once Redis is back), so the
    runs behind them are still queued at the restart however slowly this machine submits them
    (a fixed `sleep 5` in each run did that before: 25 s of waiting)."""
    web = _web(cluster)
    redis: RedisServer = cluster.redis  # type: ignore[attr-defined]
    marker, gate = tmp_path / "ran", tmp_path / "gate"
    script = cluster.script(
        web, f'echo "$$" >> {marker}\nwhile [ ! -e {gate} ]; do sleep 0.05; done\necho done\n'
    )
    ids = [cluster.run(web, script) for _ in range(40)]
    waiting = sum(cluster.execution(web, i)["status"] == "queued" for i in ids)
    redis.stop()
    redis.start()
    restarted = time.monotonic()
    gate.touch()
    assert waiting > 10, f"only {waiting} runs were queued at the restart: the test saw no loss"
    for execution_id in ids:
        row = cluster.wait_status(web, execution_id, FINAL, timeout=300)
        assert row["status"] == "success" and cluster.output(web, execution_id) == "done\n", row
    took = time.monotonic() - restarted
    assert len(marker.read_text().split()) == 40  # each once
    assert took < 60, f"the queued runs took {took:.0f} s after the restart"  # seconds of work at most


def _workers(cluster: Cluster, web: Proc) -> dict[str, dict[str, Any]]:
    response = cluster.api(web).get("/api/v1/workers")
    response.raise_for_status()
    return {w["id"]: w for w in response.json()["items"]}


def _unreadable(cluster: Cluster, web: Proc, needle: str) -> dict[str, dict[str, Any]] | None:
    """The workers as listed when both are alive, say they cannot read the queue (`needle` in
    their `queue_error`) and offer no runner and no slot; else None."""
    rows = _workers(cluster, web)
    fine = all(
        rows[w]["state"] == "alive"
        and needle in (rows[w]["queue_error"] or "")
        and rows[w]["runners"] == []
        and rows[w]["free_slots"] == 0
        for w in (WA, WB)
    )
    return rows if fine else None


def test_a_watcher_follows_a_run_from_storage_while_redis_is_frozen(cluster: Cluster) -> None:
    """Redis frozen (SIGSTOP) while a WebSocket watcher follows a run. Before, the watcher's
    `XREAD` had redis-py's default socket timeout (none before redis-py 8: it waited for ever,
    silently; 5 s from 8 on) and every publish held the worker's output pump 5 s: with redis-py
    8.1 this run ended as "worker lost". Now the read fails within a few seconds, publishing is
    skipped, and the watcher follows the run from storage to its successful end; `/health` says
    Redis is disconnected."""
    web = _web(cluster)
    redis: RedisServer = cluster.redis  # type: ignore[attr-defined]
    assert redis.process is not None and web.url
    _, watcher, watched = _watched_ticks(cluster, web, 40, 0.1)
    redis.process.send_signal(signal.SIGSTOP)
    try:
        watcher.join(60)
        assert not watcher.is_alive(), "the watcher hung on the frozen Redis"
        health = httpx.get(f"{web.url}/api/v1/health", timeout=30)
        assert health.status_code == 503 and health.json()["redis"] == "disconnected", health.text
    finally:
        redis.process.send_signal(signal.SIGCONT)
        watcher.join(300)
    assert watched[-1]["type"] == "end" and watched[-1]["status"] == "success", watched[-1]
    _check_lines([m for m in watched if m["type"] == "log"], 40)


def test_a_worker_that_cannot_read_the_queue_says_why_and_offers_nothing(cluster: Cluster) -> None:
    """Redis frozen (SIGSTOP: its connections stay open, nothing answers), then stopped. Before,
    a frozen Redis held every consumer's blocking pop for ever (no socket timeout) and a stopped
    one only wrote a warning to the worker's log: the Workers page and API showed both workers
    alive with free slots and their runners, taking nothing. Now each consumer's read fails
    within `REDIS_SOCKET_TIMEOUT_SECONDS`, and the heartbeat says why (`queue_error`), with no
    runners and no free slots; once Redis answers, the error clears and runs are taken again."""
    web = _web(cluster)
    redis: RedisServer = cluster.redis  # type: ignore[attr-defined]
    assert redis.process is not None
    redis.process.send_signal(signal.SIGSTOP)
    try:
        wait_for(lambda: _unreadable(cluster, web, "Timeout reading"), 60, "both workers to say why")
    finally:
        redis.process.send_signal(signal.SIGCONT)
    redis.stop()
    try:
        wait_for(
            lambda: _unreadable(cluster, web, "Connection refused"), 60, "the refused connection to be said"
        )
    finally:
        redis.start()

    def reading() -> bool:
        rows = _workers(cluster, web)
        return all(rows[w]["queue_error"] is None and "local" in rows[w]["runners"] for w in (WA, WB))

    wait_for(reading, 60, "the workers to read the queue again")
    execution_id = cluster.run(web, cluster.script(web, "echo read-again\n"))
    row = cluster.wait_status(web, execution_id, FINAL, timeout=120)
    assert row["status"] == "success" and cluster.output(web, execution_id) == "read-again\n", row


def _timed(call: Any) -> tuple[Any, float]:
    """`call()`'s result and how long it took, in seconds."""
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def test_a_run_submitted_while_redis_is_frozen_holds_no_request_and_runs_once_it_answers(
    cluster: Cluster,
) -> None:
    """Redis frozen (SIGSTOP) as a run is submitted. Before, the web process enqueued it on its
    event loop (the group commit's hand-over) and the queue client's 5 s socket timeout held the
    loop: the submission and every other request of that process (here GET /api/v1/executions,
    polled meanwhile) waited 5 s, and each further submission did it again. Now the run is
    accepted at once (202, `queued`), the enqueue waits on a thread of its own, and the run is
    handed over and runs once Redis answers. Once the workers say they cannot read the queue, a
    submission is refused 503 naming the job queue (before, "no runner is available: start the
    Docker engine..."), with `Retry-After`. A request may still wait the rate limiter's 2 s once
    (its first ask of the frozen Redis), never the queue's 5 s."""
    web = _web(cluster)
    redis: RedisServer = cluster.redis  # type: ignore[attr-defined]
    assert redis.process is not None
    api = cluster.api(web)
    script = cluster.script(web, "echo delivered\n")
    wait_for(lambda: all(_workers(cluster, web)[w]["queue_error"] is None for w in (WA, WB)), 60, "readers")
    submitted: list[tuple[httpx.Response, float]] = []
    submit = threading.Thread(
        target=lambda: submitted.append(
            _timed(lambda: api.post("/api/v1/executions", json={"script_id": script, "runner": "local"}))
        )
    )
    polls: list[float] = []
    redis.process.send_signal(signal.SIGSTOP)
    try:
        submit.start()
        while submit.is_alive():
            response, took = _timed(lambda: api.get("/api/v1/executions", params={"limit": 1}))
            assert response.status_code == 200, response.text
            polls.append(took)
        submit.join()
        ((response, took),) = submitted
        assert response.status_code == 202, response.text
        assert response.json()["status"] == "queued", response.json()
        assert took < 4, f"the submission took {took:.1f} s"
        assert polls and max(polls) < 4, f"other requests waited up to {max(polls):.1f} s"
        accepted = [int(response.json()["id"])]
        wait_for(lambda: _unreadable(cluster, web, "Timeout reading"), 60, "both workers to say why")
        refusals: list[tuple[httpx.Response, float]] = []

        def refused() -> bool:
            # The web process reads the workers' state at most a second late: one more may pass.
            sent, took = _timed(
                lambda: api.post("/api/v1/executions", json={"script_id": script, "runner": "local"})
            )
            if sent.status_code == 202:
                accepted.append(int(sent.json()["id"]))
            refusals.append((sent, took))
            return sent.status_code != 202

        wait_for(refused, 10, "a submission to be refused")
        sent, took = refusals[-1]
        assert sent.status_code == 503, sent.text
        assert "no worker can read the job queue" in sent.json()["detail"], sent.text
        assert sent.headers["Retry-After"] == "5" and took < 4, (sent.headers, took)
        assert len(accepted) <= 2, accepted
        assert cluster.execution(web, accepted[0])["status"] == "queued"
    finally:
        redis.process.send_signal(signal.SIGCONT)
    for execution_id in accepted:
        row = cluster.wait_status(web, execution_id, FINAL, timeout=120)
        assert row["status"] == "success" and cluster.output(web, execution_id) == "delivered\n", row
    # The hand-off waits up to the queue client's 5 s timeout: when Redis was thawed within it,
    # the enqueue never failed and there is no outage to log; one logged has its end logged.
    log = web.log()
    assert "the job queue is unreachable" not in log or "the job queue answers again" in log, log[-3000:]


def test_a_page_opened_while_redis_is_frozen_says_so_within_seconds(cluster: Cluster) -> None:
    """Redis, which keeps NiceGUI's browser sessions, frozen (SIGSTOP) as a browser without a
    session in this web process opens a page. Before, NiceGUI loaded the session's storage with a
    Redis client of its own that retried a timed-out command (20 s with redis-py 8.1; before 8,
    no timeout at all), then showed the sign-in page (the storage was empty). Now the load gives up after
    `redis_storage.TIMEOUT_SECONDS` and the page is a 503 saying Redis does not answer, with
    `Retry-After`; once Redis answers, the same browser gets the page."""
    web = _web(cluster)
    redis: RedisServer = cluster.redis  # type: ignore[attr-defined]
    assert redis.process is not None and web.url
    browser = httpx.Client(base_url=web.url, timeout=30)  # its own cookies: a new session
    redis.process.send_signal(signal.SIGSTOP)
    try:
        page, took = _timed(lambda: browser.get("/login"))
        assert page.status_code == 503, page.text[:500]
        assert "Redis, which keeps the browser sessions, does not answer" in page.text
        assert page.headers["Retry-After"] == "5" and took < 8, (page.headers, took)
    finally:
        redis.process.send_signal(signal.SIGCONT)
    wait_for(lambda: browser.get("/login").status_code == 200, 60, "the sign-in page once Redis answers")
    logged = [line for line in web.log().splitlines() if "/login" in line or "Redis" in line]
    assert any("GET /login: the session storage's Redis does not answer" in line for line in logged), logged
    assert not any("unhandled error in GET /login" in line for line in logged), logged  # no traceback
    browser.close()


def _containers(worker_id: str) -> list[str]:
    out = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=opscraft.worker={worker_id}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.split()


def test_sigkilled_worker_loses_its_run_others_continue_and_restart_sweeps(cluster: Cluster) -> None:
    require_docker()
    web = _web(cluster)
    long = cluster.script(web, "echo begun\nsleep 300\n")
    execution_id = cluster.run(web, long, runner="docker")
    row = cluster.wait_status(web, execution_id, {"running"}, timeout=120)
    victim = row["worker_id"]
    survivor = WB if victim == WA else WA
    wait_for(lambda: _containers(victim), 60, "the run's container")
    short = cluster.script(web, "sleep 1\necho done\n")
    queued = [cluster.run(web, short) for _ in range(12)]
    killed_at = time.monotonic()
    cluster.procs[victim].stop(signal.SIGKILL)
    lost = cluster.wait_status(web, execution_id, FINAL, timeout=LOST + 30)
    assert lost["status"] == "error" and "worker lost" in lost["error_message"]
    assert time.monotonic() - killed_at < LOST + 3 * HEARTBEAT + 5  # the limit, the checker's period, slack
    # Runs the victim had claimed end as "worker lost" unless they finished before it died;
    # every other one runs on the survivor, once, completely.
    on_survivor = 0
    for other in queued:
        done = cluster.wait_status(web, other, FINAL, timeout=180)
        if done["worker_id"] == victim and done["status"] != "success":
            assert done["status"] == "error" and "worker lost" in done["error_message"], done
        elif done["worker_id"] == victim:
            assert cluster.output(web, other) == "done\n"
        else:
            assert done["worker_id"] == survivor and done["status"] == "success", done
            assert cluster.output(web, other) == "done\n"
            on_survivor += 1
    assert on_survivor > 0
    # The survivor removes its container, whichever process (a web one, often) declared the loss
    # (the script must not go on unwatched: `Worker.sweep_lost`); the victim, restarted under the
    # same name, finds nothing left to sweep.
    wait_for(lambda: not _containers(victim), 60, "the survivor to remove the lost worker's container")
    cluster.procs[victim].start()
    cluster.wait_workers_alive(web, {victim, survivor})


def test_postgres_restart_mid_run_keeps_output_final_state_and_workers(cluster: Cluster) -> None:
    """PostgreSQL down for longer than OPSCRAFT_WORKER_LOST_SECONDS while runs print on both
    workers: health says 503 meanwhile; once it is back every run ends `success` with all of its
    output, and no worker is declared lost. Before, the first output batch that failed ended the
    runner (the rest of the output lost), the final state was given up after 3 s (the run stayed
    `running` for good), and the first process to reach the database again declared the other
    workers lost, ending their runs and killing their scripts."""
    web = _web(cluster)
    pg: PostgresCluster = cluster.pg  # type: ignore[attr-defined]
    assert web.url
    script = cluster.script(web, 'for i in $(seq 1 60); do echo "tick $i"; sleep 0.25; done\n')
    ids: list[int] = []
    while {cluster.execution(web, i)["worker_id"] for i in ids} != {WA, WB}:  # a run on each worker
        assert len(ids) < 8, [cluster.execution(web, i) for i in ids]
        ids.append(cluster.run(web, script))
        cluster.wait_status(web, ids[-1], {"running"})
    wait_for(lambda: "tick 2\n" in cluster.output(web, ids[-1]), 60, "the last run to print")
    before = {name: len(cluster.procs[name].log()) for name in ("web", WA, WB)}
    pg.stop()
    try:
        down = wait_for(
            lambda: (r := httpx.get(f"{web.url}/api/v1/health", timeout=10)).status_code == 503 and r,
            60,
            "health to say 503",
        )
        assert down.json()["database"] == "disconnected"
        time.sleep(LOST + 2 * HEARTBEAT)  # every heartbeat is older than the limit when it is back
    finally:
        pg.start()
    cluster.wait_healthy(web, timeout=120)
    for execution_id in ids:
        row = cluster.wait_status(web, execution_id, FINAL, timeout=120)
        assert row["status"] == "success", row
        assert cluster.output(web, execution_id) == "".join(f"tick {i}\n" for i in range(1, 61))
    rows = {w["id"]: w for w in cluster.api(web).get("/api/v1/workers").json()["items"]}
    assert rows[WA]["state"] == rows[WB]["state"] == "alive"
    quick = cluster.script(web, "echo back\n")
    execution_id = cluster.run(web, quick)
    row = cluster.wait_status(web, execution_id, FINAL, timeout=120)
    assert row["status"] == "success" and cluster.output(web, execution_id) == "back\n"
    logs = "".join(cluster.procs[name].log()[start:] for name, start in before.items())
    assert "lost worker" not in logs and "Traceback" not in logs, logs


def test_a_worker_with_another_secret_key_is_refused_when_it_signs_terraform_credentials(
    cluster: Cluster,
) -> None:
    """A worker given a state backend (OPSCRAFT_STATE_BACKEND_URL) and not the web's SECRET_KEY
    (in dev, one generated in its own data directory) stops at start with one line. It used to
    start, say "ready", and each Terraform run it took failed with "HTTP remote state endpoint
    requires auth" (the web checks the run's credentials with its own key). A worker given the
    same state backend and the web's key starts: the last worker of
    `test_a_worker_on_another_redis_queue_is_refused_and_one_after_a_redis_restart_is_not` (a
    worker start is seconds of CPU)."""
    stranger = cluster.worker(
        f"wk-{SUFFIX}", env={"SECRET_KEY": "another-secret-key-" + "q" * 32, **_state_backend(cluster)}
    )
    wait_for(lambda: started_or_ended(stranger), 120, "the worker with another key to start or stop")
    assert stranger.stop() == 1, stranger.log()
    assert "opscraft: configuration error: SECRET_KEY: this is not the SECRET_KEY of the web processes" in (
        stranger.log()
    )
    assert "another-secret-key" not in stranger.log() and "Traceback" not in stranger.log()


def _state_backend(cluster: Cluster) -> dict[str, str]:
    """The environment giving a worker the web process as its Terraform state backend."""
    return {"OPSCRAFT_STATE_BACKEND_URL": str(_web(cluster).url)}


def test_a_worker_on_another_database_is_refused_and_takes_no_run(cluster: Cluster) -> None:
    """A worker given the team's REDIS_URL but not its DATABASE_URL (here: the SQLite database of
    its data directory, as when the variable is forgotten) stops at start with one line. It used
    to start, take runs from the shared queue, find none of them in its own database and drop
    them silently: they stayed `queued` while the right workers sat idle."""
    web = _web(cluster)
    stray_url = migrated_sqlite_url(cluster.root / "stray")
    stray = cluster.worker(f"ws-{SUFFIX}", env={"DATABASE_URL": stray_url})
    wait_for(lambda: started_or_ended(stray), 120, "the worker on another database to start or stop")
    script = cluster.script(web, "echo here\n")
    ran = [cluster.run(web, script) for _ in range(6)]
    for execution_id in ran:  # none is dropped (a stray worker's idle consumers took most)
        assert cluster.wait_status(web, execution_id, FINAL, timeout=60)["status"] == "success"
    assert stray.stop() == 1, stray.log()
    refused = "opscraft: configuration error: REDIS_URL: the job queue there serves another OpsCraft database"
    assert refused in stray.log() and f"{stray_url.removeprefix('sqlite')})" in stray.log()
    assert "Traceback" not in stray.log()


def test_a_worker_on_another_redis_queue_is_refused_and_one_after_a_redis_restart_is_not(
    cluster: Cluster,
) -> None:
    """A worker on the right database but another Redis (or another OPSCRAFT_REDIS_PREFIX, or none)
    than the web processes stops at start with one line naming that Redis. It used to claim the other
    (empty) queue for the database and start without a word: alive with free slots, it took only
    what its own stall checks sent there (a web process of that kind: every run it submitted
    waited 10-15 s for a worker's stall check). A queue id lost with a Redis restart is not a
    mismatch: the web records the new one within a heartbeat and the worker starts."""
    other = RedisServer(cluster.root / "other-redis")
    other.start()
    try:
        strangers = [
            cluster.worker(f"wr-{SUFFIX}", env={"REDIS_URL": other.url}),
            cluster.worker(f"wp-{SUFFIX}", env={"OPSCRAFT_REDIS_PREFIX": "another-prefix"}),
            cluster.worker(f"wn-{SUFFIX}", env={"REDIS_URL": ""}),  # the queue in its data directory
        ]
        for stranger in strangers:
            wait_for(lambda s=stranger: not s.alive(), 120, f"{stranger.name} on another queue to stop")
            assert stranger.stop() == 1, stranger.log()
            assert "opscraft: configuration error: REDIS_URL: " in stranger.log()
            assert " ready: " not in stranger.log() and "Traceback" not in stranger.log()
        another = (
            "REDIS_URL: the web processes of this database use another Redis job queue than this process's"
        )
        assert (
            f"{another} (127.0.0.1:{other.port} database 0, OPSCRAFT_REDIS_PREFIX 'opscraft')"
            in strangers[0].log()
        )
        own_port = cluster.redis.port  # type: ignore[attr-defined]
        prefixed = f"{another} (127.0.0.1:{own_port} database 0, OPSCRAFT_REDIS_PREFIX 'another-prefix')"
        assert prefixed in strangers[1].log()
        unset = "REDIS_URL: not set, but the web processes of this database use a Redis job queue"
        assert unset in strangers[2].log()
        # A refused start leaves no claim behind: the installation that later uses that Redis
        # database (or prefix) was refused as "another OpsCraft database".
        assert redis.Redis.from_url(other.url).keys("opscraft:*") == []
        assert redis.Redis.from_url(cluster.redis_url or "").keys("another-prefix:*") == []
    finally:
        other.stop()
    redis.Redis.from_url(cluster.redis_url or "").delete("opscraft:queue-id")  # as a restart loses it
    # With the web's SECRET_KEY and the web as its state backend: it starts (the counterpart of
    # `test_a_worker_with_another_secret_key_is_refused_when_it_signs_terraform_credentials`).
    same = cluster.worker(f"wr-{SUFFIX}", env=_state_backend(cluster))
    wait_for(lambda: started_or_ended(same), 120, "the worker on the web's queue and key to start")
    assert same.alive(), same.log()
    assert same.stop() == 0, same.log()
