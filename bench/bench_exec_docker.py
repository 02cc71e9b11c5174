"""Execution engine 2: runs in Docker, warm and cold, end to end, against a bare `docker run`.

Phase warm (a server with the default pool, 2 warm containers per profile): `true` submit ->
`end`, and `echo hi` submit -> first output byte on the WebSocket; then 40 python fib(10) runs,
each submitted when the previous ended. Phase cold (a server with OPSCRAFT_WARM_POOL_SIZE=0):
`true` submit -> `end`. The baseline, interleaved with the samples of each phase in the same
run: `docker run --rm --network none IMAGE true` from the command line. Each phase ends by
reading `GET /api/v1/warm-pools`, so the warm and cold starts it had are printed. The Celery
baseline's Docker run (`bash ../shared/baselines/celery/run docker`) is run beside it by hand.

Targets (issue 15): warm `true` <= 0.3 x bare; warm first byte p50 <= 40 ms, p99 <= 120 ms;
40 x fib(10) warm <= 3 s; cold <= 1.0 x the Celery baseline's docker SDK run.

`--phases cold` runs the cold phase only (`warm` the warm one only), for pairs of runs beside the
Celery baseline.

Usage: .venv/bin/python -m bench.bench_exec_docker [--samples 30] [--image opscraft-test/runner:1]
       [--phases warm,cold]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import time

import httpx

from bench.exec_harness import (
    RUNNER_IMAGE,
    Server,
    create_script,
    describe,
    percentile,
    server,
    submit,
    watch,
)

FIB = "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n\nprint(fib(10))\n"
PAUSE_SECONDS = 0.3  # between samples (besides the interleaved baseline): a user's think time


def bare(image: str) -> float:
    t0 = time.perf_counter()
    subprocess.run(["docker", "run", "--rm", "--network", "none", image, "true"], check=True)
    return (time.perf_counter() - t0) * 1000


def pool_line(srv: Server) -> str:
    items = httpx.get(f"{srv.url}/api/v1/warm-pools", headers=srv.headers).json()["items"]
    return ", ".join(f"{i['warm_starts']} warm starts, {i['cold_starts']} cold starts" for i in items)


async def end_to_end(srv: Server, image: str, samples: int) -> tuple[list[float], list[float]]:
    script_id = create_script(srv, f"true-{time.monotonic_ns()}", "true\n")
    engine, baseline = [], []
    async with httpx.AsyncClient(base_url=srv.url) as client:
        for _ in range(3):  # warm-up (and the profile's first, cold, run)
            bare(image)
            await watch(srv, await submit(client, srv, script_id, "docker"))
        for _ in range(samples):
            baseline.append(bare(image))
            await asyncio.sleep(PAUSE_SECONDS)
            t0 = time.perf_counter()
            end, _ = await watch(srv, await submit(client, srv, script_id, "docker"))
            engine.append((time.perf_counter() - t0) * 1000)
            assert end["status"] == "success", end
    return engine, baseline


async def first_byte(srv: Server, samples: int) -> list[float]:
    script_id = create_script(srv, f"hi-{time.monotonic_ns()}", "echo hi\n")
    times = []
    async with httpx.AsyncClient(base_url=srv.url) as client:
        for _ in range(samples):
            await asyncio.sleep(PAUSE_SECONDS)
            t0 = time.perf_counter()
            execution_id = await submit(client, srv, script_id, "docker")
            message, _ = await watch(srv, execution_id, until="log")
            times.append((time.perf_counter() - t0) * 1000)
            assert message["content"] == "hi\n", message
            await watch(srv, execution_id)
    return times


async def sequential_fib(srv: Server, runs: int = 40) -> float:
    script_id = create_script(srv, f"fib-{time.monotonic_ns()}", FIB, "python")
    async with httpx.AsyncClient(base_url=srv.url) as client:
        await watch(srv, await submit(client, srv, script_id, "docker"))  # the profile's first use
        await asyncio.sleep(2)  # let the pool fill
        t0 = time.perf_counter()
        for _ in range(runs):
            end, _ = await watch(srv, await submit(client, srv, script_id, "docker"))
            assert end["status"] == "success", end
    return time.perf_counter() - t0


async def main(samples: int, image: str, phases: set[str]) -> None:
    images = {f"OPSCRAFT_IMAGE_{kind}": image for kind in ("BASH", "PYTHON", "ANSIBLE", "TERRAFORM")}
    print(f"# load average at start: {os.getloadavg()}")
    if "warm" in phases:
        with server({**images, "OPSCRAFT_WARM_POOL_SIZE": "2"}) as srv:
            warm, warm_base = await end_to_end(srv, image, samples)
            hi = await first_byte(srv, samples)
            fib = await sequential_fib(srv)
            warm_pool = pool_line(srv)
    if "cold" in phases:
        with server({**images, "OPSCRAFT_WARM_POOL_SIZE": "0"}) as srv:
            cold, cold_base = await end_to_end(srv, image, samples)
            cold_pool = pool_line(srv)
    print(f"# load average at end: {os.getloadavg()}")
    if "warm" in phases:
        report_warm(image, warm, warm_base, hi, fib, warm_pool)
    if "cold" in phases:
        cold_ratio = statistics.median(cold) / statistics.median(cold_base)
        print(f"cold `true` (submit -> end): {describe(cold)}  [{cold_pool}]")
        print(f"  bare `docker run`, same phase: {describe(cold_base)}; ratio of medians {cold_ratio:.2f}")


def report_warm(
    image: str, warm: list[float], warm_base: list[float], hi: list[float], fib: float, warm_pool: str
) -> None:
    warm_ratio = statistics.median(warm) / statistics.median(warm_base)
    print(f"warm `true` (submit -> end): {describe(warm)}  [{warm_pool}]")
    print(f"  bare `docker run --rm --network none {image} true`, same phase: {describe(warm_base)}")
    print(f"  ratio of medians: {warm_ratio:.2f} (target <= 0.3)")
    met = percentile(hi, 50) <= 40 and percentile(hi, 99) <= 120
    print(
        f"warm `echo hi` (submit -> first byte): {describe(hi)} "
        f"(target p50 <= 40, p99 <= 120: {'met' if met else 'NOT met'})"
    )
    print(f"40 sequential python fib(10), warm: {fib:.3f} s (target <= 3 s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--image", default=RUNNER_IMAGE)
    parser.add_argument("--phases", default="warm,cold", help="warm, cold or both (comma-separated)")
    args = parser.parse_args()
    asyncio.run(main(args.samples, args.image, set(args.phases.split(","))))
