"""The Docker runner alone (no server, no database): `DockerRunner.run` of `true`, warm and cold,
interleaved with a bare `docker run --rm --network none IMAGE true` in the same run.

It separates what the warm pool saves from the server's share of bench_exec_docker, and prints
the wall times (median, p90) and the ratios of medians. Between samples it waits until the pool
is full again, so every warm sample is a warm start (the pool's refill is not on a run's path).

Usage: .venv/bin/python -m bench.bench_docker_runner [--samples 20] [--image opscraft-test/runner:1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time

from bench.exec_harness import RUNNER_IMAGE, describe
from opscraft.execution.docker_runner import USER, DockerRunner
from opscraft.execution.events import Stream
from opscraft.execution.spec import RunControl, RunSpec
from opscraft.execution.warm_pool import Profile


class _Sink:
    def feed(self, stream: Stream, data: bytes) -> None:
        pass

    def tick(self) -> float:
        return 1.0


def _spec(image: str, execution_id: int) -> RunSpec:
    return RunSpec(execution_id, "bash", "true\n", {}, {}, 60, 512, 0.5, False, image)


def _timed_run(runner: DockerRunner, spec: RunSpec) -> float:
    t0 = time.perf_counter()
    result = runner.run(spec, _Sink(), RunControl())
    assert result.exit_code == 0, result
    return (time.perf_counter() - t0) * 1000


def _bare(image: str) -> float:
    t0 = time.perf_counter()
    subprocess.run(["docker", "run", "--rm", "--network", "none", image, "true"], check=True)
    return (time.perf_counter() - t0) * 1000


def main(samples: int, image: str) -> None:
    print(f"# load average at start: {os.getloadavg()}")
    warm_runner = DockerRunner(f"bench-warm-{os.getpid()}", warm_pool_size=1)
    cold_runner = DockerRunner(f"bench-cold-{os.getpid()}", warm_pool_size=0)
    warm_runner.start_pool()
    profile = Profile(image, 512, 0.5, False, USER)
    warm, cold, bare = [], [], []
    try:
        for i in range(samples + 2):
            assert warm_runner.pool.wait_warm(profile, 1, 120)
            w = _timed_run(warm_runner, _spec(image, 1_000_000 + i))
            c = _timed_run(cold_runner, _spec(image, 2_000_000 + i))
            b = _bare(image)
            if i >= 2:  # warm-up
                warm.append(w)
                cold.append(c)
                bare.append(b)
    finally:
        warm_runner.stop_pool()
        cold_runner.stop_pool()
    print(f"# load average at end: {os.getloadavg()}")
    base = statistics.median(bare)
    print(f"warm DockerRunner.run(`true`): {describe(warm)}; x{statistics.median(warm) / base:.2f} bare")
    print(f"cold DockerRunner.run(`true`): {describe(cold)}; x{statistics.median(cold) / base:.2f} bare")
    print(f"bare `docker run --rm --network none {image} true`: {describe(bare)}")
    print(f"pool: {warm_runner.pool.stats()['warm_starts']} warm starts")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--image", default=RUNNER_IMAGE)
    args = parser.parse_args()
    main(args.samples, args.image)
