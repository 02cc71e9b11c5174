"""Execution engine 6: server CPU per execution (submit + WebSocket watch + run of `echo hi`).

Reads the `opscraft serve` process's CPU time (`utime + stime` of /proc/<pid>/stat, all its
threads; its children, such as the local runner's processes, are not included) before and after
N executions, each submitted over HTTP (POST /api/v1/executions) and watched over the WebSocket
until its `end`, one after the other, local runner. Target (issue 15): <= 8 ms per execution.
Each round also measures N executions each started and followed in one request instead (POST
/api/v1/executions/stream, Server-Sent Events), right after the first N.

With `--profile SECONDS`, py-spy (`$PY_SPY`, default `py-spy` on PATH) records the server for that
long while the runs continue (`--gil --idle --threads`: each sample is the thread holding the
GIL, named) and writes its folded stacks (`--format raw`, for flamegraph.pl or speedscope) to
`--output`.

Usage: .venv/bin/python -m bench.bench_exec_cpu [--runs 300] [--rounds 3] [--profile 0]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import time
from pathlib import Path

import httpx

from bench.exec_harness import Server, create_script, server, stream_run, submit, watch

SCRIPT = "echo hi\n"
TARGET_MS = 8.0


def cpu_seconds(stat: Path) -> float:
    """User + system CPU seconds from a /proc `stat` file (fields 14 and 15, proc(5))."""
    fields = stat.read_text().rsplit(")", 1)[1].split()
    # After the command's closing parenthesis, fields start at 3 (state): utime is 14, stime 15.
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> tuple[float, float]:
    """(all threads, the main thread: the event loop) CPU seconds of process `pid`, its children
    excluded."""
    return cpu_seconds(Path(f"/proc/{pid}/stat")), cpu_seconds(Path(f"/proc/{pid}/task/{pid}/stat"))


async def run_many(
    client: httpx.AsyncClient, srv: Server, script_id: int, count: int, *, streamed: bool = False
) -> None:
    """`count` executions one after the other: POST then WebSocket, or (`streamed`) one
    `POST .../stream` each; each followed to its end."""
    for _ in range(count):
        if streamed:
            message, _ = await stream_run(client, srv, script_id)
        else:
            message, _ = await watch(srv, await submit(client, srv, script_id))
        if message.get("status") != "success":
            raise RuntimeError(f"script {script_id}: an execution ended {message}")


async def breakdown(client: httpx.AsyncClient, srv: Server, script_id: int, count: int) -> None:
    """Server CPU per request of each part of a run, `count` times each, one after the other."""
    pid = srv.process.pid
    execution_id = await submit(client, srv, script_id)
    await watch(srv, execution_id)

    async def health() -> None:
        (await client.get("/api/v1/health")).raise_for_status()

    async def read() -> None:
        (await client.get(f"/api/v1/executions/{execution_id}", headers=srv.headers)).raise_for_status()

    async def watch_ended() -> None:
        await watch(srv, execution_id)

    async def run() -> None:
        await watch(srv, await submit(client, srv, script_id))

    for name, call in [
        ("GET /api/v1/health (no auth)", health),
        ("GET /api/v1/executions/{id}", read),
        ("WebSocket of an ended run (auth, replay, end)", watch_ended),
        ("whole run (submit, watch, run)", run),
    ]:
        cpu0 = process_cpu_seconds(pid)[0]
        for _ in range(count):
            await call()
        print(f"{name}: {(process_cpu_seconds(pid)[0] - cpu0) / count * 1000:.2f} ms server CPU each")


async def main(runs: int, rounds: int, profile: float, output: Path, parts: int) -> None:
    with server() as srv:
        pid = srv.process.pid
        script_id = create_script(srv, "echo-hi", SCRIPT)
        async with httpx.AsyncClient(base_url=srv.url) as client:
            await run_many(client, srv, script_id, 20)  # warm-up: connections, caches
            if parts:
                await breakdown(client, srv, script_id, parts)
            await run_many(client, srv, script_id, 20, streamed=True)
            per_run: dict[bool, list[float]] = {False: [], True: []}
            for _ in range(rounds):
                for streamed in (False, True):
                    (cpu0, loop0), wall0 = process_cpu_seconds(pid), time.perf_counter()
                    await run_many(client, srv, script_id, runs, streamed=streamed)
                    cpu1, loop1 = process_cpu_seconds(pid)
                    cpu, loop = cpu1 - cpu0, loop1 - loop0
                    wall = time.perf_counter() - wall0
                    per_run[streamed].append(cpu / runs * 1000)
                    print(
                        f"{runs} runs{' (stream)' if streamed else ''}: server CPU {cpu * 1000:.0f} ms = "
                        f"{cpu / runs * 1000:.2f} ms per run, {loop / runs * 1000:.2f} ms of it on the event "
                        f"loop's thread ({wall / runs * 1000:.1f} ms wall each, "
                        f"load {os.getloadavg()[0]:.2f})"
                    )
            if profile:
                py_spy = os.environ.get("PY_SPY") or shutil.which("py-spy") or "py-spy"
                args = ["record", "--pid", str(pid), "--duration", str(int(profile)), "--rate", "250"]
                args += ["--gil", "--idle", "--threads"]  # samples holding the GIL, by thread
                args += ["--format", "raw", "--output", str(output)]
                record = subprocess.Popen([py_spy, *args])
                deadline = time.monotonic() + profile
                while time.monotonic() < deadline:
                    await run_many(client, srv, script_id, 10)
                record.wait()
                print(f"profile: {output}")
    for streamed, how in ((False, "POST + WebSocket"), (True, "POST .../stream")):
        median = statistics.median(per_run[streamed])
        print(
            f"server CPU per execution ({how}), median of {rounds} rounds: {median:.2f} ms "
            f"(target <= {TARGET_MS} ms)"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", type=float, default=0, help="seconds of py-spy after the rounds")
    parser.add_argument("--parts", type=int, default=0, help="first measure each part N times")
    parser.add_argument("--output", type=Path, default=Path("/tmp/opscraft-exec-cpu.folded"))
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.rounds, args.profile, args.output, args.parts))
