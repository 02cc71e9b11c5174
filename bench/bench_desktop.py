"""Desktop window and packaged binary: size, and start-up until ready, cold and warm.

"Ready" is `GET /api/v1/health` answering 200 for `serve`, and for the desktop the window being
mapped and then showing the signed-in dashboard (read through Qt WebEngine's DevTools endpoint,
as tests/test_desktop.py does), on Xvfb. Each start uses a fresh data directory (migrations
included). Baseline in the same run: `python -m opscraft serve` from the source checkout.
Cold = the first start after dropping the kernel's page cache (as root; else the first start
after the build, which the report says). Targets (issue 11): warm <= 3 s, cold <= 8 s, window
< 5 s.

Usage: .venv/bin/python -m bench.bench_desktop [--binary dist/opscraft/opscraft] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from tests.app_journey import wait_healthy
from tests.conftest import ROOT, free_port
from tests.desktop_session import launch_desktop, xvfb


def drop_caches() -> bool:
    """Empty the page cache so the next start reads its files from disk (root only)."""
    try:
        subprocess.run(["sync"], check=True)
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def env_for(data_dir: Path, source: bool) -> dict[str, str]:
    if source:
        return {**os.environ, "OPSCRAFT_DATA_DIR": str(data_dir), "OPSCRAFT_NO_BOOTSTRAP": "1"}
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(data_dir),
        "LANG": "C.UTF-8",
        "OPSCRAFT_DATA_DIR": str(data_dir),
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by a process and all its descendants."""
    root = psutil.Process(pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def serve_ready(command: list[str], source: bool) -> tuple[float, float]:
    """(wall seconds, CPU seconds) from launch until /api/v1/health answers."""
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        start = time.monotonic()
        process = subprocess.Popen(
            [*command, "serve", "--port", str(port)],
            env=env_for(Path(tmp), source),
            cwd=ROOT if source else tmp,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_healthy(f"http://127.0.0.1:{port}", time.monotonic() + 180, process)
            return time.monotonic() - start, cpu_seconds(process.pid)
        finally:
            process.terminate()
            process.wait(timeout=60)


def window_ready(command: list[str], source: bool, display: str) -> tuple[float, float, float]:
    """(seconds until the window is mapped, until it shows the signed-in dashboard, CPU seconds
    of the whole process tree by then)."""
    with tempfile.TemporaryDirectory() as tmp:
        app = launch_desktop(
            [*command, "desktop"],
            env_for(Path(tmp), source),
            display,
            Path(tmp) / "log",
            ROOT if source else Path(tmp),
        )
        try:
            return app.started_in, app.ready_in, cpu_seconds(app.process.pid)
        finally:
            app.close()
            app.kill()


def report(label: str, values: list[float], cpu: list[float] | None = None) -> None:
    shown = " / ".join(f"{v:.2f}" for v in values)
    line = f"{label:<42} median {statistics.median(values):6.2f} s ({shown})"
    if cpu:
        line += f"   CPU {statistics.median(cpu):5.2f} s"
    print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default=str(ROOT / "dist" / "opscraft" / "opscraft"))
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    binary = Path(args.binary)
    source = [sys.executable, "-m", "opscraft"]
    size = subprocess.run(["du", "-sm", str(binary.parent)], capture_output=True, text=True).stdout.split()[0]
    files = sum(1 for p in binary.parent.rglob("*") if p.is_file())
    print(f"binary folder: {size} MiB, {files} files ({binary.parent})")
    archive = sorted(binary.parent.parent.glob("opscraft-*.tar.gz"))
    if archive:
        print(f"archive: {archive[-1].stat().st_size / 2**20:.0f} MiB ({archive[-1].name})")
    print(f"load average before: {os.getloadavg()}", flush=True)

    cold = "cold (page cache dropped)" if drop_caches() else "first start"
    first = serve_ready([str(binary)], False)
    report(f"binary serve, {cold}: health", [first[0]], [first[1]])
    for label, command, is_source in (("binary", [str(binary)], False), ("baseline: source", source, True)):
        runs = [serve_ready(command, is_source) for _ in range(args.runs)]
        report(f"{label} serve, warm: health", [r[0] for r in runs], [r[1] for r in runs])
    with xvfb() as display:
        for label, command, is_source in (("binary", [str(binary)], False), ("source", source, True)):
            if not is_source:
                cold = "cold" if drop_caches() else "first"
                mapped, ready, cpu = window_ready(command, is_source, display)
                report(f"{label} desktop, {cold}: window mapped", [mapped])
                report(f"{label} desktop, {cold}: dashboard shown", [ready], [cpu])
            runs = [window_ready(command, is_source, display) for _ in range(args.runs)]
            report(f"{label} desktop, warm: window mapped", [r[0] for r in runs])
            report(f"{label} desktop, warm: dashboard shown", [r[1] for r in runs], [r[2] for r in runs])
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
