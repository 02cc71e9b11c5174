"""Execution engine 1, paired: submit -> first byte and submit -> end of two source trees, sample
for sample alternating.

On a shared machine the load moves from one minute to the next, so two `bench_exec_latency` runs
taken one after the other compare the load as much as the code. This one starts an `opscraft
serve` from each tree (e.g. a baseline worktree and this one) and takes `--samples` rounds; in
each, every tree (which goes first alternates) runs `echo hi` three ways: POST + WebSocket to the
first `log` message, `POST .../stream` to the first `log` event, and POST + WebSocket to the
`end` message. It prints each tree's p50 and p90 per way, and the ratio of the p50s.

Usage: .venv/bin/python -m bench.bench_exec_latency_pair BASELINE_TREE [TREE] [--samples 300]
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import httpx

from bench.bench_exec_latency import SCRIPT, one, one_streamed
from bench.exec_harness import (
    Server,
    create_script,
    pair_parser,
    pair_trees,
    paired_servers,
    percentile,
    print_ways,
    submit,
    turns,
    watch,
)

WAYS = ("first byte, POST + WebSocket", "first byte, POST .../stream", "end, POST + WebSocket")


async def one_to_end(client: httpx.AsyncClient, srv: Server, script_id: int) -> float:
    t0 = time.perf_counter()
    execution_id = await submit(client, srv, script_id)
    await watch(srv, execution_id, until="end")
    return (time.perf_counter() - t0) * 1000


async def main(trees: list[Path], samples: int) -> None:
    ways = (one, one_streamed, one_to_end)
    times: list[list[list[float]]] = [[[] for _ in ways] for _ in trees]
    async with paired_servers(trees) as (servers, clients):
        scripts = [create_script(srv, "echo-hi", SCRIPT) for srv in servers]
        for i in range(len(trees)):  # warm-up: connections, caches
            for _ in range(20):
                for way in ways:
                    await way(clients[i], servers[i], scripts[i])
        loads = [os.getloadavg()[0]]
        for sample in range(samples):
            order = turns(sample, len(trees))
            for i in order:
                for w, way in enumerate(ways):
                    times[i][w].append(await way(clients[i], servers[i], scripts[i]))
        loads.append(os.getloadavg()[0])
    print(f"{samples} samples per tree and way, load {loads[0]:.1f} -> {loads[1]:.1f}")
    print_ways(
        WAYS,
        trees,
        times,
        lambda samples: percentile(samples, 50),
        lambda p50, samples: f"p50 {p50:.2f} ms, p90 {percentile(samples, 90):.2f} ms",
        "p50s",
    )


if __name__ == "__main__":
    parser = pair_parser(__doc__)
    parser.add_argument("--samples", type=int, default=300)
    args = parser.parse_args()
    asyncio.run(main(pair_trees(args), args.samples))
