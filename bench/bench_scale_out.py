"""Scale-out benchmarks: web-only `opscraft serve --workers 0` plus separate `opscraft worker`
processes on a private PostgreSQL cluster and a private Redis (tests/scale/cluster.py), local
runner. The baseline is the seed's Celery architecture, run in the same session:
`bash /work/shared/baselines/celery/run latency` (see docs/benchmarks.md).

  latency   submit (HTTP POST to the web process) -> first output byte on the web process's
            WebSocket of `echo hi` run by a worker: p50 <= 25 ms, p99 <= 100 ms.
  phases    where S1's time goes: per-phase medians of `latency`'s path, from the client's clock
            and the rows' timestamps (same machine, same clock).
  fanout    the web process's side of S3: a watcher reads a 50 MB run (400 chunks of 128 KiB)
            from its Redis stream; the longest stall of the event loop (a 1 ms sleeper's
            overshoot) with the shipped XREAD COUNT and with the former 500.
  capacity  200 runs of `sleep 0.5` queued, then 4 slots per worker drain them: first start ->
            last finish with 2 workers / with 1 <= 0.55.
  api       p95 of GET /api/v1/executions on the web process while two workers each stream 50 MB:
            <= 50 ms.

Usage: .venv/bin/python -m bench.bench_scale_out latency|phases|fanout|capacity|api [--samples N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import httpx
import websockets

from bench.exec_harness import describe, percentile
from opscraft.execution import redis_bus
from opscraft.execution.events import LogEvent, StatusEvent
from opscraft.execution.redis_bus import RedisLogBus
from tests.scale.cluster import FINAL, Cluster, PostgresCluster, Proc, RedisServer, wait_for


@contextmanager
def cluster(workers: int, slots: int) -> Iterator[tuple[Cluster, Proc, list[str]]]:
    root = Path(tempfile.mkdtemp(prefix="opscraft-bench-"))
    redis, pg = RedisServer(root / "redis"), PostgresCluster()
    redis.start()
    pg.init()
    pg.start()
    c = Cluster(
        root,
        pg.url,
        redis.url,
        {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LOG_LEVEL": "WARNING",
            "OPSCRAFT_WORKER_LOST_SECONDS": "600",  # paused workers (capacity) are not lost
        },
    )
    try:
        web = c.web("web")
        names = [f"bench-{i}-{secrets.token_hex(2)}" for i in range(workers)]
        for name in names:
            c.worker(name, slots=slots, runner="local")
        if names:
            c.wait_workers_alive(web, set(names))
        yield c, web, names
    finally:
        c.stop_all()
        pg.stop()
        pg.remove()
        redis.stop()
        shutil.rmtree(root, ignore_errors=True)


async def first_byte(c: Cluster, web: Proc, client: httpx.AsyncClient, script_id: int) -> float:
    assert web.url
    t0 = time.perf_counter()
    response = await client.post("/api/v1/executions", json={"script_id": script_id, "runner": "local"})
    execution_id = response.json()["id"]
    url = f"{web.url.replace('http', 'ws')}/ws/executions/{execution_id}?token={c.admin_token(web)}"
    async with websockets.connect(url) as ws:
        async for raw in ws:
            if json.loads(raw)["type"] == "log":
                break
    return (time.perf_counter() - t0) * 1000


def latency(samples: int) -> None:
    with cluster(1, 4) as (c, web, _):
        script_id = c.script(web, "echo hi\n")

        async def run() -> list[float]:
            headers = {"Authorization": f"Bearer {c.admin_token(web)}"}
            async with httpx.AsyncClient(base_url=str(web.url), headers=headers, timeout=30) as client:
                for _ in range(20):
                    await first_byte(c, web, client, script_id)
                return [await first_byte(c, web, client, script_id) for _ in range(samples)]

        times = asyncio.run(run())
    print(
        f"latency (web -> Redis -> worker -> Redis -> web): {describe(times)}; load {os.getloadavg()[0]:.1f}"
    )


async def _timed_run(c: Cluster, web: Proc, client: httpx.AsyncClient, script_id: int) -> dict[str, float]:
    """One run of `first_byte`'s path with wall-clock times (epoch seconds) of each client step."""
    assert web.url
    marks = {"post": time.time()}
    response = await client.post("/api/v1/executions", json={"script_id": script_id, "runner": "local"})
    marks["posted"] = time.time()
    marks["id"] = response.json()["id"]
    url = f"{web.url.replace('http', 'ws')}/ws/executions/{int(marks['id'])}?token={c.admin_token(web)}"
    async with websockets.connect(url) as ws:
        marks["ws_open"] = time.time()
        async for raw in ws:
            if json.loads(raw)["type"] == "log":
                break
    marks["first_log"] = time.time()
    return marks


def phases(samples: int) -> None:
    """Median and p90 of each step of S1's path, from the client's clock and the database rows:
    POST -> queued_at (row inserted) -> started_at (claimed by the worker) -> first chunk stored
    -> first log on the WebSocket, and POST answered / WebSocket open on the client."""
    import asyncpg

    with cluster(1, 4) as (c, web, _):
        script_id = c.script(web, "echo hi\n")

        async def run() -> list[dict[str, float]]:
            headers = {"Authorization": f"Bearer {c.admin_token(web)}"}
            async with httpx.AsyncClient(base_url=str(web.url), headers=headers, timeout=30) as client:
                for _ in range(20):
                    await _timed_run(c, web, client, script_id)
                marks = [await _timed_run(c, web, client, script_id) for _ in range(samples)]
            conn = await asyncpg.connect(c.database_url)
            try:
                for m in marks:
                    row = await conn.fetchrow(
                        "SELECT e.queued_at, e.started_at, min(l.created_at) AS chunk FROM executions e "
                        "JOIN execution_logs l ON l.execution_id = e.id WHERE e.id = $1 "
                        "GROUP BY e.queued_at, e.started_at",
                        int(m["id"]),
                    )
                    for name in ("queued_at", "started_at", "chunk"):
                        m[name] = row[name].timestamp()
            finally:
                await conn.close()
            return marks

        marks = asyncio.run(run())
    steps = [
        ("POST sent -> row queued_at", "post", "queued_at"),
        ("row queued_at -> POST answered", "queued_at", "posted"),
        ("POST answered -> WebSocket open", "posted", "ws_open"),
        ("queued_at -> started_at (enqueue, BRPOP, claim)", "queued_at", "started_at"),
        ("started_at -> first chunk stored (process start, read)", "started_at", "chunk"),
        ("first chunk stored -> first log on the client", "chunk", "first_log"),
        ("POST sent -> first log (S1)", "post", "first_log"),
    ]
    for label, a, b in steps:
        values = sorted((m[b] - m[a]) * 1000 for m in marks)
        print(f"  {label:<58} p50 {percentile(values, 50):6.1f} ms  p90 {percentile(values, 90):6.1f} ms")
    print(f"phases: n={len(marks)}; load {os.getloadavg()[0]:.1f}")


async def _read_stream(bus: RedisLogBus, execution_id: int) -> tuple[float, float]:
    """(seconds to read the stream to its end, longest event-loop stall in seconds)."""
    sub = bus.subscribe(execution_id, 0)
    stalls: list[float] = []
    done = asyncio.Event()

    async def sleeper() -> None:
        while not done.is_set():
            t0 = time.perf_counter()
            await asyncio.sleep(0.001)
            stalls.append(time.perf_counter() - t0 - 0.001)

    probe = asyncio.create_task(sleeper())
    t0 = time.perf_counter()
    while not isinstance(event := await sub.get(5), StatusEvent) or not event.final:
        assert event is not None, "the stream ended early"
    total = time.perf_counter() - t0
    done.set()
    await probe
    return total, max(stalls)


def fanout(rounds: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="opscraft-bench-"))
    server = RedisServer(root / "redis")
    server.start()
    shipped = redis_bus.READ_COUNT
    try:
        bus = RedisLogBus(server.url, "bench")
        chunk = ("0123456789" * 13108)[: 128 * 1024]
        for seq in range(1, 401):
            bus.publish(1, LogEvent(seq, "stdout", chunk))
        bus.publish(1, StatusEvent("success", final=True))
        for _ in range(min(rounds, 3)):
            for count in (shipped, 500):
                redis_bus.READ_COUNT = count
                total, stall = asyncio.run(_read_stream(bus, 1))
                print(
                    f"fanout: 50 MB read by one watcher, XREAD COUNT {count}: {total * 1000:.0f} ms, "
                    f"longest event-loop stall {stall * 1000:.1f} ms; load {os.getloadavg()[0]:.1f}"
                )
        bus.close()
    finally:
        redis_bus.READ_COUNT = shipped
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def capacity_run(workers: int, runs: int) -> float:
    """Seconds from the first start to the last finish of `runs` runs queued while the workers
    were paused (SIGSTOP), i.e. the drain time of the queue: submitting through one web process
    is not what is measured."""
    with cluster(workers, 4) as (c, web, names):
        script_id = c.script(web, "sleep 0.5\n")
        for name in names:
            c.procs[name].process.send_signal(signal.SIGSTOP)  # type: ignore[union-attr]
        ids = [c.run(web, script_id) for _ in range(runs)]
        for name in names:
            c.procs[name].process.send_signal(signal.SIGCONT)  # type: ignore[union-attr]
        rows = [c.wait_status(web, execution_id, FINAL, timeout=900) for execution_id in ids]
        assert all(row["status"] == "success" for row in rows)
        started = min(datetime.fromisoformat(row["started_at"]) for row in rows)
        finished = max(datetime.fromisoformat(row["finished_at"]) for row in rows)
        return (finished - started).total_seconds()


def capacity(runs: int) -> None:
    one = capacity_run(1, runs)
    two = capacity_run(2, runs)
    print(
        f"capacity: {runs} x sleep 0.5, 4 slots/worker: 1 worker {one:.1f} s, 2 workers {two:.1f} s, "
        f"ratio {two / one:.2f}; load {os.getloadavg()[0]:.1f}"
    )


def _watch_to_end(c: Cluster, web: Proc, execution_id: int) -> int:
    """Follow a run's WebSocket on `web` to its end, as the UI does; returns the bytes received."""
    assert web.url
    url = f"{web.url.replace('http', 'ws')}/ws/executions/{execution_id}?token={c.admin_token(web)}"

    async def read() -> int:
        size = 0
        async with websockets.connect(url, max_size=None) as ws:
            async for raw in ws:
                message = json.loads(raw)
                if message["type"] == "log":
                    size += len(message["content"])
                elif message["type"] == "end":
                    return size
        return size

    return asyncio.run(read())


def _list_while_streaming(c: Cluster, web: Proc, loud: int, samples: int, watch: bool) -> list[float]:
    """Milliseconds of `GET /api/v1/executions?limit=50` on `web` while each worker streams one
    run of `loud`; with `watch`, a WebSocket per run follows it on `web` too."""
    streams = [c.run(web, loud) for _ in range(2)]
    watchers = []
    if watch:
        pool = ThreadPoolExecutor(2)
        watchers = [pool.submit(_watch_to_end, c, web, i) for i in streams]
    wait_for(lambda: all(c.execution(web, i)["status"] == "running" for i in streams), 120, "both streams")
    client = c.api(web)
    times: list[float] = []
    while len(times) < samples:
        t0 = time.perf_counter()
        response = client.get("/api/v1/executions", params={"limit": 50})
        times.append((time.perf_counter() - t0) * 1000)
        assert response.status_code == 200
        status = {row["id"]: row["status"] for row in response.json()["items"]}
        if not any(status.get(i) == "running" for i in streams):
            break
    for execution_id in streams:
        row = c.wait_status(web, execution_id, FINAL, timeout=600)
        assert row["status"] == "success" and row["output_bytes"] == 52_000_000, row
    for watcher in watchers:
        assert watcher.result(timeout=600) == 52_000_000
    return times


def api_under_output(samples: int) -> None:
    with cluster(2, 1) as (c, web, _):
        loud = c.script(web, "yes 0123456789012345678901234567890123456789012345678 | head -c 52000000\n")
        quiet_ids = [c.run(web, c.script(web, "true\n")) for _ in range(50)]
        for execution_id in quiet_ids:
            c.wait_status(web, execution_id, FINAL)
        for watch in (False, True):
            times = _list_while_streaming(c, web, loud, samples, watch)
            what = "with a WebSocket watcher per run on the web process" if watch else "nobody watching"
            print(
                f"GET /api/v1/executions during 2 x 50 MB, {what}: {describe(times)} "
                f"(p95 {percentile(times, 95):.1f} ms); load {os.getloadavg()[0]:.1f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["latency", "phases", "fanout", "capacity", "api"])
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    modes = {
        "latency": latency,
        "phases": phases,
        "fanout": fanout,
        "capacity": capacity,
        "api": api_under_output,
    }
    modes[args.mode](args.samples)


if __name__ == "__main__":
    main()
