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

`--runtimes runc,crun` runs every variant under each OCI runtime (Docker's `--runtime`; each one
the engine registered), alternating within each round (Session 41: crun against runc).
`--cgroups DIR,...` also prints the CPU charged to those cgroup v1 `cpuacct` directories (their
`cpuacct.usage`, children included): with the engine (dockerd, and containerd with the shims and
runtimes it starts) moved into one and its `--cgroup-parent` the other, that is the engine's and
the containers' CPU alone, which other processes' load does not change. The engine is the one
DOCKER_HOST names (a second engine, for instance, whose runtimes may differ).

Usage: .venv/bin/python -m bench.bench_container_cost [--count 12] [--rounds 2]
       [--image opscraft-test/runner:1] [--runtimes runc,crun] [--cgroups DIR,DIR]
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


def cgroup_seconds(cgroups: list[str]) -> float:
    """The CPU time charged so far to the cgroup v1 `cpuacct` directories `cgroups` (children
    included), in seconds; 0 without any."""
    total = 0
    for path in cgroups:
        with open(os.path.join(path, "cpuacct.usage")) as f:
            total += int(f.read())
    return total / 1e9


def _plain(api: docker.APIClient, image: str, network: str | None, runtime: str | None) -> Step:
    def one() -> None:
        host_config = api.create_host_config(
            network_mode=network, log_config={"type": "none"}, runtime=runtime
        )
        container = api.create_container(
            image, command=["true"], host_config=host_config, network_disabled=network == "none"
        )["Id"]
        api.start(container)
        api.wait(container)
        api.remove_container(container, force=True)

    return one


def _through_runner(
    api: docker.APIClient, image: str, worker_id: str, runtime: str | None
) -> tuple[Step, Step]:
    runner = DockerRunner(worker_id, warm_pool_size=0, runtime=runtime)
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


def main(count: int, rounds: int, image: str, runtimes: list[str | None], cgroups: list[str]) -> None:
    print(f"# load average at start: {os.getloadavg()}")
    api = docker.from_env().api  # the engine DOCKER_HOST names
    variants: dict[str, tuple[Step, Step]] = {}
    for runtime in runtimes:
        suffix = f" [{runtime}]" if runtime else ""
        worker_id = f"bench-cost-{os.getpid()}-{runtime or 'default'}"
        variants[f"bare{suffix}"] = (_plain(api, image, "none", runtime), lambda: None)
        variants[f"run profile{suffix}"] = _through_runner(api, image, worker_id, runtime)
        variants[f"bridge{suffix}"] = (_plain(api, image, None, runtime), lambda: None)
    figures: dict[str, list[tuple[float, float, float]]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, (one, settle) in variants.items():
            one()  # a first container outside the figure (images, caches)
            settle()
            cpu, engine, wall = machine_busy_seconds(), cgroup_seconds(cgroups), time.perf_counter()
            for _ in range(count):
                one()
            settle()
            figures[name].append(
                (
                    (machine_busy_seconds() - cpu) / count * 1000,
                    (cgroup_seconds(cgroups) - engine) / count * 1000,
                    (time.perf_counter() - wall) / count * 1000,
                )
            )
    print(f"# load average at end: {os.getloadavg()}")
    width = max(len(name) for name in variants)
    for name, rows in figures.items():
        shown = ", ".join(
            f"{cpu:.0f} ms CPU"
            + (f" ({engine:.0f} ms in the cgroups)" if cgroups else "")
            + f" / {wall:.0f} ms wall"
            for cpu, engine, wall in rows
        )
        print(f"{name:{width}} per container, round by round: {shown}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--image", default=RUNNER_IMAGE)
    parser.add_argument("--runtimes", default="", help="comma-separated; empty: the engine's default")
    parser.add_argument("--cgroups", default="", help="comma-separated cpuacct cgroup directories")
    args = parser.parse_args()
    names: list[str | None] = [name for name in args.runtimes.split(",") if name] or [None]
    main(args.count, args.rounds, args.image, names, [path for path in args.cgroups.split(",") if path])
