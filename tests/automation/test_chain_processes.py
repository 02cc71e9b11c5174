"""Two server processes on one PostgreSQL database start each chained run exactly once: both
deliver the run events (the `chains` subscriber) and both run the starter loop."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import func
from sqlmodel import col, select

from opscraft import lifecycle
from opscraft.db.models import ChainRun, Execution, Role, RunEventDelivery
from opscraft.services import chains, executions, scripts, users
from opscraft.services.actor import Actor
from opscraft.services.chains import LinkIn
from opscraft.services.scripts import ScriptCreate
from opscraft.services.users import UserCreate
from tests.conftest import PG_URL, ROOT, empty_postgres, make_settings, require_service
from tests.executions.conftest import IMAGES

RUNS = 8


async def test_two_processes_start_each_chained_run_once(tmp_path: Path) -> None:
    require_service(bool(PG_URL), "PostgreSQL (OPSCRAFT_TEST_PG_URL)")
    assert PG_URL
    await empty_postgres(PG_URL)
    # This process runs the only worker; its own dispatcher and loops stay out of the race.
    rt = await lifecycle.start(make_settings(tmp_path, PG_URL, OPSCRAFT_LOCAL_RUNNER=True, **IMAGES))
    assert rt.automation is not None and rt.run_events is not None
    await rt.automation.stop()
    rt.automation = None
    await rt.run_events.stop()
    stop = tmp_path / "stop"
    env = {**os.environ, "DATABASE_URL": PG_URL}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.automation.chain_process", str(tmp_path), str(stop)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        names = []
        for p in procs:
            assert p.stdout is not None
            names.append(p.stdout.readline().strip())
            assert names[-1], p.stderr.read() if p.stderr else ""
        async with rt.db.session() as session:
            owner = await users.bootstrap(
                session,
                UserCreate(
                    username="owner", email="o@example.com", password="Correct-Horse-9", role=Role.admin
                ),
            )
            actor = Actor(owner)
            first = await scripts.create(
                session,
                actor,
                ScriptCreate(name="first", script_type="bash", content="true\n", status="active"),
            )
            second = await scripts.create(
                session,
                actor,
                ScriptCreate(name="second", script_type="bash", content="true\n", status="active"),
            )
            assert first.script.id is not None and second.script.id is not None
            await chains.create(session, actor, first.script.id, LinkIn(target_script_id=second.script.id))
            sources = [
                (await executions.create(session, actor, first.script.id, {}, runner="local")).id
                for _ in range(RUNS)
            ]
        deadline = time.monotonic() + 120
        while True:
            async with rt.db.session() as session:
                started = (
                    await session.exec(
                        select(func.count()).select_from(ChainRun).where(col(ChainRun.status) == "started")
                    )
                ).one()
            if started >= RUNS:
                break
            assert time.monotonic() < deadline, f"{started} of {RUNS} chained runs started"
            await asyncio.sleep(0.2)
        await asyncio.sleep(3)  # a second start, if there were one, would have happened by now
        async with rt.db.session() as session:
            rows = (await session.exec(select(ChainRun))).all()
            assert sorted(r.source_execution_id for r in rows) == sorted(sources)
            chained = (
                await session.exec(select(Execution).where(col(Execution.script_id) == second.script.id))
            ).all()
            assert sorted(r.id for r in chained) == sorted(r.execution_id for r in rows), "one run per firing"
            assert {r.trigger_ref for r in chained} == {f"execution:{s}" for s in sources}
            by = (
                await session.exec(
                    select(RunEventDelivery.delivered_by).where(col(RunEventDelivery.subscriber) == "chains")
                )
            ).all()
            assert len(by) >= RUNS and set(by) <= set(names), "the two server processes delivered them"
    finally:
        stop.touch()
        for p in procs:
            try:
                out, err = p.communicate(timeout=60)
                assert p.returncode == 0, out + err
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        await lifecycle.stop()
