"""Execution engine 1: submit -> first output byte of `echo hi` (local runner).

Each sample: POST /api/v1/executions, open the WebSocket for the returned id, stop at the first
`log` message. Targets: p50 <= 25 ms, p99 <= 100 ms, also after the server sat idle for 60 s.
The same in one request, measured in the same run, sample for sample alternating with the first
way: POST /api/v1/executions/stream (the run's events in the answer, Server-Sent Events), stop at
the first `log` event. Baseline in the same run: spawning `bash script.sh` directly and reading
its first byte.

`--phases` splits each sample's wall time, as medians in ms from the moment the POST was sent:
the run's row made (`queued_at`, server clock), the POST's answer received, the WebSocket open
(the server accepted it), the run claimed by a worker (`started_at`), the first status and the
first log message received, and the first chunk stored (its `created_at`); the server's times
come from the run's row and stored output, read after each sample (same machine, same clock).
What lies between the claim and the first log message (the fork server's fork, the script's
start, the runner reading the first byte, the bus) is split by `bench.bench_local_spawn`.

Usage: .venv/bin/python bench/bench_exec_latency.py [--samples 300] [--idle 60] [--idle-samples 3]
       [--phases]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import connect

from bench.exec_harness import (
    Server,
    bare_env,
    create_script,
    describe,
    percentile,
    server,
    stream_run,
    submit,
    watch,
)

SCRIPT = "echo hi\n"


async def one(client: httpx.AsyncClient, srv: Server, script_id: int) -> float:
    t0 = time.perf_counter()
    execution_id = await submit(client, srv, script_id)
    await watch(srv, execution_id, until="log")
    return (time.perf_counter() - t0) * 1000


async def one_streamed(client: httpx.AsyncClient, srv: Server, script_id: int) -> float:
    t0 = time.perf_counter()
    await stream_run(client, srv, script_id, until="log")
    return (time.perf_counter() - t0) * 1000


PHASES = (
    "row made (queued_at)",
    "POST answered",
    "WebSocket open",
    "claimed by a worker (started_at)",
    "first status message",
    "first log message",
    "first chunk stored (created_at)",
)


def _server_time(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


async def one_phased(client: httpx.AsyncClient, srv: Server, script_id: int) -> dict[str, float]:
    """One sample as `one`, with the time of each phase (`PHASES`), in ms after the POST was sent."""
    marks: dict[str, float] = {}
    t0 = time.time()
    execution_id = await submit(client, srv, script_id)
    marks["POST answered"] = time.time()
    url = f"{srv.ws_url}/ws/executions/{execution_id}?token={srv.token}"
    async with connect(url, compression=None) as ws:
        marks["WebSocket open"] = time.time()
        async for raw in ws:
            kind = json.loads(raw)["type"]
            if kind == "status":
                marks.setdefault("first status message", time.time())
            elif kind == "log":
                marks["first log message"] = time.time()
                break
    row = await _until_ended(client, srv, execution_id)
    logs = (await client.get(f"/api/v1/executions/{execution_id}/logs", headers=srv.headers)).json()
    marks["row made (queued_at)"] = _server_time(row["queued_at"])
    marks["claimed by a worker (started_at)"] = _server_time(row["started_at"])
    marks["first chunk stored (created_at)"] = _server_time(logs["items"][0]["created_at"])
    return {name: (marks[name] - t0) * 1000 for name in PHASES if name in marks}


async def _until_ended(client: httpx.AsyncClient, srv: Server, execution_id: int) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        row = (await client.get(f"/api/v1/executions/{execution_id}", headers=srv.headers)).json()
        if row["finished_at"]:
            return dict(row)
        await asyncio.sleep(0.01)
    raise RuntimeError(f"execution {execution_id} did not end within 60 s")


def print_phases(samples: list[dict[str, float]]) -> None:
    print(f"phases, median ms after the POST was sent (n={len(samples)}):")
    previous = 0.0
    for name in PHASES:
        at = statistics.median(s[name] for s in samples if name in s)
        print(f"  {name:34} {at:7.2f}  (+{at - previous:.2f})")
        previous = at


def bare(samples: int) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "script.sh"
        script.write_text(SCRIPT)
        times = []
        for _ in range(samples):
            t0 = time.perf_counter()
            proc = subprocess.Popen(["bash", str(script)], stdout=subprocess.PIPE, env=bare_env(tmp))
            assert proc.stdout is not None
            proc.stdout.read(1)
            times.append((time.perf_counter() - t0) * 1000)
            proc.communicate()
        return times


async def main(samples: int, idle: float, idle_samples: int, phases: bool) -> None:
    with server() as srv:
        script_id = create_script(srv, "echo-hi", SCRIPT)
        async with httpx.AsyncClient(base_url=srv.url) as client:
            for _ in range(20):  # warm-up: connections, caches
                await one(client, srv, script_id)
                await one_streamed(client, srv, script_id)
            if phases:
                print_phases([await one_phased(client, srv, script_id) for _ in range(samples)])
            busy, streamed = [], []
            for _ in range(samples):
                busy.append(await one(client, srv, script_id))
                streamed.append(await one_streamed(client, srv, script_id))
            after_idle = []
            for _ in range(idle_samples):
                await asyncio.sleep(idle)
                after_idle.append(await one(client, srv, script_id))
    baseline = bare(samples)
    print(f"submit -> first byte (HTTP + WebSocket, local runner): {describe(busy)}")
    print(f"same in one request (POST .../stream, SSE):           {describe(streamed)}")
    print(f"after {idle:.0f} s idle: {', '.join(f'{t:.1f} ms' for t in after_idle)}")
    print(f"bare baseline (spawn bash, first byte):               {describe(baseline)}")
    ok = percentile(busy, 50) <= 25 and percentile(busy, 99) <= 100 and max(after_idle, default=0) <= 100
    print("targets (p50 <= 25 ms, p99 <= 100 ms, also after idle):", "met" if ok else "NOT met")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--idle", type=float, default=60)
    parser.add_argument("--idle-samples", type=int, default=3)
    parser.add_argument("--phases", action="store_true", help="first split `samples` runs into phases")
    args = parser.parse_args()
    asyncio.run(main(args.samples, args.idle, args.idle_samples, args.phases))
