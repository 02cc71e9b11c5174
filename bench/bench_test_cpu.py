"""The CPU a group of test modules costs the machine, every process it starts counted (session 41).

`/usr/bin/time` around a pytest run counts the test process and the children it waited for:
a live server, Playwright's Node driver, Chromium's browser process. The CPU of the renderer
and GPU processes Chromium's zygote forks does not reach it: for
tests/test_ui_dialog_fields_browser.py `time` said 22.5 s of user + system where the processes
took 45.8 s (docs/benchmarks.md, session 41).

This bench runs each command in a cgroup of its own (cgroup v1 `cpuacct`, or v2), whose usage
counts every process in it however it was started, and reads each process's CPU from `/proc`
every `POLL_SECONDS` to say where it went (Chromium by process type, the live server, the test
process, the rest); a process that ends between two reads loses its last fraction of a second
there, never in the total. Commands alternate round by round, so that each sees the same minutes
of a shared machine. Needs root (it makes the cgroups). Not counted: what the Docker engine does
for the tests (dockerd, containerd, the containers: they live in the engine's cgroups), for which
`bench/bench_container_cost.py` reads the whole machine.

Usage: .venv/bin/python -m bench.bench_test_cpu [--rounds 2] 'tests/test_a.py tests/test_b.py' ...
           (each argument: the pytest arguments of one group)
       .venv/bin/python -m bench.bench_test_cpu --shell 'before=COMMAND' 'after=COMMAND'
Run it as `tests/run` runs the suite (bytecode written: `unset PYTHONDONTWRITEBYTECODE`), or
every server and CLI start also compiles OpsCraft (about 2.4 s of CPU each).
"""

from __future__ import annotations

import argparse
import collections
import os
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

POLL_SECONDS = 0.3
TICK = os.sysconf("SC_CLK_TCK")
V1 = Path("/sys/fs/cgroup/cpuacct")
V2 = Path("/sys/fs/cgroup")


def _cgroup(name: str) -> tuple[Path, Path]:
    """A new cgroup `name`: (its directory, the file its CPU usage is read from)."""
    if V1.is_dir():
        folder = V1 / name
        folder.mkdir()
        return folder, folder / "cpuacct.usage"
    folder = V2 / name
    folder.mkdir()
    return folder, folder / "cpu.stat"


def _usage_seconds(path: Path) -> float:
    """The cgroup's CPU so far, in seconds (v1: nanoseconds; v2: `usage_usec` of cpu.stat)."""
    text = path.read_text()
    if path.name == "cpuacct.usage":
        return int(text) / 1e9
    fields = dict(line.split() for line in text.splitlines())
    return int(fields["usage_usec"]) / 1e6


def kind(cmdline: str) -> str:
    """What a process is, for the breakdown: Chromium by `--type`, the live server, pytest."""
    words = cmdline.split()
    if "chromium" in cmdline:
        types = [w.removeprefix("--type=") for w in words if w.startswith("--type=")]
        return f"chromium {types[0] if types else 'browser'}"
    if words and Path(words[0]).name == "node":
        return "playwright driver (node)"
    if "opscraft" in words and "serve" in words:
        return "opscraft serve"
    if "pytest" in words:
        return "pytest"
    if len(words) > 1 and Path(words[0]).name.startswith("python"):
        script = next((w for w in words[1:] if not w.startswith("-")), "")
        if script.endswith(("ansible-playbook", "ansible-inventory", "supervisor.py")):
            return Path(script).name  # Ansible's programs, the local runner's supervisor
        if "-c" in words and "InventoryCLI" in cmdline:  # services/inventory_listing.py
            return "ansible-inventory"
    return Path(words[0]).name if words else "?"


class Poller(threading.Thread):
    """Reads the CPU of every process in `procs` (a cgroup's process list) until `stop`."""

    def __init__(self, procs: Path) -> None:
        super().__init__(daemon=True)
        self.procs = procs
        self.last: dict[str, tuple[str, float]] = {}  # pid -> (kind, CPU seconds when last read)
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(POLL_SECONDS):
            for pid in self.procs.read_text().split():
                try:
                    cmdline = Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
                    stat = Path(f"/proc/{pid}/stat").read_text()
                except OSError:
                    continue
                fields = stat[stat.rindex(")") + 2 :].split()
                if cmdline:  # empty for a process already ended (a zombie): keep its last read
                    self.last[pid] = (kind(cmdline), (int(fields[11]) + int(fields[12])) / TICK)

    def by_kind(self) -> collections.Counter[str]:
        """CPU seconds per kind of process."""
        total: collections.Counter[str] = collections.Counter()
        for name, seconds in self.last.values():
            total[name] += seconds
        return total


def measure(label: str, command: list[str]) -> float:
    """Run `command` in a cgroup of its own; print its wall time, total CPU and breakdown."""
    folder, usage = _cgroup(f"bench_test_cpu_{os.getpid()}_{time.monotonic_ns()}")
    poller = Poller(folder / "cgroup.procs")
    poller.start()
    start = time.monotonic()
    # The child moves itself into the cgroup before it runs the command: all it starts stays there.
    enter = f"echo $$ > {shlex.quote(str(folder / 'cgroup.procs'))} && exec " + shlex.join(command)
    result = subprocess.run(["sh", "-c", enter], capture_output=True, text=True)
    wall = time.monotonic() - start
    poller.done.set()
    poller.join()
    cpu = _usage_seconds(usage)
    summary = (result.stdout.strip().splitlines() or ["(no output)"])[-1]
    load = Path("/proc/loadavg").read_text().split()[0]
    print(f"{label}: {cpu:.1f} s CPU, {wall:.1f} s wall, load {load}, exit {result.returncode}: {summary}")
    for name, seconds in poller.by_kind().most_common(8):
        print(f"    {seconds:6.1f} s  {name}")
    _remove(folder)
    return cpu


def _remove(folder: Path) -> None:
    """Remove the cgroup `folder`; one a process outlived its command in (a test's leak, which
    counts on after the figure was read) is left, saying which, for `rmdir` once it has ended."""
    left = (folder / "cgroup.procs").read_text().split()
    if not left:
        folder.rmdir()
        return
    for pid in left:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            cmdline = "?"
        print(f"    left running after the command (cgroup {folder} kept): {pid} {cmdline[:200]}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "groups", nargs="+", help="pytest arguments of one group (quoted), or LABEL=COMMAND with --shell"
    )
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--shell", action="store_true", help="each group is LABEL=a shell command")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_test_cpu: needs root to make its cgroups")
    runs: list[tuple[str, list[str]]] = []
    for group in args.groups:
        if args.shell:
            label, _, command = group.partition("=")
            runs.append((label, ["sh", "-c", command]))
        else:
            pytest = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *shlex.split(group)]
            runs.append((group, pytest))
    totals: dict[str, list[float]] = collections.defaultdict(list)
    for _ in range(args.rounds):
        for label, command in runs:
            totals[label].append(measure(label, command))
    for label, values in totals.items():
        print(f"{label}: " + ", ".join(f"{v:.1f}" for v in values) + " s CPU")


if __name__ == "__main__":
    main()
