"""Execution engine 4, paired: bursts of `true` runs on two source trees, burst for burst alternating.

`bench_exec_throughput` runs one 1,000-run burst per server start, so two runs of it taken one
after the other compare the load as much as the code. This one starts an `opscraft serve` from
each tree (4 consumer threads each, as `bench_exec_throughput`) and takes `--rounds` rounds; in
each, every tree (which goes first alternates) gets a burst of `--count` runs submitted at once
(32 connections), timed from the first submission until no run of the server is queued or
running. It prints each tree's total runs per second and the ratio.

Usage: .venv/bin/python -m bench.bench_exec_throughput_pair BASELINE_TREE [TREE] [--rounds 6]
       [--count 250]
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import httpx

from bench.bench_exec_throughput import CONNECTIONS
from bench.exec_harness import (
    RawPoster,
    Server,
    create_script,
    pair_parser,
    pair_trees,
    paired_servers,
    turns,
)

POLL_SECONDS = 0.01


async def unfinished(client: httpx.AsyncClient, srv: Server) -> int:
    """How many runs of the server are queued or running now."""
    total = 0
    for status in ("queued", "running"):
        params = {"status": status, "limit": 1}
        page = await client.get("/api/v1/executions", params=params, headers=srv.headers)
        total += int(page.json()["total"])
    return total


async def burst(client: httpx.AsyncClient, srv: Server, poster: RawPoster, count: int) -> float:
    """Seconds from the first of `count` submissions until none is queued or running."""
    t0 = time.perf_counter()
    await poster.post_many(count, CONNECTIONS)
    while await unfinished(client, srv):
        await asyncio.sleep(POLL_SECONDS)
    return time.perf_counter() - t0


async def main(trees: list[Path], rounds: int, count: int) -> None:
    seconds = [0.0] * len(trees)
    async with paired_servers(trees, {"OPSCRAFT_WORKERS": "4"}) as (servers, clients):
        scripts = [create_script(srv, "true", "true\n") for srv in servers]
        posters = [
            RawPoster(srv, "/api/v1/executions", {"script_id": script_id, "runner": "local"})
            for srv, script_id in zip(servers, scripts, strict=True)
        ]
        for i in range(len(trees)):  # warm-up: connections, caches, the fork server
            await burst(clients[i], servers[i], posters[i], 50)
        for round_ in range(rounds):
            order = turns(round_, len(trees))
            took = {}
            for i in order:
                took[i] = await burst(clients[i], servers[i], posters[i], count)
                seconds[i] += took[i]
            figures = ", ".join(f"{trees[i]}: {count / took[i]:.0f}/s" for i in sorted(took))
            print(f"round {round_ + 1} (load {os.getloadavg()[0]:.1f}): {figures}", flush=True)
    rates = [rounds * count / s for s in seconds]
    for tree, rate in zip(trees, rates, strict=True):
        print(f"{tree}: {rate:.0f} runs/s over {rounds} bursts of {count}")
    print(f"ratio: {rates[1] / rates[0]:.3f}")


if __name__ == "__main__":
    parser = pair_parser(__doc__)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--count", type=int, default=250)
    args = parser.parse_args()
    asyncio.run(main(pair_trees(args), args.rounds, args.count))
