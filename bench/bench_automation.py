"""Automation costs: the scheduler with 1,000 schedules firing every minute, and a webhook call.

1. Scheduler: 1,000 enabled schedules (`* * * * *`, overlap `allow`) on one script. For each of
   `--minutes` simulated minutes the scheduler does what its loop does in a real minute: one
   tick at the fire time (claims 1,000 fires and starts 1,000 runs through the service layer),
   then the idle wake-ups of the rest of the minute (`seconds_to_next` + an empty tick every
   5 s). Reported: the process CPU time per minute as a share of one core, and, as the bare
   baseline in the same run, the CPU time of starting the same 1,000 runs directly with
   `services.executions.create` (what the runs cost without any scheduler).
2. Webhook: p50/p95 of `POST /api/v1/hooks/{id}/{token}` (unsigned and signed; then, after the
   signing secret got a new value, signed with the new key and with the old one inside the
   rotation window, unless `--no-rotation`) through the real FastAPI stack in process, against
   the bare baseline of `POST /api/v1/executions` with an access token (the same run start,
   without the webhook's checks).

No worker runs (the runs stay queued): this measures the trigger side, not the runs. A
`workers` row offering the local runner stands for a worker elsewhere, so runs can be created.

Usage: .venv/bin/python bench/bench_automation.py [--schedules 1000] [--minutes 3] [--calls 300]
           [--pg postgresql+asyncpg://...]   (default SQLite in a temporary directory)
           [--no-rotation]                   (a version before signing key rotation windows)
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from itertools import count
from pathlib import Path

import httpx
import orjson
from fastapi import FastAPI
from sqlmodel import update

from opscraft import lifecycle
from opscraft.api import install_api
from opscraft.config import load_settings
from opscraft.db.models import RegisteredWorker, Role, Schedule
from opscraft.db.types import utcnow
from opscraft.services import app_settings, executions, schedules, scripts, users
from opscraft.services.actor import Actor
from opscraft.services.schedules import ScheduleIn
from opscraft.services.scripts import ScriptCreate
from opscraft.services.users import UserCreate

PASSWORD = "Bench-Password-9"


async def scheduler_bench(rt, actor: Actor, script_id: int, count: int, minutes: int) -> tuple[float, float]:
    """(scheduler CPU % of one core, baseline CPU % of one core) per minute."""
    async with rt.db.session() as session:
        for i in range(count):
            await schedules.create(
                session, actor, script_id, ScheduleIn(name=f"s{i}", cron="* * * * *", overlap_policy="allow")
            )
        base = utcnow().replace(second=0, microsecond=0) + timedelta(minutes=1)
        await session.exec(update(Schedule).values(next_fire_at=base))
        await session.commit()
    cpu_scheduler = []
    for minute in range(minutes):
        fire = base + timedelta(minutes=minute)
        start = time.process_time()
        claimed = await schedules.tick(rt.db, now=fire + timedelta(seconds=1))
        for second in range(5, 60, 5):
            await schedules.seconds_to_next(rt.db, rt.settings.scheduler_idle_seconds)
            await schedules.tick(rt.db, now=fire + timedelta(seconds=second))
        cpu_scheduler.append(time.process_time() - start)
        assert claimed == count, f"claimed {claimed} of {count}"
    cpu_baseline = []
    for _ in range(minutes):
        start = time.process_time()
        async with rt.db.session() as session:
            for _ in range(count):
                await executions.create(session, actor, script_id, {})
        cpu_baseline.append(time.process_time() - start)
    share = statistics.median(cpu_scheduler) / 60 * 100
    bare = statistics.median(cpu_baseline) / 60 * 100
    print(
        f"scheduler: {count} schedules, per minute CPU {statistics.median(cpu_scheduler):.2f} s"
        f" = {share:.2f}% of one core (minutes: {', '.join(f'{c:.2f}' for c in cpu_scheduler)} s)"
    )
    print(
        f"baseline: {count} x executions.create, per minute CPU"
        f" {statistics.median(cpu_baseline):.2f} s = {bare:.2f}% of one core"
    )
    print(f"scheduler overhead over the runs' own start: {share - bare:.2f}% of one core")
    return share, bare


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def webhook_bench(
    app: FastAPI, admin_headers: dict[str, str], script_id: int, calls: int, rotation: bool
) -> None:
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        r = await client.post(
            "/api/v1/secrets", json={"name": "HOOK_KEY", "value": "k"}, headers=admin_headers
        )
        key_id = r.json()["id"]
        plain = (
            await client.post(
                f"/api/v1/scripts/{script_id}/webhooks", json={"name": "p"}, headers=admin_headers
            )
        ).json()
        signed = (
            await client.post(
                f"/api/v1/scripts/{script_id}/webhooks",
                json={"name": "s", "secret_id": key_id},
                headers=admin_headers,
            )
        ).json()
        body = orjson.dumps({"ref": "main"})
        calls_made = count()

        def signed_call(key: bytes) -> Callable[[], Awaitable[httpx.Response]]:
            """A signed call under `key`, its body new each time (the same one again in the same
            second would be a replay: 401)."""

            def send() -> Awaitable[httpx.Response]:
                each = orjson.dumps({"ref": "main", "n": next(calls_made)})
                ts = str(int(time.time()))
                mac = hmac.new(key, ts.encode() + b"." + each, hashlib.sha256).hexdigest()
                headers = {
                    "X-OpsCraft-Timestamp": ts,
                    "X-OpsCraft-Signature": f"sha256={mac}",
                    "Content-Type": "application/json",
                }
                return client.post(signed["url_path"], content=each, headers=headers)

            return send

        async def measure(label: str, send: Callable[[], Awaitable[httpx.Response]]) -> None:
            for _ in range(20):
                await send()
            samples = []
            for _ in range(calls):
                start = time.perf_counter()
                response = await send()
                samples.append((time.perf_counter() - start) * 1000)
                assert response.status_code == 202, response.text
            print(
                f"{label}: p50 {statistics.median(samples):.1f} ms,"
                f" p95 {pct(samples, 0.95):.1f} ms ({calls} calls)"
            )

        await measure(
            "webhook, unsigned",
            lambda: client.post(
                plain["url_path"], content=body, headers={"Content-Type": "application/json"}
            ),
        )
        await measure("webhook, signed", signed_call(b"k"))
        if rotation:
            # A new value of the key: inside the rotation window the old one is tried second
            # (its row read and decrypted too), the new one first.
            r = await client.put(f"/api/v1/secrets/{key_id}", json={"value": "k2"}, headers=admin_headers)
            assert r.json()["previous_accepted_until"], r.text
            await measure("webhook, signed, new key inside a rotation window", signed_call(b"k2"))
            await measure("webhook, signed, old key inside a rotation window", signed_call(b"k"))
        await measure(
            "baseline POST /api/v1/executions (access token)",
            lambda: client.post("/api/v1/executions", json={"script_id": script_id}, headers=admin_headers),
        )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--schedules", type=int, default=1000)
    parser.add_argument("--minutes", type=int, default=3)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--pg", default=None)
    parser.add_argument(
        "--no-rotation", action="store_true", help="leave out the calls inside a key's rotation window"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        values = {
            "OPSCRAFT_DATA_DIR": Path(tmp),
            "SECRET_KEY": "bench-" + "k" * 40,
            "OPSCRAFT_RATE_LIMIT_API": 10_000_000,
            "OPSCRAFT_LOCAL_RUNNER": True,
        }
        if args.pg:
            values["DATABASE_URL"] = args.pg
        settings = load_settings(**values)
        rt = await lifecycle.start(settings, worker=False)
        try:
            async with rt.db.session() as session:
                admin = await users.bootstrap(
                    session,
                    UserCreate(username="admin", email="a@example.com", password=PASSWORD, role=Role.admin),
                )
                actor = Actor(admin)
                await app_settings.update(session, actor, {"local_runner_enabled": True})
                saved = await scripts.create(
                    session,
                    actor,
                    ScriptCreate(name="tick", script_type="bash", content="true\n", status="active"),
                )
                session.add(
                    RegisteredWorker(
                        id="bench-elsewhere",
                        host_name="bench",
                        pid=0,
                        runners=["local"],
                        slots=4,
                        heartbeat_at=utcnow() + timedelta(days=1),
                    )
                )
                await session.commit()
            assert saved.script.id is not None
            print(f"database: {'postgresql' if args.pg else 'sqlite'}")
            await scheduler_bench(rt, actor, saved.script.id, args.schedules, args.minutes)
            app = FastAPI()
            install_api(app, settings)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
                r = await client.post("/api/v1/auth/login", json={"username": "admin", "password": PASSWORD})
                headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
            await webhook_bench(app, headers, saved.script.id, args.calls, not args.no_rotation)
        finally:
            await lifecycle.stop()


if __name__ == "__main__":
    asyncio.run(main())
