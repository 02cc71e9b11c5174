"""Where a Docker run's time goes, phase by phase, from submit to its first output byte and end.

One process: the runtime (`lifecycle.start`, SQLite, its worker with the warm pool) and the API
served by uvicorn on a local port, driven over real HTTP and a real WebSocket as an API user
would. Timestamps are taken by wrapping the engine's steps (nothing in the product is changed):

    submitted         the client sends `POST /api/v1/executions`
    accepted          the 202 is back
    claim start/end   the consumer thread's claim transaction (`store.claim`)
    runner            `DockerRunner.run` entered (secrets and the output pipeline are ready)
    taken             `WarmPool.take` returned (a warm container, or none: cold)
    attached          `attach_socket` on the run's thread returned (absent when it was opened
                      when the container was pooled)
    started           `start` on the run's thread returned (cold runs only)
    job written       the job went over stdin; reading the output starts (`_pump` entered)
    first output      the first output bytes reached the output pipeline (and the live bus)
    ws first log      the client has the first `log` message on the WebSocket
    output closed     the output ended: the loader's end record was read on both streams (or,
                      without one, the attach stream ended: every process of the container ended)
    runner returned   the exit status is known (`DockerRunner.run` returned: from the end
                      record, or Docker's `wait` when there was none)
    ws end            the client has the `end` message

Each sample submits `echo hi` (`--script fib`: python fib(10)) and opens the WebSocket right
after the 202 (as bench_exec_docker does), then waits until the pool is full again, so every
warm sample is a warm start and no refill of a previous sample runs beside it (`--overlap` skips
that wait: the refill then competes with the next run, as with runs in quick succession; with
`--script fib` this is bench_exec_docker's 40 sequential runs, phase by phase). Prints the time
from the first submit to the last end, the median and p90 of each timestamp (ms after
`submitted`) and of each step, and off the runs' path the ms per container creation on the
pool's threads (`create warm`: create, attach, start) and per removal (`remove`), and per
`take` (more than 1 ms: the run found its pool empty and waited for a creation).

Usage: .venv/bin/python -m bench.bench_docker_phases [--samples 30] [--pool 2] [--burst N]
       [--overlap] [--script hi|fib]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import statistics
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import docker.api.client
import httpx

from bench.exec_harness import PASSWORD, RUNNER_IMAGE, percentile, serve_api, watch
from opscraft import lifecycle
from opscraft.execution import docker_runner, store
from opscraft.execution.output import OutputPipeline
from tests.conftest import make_settings

PHASES = (
    "accepted",
    "claim start",
    "claim end",
    "runner",
    "taken",
    "attached",
    "started",
    "job written",
    "first output",
    "ws first log",
    "output closed",
    "runner returned",
    "ws end",
)


class Recorder:
    """Timestamps (`time.perf_counter`) per execution id and phase; the first one of a phase wins."""

    def __init__(self) -> None:
        self.marks: dict[int, dict[str, float]] = defaultdict(dict)
        self.durations: dict[str, list[float]] = defaultdict(list)
        """Off the runs' path: ms per container creation (create, attach, start) on the pool's
        thread and per removal; on it: ms per `take`."""
        self._current = threading.local()

    def mark(self, execution_id: int | None, phase: str) -> None:
        if execution_id is not None:
            self.marks[execution_id].setdefault(phase, time.perf_counter())

    def here(self) -> int | None:
        """The execution the calling thread runs (set while `DockerRunner.run` runs)."""
        return getattr(self._current, "execution_id", None)

    def install(self, runner: docker_runner.DockerRunner) -> None:
        """Wrap the engine's steps (see the module docstring)."""
        recorder = self
        claim = store.claim

        @functools.wraps(claim)
        def timed_claim(conn: Any, settings: Any, worker_id: str, execution_id: int, *rest: Any) -> Any:
            recorder.mark(execution_id, "claim start")
            try:
                return claim(conn, settings, worker_id, execution_id, *rest)
            finally:
                recorder.mark(execution_id, "claim end")

        store.claim = timed_claim

        run = runner.run

        def timed_run(spec: Any, output: Any, control: Any) -> Any:
            recorder._current.execution_id = spec.execution_id
            recorder.mark(spec.execution_id, "runner")
            try:
                return run(spec, output, control)
            finally:
                recorder.mark(spec.execution_id, "runner returned")
                recorder._current.execution_id = None

        runner.run = timed_run  # type: ignore[method-assign]

        take = runner.pool.take

        def timed_take(profile: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return take(profile)
            finally:
                recorder.mark(recorder.here(), "taken")
                recorder.durations["take"].append((time.perf_counter() - t0) * 1000)

        runner.pool.take = timed_take  # type: ignore[method-assign]

        steps = ((runner.pool, "_create", "create warm"), (runner, "_remove", "remove"))
        for owner, attribute, name in steps:
            original_step = getattr(owner, attribute)

            def timed_step(*args: Any, _original: Any = original_step, _name: str = name) -> Any:
                t0 = time.perf_counter()
                try:
                    return _original(*args)
                finally:
                    recorder.durations[_name].append((time.perf_counter() - t0) * 1000)

            setattr(owner, attribute, timed_step)

        for method, phase in (("attach_socket", "attached"), ("start", "started")):
            original = getattr(docker.api.client.APIClient, method)

            def timed(
                self: Any, *args: Any, _original: Any = original, _phase: str = phase, **kw: Any
            ) -> Any:
                try:
                    return _original(self, *args, **kw)
                finally:
                    recorder.mark(recorder.here(), _phase)

            setattr(docker.api.client.APIClient, method, timed)

        pump = docker_runner._pump

        def timed_pump(sock: Any, output: Any, *rest: Any) -> Any:
            recorder.mark(recorder.here(), "job written")
            try:
                return pump(sock, output, *rest)
            finally:
                recorder.mark(recorder.here(), "output closed")

        docker_runner._pump = timed_pump

        feed = OutputPipeline.feed

        def timed_feed(self: OutputPipeline, stream: Any, data: bytes) -> None:
            feed(self, stream, data)
            recorder.mark(self.execution_id, "first output")

        OutputPipeline.feed = timed_feed  # type: ignore[method-assign]


class _Server:
    """Just what `exec_harness.watch` needs of a server."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.ws_url = url.replace("http://", "ws://", 1)
        self.token = token
        self.headers = {"Authorization": f"Bearer {token}"}


FIB = "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n\nprint(fib(10))\n"
SCRIPTS = {"hi": ("bash", "echo hi\n", "hi\n"), "fib": ("python", FIB, "55\n")}
"""--script: (script type, content, its first output)."""


async def sample(
    client: httpx.AsyncClient, srv: _Server, script_id: int, recorder: Recorder, expected: str
) -> None:
    t0 = time.perf_counter()
    response = await client.post(
        "/api/v1/executions", json={"script_id": script_id, "runner": "docker"}, headers=srv.headers
    )
    response.raise_for_status()
    execution_id = int(response.json()["id"])
    marks = recorder.marks[execution_id]
    marks["submitted"] = t0
    marks["accepted"] = time.perf_counter()
    message, _ = await watch(srv, execution_id, until="log")
    marks["ws first log"] = time.perf_counter()
    assert message["content"].strip() == expected.strip(), message
    end, _ = await watch(srv, execution_id)
    marks["ws end"] = time.perf_counter()
    assert end["status"] == "success", end


def report(recorder: Recorder, ids: list[int]) -> None:
    print(f"{'phase (ms after submitted)':<28} {'p50':>8} {'p90':>8}   step p50")
    previous = "submitted"
    for phase in PHASES:
        values = [
            (recorder.marks[i][phase] - recorder.marks[i]["submitted"]) * 1000
            for i in ids
            if phase in recorder.marks[i]
        ]
        if not values:
            print(f"{phase:<28} {'-':>8} {'-':>8}   (never on a run's thread)")
            continue
        steps = [
            (recorder.marks[i][phase] - recorder.marks[i][previous]) * 1000
            for i in ids
            if phase in recorder.marks[i] and previous in recorder.marks[i]
        ]
        step = f"{statistics.median(steps):8.1f}  (after {previous})" if steps else ""
        print(f"{phase:<28} {statistics.median(values):8.1f} {percentile(values, 90):8.1f}   {step}")
        previous = phase


async def main(samples: int, pool_size: int, overlap: bool, script: str, burst: int | None) -> None:
    script_type, content, expected = SCRIPTS[script]
    print(f"# load average at start: {os.getloadavg()}")
    with tempfile.TemporaryDirectory(prefix="opscraft-bench-") as tmp:
        images = {
            f"OPSCRAFT_IMAGE_{kind}": RUNNER_IMAGE for kind in ("BASH", "PYTHON", "ANSIBLE", "TERRAFORM")
        }
        bursts = {} if burst is None else {"OPSCRAFT_WARM_POOL_BURST": burst}
        settings = make_settings(Path(tmp), **images, OPSCRAFT_WARM_POOL_SIZE=pool_size, **bursts)
        rt = await lifecycle.start(settings)
        try:
            worker = rt.worker
            assert worker is not None
            recorder = Recorder()
            recorder.install(worker.docker)
            api = await serve_api(settings)
            url = api.url
            async with httpx.AsyncClient(base_url=url, timeout=120) as client:
                account = {"username": "bench", "email": "bench@example.com", "password": PASSWORD}
                (await client.post("/api/v1/auth/register", json=account)).raise_for_status()
                login = await client.post(
                    "/api/v1/auth/login", json={"username": "bench", "password": PASSWORD}
                )
                srv = _Server(url, login.json()["access_token"])
                body = {"name": script, "script_type": script_type, "content": content, "status": "active"}
                created = await client.post("/api/v1/scripts", json=body, headers=srv.headers)
                created.raise_for_status()
                script_id = int(created.json()["id"])
                profile = docker_runner.Profile(RUNNER_IMAGE, 512, 0.5, False, docker_runner.USER)
                before = set(recorder.marks)
                for i in range(samples + 3):  # 3 warm-up runs (the profile's first is cold)
                    if pool_size and not overlap:
                        assert await asyncio.to_thread(worker.docker.pool.wait_warm, profile, pool_size, 120)
                    await sample(client, srv, script_id, recorder, expected)
                    if i == 2:
                        before = set(recorder.marks)
                ids = sorted(set(recorder.marks) - before)
                elapsed = time.perf_counter() - recorder.marks[ids[0]]["submitted"]
            await api.stop()
            stats = worker.docker.pool.stats()
        finally:
            await lifecycle.stop()
    print(f"# load average at end: {os.getloadavg()}")
    print(
        f"# {len(ids)} samples, pool size {pool_size}, burst {stats.get('burst', '-')}"
        f"{' (refills overlap)' if overlap else ''}: "
        f"{stats['warm_starts']} warm starts, {stats['cold_starts']} cold starts in all"
    )
    print(f"# {len(ids)} runs one after the other: {elapsed:.3f} s from the first submit to the last end")
    report(recorder, ids)
    for name, values in recorder.durations.items():
        slow = sum(1 for value in values if value > 1) if name == "take" else None
        print(
            f"{name:<28} {statistics.median(values):8.1f} {percentile(values, 90):8.1f}   n={len(values)}"
            + (f", {slow} took more than 1 ms (waited for a creation)" if slow is not None else "")
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--pool", type=int, default=2, help="warm containers per profile (0: cold)")
    parser.add_argument("--burst", type=int, help="most per profile under demand (default: the product's)")
    parser.add_argument("--overlap", action="store_true", help="do not wait for the pool to refill")
    parser.add_argument("--script", choices=sorted(SCRIPTS), default="hi", help="fib: python fib(10)")
    args = parser.parse_args()
    asyncio.run(main(args.samples, args.pool, args.overlap, args.script, args.burst))
