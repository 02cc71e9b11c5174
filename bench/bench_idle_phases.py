"""The first local run after the server sat idle: where its time goes, and what idling costs.

One process: the runtime (`lifecycle.start`, SQLite, its worker and fork server) and the API
served by uvicorn on a local port, driven over real HTTP and a real WebSocket as an API user
would (as bench_docker_phases, for the local runner). Timestamps are taken by wrapping the
engine's steps (nothing in the product changes), in ms after the client sends the POST:

    accepted           the 202 is back
    claim start/end    the consumer thread's claim transaction (`store.claim`)
    runner             `LocalRunner.run` entered
    supervisor forked  the fork server handed over the run's supervisor
    first output       the first output bytes reached the output pipeline
    ws first log       the client has the first `log` message

Each round sleeps `--idle` seconds, then runs `echo hi` (the run after idle), then once more at
once (steady). While idle, the CPU time of this process (the server's threads; the client does
nothing while it sleeps) and of the fork server is read from /proc. At the end, the bare baseline
after the same idle: `bash script.sh` spawned directly, time to its first byte.

Usage: .venv/bin/python -m bench.bench_idle_phases [--idle 60] [--rounds 3] [--warmup 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx

from bench.bench_docker_phases import _Server
from bench.exec_harness import PASSWORD, SYSTEM_PATH, bare_env, serve_api, watch
from opscraft import lifecycle
from opscraft.execution import store
from opscraft.execution.output import OutputPipeline
from tests.conftest import make_settings

PHASES = (
    "accepted",
    "claim start",
    "claim end",
    "runner",
    "supervisor forked",
    "first output",
    "ws first log",
)
SCRIPT = "echo hi\n"


class Recorder:
    """First timestamp (`time.perf_counter`) per execution id and phase."""

    def __init__(self) -> None:
        self.marks: dict[int, dict[str, float]] = defaultdict(dict)
        self._current = threading.local()

    def mark(self, execution_id: int | None, phase: str) -> None:
        if execution_id is not None:
            self.marks[execution_id].setdefault(phase, time.perf_counter())

    def install(self, worker: Any) -> None:
        """Wrap the claim, the local runner and its fork server's hand-over, the output."""
        recorder, claim = self, store.claim

        def timed_claim(conn: Any, settings: Any, worker_id: str, execution_id: int, *rest: Any) -> Any:
            recorder.mark(execution_id, "claim start")
            try:
                return claim(conn, settings, worker_id, execution_id, *rest)
            finally:
                recorder.mark(execution_id, "claim end")

        store.claim = timed_claim
        run, supervisor = worker.local.run, worker.local.forks.supervisor

        def timed_run(spec: Any, output: Any, control: Any) -> Any:
            recorder._current.execution_id = spec.execution_id
            recorder.mark(spec.execution_id, "runner")
            try:
                return run(spec, output, control)
            finally:
                recorder._current.execution_id = None

        def timed_supervisor() -> Any:
            try:
                return supervisor()
            finally:
                recorder.mark(getattr(recorder._current, "execution_id", None), "supervisor forked")

        worker.local.run = timed_run
        worker.local.forks.supervisor = timed_supervisor
        feed = OutputPipeline.feed

        def timed_feed(self: OutputPipeline, stream: Any, data: bytes) -> None:
            recorder.mark(self.execution_id, "first output")
            feed(self, stream, data)

        OutputPipeline.feed = timed_feed  # type: ignore[method-assign]

    def line(self, execution_id: int) -> str:
        marks = self.marks[execution_id]
        start = marks["submitted"]
        return "  ".join(f"{p} {1000 * (marks[p] - start):6.1f}" for p in PHASES if p in marks)


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _sample(client: httpx.AsyncClient, srv: _Server, script_id: int, recorder: Recorder) -> int:
    started = time.perf_counter()
    body = {"script_id": script_id, "runner": "local"}
    response = await client.post("/api/v1/executions", json=body, headers=srv.headers)
    response.raise_for_status()
    execution_id = int(response.json()["id"])
    recorder.marks[execution_id].update(submitted=started, accepted=time.perf_counter())
    await watch(srv, execution_id, until="log")
    recorder.mark(execution_id, "ws first log")
    await watch(srv, execution_id)
    return execution_id


def _bare_first_byte(folder: str) -> float:
    script = Path(folder) / "script.sh"
    script.write_text(SCRIPT)
    started = time.perf_counter()
    proc = subprocess.Popen(["bash", str(script)], stdout=subprocess.PIPE, env=bare_env(folder))
    assert proc.stdout is not None
    proc.stdout.read(1)
    took = (time.perf_counter() - started) * 1000
    proc.communicate()
    return took


async def main(idle: float, rounds: int, warmup: int) -> None:
    print(f"# load average at start: {os.getloadavg()}")
    os.environ["PATH"] = SYSTEM_PATH  # the local runner passes the server's PATH on
    with tempfile.TemporaryDirectory(prefix="opscraft-bench-") as tmp:
        settings = make_settings(Path(tmp), OPSCRAFT_LOCAL_RUNNER="1", OPSCRAFT_RATE_LIMIT_API=1_000_000)
        rt = await lifecycle.start(settings)
        recorder = Recorder()
        assert rt.worker is not None
        recorder.install(rt.worker)
        api = await serve_api(settings)
        url = api.url
        after_idle: list[float] = []
        steady: list[float] = []
        async with httpx.AsyncClient(base_url=url, timeout=120) as client:
            account = {"username": "bench", "email": "bench@example.com", "password": PASSWORD}
            (await client.post("/api/v1/auth/register", json=account)).raise_for_status()
            login = await client.post("/api/v1/auth/login", json={"username": "bench", "password": PASSWORD})
            srv = _Server(url, login.json()["access_token"])
            body = {"name": "hi", "script_type": "bash", "content": SCRIPT, "status": "active"}
            created = await client.post("/api/v1/scripts", json=body, headers=srv.headers)
            created.raise_for_status()
            script_id = int(created.json()["id"])
            for _ in range(warmup):
                await _sample(client, srv, script_id, recorder)
            forks = rt.worker.local.forks.pid
            for number in range(1, rounds + 1):
                before = _cpu_seconds(os.getpid()), _cpu_seconds(forks) if forks else 0.0
                await asyncio.sleep(idle)
                used = (
                    _cpu_seconds(os.getpid()) - before[0],
                    (_cpu_seconds(forks) if forks else 0.0) - before[1],
                )
                first = await _sample(client, srv, script_id, recorder)
                then = await _sample(client, srv, script_id, recorder)
                after_idle.append(
                    1000 * (recorder.marks[first]["ws first log"] - recorder.marks[first]["submitted"])
                )
                steady.append(
                    1000 * (recorder.marks[then]["ws first log"] - recorder.marks[then]["submitted"])
                )
                print(
                    f"round {number}: CPU while idle {1000 * used[0]:.0f} ms (server), "
                    f"{1000 * used[1]:.0f} ms (fork server) in {idle:.0f} s; load {os.getloadavg()[0]:.1f}"
                )
                print(f"  after idle: {recorder.line(first)}")
                print(f"  at once:    {recorder.line(then)}")
        await api.stop()
        await lifecycle.stop()
    with tempfile.TemporaryDirectory() as folder:
        await asyncio.sleep(idle)
        bare = _bare_first_byte(folder), _bare_first_byte(folder)
    print(f"first log after {idle:.0f} s idle: {', '.join(f'{t:.1f}' for t in after_idle)} ms")
    print(f"the run right after each: median {statistics.median(steady):.1f} ms")
    print(
        f"bare `bash script.sh` first byte after {idle:.0f} s idle: {bare[0]:.1f} ms, then {bare[1]:.1f} ms"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--idle", type=float, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(main(args.idle, args.rounds, args.warmup))
