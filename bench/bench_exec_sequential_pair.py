"""Execution engine 3, paired: sequential python fib(10) runs of two source trees, in blocks
alternating between the trees and between the two ways of following a run.

`bench_exec_sequential` times 40 runs followed over the WebSocket and then 40 followed in one
request (`POST .../stream`), one tree per invocation: on a shared machine the second block and
the second invocation meet another load than the first. Here an `opscraft serve` of each tree
runs at once; each round runs, for every tree (which goes first alternates, `turns`), a block
of `--runs` runs followed over the WebSocket and one of `--runs` runs followed in one request
(which way goes first alternates too), each run submitted when the previous one has ended, as
in `bench_exec_sequential`. It prints each tree's median block time per way (in seconds per
`--runs` runs) and the ratio of the medians.

Usage: .venv/bin/python -m bench.bench_exec_sequential_pair BASELINE_TREE [TREE] [--rounds 5] [--runs 40]
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from pathlib import Path

import httpx

from bench.bench_exec_sequential import FIB
from bench.exec_harness import (
    Server,
    create_script,
    pair_parser,
    pair_trees,
    paired_servers,
    print_ways,
    stream_run,
    submit,
    turns,
    watch,
)

WAYS = ("POST + WebSocket", "POST .../stream")


async def block(client: httpx.AsyncClient, srv: Server, script_id: int, way: int, runs: int) -> float:
    """`runs` sequential fib(10) runs followed the way `way` (an index of `WAYS`); seconds."""
    t0 = time.perf_counter()
    for _ in range(runs):
        if way == 0:
            end, received = await watch(srv, await submit(client, srv, script_id))
        else:
            end, received = await stream_run(client, srv, script_id)
        assert end["status"] == "success" and received == 3, (end, received)
    return time.perf_counter() - t0


async def main(trees: list[Path], rounds: int, runs: int) -> None:
    times: list[list[list[float]]] = [[[] for _ in WAYS] for _ in trees]
    async with paired_servers(trees) as (servers, clients):
        scripts = [create_script(srv, "fib", FIB, "python") for srv in servers]
        for i in range(len(trees)):  # warm-up: connections, caches
            for way in range(len(WAYS)):
                await block(clients[i], servers[i], scripts[i], way, 3)
        loads = [os.getloadavg()[0]]
        for round_ in range(rounds):
            for i in turns(round_, len(trees)):
                for way in turns(round_ // 2, len(WAYS)):
                    times[i][way].append(await block(clients[i], servers[i], scripts[i], way, runs))
        loads.append(os.getloadavg()[0])
    print(f"{rounds} rounds of {runs} runs per tree and way, load {loads[0]:.1f} -> {loads[1]:.1f}")
    print_ways(
        WAYS,
        trees,
        times,
        statistics.median,
        lambda median, blocks: f"median {median:.3f} s ({', '.join(f'{t:.3f}' for t in blocks)})",
        "medians",
    )


if __name__ == "__main__":
    parser = pair_parser(__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    asyncio.run(main(pair_trees(args), args.rounds, args.runs))
