"""What one fresh container costs the whole machine in CPU, by run profile option (issue 15).

A Docker run is a fresh container: created, started, waited for and removed. The CPU that costs
is spent outside OpsCraft's process (dockerd, containerd, the container's shim and runc, the
container's own processes), so this bench reads the whole machine's busy CPU time
(`/proc/stat`: every state but idle and iowait, in clock ticks) before and after `--count`
containers of `true` in a row, and prints the CPU and wall time per container. Variants,
alternating round by round so each sees the same minutes:

    bare         network none, no log driver, nothing else (the floor of one container)
    run profile  the options of every OpsCraft run container (`docker_runner`'s limits, read-only
                 root, tmpfs mounts, capabilities dropped, no-new-privileges), through
                 `DockerRunner.run` of `true` with no warm pool: the runner's own cold run,
                 its deferred removal included (waited for before the CPU is read)
    bridge       the default bridge network, no log driver (what a run with network on adds)

On a busy machine the other processes' CPU counts in every variant alike: compare variants of
the same round, or run it on a quiet machine. Session 39 (docs/benchmarks.md): 110-150 ms of
CPU per container whatever the options, about twice that with the bridge network.

Usage: .venv/bin/python -m bench.bench_container_cost [--count 12] [--rounds 2]
       [--image opscraft-test/runner:1]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import docker
from bench.exec_harness import RUNNER_IMAGE
from opscraft.execution.docker_runner import LABEL_WORKER, DockerRunner
from opscraft.execution.spec import RunControl, RunSpec

Step = Callable[[], None]
"""One container's steps, or what waits for their deferred part."""


class _Sink:
    def feed(self, stream: object, data: bytes) -> None:
        pass

    def tick(self) -> float:
        return 1.0


def machine_busy_seconds() -> float:
    """The whole machine's busy CPU time so far, in seconds (`/proc/stat`'s first line: every
    state but idle and iowait, summed over the CPUs)."""
    with open("/proc/stat") as f:
        ticks = [int(v) for v in f.readline().split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def _plain(api: docker.APIClient, image: str, network: str | None) -> Step:
    def one() -> None:
        host_config = api.create_host_config(network_mode=network, log_config={"type": "none"})
        container = api.create_container(
            image, command=["true"], host_config=host_config, network_disabled=network == "none"
        )["Id"]
        api.start(container)
        api.wait(container)
        api.remove_container(container, force=True)

    return one


def _through_runner(api: docker.APIClient, image: str, worker_id: str) -> tuple[Step, Step]:
    runner = DockerRunner(worker_id, warm_pool_size=0)
    runner.start_pool()
    spec = RunSpec(0, "bash", "true\n", {}, {}, 60, 512, 0.5, False, image)

    def one() -> None:
        result = runner.run(spec, _Sink(), RunControl())
        assert result.exit_code == 0, result

    def settle() -> None:  # the deferred removals done: their CPU belongs to the runs
        deadline = time.monotonic() + 120
        while api.containers(all=True, filters={"label": f"{LABEL_WORKER}={worker_id}"}):
            assert time.monotonic() < deadline, "the runner's containers were not removed within 120 s"
            time.sleep(0.05)

    return one, settle


def main(count: int, rounds: int, image: str) -> None:
    print(f"# load average at start: {os.getloadavg()}")
    api = docker.APIClient()
    runner_one, runner_settle = _through_runner(api, image, f"bench-cost-{os.getpid()}")
    variants: dict[str, tuple[Step, Step]] = {
        "bare": (_plain(api, image, "none"), lambda: None),
        "run profile": (runner_one, runner_settle),
        "bridge": (_plain(api, image, None), lambda: None),
    }
    figures: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, (one, settle) in variants.items():
            one()  # a first container outside the figure (images, caches)
            settle()
            cpu, wall = machine_busy_seconds(), time.perf_counter()
            for _ in range(count):
                one()
            settle()
            figures[name].append(
                ((machine_busy_seconds() - cpu) / count * 1000, (time.perf_counter() - wall) / count * 1000)
            )
    print(f"# load average at end: {os.getloadavg()}")
    for name, rows in figures.items():
        shown = ", ".join(f"{cpu:.0f} ms CPU / {wall:.0f} ms wall" for cpu, wall in rows)
        print(f"{name:12} per container, round by round: {shown}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--image", default=RUNNER_IMAGE)
    args = parser.parse_args()
    main(args.count, args.rounds, args.image)
