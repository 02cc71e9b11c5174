"""Execution engine 3: 40 sequential Python executions of fib(10) with the local runner, each
submitted when the previous one has ended (over HTTP, ends seen on the WebSocket), and the same
40 each started and followed in one request (POST /api/v1/executions/stream, Server-Sent Events),
the two ways taking turns run by run, each way's time summed. (Until session 33 the 40 stream
runs came after the 40 WebSocket runs: the second block met another load and a server 40 runs
older, which made the stream look 15-20 % slower; interleaved it is not: docs/benchmarks.md.)

Target: <= 1.5 s in total. Baseline in the same run: the same 40 scripts run one after another
as `python3 -u script.py` directly.

Usage: .venv/bin/python -m bench.bench_exec_sequential [--runs 40]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from bench.exec_harness import bare_env, create_script, server, stream_run, submit, watch

FIB = "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n\nprint(fib(10))\n"


def bare(runs: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "script.py"
        script.write_text(FIB)
        t0 = time.perf_counter()
        for _ in range(runs):
            subprocess.run(["python3", "-u", str(script)], check=True, capture_output=True, env=bare_env(tmp))
        return time.perf_counter() - t0


async def main(runs: int) -> None:
    with server() as srv:
        script_id = create_script(srv, "fib", FIB, "python")
        async with httpx.AsyncClient(base_url=srv.url) as client:
            for _ in range(3):  # warm-up
                await watch(srv, await submit(client, srv, script_id))
                await stream_run(client, srv, script_id)
            total = streamed = 0.0
            for _ in range(runs):
                t0 = time.perf_counter()
                end, received = await watch(srv, await submit(client, srv, script_id))
                t1 = time.perf_counter()
                assert end["status"] == "success" and received == 3, (end, received)
                end, received = await stream_run(client, srv, script_id)
                total, streamed = total + t1 - t0, streamed + time.perf_counter() - t1
                assert end["status"] == "success" and received == 3, (end, received)
    baseline = bare(runs)
    each, bare_each = total / runs * 1000, baseline / runs * 1000
    print(f"{runs} sequential fib(10) executions, local runner: {total:.3f} s ({each:.1f} ms each)")
    stream_each = streamed / runs * 1000
    print(f"same, each in one request (POST .../stream, SSE):  {streamed:.3f} s ({stream_each:.1f} ms each)")
    print(f"bare baseline, {runs} x `python3 -u script.py`:       {baseline:.3f} s ({bare_each:.1f} ms each)")
    print("target (<= 1.5 s in total):", "met" if total <= 1.5 else "NOT met")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    asyncio.run(main(parser.parse_args().runs))
