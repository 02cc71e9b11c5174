"""Execution engine 1: submit -> first output byte of `echo hi` (local runner).

Each sample: POST /api/v1/executions, open the WebSocket for the returned id, stop at the first
`log` message. Targets: p50 <= 25 ms, p99 <= 100 ms, also after the server sat idle for 60 s.
Baseline in the same run: spawning `bash script.sh` directly and reading its first byte.

Usage: .venv/bin/python bench/bench_exec_latency.py [--samples 300] [--idle 60] [--idle-samples 3]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from bench.exec_harness import Server, bare_env, create_script, describe, percentile, server, submit, watch

SCRIPT = "echo hi\n"


async def one(client: httpx.AsyncClient, srv: Server, script_id: int) -> float:
    t0 = time.perf_counter()
    execution_id = await submit(client, srv, script_id)
    await watch(srv, execution_id, until="log")
    return (time.perf_counter() - t0) * 1000


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


async def main(samples: int, idle: float, idle_samples: int) -> None:
    with server() as srv:
        script_id = create_script(srv, "echo-hi", SCRIPT)
        async with httpx.AsyncClient(base_url=srv.url) as client:
            for _ in range(20):  # warm-up: connections, caches
                await one(client, srv, script_id)
            busy = [await one(client, srv, script_id) for _ in range(samples)]
            after_idle = []
            for _ in range(idle_samples):
                await asyncio.sleep(idle)
                after_idle.append(await one(client, srv, script_id))
    baseline = bare(samples)
    print(f"submit -> first byte (HTTP + WebSocket, local runner): {describe(busy)}")
    print(f"after {idle:.0f} s idle: {', '.join(f'{t:.1f} ms' for t in after_idle)}")
    print(f"bare baseline (spawn bash, first byte):               {describe(baseline)}")
    ok = percentile(busy, 50) <= 25 and percentile(busy, 99) <= 100 and max(after_idle, default=0) <= 100
    print("targets (p50 <= 25 ms, p99 <= 100 ms, also after idle):", "met" if ok else "NOT met")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--idle", type=float, default=60)
    parser.add_argument("--idle-samples", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.samples, args.idle, args.idle_samples))
