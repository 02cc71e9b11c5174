"""What the local runner costs per run, without server or database: `LocalRunner.run` of a bash
script `true` (a supervisor forked from the fork server, bash, pipes) against the bare baseline,
`bash script.sh` spawned with `subprocess.run`, interleaved in the same invocation. Reports the
median and p90 wall time and the CPU time of the processes outside this one per run (what
competes with the server for the CPUs when many runs start at once): for the runner, the fork
server's own CPU time plus what its reaped children (the supervisors and their scripts) used,
from its `/proc/PID/stat`; for the baseline, this process's reaped children.

Usage: .venv/bin/python -m bench.bench_local_spawn [--runs 200]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.exec_harness import bare_env
from opscraft.execution.local_runner import LocalRunner
from opscraft.execution.spec import RunControl, RunSpec

WARM_UP = 10
SPEC = RunSpec(
    execution_id=1,
    script_type="bash",
    content="true\n",
    parameters={},
    env={},
    timeout_seconds=60,
    memory_mb=512,
    cpus=1,
    network_enabled=False,
)


class _Discard:
    def feed(self, stream: str, data: bytes) -> None:
        pass

    def tick(self) -> float:
        return 1.0


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _fork_server_cpu(runner: LocalRunner) -> float:
    """CPU seconds of the runner's fork server and of its reaped children (0 before it started)."""
    pid = runner.forks.pid
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # utime..cstime


def _measure(run: Callable[[], object], walls: list[float], cpu_used: Callable[[], float]) -> float:
    """Run once; append the wall time to `walls`, return the CPU seconds `cpu_used` grew by."""
    cpu, t0 = cpu_used(), time.perf_counter()
    run()
    walls.append(time.perf_counter() - t0)
    return cpu_used() - cpu


def main(runs: int) -> None:
    runner = LocalRunner("bench")
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "script.sh"
        script.write_text("true\n")
        env = bare_env(tmp)
        cases: dict[str, tuple[Callable[[], object], Callable[[], float]]] = {
            "local runner": (
                lambda: runner.run(SPEC, _Discard(), RunControl()),
                lambda: _fork_server_cpu(runner),
            ),
            "bare bash": (
                lambda: subprocess.run(["bash", str(script)], check=True, env=env),
                _children_cpu,
            ),
        }
        walls: dict[str, list[float]] = {name: [] for name in cases}
        cpu = dict.fromkeys(cases, 0.0)
        for i in range(WARM_UP + runs):
            for name, (case, cpu_used) in cases.items():
                used = _measure(case, walls[name], cpu_used)
                if i >= WARM_UP:
                    cpu[name] += used
    for name in cases:
        kept = sorted(walls[name][WARM_UP:])
        print(
            f"{name}: wall median {statistics.median(kept) * 1e3:.1f} ms, "
            f"p90 {kept[int(len(kept) * 0.9)] * 1e3:.1f} ms; "
            f"CPU outside this process {cpu[name] / runs * 1e3:.1f} ms per run"
        )
    runner.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    main(parser.parse_args().runs)
