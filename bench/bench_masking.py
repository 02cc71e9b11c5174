"""How much masking 20 secrets costs on ~100 MB of output.

1. pipeline: the engine's `OutputPipeline` (decode, mask, chunk, publish on the live bus) fed
   100 MB in the runners' read sizes, with storage stubbed out: the CPU cost of the output path
   alone, where masking weighs the most.
2. end-to-end: a real execution (Docker when reachable, else the local runner) whose script
   prints 100 MB, stored in SQLite and published live, without and with 20 secrets attached.

Usage: .venv/bin/python bench/bench_masking.py [--mb 100] [--runs 5] [--runner docker|local]
       [--values plain|quoted] [--pipeline-only]

`--values quoted` gives every secret quotes, a backslash, a space and non-ASCII letters, so each
adds its printed forms (shell-quoted, JSON, Python, YAML...: about 30 patterns instead of 4).

This machine's other work makes single end-to-end timings noisy: compare the best runs, and
the time the masker itself spent, which the script measures inside the real runs.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import tempfile
import time
from concurrent.futures import Future
from pathlib import Path

from sqlmodel import col, select

from opscraft import lifecycle, runtime
from opscraft.config import load_settings
from opscraft.db.models import Execution, ExecutionLog, Role
from opscraft.db.models.executions import FINAL_STATUSES
from opscraft.execution import executor
from opscraft.execution.bus import LocalLogBus
from opscraft.execution.events import LogEvent
from opscraft.execution.masking import Masker, patterns_for
from opscraft.execution.output import OutputPipeline
from opscraft.services import executions, scripts, users
from opscraft.services import secrets as secret_service
from opscraft.services.actor import Actor

SECRETS = 20
LINE = "2026-01-31T12:00:00Z INFO worker-3 GET /api/v1/items?page=7 status=200 took=12ms user=deploy-bot\n"
PRINTER = """import os, sys
line = {line!r}
block = line * 1000
for _ in range({blocks}):
    sys.stdout.write(block)
print("last:", os.environ.get("SECRET_00", "none"))
"""


def values(kind: str) -> list[str]:
    """`SECRETS` random values: URL-safe characters only (`plain`), or with quotes, a backslash,
    a space and non-ASCII letters (`quoted`)."""
    if kind == "quoted":
        return [f"{secrets.token_urlsafe(9)}'q\"b\\s é{secrets.token_urlsafe(6)}" for _ in range(SECRETS)]
    return [secrets.token_urlsafe(18) for _ in range(SECRETS)]


def _stored(_events: list[LogEvent], _size: int, _kept: int) -> Future[None]:
    done: Future[None] = Future()
    done.set_result(None)
    return done


def pipeline_seconds(data: bytes, chunk: int, masker: Masker) -> float:
    pipe = OutputPipeline(1, LocalLogBus(), _stored, masker, max_bytes=len(data) * 2)
    view = memoryview(data)
    started = time.perf_counter()
    for pos in range(0, len(data), chunk):
        pipe.feed("stdout", bytes(view[pos : pos + chunk]))
    pipe.close()
    return time.perf_counter() - started


def _build_seconds(secret_values: list[str]) -> float:
    """CPU seconds to build a masker (CPU time: the wall time varies with the machine's load)."""
    started = time.process_time()
    Masker(secret_values)
    return time.process_time() - started


def bench_pipeline(mb: int, runs: int, kind: str) -> None:
    data = (LINE * (mb * 1024 * 1024 // len(LINE))).encode()
    print(f"pipeline: {len(data) / 1e6:.0f} MB through OutputPipeline (storage stubbed), best of {runs}")
    build = min(_build_seconds(values(kind)) for _ in range(max(runs, 5)))
    print(f"  building the masker for {SECRETS} {kind} secrets: {build * 1000:.1f} ms of CPU (best)")
    for chunk in (65536, 4096):
        plain = min(pipeline_seconds(data, chunk, Masker([])) for _ in range(runs))
        masked = min(pipeline_seconds(data, chunk, Masker(values(kind))) for _ in range(runs))
        print(
            f"  {chunk:>6}-byte reads: {len(data) / 1e6 / plain:7.0f} MB/s plain, "
            f"{len(data) / 1e6 / masked:7.0f} MB/s with {SECRETS} secrets: {100 * (masked / plain - 1):+.1f}%"
        )


async def _setup(mb: int, with_secrets: bool, kind: str) -> tuple[Actor, int]:
    async with runtime.current().db.session() as s:
        admin = await users.bootstrap(
            s,
            users.UserCreate(
                username="bench", email="b@example.com", password="Bench-pass-123", role=Role.admin
            ),
        )
        actor = Actor(admin)
        blocks = mb * 1024 * 1024 // (len(LINE) * 1000)
        saved = await scripts.create(
            s,
            actor,
            {
                "name": "print-output",
                "script_type": "python",
                "content": PRINTER.format(line=LINE, blocks=blocks),
                "status": "active",
                "timeout_seconds": 600,
            },
        )
        script_id = saved.script.id
        assert script_id is not None
        for i, value in enumerate(values(kind) if with_secrets else []):
            info = await secret_service.create(s, actor, {"name": f"SECRET_{i:02}", "value": value})
            assert info.secret.id is not None
            await secret_service.attach(s, actor, script_id, info.secret.id)
    return actor, script_id


async def _one_run(mb: int, runner: str, with_secrets: bool, kind: str) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(
            OPSCRAFT_DATA_DIR=Path(tmp),
            OPSCRAFT_LOCAL_RUNNER=True,
            OPSCRAFT_MAX_OUTPUT_BYTES=mb * 2 * 1024 * 1024,
            OPSCRAFT_IMAGE_PYTHON="opscraft-test/runner:1",
        )
        await lifecycle.start(settings)
        try:
            actor, script_id = await _setup(mb, with_secrets, kind)
            started = time.perf_counter()
            async with runtime.current().db.session() as s:
                execution = await executions.create(s, actor, script_id, {}, runner=runner)
            while True:
                async with runtime.current().db.session() as s:
                    row = await s.get(Execution, execution.id)
                    assert row is not None
                    if row.status in FINAL_STATUSES:
                        break
                await asyncio.sleep(0.05)
            elapsed = time.perf_counter() - started
            async with runtime.current().db.session() as s:
                last = (
                    await s.exec(
                        select(ExecutionLog.content)
                        .where(col(ExecutionLog.execution_id) == row.id)
                        .order_by(col(ExecutionLog.seq).desc())
                        .limit(1)
                    )
                ).one()
            expected = "last: ***\n" if with_secrets else "last: none\n"
            if row.status != "success" or not last.endswith(expected):
                raise SystemExit(f"bench run ended {row.status}: {row.error_message or last[-80:]!r}")
            return elapsed, row.output_bytes
        finally:
            await lifecycle.stop()


class TimedMasker(Masker):
    """The engine's masker, counting the time it spends (swapped into the executor by `main`)."""

    spent = 0.0

    def mask(self, stream: str, text: str) -> str:
        started = time.perf_counter()
        try:
            return super().mask(stream, text)
        finally:
            TimedMasker.spent += time.perf_counter() - started


def bench_end_to_end(mb: int, runs: int, runner: str, kind: str) -> None:
    print(f"end-to-end: a {runner} run printing {mb} MB, stored in SQLite; {runs} runs each, alternated")
    times: dict[bool, list[float]] = {False: [], True: []}
    spent: list[float] = []
    executor.Masker = TimedMasker  # type: ignore[misc]
    for _ in range(runs):
        for with_secrets in (False, True):
            TimedMasker.spent = 0.0
            elapsed, size = asyncio.run(_one_run(mb, runner, with_secrets, kind))
            times[with_secrets].append(elapsed)
            if with_secrets:
                spent.append(TimedMasker.spent)
    for label, kind in (("best", min), ("median", statistics.median)):
        plain, masked = kind(times[False]), kind(times[True])
        print(
            f"  {label:>6}: {size / 1e6 / plain:6.1f} MB/s without secrets ({plain:.2f} s), "
            f"{size / 1e6 / masked:6.1f} MB/s with {SECRETS} secrets ({masked:.2f} s): "
            f"{100 * (masked / plain - 1):+.1f}%"
        )
    share = 100 * statistics.median(spent) / min(times[False])
    print(
        f"  time spent masking inside the runs: median {statistics.median(spent):.3f} s, "
        f"{share:.1f}% of the best run without secrets"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--runner", choices=["docker", "local"], default=None)
    parser.add_argument("--values", choices=["plain", "quoted"], default="plain")
    parser.add_argument("--pipeline-only", action="store_true")
    args = parser.parse_args()
    patterns = set().union(*(patterns_for(v) for v in values(args.values)))
    print(f"{SECRETS} {args.values} secrets: {len(patterns)} patterns")
    bench_pipeline(args.mb, args.runs, args.values)
    if args.pipeline_only:
        return
    runner = args.runner or ("docker" if _docker() else "local")
    bench_end_to_end(args.mb, args.runs, runner, args.values)


def _docker() -> bool:
    from opscraft.execution.docker_runner import DockerRunner

    return DockerRunner("bench").available()


if __name__ == "__main__":
    main()
