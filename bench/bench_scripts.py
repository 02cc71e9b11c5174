"""Script library at scale: 10,000 scripts with 100,000 versions.

1. API: p50/p95/max latency of `GET /api/v1/scripts?search=...` (with and without filters and
   sorting), through the real FastAPI stack (auth, rate limiter, services, database) in process,
   on SQLite and, when a URL is given, on PostgreSQL (a scratch database, dropped afterwards).
2. Browser: time until the scripts page shows its first page of rows in Chromium, against a real
   `opscraft serve` process on the seeded SQLite database.

Rows are bulk-inserted with the same normalization the service applies (search text, tags).

Usage: .venv/bin/python bench/bench_scripts.py [--scripts 10000] [--versions-per-script 10]
           [--requests 300] [--rounds 3] [--pg postgresql+asyncpg://user:pass@host/db] [--no-browser]
       (--pg defaults to $OPSCRAFT_TEST_PG_URL; the role needs CREATEDB)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from fastapi import FastAPI
from sqlalchemy import insert
from sqlalchemy.engine import make_url

from opscraft import lifecycle
from opscraft.api import install_api
from opscraft.config import load_settings
from opscraft.db.models import Role, Script, ScriptTag, ScriptVersion
from opscraft.db.types import utcnow
from opscraft.services import users
from opscraft.services.scripts import search_text
from opscraft.services.users import UserCreate

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "Bench-Password-9"
VERBS = [
    "deploy",
    "backup",
    "restore",
    "rotate",
    "sync",
    "migrate",
    "scale",
    "audit",
    "clean",
    "provision",
    "patch",
    "check",
]
NOUNS = [
    "api",
    "web",
    "db",
    "cache",
    "queue",
    "dns",
    "certs",
    "logs",
    "users",
    "billing",
    "search",
    "metrics",
    "storage",
    "vpn",
]
TAGS = [
    "prod",
    "staging",
    "dev",
    "nightly",
    "weekly",
    "db",
    "web",
    "network",
    "security",
    "k8s",
    "billing",
    "ops",
]
TYPES = ["bash", "python", "ansible", "terraform"]
CONTENT = {
    "bash": "#!/bin/bash\nset -euo pipefail\necho step {i} of {n}\n",
    "python": "import os\n\nprint('step {i} of {n}')\n",
    "ansible": "- hosts: all\n  tasks:\n    - ansible.builtin.debug:\n        msg: step {i} of {n}\n",
    "terraform": 'output "step" {{\n  value = "{i} of {n}"\n}}\n',
}
# About 2 KiB per script, like a real one: large enough that row layout matters.
FILLER = "".join(f"# step {k:02d}: check, retry, log and report the outcome\n" for k in range(40))
QUERIES: list[dict[str, Any]] = [
    {"search": "deploy"},
    {"search": "backup db"},
    {"search": "prod"},
    {"search": "billing", "script_type": "python"},
    {"search": "rotate", "status": "active"},
    {"search": "metrics", "tag": "nightly"},
    {"search": "sync-search-4711"},
    {"search": "does-not-exist"},
    {"search": "web", "sort": "-updated_at"},
    {"search": "a", "skip": 200},
]


def _rows(
    count: int, versions: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    rng = random.Random(42)
    now = utcnow()
    scripts, tags, history = [], [], []
    for sid in range(1, count + 1):
        name = f"{rng.choice(VERBS)}-{rng.choice(NOUNS)}-{sid}"
        kind = TYPES[sid % 4]
        chosen = rng.sample(TAGS, 2)
        description = (
            f"{rng.choice(VERBS).capitalize()} the {rng.choice(NOUNS)} service and "
            f"{rng.choice(VERBS)} its {rng.choice(NOUNS)}; owned by team {rng.randint(1, 40)}."
        )
        content = CONTENT[kind].format(i=versions, n=versions) + FILLER
        scripts.append(
            {
                "id": sid,
                "name": name,
                "description": description,
                "script_type": kind,
                "content": content,
                "parameters": [
                    {
                        "name": "TARGET",
                        "type": "string",
                        "required": False,
                        "default": "all",
                        "description": "",
                        "options": [],
                    }
                ],
                "version": "1.0.0",
                "tags": chosen,
                "status": ["draft", "active", "deprecated"][sid % 3],
                "search_text": search_text(name, description, chosen),
                "timeout_seconds": 600,
                "memory_mb": 256,
                "cpus": 0.5,
                "network_enabled": False,
                "current_version": versions,
                "created_at": now,
                "updated_at": now,
            }
        )
        tags += [{"script_id": sid, "tag": tag} for tag in chosen]
        history += [
            {
                "script_id": sid,
                "number": n,
                "script_type": kind,
                "content": CONTENT[kind].format(i=n, n=versions) + FILLER,
                "parameters": scripts[-1]["parameters"],
                "run_settings": {
                    "timeout_seconds": 600,
                    "memory_mb": 256,
                    "cpus": 0.5,
                    "network_enabled": False,
                },
                "version_label": "1.0.0",
                "change_note": f"change {n}",
                "created_at": now,
            }
            for n in range(1, versions + 1)
        ]
    return scripts, tags, history


async def _seed(settings: Any, count: int, versions: int) -> None:
    rt = await lifecycle.start(settings)
    scripts, tags, history = _rows(count, versions)
    started = time.perf_counter()
    async with rt.db.engine.begin() as conn:
        for table, rows in ((Script, scripts), (ScriptTag, tags), (ScriptVersion, history)):
            for pos in range(0, len(rows), 5000):
                await conn.execute(insert(table), rows[pos : pos + 5000])  # type: ignore[arg-type]
        if not settings.is_sqlite:
            await conn.exec_driver_sql("SELECT setval('scripts_id_seq', (SELECT max(id) FROM scripts))")
        await conn.exec_driver_sql("ANALYZE")
    async with rt.db.session() as session:
        await users.bootstrap(
            session,
            UserCreate(username="bench", email="bench@example.com", password=PASSWORD, role=Role.admin),
        )
    print(f"  seeded {count} scripts, {len(history)} versions in {time.perf_counter() - started:.1f} s")
    await lifecycle.stop()


def _summary(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[max(0, int(len(ordered) * 0.95) - 1)]
    return f"p50 {statistics.median(ordered):6.1f} ms  p95 {p95:6.1f} ms  max {ordered[-1]:6.1f} ms"


async def _measure_api(settings: Any, requests: int, rounds: int) -> None:
    """`rounds` rounds of `requests`: on a shared machine one round can land in someone's busy spell."""
    rt = await lifecycle.start(settings, migrate=False)
    app = FastAPI()
    install_api(app, rt.settings)
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        login = await client.post("/api/v1/auth/login", json={"username": "bench", "password": PASSWORD})
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        for query in QUERIES[:3]:  # warm-up: connection pool, statement caches
            await client.get("/api/v1/scripts", params=query, headers=headers)
        per_query: dict[str, list[float]] = {}
        for number in range(1, rounds + 1):
            samples = []
            for i in range(requests):
                query = QUERIES[i % len(QUERIES)]
                started = time.perf_counter()
                response = await client.get("/api/v1/scripts", params=query, headers=headers)
                elapsed = (time.perf_counter() - started) * 1000
                assert response.status_code == 200, response.text
                samples.append(elapsed)
                per_query.setdefault(str(query), []).append(elapsed)
            load = os.getloadavg()[0]
            print(
                f"  round {number}: {requests} x GET /api/v1/scripts?search=...  {_summary(samples)}", end=""
            )
            print(f"  (load {load:.1f})")
        totals = {}
        for query in QUERIES:
            response = await client.get("/api/v1/scripts", params=query, headers=headers)
            totals[str(query)] = response.json()["total"]
    print("  per query, all rounds:")
    for query, values in per_query.items():
        print(f"    {query:<58} total={totals[query]:>5}  {_summary(values)}")
    await lifecycle.stop()


def _browser(data_dir: Path, runs: int) -> None:
    sys.path.insert(0, str(ROOT))
    from playwright.sync_api import sync_playwright

    from tests.conftest import start_server, stop_server

    server = start_server(data_dir, {"OPSCRAFT_RATE_LIMIT_API": "100000"})
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=os.environ.get("OPSCRAFT_TEST_CHROMIUM", "/usr/bin/chromium"),
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
            )
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{server.url}/login")
            page.get_by_test_id("login-username").fill("bench")
            page.get_by_test_id("login-password").fill(PASSWORD)
            page.get_by_test_id("login-submit").click()
            page.wait_for_url(f"{server.url}/")
            timings = []
            for _ in range(runs + 1):
                started = time.perf_counter()
                page.goto(f"{server.url}/scripts")
                page.locator('[data-testid="scripts-table"] tbody tr').nth(24).wait_for()
                timings.append((time.perf_counter() - started) * 1000)
            browser.close()
        timings = timings[1:]  # the first load also warms NiceGUI's static files
        print(
            f"  /scripts first page (25 rows) in Chromium, {runs} loads: "
            f"median {statistics.median(timings):.0f} ms, max {max(timings):.0f} ms"
        )
    finally:
        stop_server(server)


def _scratch_pg(url: str) -> tuple[str, str, str]:
    name = f"opscraft_bench_{secrets.token_hex(4)}"
    admin_dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    return name, admin_dsn, make_url(url).set(database=name).render_as_string(hide_password=False)


async def _pg(url: str, args: argparse.Namespace, folder: Path) -> None:
    name, admin_dsn, bench_url = _scratch_pg(url)
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        settings = load_settings(
            OPSCRAFT_DATA_DIR=folder / "pg",
            SECRET_KEY="bench-" + "k" * 40,
            DATABASE_URL=bench_url,
            OPSCRAFT_RATE_LIMIT_API=1_000_000,
        )
        print(f"PostgreSQL ({name}):")
        await _seed(settings, args.scripts, args.versions_per_script)
        await _measure_api(settings, args.requests, args.rounds)
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scripts", type=int, default=10_000)
    parser.add_argument("--versions-per-script", type=int, default=10)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--browser-runs", type=int, default=5)
    parser.add_argument("--pg", default=os.environ.get("OPSCRAFT_TEST_PG_URL"))
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")
    with tempfile.TemporaryDirectory(prefix="opscraft-bench-") as tmp:
        folder = Path(tmp)
        settings = load_settings(
            OPSCRAFT_DATA_DIR=folder / "sqlite",
            SECRET_KEY="bench-" + "k" * 40,
            OPSCRAFT_RATE_LIMIT_API=1_000_000,
        )
        print("SQLite:")
        asyncio.run(_seed(settings, args.scripts, args.versions_per_script))
        asyncio.run(_measure_api(settings, args.requests, args.rounds))
        if not args.no_browser:
            _browser(folder / "sqlite", args.browser_runs)
        if args.pg:
            asyncio.run(_pg(args.pg, args, folder))
        else:
            print("PostgreSQL: skipped (pass --pg or set OPSCRAFT_TEST_PG_URL)")


if __name__ == "__main__":
    main()
