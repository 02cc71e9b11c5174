"""Execution engine 4: 1,000 executions of `true` submitted at once (local runner).

All submissions go out over HTTP at once (64 connections); the rate is executions completed per
second from the first submission to the last completion (seen by polling the list). Target:
>= 150 per second. Baseline in the same run: 1,000 `bash script.sh` spawned directly, as many
at a time as the server has workers.

Usage: .venv/bin/python -m bench.bench_exec_throughput [--count 1000] [--workers 4]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from bench.exec_harness import create_script, server, submit

CONNECTIONS = 64


def bare(count: int, workers: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "script.sh"
        script.write_text("true\n")
        t0 = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(lambda _: subprocess.run(["bash", str(script)], check=True), range(count)))
        return count / (time.perf_counter() - t0)


async def main(count: int, workers: int) -> None:
    with server({"OPSCRAFT_WORKERS": str(workers)}) as srv:
        script_id = create_script(srv, "true", "true\n")
        limits = httpx.Limits(max_connections=CONNECTIONS)
        async with httpx.AsyncClient(base_url=srv.url, limits=limits, timeout=60) as client:
            t0 = time.perf_counter()
            ids = await asyncio.gather(*(submit(client, srv, script_id) for _ in range(count)))
            submitted = time.perf_counter() - t0
            while True:
                page = await client.get(
                    "/api/v1/executions", params={"status": "success", "limit": 1}, headers=srv.headers
                )
                if page.json()["total"] >= count:
                    break
                await asyncio.sleep(0.02)
            elapsed = time.perf_counter() - t0
        assert len(set(ids)) == count
    rate = count / elapsed
    print(
        f"{count} `true` submitted at once (local runner, {workers} workers): "
        f"all submitted in {submitted:.2f} s, all completed in {elapsed:.2f} s = {rate:.0f} executions/s"
    )
    print(
        f"bare baseline, {count} x `bash script.sh`, {workers} at a time: {bare(count, workers):.0f} runs/s"
    )
    print("target (>= 150 per second):", "met" if rate >= 150 else "NOT met")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    asyncio.run(main(args.count, args.workers))
