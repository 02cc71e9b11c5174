"""Execution engine 6, paired: server CPU per execution of two source trees measured at once.

On a shared machine the load moves by tens of percent from one minute to the next, so two
`bench_exec_cpu` runs taken one after the other compare the load as much as the code. This one
starts an `opscraft serve` from each tree (e.g. a baseline worktree and this one), then runs
`--blocks` blocks of `--per-block` executions (submit, WebSocket watch to the end, `echo hi`,
local runner), alternating the trees block by block (and which goes first), and counts each
server's CPU time (all threads, children excluded) during its own blocks only.

Usage: .venv/bin/python -m bench.bench_exec_cpu_pair BASELINE_TREE [TREE] [--blocks 20] [--per-block 30]
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from bench.bench_exec_cpu import SCRIPT, process_cpu_seconds, run_many
from bench.exec_harness import create_script, pair_parser, pair_trees, paired_servers, turns


async def main(trees: list[Path], blocks: int, per_block: int) -> None:
    cpu, runs = [0.0] * len(trees), [0] * len(trees)
    async with paired_servers(trees) as (servers, clients):
        scripts = [create_script(srv, "echo-hi", SCRIPT) for srv in servers]
        for srv, client, script_id in zip(servers, clients, scripts, strict=True):
            await run_many(client, srv, script_id, 20)  # warm-up: connections, caches
        for block in range(blocks):
            order = turns(block, len(trees))
            for i in order:
                cpu0 = process_cpu_seconds(servers[i].process.pid)[0]
                await run_many(clients[i], servers[i], scripts[i], per_block)
                cpu[i] += process_cpu_seconds(servers[i].process.pid)[0] - cpu0
                runs[i] += per_block
            if block % 5 == 4 or block == blocks - 1:
                per_run = zip(trees, cpu, runs, strict=True)
                figures = ", ".join(f"{t}: {c / n * 1000:.2f} ms" for t, c, n in per_run)
                print(f"after {block + 1} blocks (load {os.getloadavg()[0]:.1f}): {figures}", flush=True)
    for tree, seconds, count in zip(trees, cpu, runs, strict=True):
        print(f"{tree}: {seconds / count * 1000:.2f} ms server CPU per execution over {count} runs")


if __name__ == "__main__":
    parser = pair_parser(__doc__)
    parser.add_argument("--blocks", type=int, default=20)
    parser.add_argument("--per-block", type=int, default=30)
    args = parser.parse_args()
    asyncio.run(main(pair_trees(args), args.blocks, args.per_block))
