"""Execution engine 4: 1,000 executions of `true` submitted at once (local runner).

All submissions go out over HTTP at once (on 32 keep-alive connections, from a lean load
generator); the rate is executions completed per second from the first submission to the last
completion (the server's `finished_at`, read after the last run has ended). Target (issue 15):
>= 300 per second, and at least the Celery baseline's rate measured in the same session
(`bash ../shared/baselines/celery/run throughput`). Bare baseline in the same run: 1,000
`bash script.sh` spawned directly, as many at a time as the server has workers.

Usage: .venv/bin/python -m bench.bench_exec_throughput [--count 1000] [--workers 4]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import httpx

from bench.exec_harness import RawPoster, Server, bare_env, create_script, server, watch

CONNECTIONS = 32
TARGET_RATE = 300


def bare(count: int, workers: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "script.sh"
        script.write_text("true\n")
        t0 = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            env = bare_env(tmp)
            list(pool.map(lambda _: subprocess.run(["bash", str(script)], check=True, env=env), range(count)))
        return count / (time.perf_counter() - t0)


async def all_executions(client: httpx.AsyncClient, srv: Server) -> list[dict[str, object]]:
    runs: list[dict[str, object]] = []
    while True:
        page = await client.get(
            "/api/v1/executions", params={"skip": len(runs), "limit": 500}, headers=srv.headers
        )
        runs += page.json()["items"]
        if len(runs) >= page.json()["total"]:
            return runs


async def main(count: int, workers: int) -> None:
    with server({"OPSCRAFT_WORKERS": str(workers)}) as srv:
        script_id = create_script(srv, "true", "true\n")
        poster = RawPoster(srv, "/api/v1/executions", {"script_id": script_id, "runner": "local"})
        t0 = time.time()
        ids = [r["id"] for r in await poster.post_many(count, CONNECTIONS)]
        submitted = time.time() - t0
        await watch(srv, ids[-1])  # the last one queued, then the few still running
        async with httpx.AsyncClient(base_url=srv.url, timeout=60) as client:
            runs = await all_executions(client, srv)
            while any(r["finished_at"] is None for r in runs):
                await asyncio.sleep(0.05)
                runs = await all_executions(client, srv)
        finished = [datetime.fromisoformat(str(r["finished_at"])).timestamp() for r in runs]
        assert len(finished) == count and all(r["status"] == "success" for r in runs)
        elapsed = max(finished) - t0
        assert len(set(ids)) == count
    rate = count / elapsed
    print(
        f"{count} `true` submitted at once (local runner, {workers} workers): "
        f"all submitted in {submitted:.2f} s, all completed in {elapsed:.2f} s = {rate:.0f} executions/s"
    )
    print(
        f"bare baseline, {count} x `bash script.sh`, {workers} at a time: {bare(count, workers):.0f} runs/s"
    )
    print(
        f"target (>= {TARGET_RATE} per second, and >= the Celery baseline of the same session):",
        "met" if rate >= TARGET_RATE else "NOT met",
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    asyncio.run(main(args.count, args.workers))
