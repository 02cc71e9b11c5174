"""The local runner's forked supervisor of two source trees, paired run by run in one process: a
`LocalRunner` whose fork server runs the baseline tree's `opscraft/execution/supervisor.py` and
one whose fork server runs this tree's (or `TREE`'s), each `LocalRunner.run` of the same script
timed, the two taking turns run by run (which goes first alternates). The fork server is a
standalone file (`python -I -S supervisor.py`, standard library only), so only the supervisor's
side differs; the runner's side is this tree's for both. On a loaded machine a paired bench of
two servers reads 0.8-1.2 for identical trees (docs/benchmarks.md, session 35): runs taking
turns one by one in one process meet the same minute of the machine.

Prints each tree's p50, p90 and mean wall time per run (ms) and the ratio of the p50s; for a
script that prints (`echo`: bash `echo hi`; `python`), the same for its first byte: from the call
of `LocalRunner.run` to the first output the runner read.

Usage: .venv/bin/python -m bench.bench_supervisor_pair BASELINE_TREE [TREE] [--runs 300]
           [--script bash|echo|python]
"""

from __future__ import annotations

import os
import statistics
import time
import uuid
from dataclasses import replace
from pathlib import Path

from bench.bench_local_spawn import SPEC
from bench.exec_harness import pair_parser, pair_trees
from opscraft.execution import fork_server
from opscraft.execution.local_runner import LocalRunner
from opscraft.execution.spec import RunControl

WARM_UP = 10
# name: (script type, content)
SCRIPTS = {"bash": ("bash", "true\n"), "echo": ("bash", "echo hi\n"), "python": ("python", "print(1)\n")}


class _FirstByte:
    """An output sink that keeps when it was first fed (`time.perf_counter`, None before)."""

    def __init__(self) -> None:
        self.at: float | None = None

    def feed(self, stream: str, data: bytes) -> None:
        if self.at is None:
            self.at = time.perf_counter()

    def tick(self) -> float:
        return 1.0


def started_runner(tree: Path) -> LocalRunner:
    """A started `LocalRunner` whose fork server runs `tree`'s supervisor.py."""
    fork_server.SUPERVISOR = str(tree / "opscraft" / "execution" / "supervisor.py")
    runner = LocalRunner(f"bench-pair-{uuid.uuid4().hex[:8]}")
    runner.start()
    return runner


def main(trees: list[Path], runs: int, script: str) -> None:
    script_type, content = SCRIPTS[script]
    spec = replace(SPEC, script_type=script_type, content=content)
    runners = [started_runner(tree) for tree in trees]
    walls: list[list[float]] = [[] for _ in trees]
    firsts: list[list[float]] = [[] for _ in trees]
    load = os.getloadavg()[0]
    try:
        for i in range(WARM_UP + runs):
            for k in (0, 1) if i % 2 == 0 else (1, 0):
                output = _FirstByte()
                t0 = time.perf_counter()
                result = runners[k].run(spec, output, RunControl())
                if i >= WARM_UP:
                    walls[k].append((time.perf_counter() - t0) * 1e3)
                    if output.at is not None:
                        firsts[k].append((output.at - t0) * 1e3)
                assert result.exit_code == 0, result
    finally:
        for runner in runners:
            runner.stop()
            runner.sweep()
    print(f"{runs} runs of {script} per tree, taking turns; load {load:.1f} -> {os.getloadavg()[0]:.1f}")
    for name, figures in (("run", walls), ("first byte", firsts)):
        if not all(figures):
            continue
        for tree, kept in zip(trees, figures, strict=True):
            kept.sort()
            p50, p90 = statistics.median(kept), kept[int(len(kept) * 0.9)]
            print(f"{name}, {tree}: p50 {p50:.2f} ms, p90 {p90:.2f} ms, mean {statistics.mean(kept):.2f} ms")
        print(f"{name}: ratio of p50s {statistics.median(figures[1]) / statistics.median(figures[0]):.3f}")


if __name__ == "__main__":
    parser = pair_parser(__doc__)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--script", choices=sorted(SCRIPTS), default="bash")
    args = parser.parse_args()
    main(pair_trees(args), args.runs, args.script)
