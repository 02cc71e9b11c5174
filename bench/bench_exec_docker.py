"""Execution engine 2: a trivial script in Docker, end to end, against a bare `docker run`.

Each sample: POST /api/v1/executions (runner docker), follow the WebSocket until `end`. The
baseline, interleaved with the samples in the same run: `docker run --rm --network none IMAGE
true` from the command line. Target: median per execution <= 1.15 x the baseline median.

Usage: .venv/bin/python -m bench.bench_exec_docker [--samples 30] [--image opscraft-test/runner:1]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import time

import httpx

from bench.exec_harness import RUNNER_IMAGE, create_script, describe, server, submit, watch


def bare(image: str) -> float:
    t0 = time.perf_counter()
    subprocess.run(["docker", "run", "--rm", "--network", "none", image, "true"], check=True)
    return (time.perf_counter() - t0) * 1000


async def main(samples: int, image: str) -> None:
    images = {f"OPSCRAFT_IMAGE_{kind}": image for kind in ("BASH", "PYTHON", "ANSIBLE", "TERRAFORM")}
    engine, baseline = [], []
    with server(images) as srv:
        script_id = create_script(srv, "trivial", "true\n")
        async with httpx.AsyncClient(base_url=srv.url) as client:
            for _ in range(3):  # warm-up
                bare(image)
                await watch(srv, await submit(client, srv, script_id, "docker"))
            for _ in range(samples):
                baseline.append(bare(image))
                t0 = time.perf_counter()
                end, _ = await watch(srv, await submit(client, srv, script_id, "docker"))
                engine.append((time.perf_counter() - t0) * 1000)
                assert end["status"] == "success", end
    ratio = statistics.median(engine) / statistics.median(baseline)
    print(f"OpsCraft, Docker runner, `true` (submit -> end): {describe(engine)}")
    print(f"bare `docker run --rm --network none {image} true`: {describe(baseline)}")
    print(f"ratio of medians: {ratio:.2f} (target <= 1.15):", "met" if ratio <= 1.15 else "NOT met")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--image", default=RUNNER_IMAGE)
    args = parser.parse_args()
    asyncio.run(main(args.samples, args.image))
