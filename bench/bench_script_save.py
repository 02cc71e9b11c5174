"""Save latency of a script: `PUT /api/v1/scripts/{id}` with new content, through a real
`opscraft serve` (HTTP, auth, line-ending normalisation, syntax check, dangerous-pattern lint,
the field's linters, the database write), per script type, against the bare tools on the same
content in the same run (`bash -n`, `shellcheck`, `ruff check`, `ansible-playbook
--syntax-check`, `terraform fmt` + `init` + `validate`).

Every save sends different content (a changing comment line), so the linters' cache never
answers; `--load N` keeps N busy-looping processes running during the measurement (killed at the
end, and by `timeout` in any case) to see the save on a busy machine.

Usage: .venv/bin/python -m bench.bench_script_save [--saves 30] [--load 0]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from bench.exec_harness import create_script, server
from opscraft.services.linters import find_tool

BASH = "\n".join(
    ["#!/bin/bash", "set -euo pipefail", 'APP_DIR="/srv/app"', 'LOG="$APP_DIR/deploy.log"']
    + [f'step_{i}() {{\n  echo "step {i} of $ENV" >>"$LOG"\n  sleep 0\n}}' for i in range(15)]
    + [f"step_{i}" for i in range(15)]
    + ['if [ -n "${DRY_RUN:-}" ]; then', '  echo "dry run"', "fi"]
)
PYTHON = "\n".join(
    ["import json", "import os", "import sys", ""]
    + [f"def task_{i}(value: int) -> int:\n    return value * {i} + len(os.environ)\n\n" for i in range(15)]
    + ["print(json.dumps([task_0(1), task_1(2)]))", "sys.exit(0)"]
)
ANSIBLE = "- hosts: localhost\n  gather_facts: false\n  tasks:\n" + "".join(
    f"    - name: step {i}\n      ansible.builtin.command: echo {i}\n" for i in range(10)
)
TERRAFORM = "".join(
    f'variable "v{i}" {{\n  default = {i}\n}}\n\noutput "o{i}" {{\n  value = var.v{i} * 2\n}}\n\n'
    for i in range(10)
)
CONTENT = {"bash": BASH, "python": PYTHON, "ansible": ANSIBLE, "terraform": TERRAFORM}
SUFFIX = {"bash": "sh", "python": "py", "ansible": "yml", "terraform": "tf"}


def _baseline_commands(script_type: str, path: Path) -> list[list[str]] | None:
    tools = {
        "bash": [["bash", "-n", str(path)], [find_tool("shellcheck"), "--format=json1", str(path)]],
        "python": [[sys.executable, "-c", f"compile(open({str(path)!r}).read(), 'x', 'exec')"],
                   [find_tool("ruff"), "check", "--isolated", "--no-cache", "--exit-zero", str(path)]],
        "ansible": [[find_tool("ansible-playbook"), "--syntax-check", "-i", "localhost,", str(path)]],
        "terraform": [[find_tool("terraform"), "fmt", "-check", str(path)],
                      [find_tool("terraform"), "init", "-backend=false", "-input=false"],
                      [find_tool("terraform"), "validate", "-json"]],
    }[script_type]  # fmt: skip
    if any(command[0] is None for command in tools):
        return None
    return tools  # type: ignore[return-value]


def _stats(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    p50, top = statistics.median(ordered), ordered[-1]
    return f"p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, max {top * 1000:.0f} ms"


def _timed(action: Callable[[int], None], count: int) -> list[float]:
    samples = []
    for i in range(count):
        start = time.perf_counter()
        action(i)
        samples.append(time.perf_counter() - start)
    return samples


@contextmanager
def _cpu_load(processes: int, seconds: int) -> Iterator[None]:
    burners = [
        subprocess.Popen(["timeout", str(seconds), sys.executable, "-c", "while True: pass"])
        for _ in range(processes)
    ]
    try:
        yield
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--saves", type=int, default=30)
    parser.add_argument("--load", type=int, default=0, help="busy-looping processes during the run")
    args = parser.parse_args()
    with server() as srv, tempfile.TemporaryDirectory() as tmp, _cpu_load(args.load, 900):
        client = httpx.Client(base_url=srv.url, headers=srv.headers, timeout=60)
        for script_type, content in CONTENT.items():
            script_id = create_script(srv, f"bench-{script_type}", content, script_type)
            comment = "//" if script_type == "terraform" else "#"
            last: dict[str, list[dict[str, str]]] = {}

            def save(
                i: int, sid: int = script_id, text: str = f"{content}\n{comment} save", out=last
            ) -> None:
                response = client.put(f"/api/v1/scripts/{sid}", json={"content": f"{text} {i}\n"})
                response.raise_for_status()
                out["linters"] = response.json()["linters"]

            saves = _timed(save, args.saves)
            ran = ", ".join(f"{run['tool']}: {run['status']}" for run in last["linters"])
            print(f"{script_type:9} save  {_stats(saves)}  ({ran})")
            workdir = Path(tmp) / script_type
            workdir.mkdir()
            path = workdir / f"main.{SUFFIX[script_type]}"
            path.write_text(content)
            commands = _baseline_commands(script_type, path)
            if commands is None:
                print(f"{script_type:9} bare   (a tool is missing)")
                continue
            for command in commands:
                bare = _timed(
                    lambda _, c=command, d=workdir: subprocess.run(
                        c, cwd=d, capture_output=True, check=False
                    ),
                    args.saves,
                )
                print(f"{script_type:9} bare  {_stats(bare)}  ({Path(command[0]).name} {command[1]})")


if __name__ == "__main__":
    main()
