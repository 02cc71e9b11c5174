"""Execution engine 6: server CPU per execution (submit + WebSocket watch + run of `echo hi`).

Reads the `opscraft serve` process's CPU time (`utime + stime` of /proc/<pid>/stat, all its
threads; its children, such as the local runner's processes, are not included) before and after
N executions, each submitted over HTTP (POST /api/v1/executions) and watched over the WebSocket
until its `end`, one after the other, local runner. Target (issue 15): <= 8 ms per execution.

With `--profile SECONDS`, py-spy (`$PY_SPY`, default `py-spy` on PATH) records the server for that
long while the runs continue and writes its folded stacks (`--format raw`, for flamegraph.pl or
speedscope) to `--output`.

Usage: .venv/bin/python -m bench.bench_exec_cpu [--runs 300] [--rounds 3] [--profile 0]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx

from bench.exec_harness import Server, create_script, server, submit, watch

SCRIPT = "echo hi\n"
TARGET_MS = 8.0


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` (all threads, children excluded), from
    /proc/<pid>/stat fields 14 and 15 (proc(5)), in clock ticks."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the command's closing parenthesis, fields start at 3 (state): utime is 14, stime 15.
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


async def run_many(client: httpx.AsyncClient, srv: Server, script_id: int, count: int) -> None:
    for _ in range(count):
        execution_id = await submit(client, srv, script_id)
        message, _ = await watch(srv, execution_id)
        if message.get("status") != "success":
            raise RuntimeError(f"execution {execution_id} ended {message}")


async def main(runs: int, rounds: int, profile: float, output: Path) -> None:
    with server() as srv:
        pid = srv.process.pid
        script_id = create_script(srv, "echo-hi", SCRIPT)
        async with httpx.AsyncClient(base_url=srv.url) as client:
            await run_many(client, srv, script_id, 20)  # warm-up: connections, caches
            per_run = []
            for _ in range(rounds):
                cpu0, wall0 = process_cpu_seconds(pid), time.perf_counter()
                await run_many(client, srv, script_id, runs)
                cpu = process_cpu_seconds(pid) - cpu0
                wall = time.perf_counter() - wall0
                per_run.append(cpu / runs * 1000)
                print(
                    f"{runs} runs: server CPU {cpu * 1000:.0f} ms = {cpu / runs * 1000:.2f} ms per execution "
                    f"({wall / runs * 1000:.1f} ms wall each, load {os.getloadavg()[0]:.2f})"
                )
            if profile:
                py_spy = os.environ.get("PY_SPY") or shutil.which("py-spy") or "py-spy"
                record = subprocess.Popen(
                    [
                        py_spy,
                        "record",
                        "--pid",
                        str(pid),
                        "--duration",
                        str(int(profile)),
                        "--rate",
                        "250",
                        "--format",
                        "raw",
                        "--output",
                        str(output),
                        "--nonblocking",
                    ]
                )
                deadline = time.monotonic() + profile
                while time.monotonic() < deadline:
                    await run_many(client, srv, script_id, 10)
                record.wait()
                print(f"profile: {output}")
    per_run.sort()
    median = per_run[len(per_run) // 2]
    print(f"server CPU per execution, median of {rounds} rounds: {median:.2f} ms (target <= {TARGET_MS} ms)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", type=float, default=0, help="seconds of py-spy after the rounds")
    parser.add_argument("--output", type=Path, default=Path("/tmp/opscraft-exec-cpu.folded"))
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.rounds, args.profile, args.output))
