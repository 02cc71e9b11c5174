"""Execution engine 4, paired: bursts of `true` runs on two source trees, burst for burst alternating.

`bench_exec_throughput` runs one 1,000-run burst per server start, so two runs of it taken one
after the other compare the load as much as the code. This one starts an `opscraft serve` from
each tree (4 consumer threads each, as `bench_exec_throughput`) and takes `--rounds` rounds; in
each, every tree (which goes first alternates) gets a burst of `--count` runs submitted at once
(32 connections), timed from the first submission until no run of the server is queued or
running. It prints each tree's total runs per second and the ratio; then, per submission, the
time the burst's submissions took to be accepted and the event loop's CPU (the server's main
thread) while they were (the request path: middlewares, authentication, validation, the script
read, the group commit's wait, the answer), each with its ratio.

Usage: .venv/bin/python -m bench.bench_exec_throughput_pair BASELINE_TREE [TREE] [--rounds 6]
       [--count 250]
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.bench_exec_cpu import process_cpu_seconds
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


@dataclass
class Totals:
    """One tree's sums over its bursts, in seconds: the whole bursts, their submissions being
    accepted, and the event loop's CPU meanwhile."""

    seconds: float = 0.0
    submitting: float = 0.0
    loop_cpu: float = 0.0


async def burst(
    client: httpx.AsyncClient, srv: Server, poster: RawPoster, count: int, totals: Totals
) -> float:
    """Seconds from the first of `count` submissions until none is queued or running; `totals`
    gets them, and the submissions' time and event-loop CPU."""
    loop0 = process_cpu_seconds(srv.process.pid)[1]
    t0 = time.perf_counter()
    await poster.post_many(count, CONNECTIONS)
    submitted = time.perf_counter() - t0
    totals.loop_cpu += process_cpu_seconds(srv.process.pid)[1] - loop0
    totals.submitting += submitted
    while await unfinished(client, srv):
        await asyncio.sleep(POLL_SECONDS)
    took = time.perf_counter() - t0
    totals.seconds += took
    return took


async def main(trees: list[Path], rounds: int, count: int) -> None:
    totals = [Totals() for _ in trees]
    async with paired_servers(trees, {"OPSCRAFT_WORKERS": "4"}) as (servers, clients):
        scripts = [create_script(srv, "true", "true\n") for srv in servers]
        posters = [
            RawPoster(srv, "/api/v1/executions", {"script_id": script_id, "runner": "local"})
            for srv, script_id in zip(servers, scripts, strict=True)
        ]
        for i in range(len(trees)):  # warm-up: connections, caches, the fork server
            await burst(clients[i], servers[i], posters[i], 50, Totals())
        for round_ in range(rounds):
            took = {}
            for i in turns(round_, len(trees)):
                took[i] = await burst(clients[i], servers[i], posters[i], count, totals[i])
            figures = ", ".join(f"{trees[i]}: {count / took[i]:.0f}/s" for i in sorted(took))
            print(f"round {round_ + 1} (load {os.getloadavg()[0]:.1f}): {figures}", flush=True)
    runs = rounds * count
    for tree, t in zip(trees, totals, strict=True):
        print(
            f"{tree}: {runs / t.seconds:.0f} runs/s over {rounds} bursts of {count}; submissions "
            f"accepted at {runs / t.submitting:.0f}/s, {1000 * t.loop_cpu / runs:.2f} ms of event-loop "
            "CPU each"
        )
    base, branch = totals
    print(f"ratio: {base.seconds / branch.seconds:.3f}")
    print(
        f"submissions' ratios: rate {base.submitting / branch.submitting:.3f}, "
        f"event-loop CPU {branch.loop_cpu / base.loop_cpu:.3f}"
    )


if __name__ == "__main__":
    parser = pair_parser(__doc__)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--count", type=int, default=250)
    args = parser.parse_args()
    asyncio.run(main(pair_trees(args), args.rounds, args.count))
