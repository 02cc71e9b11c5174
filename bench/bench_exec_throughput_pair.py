"""Execution engine 4, paired: bursts of `true` runs on two source trees, burst for burst alternating.

`bench_exec_throughput` runs one 1,000-run burst per server start, so two runs of it taken one
after the other compare the load as much as the code. This one starts an `opscraft serve` from
each tree (4 consumer threads each, as `bench_exec_throughput`) and takes `--rounds` rounds; in
each, every tree (which goes first alternates) gets a burst of `--count` runs submitted at once
(32 connections), timed from the first submission until no run of the server is queued or
running. It prints each tree's total runs per second and the ratio; then, per submission, the
time the burst's submissions took to be accepted and the event loop's CPU (the server's main
thread) while they were (the request path: middlewares, authentication, validation, the script
read, the group commit's wait, the answer), each with its ratio; and per run over the whole
bursts, the CPU of the server's process (all its threads) and of its descendants (the fork
server, supervisors and scripts, reaped ones included), with their ratios: what two cores must
pay for each run, which a busy machine blurs less than the runs' rate.

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
    accepted, the event loop's CPU meanwhile, and the server's and its descendants' CPU over
    the whole bursts."""

    seconds: float = 0.0
    submitting: float = 0.0
    loop_cpu: float = 0.0
    server_cpu: float = 0.0
    descendants_cpu: float = 0.0


def descendants_cpu_seconds(pid: int) -> float:
    """CPU seconds of the live descendants of process `pid` (/proc), each with its reaped
    children's (`cutime + cstime`): the local runner's fork server, supervisors and scripts."""
    children: dict[int, list[int]] = {}
    seconds: dict[int, float] = {}
    ticks = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # it ended meanwhile
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
        seconds[int(entry)] = sum(int(f) for f in fields[11:15]) / ticks
    total, stack = 0.0, list(children.get(pid, []))
    while stack:
        child = stack.pop()
        total += seconds[child]
        stack += children.get(child, [])
    return total


async def burst(
    client: httpx.AsyncClient, srv: Server, poster: RawPoster, count: int, totals: Totals
) -> float:
    """Seconds from the first of `count` submissions until none is queued or running; `totals`
    gets them, and the submissions' time and event-loop CPU."""
    server0, loop0 = process_cpu_seconds(srv.process.pid)
    descendants0 = descendants_cpu_seconds(srv.process.pid)
    t0 = time.perf_counter()
    await poster.post_many(count, CONNECTIONS)
    submitted = time.perf_counter() - t0
    totals.loop_cpu += process_cpu_seconds(srv.process.pid)[1] - loop0
    totals.submitting += submitted
    while await unfinished(client, srv):
        await asyncio.sleep(POLL_SECONDS)
    took = time.perf_counter() - t0
    totals.seconds += took
    totals.server_cpu += process_cpu_seconds(srv.process.pid)[0] - server0
    totals.descendants_cpu += descendants_cpu_seconds(srv.process.pid) - descendants0
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
            f"CPU each; per run {1000 * t.server_cpu / runs:.2f} ms of the server's CPU, "
            f"{1000 * t.descendants_cpu / runs:.2f} ms of its descendants'"
        )
    base, branch = totals
    print(f"ratio: {base.seconds / branch.seconds:.3f}")
    print(
        f"submissions' ratios: rate {base.submitting / branch.submitting:.3f}, "
        f"event-loop CPU {branch.loop_cpu / base.loop_cpu:.3f}"
    )
    print(
        f"CPU per run's ratios: server {branch.server_cpu / base.server_cpu:.3f}, descendants "
        f"{branch.descendants_cpu / base.descendants_cpu:.3f}, both "
        f"{(branch.server_cpu + branch.descendants_cpu) / (base.server_cpu + base.descendants_cpu):.3f}"
    )


if __name__ == "__main__":
    parser = pair_parser(__doc__)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--count", type=int, default=250)
    args = parser.parse_args()
    asyncio.run(main(pair_trees(args), args.rounds, args.count))
