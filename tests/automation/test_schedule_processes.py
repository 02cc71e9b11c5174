"""Two processes on one PostgreSQL database fire each schedule exactly once per fire time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import func
from sqlmodel import col, select, update

from opscraft import lifecycle
from opscraft.db.models import Execution, Role, Schedule, ScheduleFire
from opscraft.db.types import utcnow
from opscraft.services import schedules, scripts, users
from opscraft.services.actor import Actor
from opscraft.services.schedules import ScheduleIn
from opscraft.services.scripts import ScriptCreate
from opscraft.services.users import UserCreate
from tests.conftest import PG_URL, ROOT, empty_postgres, make_settings, require_service
from tests.executions.conftest import IMAGES

SCHEDULES = 20
STEPS = 3


async def test_two_processes_fire_each_time_once(tmp_path: Path) -> None:
    require_service(bool(PG_URL), "PostgreSQL (OPSCRAFT_TEST_PG_URL)")
    assert PG_URL
    await empty_postgres(PG_URL)
    # This process runs the only worker (runs need a live worker offering a runner); the two
    # scheduler processes run none.
    settings = make_settings(tmp_path, PG_URL, OPSCRAFT_LOCAL_RUNNER=True, **IMAGES)
    rt = await lifecycle.start(settings)
    assert rt.automation is not None
    await rt.automation.stop()  # this process's own scheduler stays out of the race
    rt.automation = None
    try:
        async with rt.db.session() as session:
            owner = await users.bootstrap(
                session,
                UserCreate(
                    username="owner", email="o@example.com", password="Correct-Horse-9", role=Role.admin
                ),
            )
            actor = Actor(owner)
            saved = await scripts.create(
                session,
                actor,
                ScriptCreate(name="tick", script_type="bash", content="true\n", status="active"),
            )
            script_id = saved.script.id
            ids = []
            for i in range(SCHEDULES):
                s = await schedules.create(
                    session,
                    actor,
                    script_id,
                    ScheduleIn(name=f"s{i}", cron="* * * * *", overlap_policy="allow"),
                )
                ids.append(s.id)
            base = utcnow().replace(second=0, microsecond=0)
            await session.exec(update(Schedule).values(next_fire_at=base))
            await session.commit()

        go = tmp_path / "go"
        env = {**os.environ, "DATABASE_URL": PG_URL}
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.automation.scheduler_process",
                    str(tmp_path),
                    str(go),
                    base.isoformat(),
                    str(STEPS),
                ],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        try:
            for p in procs:
                assert p.stdout is not None
                assert p.stdout.readline().strip() == "ready", p.stderr.read() if p.stderr else ""
            go.touch()
            results = []
            for p in procs:
                out, err = p.communicate(timeout=180)
                assert p.returncode == 0, err
                results.append(json.loads(out.strip().splitlines()[-1])["claimed"])
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()

        assert sum(results) == SCHEDULES * STEPS, results
        assert all(r > 0 for r in results), f"both processes took part: {results}"
        async with rt.db.session() as session:
            per_time = (
                await session.exec(
                    select(ScheduleFire.schedule_id, ScheduleFire.fire_time, func.count()).group_by(
                        ScheduleFire.schedule_id, ScheduleFire.fire_time
                    )
                )
            ).all()
            assert len(per_time) == SCHEDULES * STEPS and {n for *_, n in per_time} == {1}
            started = (
                await session.exec(
                    select(func.count())
                    .select_from(ScheduleFire)
                    .where(col(ScheduleFire.outcome) == "started")
                )
            ).one()
            runs = (await session.exec(select(func.count()).select_from(Execution))).one()
            assert started == runs == SCHEDULES * STEPS, "one run per fire time, no more"
    finally:
        await lifecycle.stop()
