"""Start-up until ready: `serve` (health answers) and `desktop` (window mapped, dashboard shown),
from the source checkout and from the packaged binary, each against a bare baseline in the same run.

Targets (issue 11): health answering <= 3 s warm, <= 8 s cold; the window shown < 5 s.

- serve: process start -> `GET /api/v1/health` answers 200. Baseline: a bare FastAPI app with
  the same route under uvicorn (`import fastapi, uvicorn`, nothing else).
  Then the first API call after it (`first_call`): a route past most routers, whose state
  FastAPI builds at the first request unless built ahead (issue 15).
- desktop (Xvfb): process start -> the window titled "OpsCraft" is mapped (found with `xdotool`
  as tests/test_desktop.py does), and -> it shows the signed-in dashboard (read through Qt
  WebEngine's DevTools endpoint). Baseline: a bare pywebview + Qt WebEngine window with the
  same title showing a one-line page.
- warm: the data directory exists (migrations at head, the local admin made), files cached.
- cold: a fresh data directory (migrations from nothing) after dropping the kernel's page cache
  (`/proc/sys/vm/drop_caches`, root only; else "first start", which the output says).

CPU is user + system seconds of the whole process tree at the moment it was ready: on the shared
2-core machine it is far steadier than the wall time, so both are printed, with the load average.

Usage: .venv/bin/python -m bench.bench_startup [--runs 3] [--binary dist/opscraft/opscraft]
       [--skip-desktop] [--skip-binary] [--compare OTHER_CHECKOUT]

`--compare` starts `serve` from another checkout and from this one in turns (same load for both),
for a before/after on a busy machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil

from tests.app_journey import wait_healthy
from tests.conftest import ROOT, free_port
from tests.desktop_session import find_window, launch_desktop, xvfb

BARE_SERVER = textwrap.dedent(
    """
    import sys, fastapi, uvicorn
    app = fastapi.FastAPI()
    app.get("/api/v1/health")(lambda: {"status": "healthy"})
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
    """
)
BARE_WINDOW = textwrap.dedent(
    """
    import webview
    webview.create_window("OpsCraft", html="<p>bare window</p>", width=1280, height=820)
    webview.start(gui="qt")
    """
)


def drop_caches() -> bool:
    """Empty the kernel's page cache so the next start reads its files from disk (root only)."""
    try:
        subprocess.run(["sync"], check=True)
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def environment(data_dir: Path, binary: bool) -> dict[str, str]:
    """A launch's environment: the binary gets only PATH=/usr/bin:/bin (no venv), as a user's."""
    if binary:
        env = {"PATH": "/usr/bin:/bin", "HOME": str(data_dir), "LANG": "C.UTF-8"}
    else:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["OPSCRAFT_NO_BOOTSTRAP"] = "1"
    env["OPSCRAFT_DATA_DIR"] = str(data_dir)
    if os.geteuid() == 0:
        env["QTWEBENGINE_DISABLE_SANDBOX"] = "1"  # what `opscraft desktop` sets as root, for the baseline
    env.setdefault("QT_API", "pyside6")
    return env


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by a process and all its live descendants."""
    root = psutil.Process(pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def health_ready(
    command: list[str], data_dir: Path, binary: bool, port: int, cwd: Path = ROOT
) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds) from launching `command` (from the checkout at `cwd`) until
    /api/v1/health answers 200, and the seconds the first API call after that took
    (`first_call`)."""
    start = time.monotonic()
    process = subprocess.Popen(
        command,
        env=environment(data_dir, binary),
        cwd=data_dir if binary else cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_healthy(f"http://127.0.0.1:{port}", time.monotonic() + 180, process)
        ready, cpu = time.monotonic() - start, cpu_seconds(process.pid)
        return ready, cpu, first_call(port)
    finally:
        process.terminate()
        process.wait(timeout=60)


def first_call(port: int) -> float:
    """Seconds of one `GET /api/v1/workers` without a token, sent as soon as health answered:
    routed past most of the API's routers, then 401 (the bare server: 404). FastAPI builds a
    router's state at the first request matched against it, unless the app built it ahead
    (opscraft/api/route_state.py)."""
    start = time.perf_counter()
    httpx.get(f"http://127.0.0.1:{port}/api/v1/workers", timeout=60)
    return time.perf_counter() - start


def first_calls(label: str, runs: list[tuple[float, ...]]) -> None:
    """Print the first API calls after health of `runs` (their third figure), in milliseconds."""
    calls = [run[2] * 1000 for run in runs]
    print(f"{label:<50} first API call after health: median {statistics.median(calls):6.1f} ms", end="")
    print(f" ({' / '.join(f'{c:.1f}' for c in calls)})", flush=True)


def window_ready(
    command: list[str], data_dir: Path, binary: bool, display: str
) -> tuple[float, float, float]:
    """(seconds until the window is mapped, until it shows the signed-in dashboard, CPU seconds
    of the process tree by then)."""
    app = launch_desktop(command, environment(data_dir, binary), display, data_dir / "launch.log", ROOT)
    try:
        return app.started_in, app.ready_in, cpu_seconds(app.process.pid)
    finally:
        app.close()


def bare_window_ready(display: str, data_dir: Path) -> tuple[float, float]:
    """(seconds until the bare pywebview/Qt WebEngine window is mapped, CPU seconds by then)."""
    start = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-c", BARE_WINDOW],
        env={**environment(data_dir, False), "DISPLAY": display},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        find_window(display, "OpsCraft", time.monotonic() + 180, process)
        return time.monotonic() - start, cpu_seconds(process.pid)
    finally:
        process.kill()
        process.wait()


class Table:
    """Rows of (label, wall seconds per run, CPU seconds per run) with ratios to a baseline row."""

    def __init__(self) -> None:
        self.baselines: dict[str, float] = {}

    def row(
        self, label: str, walls: list[float], cpus: list[float], baseline: str | None = None, name: str = ""
    ) -> None:
        """Print one row; `name` makes it a baseline, `baseline` names the one to divide by."""
        wall, cpu = statistics.median(walls), statistics.median(cpus) if cpus else float("nan")
        if name:
            self.baselines[name] = wall
        ratio = f"  x{wall / self.baselines[baseline]:.1f} of {baseline}" if baseline else ""
        runs = " / ".join(f"{w:.2f}" for w in walls)
        cpu_text = f"CPU {cpu:5.2f} s" if cpus else ""
        print(
            f"{label:<50} {wall:6.2f} s ({runs})  {cpu_text}{ratio}  load {os.getloadavg()[0]:.1f}",
            flush=True,
        )


def repeat(runs: int, measure: Callable[[], tuple[float, ...]]) -> list[tuple[float, ...]]:
    return [measure() for _ in range(runs)]


def bench_serve(table: Table, label: str, command: list[str], binary: bool, runs: int, tmp: Path) -> None:
    """Cold (fresh data directory, page cache dropped) once, then `runs` warm starts."""
    port = free_port()
    data_dir = tmp / f"{label}-serve"
    data_dir.mkdir()
    cold = "cold" if drop_caches() else "first start"
    wall, cpu, _ = health_ready([*command, "serve", "--port", str(port)], data_dir, binary, port)
    table.row(f"{label} serve, {cold}: health", [wall], [cpu], "bare server")
    warm = repeat(
        runs, lambda: health_ready([*command, "serve", "--port", str(port)], data_dir, binary, port)
    )
    table.row(f"{label} serve, warm: health", [w[0] for w in warm], [w[1] for w in warm], "bare server")
    first_calls(f"{label} serve, warm", warm)


def bench_desktop(
    table: Table, label: str, command: list[str], binary: bool, runs: int, tmp: Path, display: str
) -> None:
    """Cold (fresh data directory, page cache dropped) once, then `runs` warm launches."""
    data_dir = tmp / f"{label}-desktop"
    data_dir.mkdir()
    cold = "cold" if drop_caches() else "first start"
    mapped, shown, cpu = window_ready([*command, "desktop"], data_dir, binary, display)
    table.row(f"{label} desktop, {cold}: window mapped", [mapped], [], "bare window")
    table.row(f"{label} desktop, {cold}: dashboard shown", [shown], [cpu], "bare window")
    warm = repeat(runs, lambda: window_ready([*command, "desktop"], data_dir, binary, display))
    table.row(f"{label} desktop, warm: window mapped", [w[0] for w in warm], [], "bare window")
    table.row(
        f"{label} desktop, warm: dashboard shown", [w[1] for w in warm], [w[2] for w in warm], "bare window"
    )


def compare_serve(table: Table, other: Path, runs: int, tmp: Path) -> None:
    """Warm `serve` of another checkout (e.g. the base commit) and of this one, started in turns
    so that both see the same load; the first start of each (it migrates) is left out."""
    results: dict[str, list[tuple[float, float, float]]] = {"other": [], "this": []}
    for label in results:
        (tmp / f"compare-{label}").mkdir()
    for round_number in range(runs + 1):
        for label, root in (("other", other), ("this", ROOT)):
            port = free_port()
            command = [sys.executable, "-m", "opscraft", "serve", "--port", str(port)]
            measured = health_ready(command, tmp / f"compare-{label}", False, port, cwd=root)
            if round_number:
                results[label].append(measured)
    for label, name in (("other", f"{other}"), ("this", "this checkout")):
        rows = results[label]
        table.row(f"serve, warm, in turns: {name}", [r[0] for r in rows], [r[1] for r in rows], "bare server")
        first_calls(f"serve, warm, in turns: {name}", rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default=str(ROOT / "dist" / "opscraft" / "opscraft"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-desktop", action="store_true")
    parser.add_argument("--skip-binary", action="store_true")
    parser.add_argument(
        "--compare",
        type=Path,
        help="another checkout (e.g. `git archive` of the base commit): warm serve in turns",
    )
    args = parser.parse_args()
    binary = Path(args.binary)
    targets: list[tuple[str, list[str], bool]] = [("source", [sys.executable, "-m", "opscraft"], False)]
    if not args.skip_binary:
        if not binary.exists():
            sys.exit(f"no binary at {binary}: run `bash packaging/build.sh` or pass --skip-binary")
        size = subprocess.run(
            ["du", "-sm", str(binary.parent)], capture_output=True, text=True
        ).stdout.split()[0]
        print(f"binary folder: {size} MiB, {sum(1 for p in binary.parent.rglob('*') if p.is_file())} files")
        targets.append(("binary", [str(binary)], True))
    print(f"load average before: {os.getloadavg()}", flush=True)
    table = Table()
    with tempfile.TemporaryDirectory(prefix="opscraft-bench-startup-") as tmp_name:
        tmp = Path(tmp_name)
        port = free_port()
        bare = repeat(
            args.runs, lambda: health_ready([sys.executable, "-c", BARE_SERVER, str(port)], tmp, False, port)
        )
        table.row(
            "bare server (fastapi + uvicorn), warm",
            [b[0] for b in bare],
            [b[1] for b in bare],
            name="bare server",
        )
        first_calls("bare server (fastapi + uvicorn), warm", bare)
        if args.compare:
            compare_serve(table, args.compare.resolve(), args.runs, tmp)
        for label, command, is_binary in targets:
            bench_serve(table, label, command, is_binary, args.runs, tmp)
        if not args.skip_desktop:
            with xvfb() as display:
                bare = repeat(args.runs, lambda: bare_window_ready(display, tmp))
                walls, cpus = [b[0] for b in bare], [b[1] for b in bare]
                table.row("bare window (pywebview + Qt WebEngine), warm", walls, cpus, name="bare window")
                for label, command, is_binary in targets:
                    bench_desktop(table, label, command, is_binary, args.runs, tmp, display)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
