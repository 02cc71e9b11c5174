"""Execution history at a year's scale: 1,000,000 executions (issue 15's target row).

Seeds the executions (bulk: stdlib sqlite3 `executemany` on SQLite, `COPY` on PostgreSQL),
spread over 365 days, 200 scripts, 10 users, every trigger and status, each with an
`output_bytes` of about 20 KiB (20 GB in all, the target's size), and a few real output chunks
(`--log-rows`). Then, through the whole FastAPI stack in process (auth, rate limiter, services,
database), `rounds` rounds of the history's requests: `GET /api/v1/executions` unfiltered and with
each filter (status, script, user, date range, trigger, a deep page by `skip` and by `cursor`),
and the dashboard's figures
(`executions.dashboard_stats`, what the home page reads). Baselines in the same run: the bare
page query through the driver (sqlite3 / asyncpg: the floor any route pays), and the exact
`COUNT(*)` and `GROUP BY status` over every row that the routes no longer run.

The UI's history page (and a script's executions tab) reads its data with one service call per
page load, `executions.list_executions` with `RunFilter.service_args()` (25 runs by keyset cursor
and the capped count): it is timed the same way, at the newest page and deep pages (5,000 and
50,000 failed runs back, halfway back unfiltered, a script tab's last page, the Newer page from
a deep one), against the bare cursor page SQL at the same depth and the bare capped count, and
against what the UI did before (`skip` = 500,000: OFFSET and a count past it). `--ui-only`
measures these rows only.

A host's runs (`?host=`, the `execution_hosts` rows of Ansible runs' per-host summaries): one
run in 5 is given `HOSTS_PER_RUN` hosts of a pool of `HOST_POOL` (about 200,000 runs, 1,000,000
host rows), one host of them failed in 1 run of 10, plus a rare host in every 10,000th run; the
UI's call is timed for a common host (newest page, failed there, a deep cursor) and the rare one
against the bare page SQL (`--plans` prints their plans).

Why the output's real size does not matter: no list or dashboard query reads `execution_logs`
(the plans printed by `--plans` show only `executions` and its indexes), so the rows' 20 GB would
change only the size of a table these queries never open.

Usage: .venv/bin/python -m bench.bench_history [--executions 1000000] [--log-rows 100000]
           [--requests 40] [--rounds 3] [--pg postgresql+asyncpg://user:pass@host/db] [--no-sqlite]
           [--plans] [--pre-ping-too] [--ui-only]
       (--pg defaults to $OPSCRAFT_TEST_PG_URL; the role needs CREATEDB)
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import secrets
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from fastapi import FastAPI
from sqlalchemy import func
from sqlalchemy.engine import make_url
from sqlmodel import col, select

from opscraft import lifecycle
from opscraft.api import install_api
from opscraft.config import load_settings
from opscraft.db.engine import Database
from opscraft.db.models import Role, Script, User
from opscraft.db.models.executions import Execution
from opscraft.db.models.scripts import ScriptType
from opscraft.db.types import utcnow
from opscraft.services import execution_counts, executions, history_cursor, users
from opscraft.services.actor import Actor
from opscraft.services.users import UserCreate
from opscraft.ui.executions import PAGE_SIZE, RunFilter
from opscraft.ui.widgets import call

PASSWORD = "Bench-Password-9"
SCRIPTS = 200
USERS = 10
STATUSES = ["success"] * 85 + ["failed"] * 10 + ["cancelled"] * 2 + ["timed_out", "error", "rejected"]
TRIGGERS = ["ui"] * 3 + ["api", "api_token", "schedule", "schedule", "schedule", "webhook", "retry"]
AVERAGE_OUTPUT = 20 * 1024  # 20 KiB x 1,000,000 = about 20 GB
HOST_POOL = 50  # inventory hosts `host-0` ... `host-49`
HOSTS_PER_RUN = 5  # hosts per Ansible run (one run in 5)
RARE_HOST = "rare-1"  # in every 10,000th run only
HOST_COLUMNS = ("execution_id", "host", "queued_at", "changed", "unreachable", "failed")
BARE_HOST_PAGE = (
    "SELECT e.* FROM executions e JOIN execution_hosts h ON h.execution_id = e.id WHERE h.host = '{h}' "
    f"{{where}}ORDER BY h.queued_at DESC, h.execution_id DESC LIMIT {PAGE_SIZE + 1}"
)
COLUMNS = (
    "id, script_id, script_version, script_name, script_type, status, parameters, triggered_by, "
    "triggered_by_name, trigger, runner, exit_code, output_bytes, output_truncated, cancel_requested, "
    "queued_at, started_at, finished_at"
)
BARE_PAGE = "SELECT * FROM executions WHERE status = {p} ORDER BY queued_at DESC, id DESC LIMIT 50"
# The UI's cursor page as bare SQL: 25 runs + 1 older than a position, newest first.
BARE_CURSOR_PAGE = (
    "SELECT * FROM executions WHERE {where} queued_at <= '{q}' AND (queued_at < '{q}' OR id < {i}) "
    f"ORDER BY queued_at DESC, id DESC LIMIT {PAGE_SIZE + 1}"
)
BARE_CAPPED_COUNT = (
    "SELECT count(*) FROM (SELECT id FROM executions WHERE status = 'failed' LIMIT 10001) AS m"
)


def _rows(count: int, user_ids: list[int]) -> list[tuple[Any, ...]]:
    """`count` finished executions, oldest first (ids in queued order), over the last 365 days."""
    rng = random.Random(15)
    start = utcnow().replace(tzinfo=None) - timedelta(days=365)
    step = timedelta(days=365) / count
    rows = []
    for i in range(1, count + 1):
        queued = start + step * i
        status = rng.choice(STATUSES)
        script = rng.randint(1, SCRIPTS)
        user = rng.choice(user_ids)
        rows.append(
            (
                i,
                script,
                1,
                f"script-{script}",
                "bash",
                status,
                "{}",
                user,
                f"user{user}",
                rng.choice(TRIGGERS),
                "docker",
                0 if status == "success" else 1,
                rng.randint(1, 2 * AVERAGE_OUTPUT),
                False,
                False,
                queued,
                queued + timedelta(milliseconds=50),
                queued + timedelta(seconds=rng.randint(1, 120)),
            )
        )
    return rows


def _host_rows(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """`execution_hosts` rows of one run in 5 (`HOSTS_PER_RUN` hosts of the pool, changed in half
    the runs, failed on its first host in 1 in 10) and `RARE_HOST` in every 10,000th run."""
    rng = random.Random(37)
    hosts = []
    for row in rows:
        execution_id, queued = row[0], row[15]
        if execution_id % 5 == 0:
            failed = rng.random() < 0.1
            for n, pick in enumerate(rng.sample(range(HOST_POOL), HOSTS_PER_RUN)):
                counts = (execution_id % 2, 0, int(failed and not n))
                hosts.append((execution_id, f"host-{pick}", queued, *counts))
        if execution_id % 10_000 == 0:
            hosts.append((execution_id, RARE_HOST, queued, 0, 0, 1))
    return hosts


def _sqlite_text(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """SQLAlchemy's SQLite storage of datetimes: 'YYYY-MM-DD HH:MM:SS.ffffff'."""
    return tuple(v.strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(v, datetime) else v for v in row)


async def _prepare(settings: Any) -> tuple[list[int], str]:
    """Schema (migrations), the users and scripts; returns the user ids and the bench admin's name."""
    rt = await lifecycle.start(settings, worker=False)
    user_ids = []
    async with rt.db.session() as session:
        for n in range(USERS):
            role = Role.admin if n == 0 else Role.operator
            user = await users.bootstrap(
                session,
                UserCreate(username=f"user{n}", email=f"u{n}@example.com", password=PASSWORD, role=role),
            )
            assert user.id is not None
            user_ids.append(user.id)
    async with rt.db.session() as session:
        for sid in range(1, SCRIPTS + 1):
            session.add(Script(id=sid, name=f"script-{sid}", script_type=ScriptType.bash, content="true"))
        await session.commit()
    await lifecycle.stop()
    return user_ids, "user0"


def _seed_sqlite(path: Path, rows: list[tuple[Any, ...]], log_rows: int) -> None:
    conn = sqlite3.connect(path)
    marks = ", ".join("?" * len(rows[0]))
    with conn:
        conn.executemany(f"INSERT INTO executions ({COLUMNS}) VALUES ({marks})", map(_sqlite_text, rows))
        conn.executemany(
            "INSERT INTO execution_logs (execution_id, seq, stream, content, created_at, chars) "
            "VALUES (?, 1, 'stdout', ?, ?, 200)",
            ((len(rows) - i, "x" * 200, "2026-01-01 00:00:00.000000") for i in range(log_rows)),
        )
        conn.executemany(
            f"INSERT INTO execution_hosts ({', '.join(HOST_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?)",
            map(_sqlite_text, _host_rows(rows)),
        )
    conn.execute("ANALYZE")
    conn.close()


async def _seed_pg(dsn: str, rows: list[tuple[Any, ...]], log_rows: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.copy_records_to_table(
            "executions", records=rows, columns=[c.strip() for c in COLUMNS.split(",")]
        )
        now = datetime(2026, 1, 1)
        await conn.copy_records_to_table(
            "execution_logs",
            records=[(len(rows) - i, 1, "stdout", "x" * 200, now, 200) for i in range(log_rows)],
            columns=["execution_id", "seq", "stream", "content", "created_at", "chars"],
        )
        await conn.copy_records_to_table("execution_hosts", records=_host_rows(rows), columns=HOST_COLUMNS)
        await conn.execute("SELECT setval('executions_id_seq', (SELECT max(id) FROM executions))")
        await conn.execute("VACUUM ANALYZE execution_hosts")
        await conn.execute("VACUUM ANALYZE executions")
        await conn.execute("VACUUM ANALYZE execution_logs")
    finally:
        await conn.close()


def _p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[max(0, int(len(ordered) * 0.95) - 1)]


def _summary(samples: list[float]) -> str:
    return (
        f"p50 {statistics.median(samples):6.2f} ms  p95 {_p95(samples):6.2f} ms  max {max(samples):6.2f} ms"
    )


async def _timed(call: Callable[[], Awaitable[Any]], n: int) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        await call()
        out.append((time.perf_counter() - started) * 1000)
    return out


def _queries(user_id: int) -> dict[str, dict[str, Any]]:
    middle = utcnow() - timedelta(days=180)
    return {
        "unfiltered, page 1": {},
        "status=failed": {"status": "failed"},
        "script_id=7 (script tab)": {"script_id": 7},
        f"user_id={user_id}": {"user_id": user_id},
        "since..until (one week, 6 months ago)": {
            "since": (middle - timedelta(days=7)).isoformat(),
            "until": middle.isoformat(),
        },
        "until alone (6 months ago)": {"until": middle.isoformat()},
        "since alone (6 months ago)": {"since": middle.isoformat()},
        "trigger=webhook": {"trigger": "webhook"},
        "script_id=7&status=failed": {"script_id": 7, "status": "failed"},
        "skip=5000 (page 101)": {"skip": 5000},
    }


async def _position(rt: Any, depth: int, **where: Any) -> tuple[datetime, int]:
    """(queued_at, id) of the run `depth` runs back in history order among those matching `where`
    (one OFFSET query, at set-up only)."""
    async with rt.db.session() as s:
        query = select(Execution.queued_at, Execution.id).filter_by(**where)
        newest_first = query.order_by(col(Execution.queued_at).desc(), col(Execution.id).desc())
        queued_at, execution_id = (await s.exec(newest_first.offset(depth).limit(1))).one()
    return queued_at, int(execution_id)


async def _measure_ui(
    rt: Any, actor: Actor, bare: Callable[[str], Awaitable[Any]], args: argparse.Namespace
) -> None:
    """The UI history page's data query (one `call` per page load, as `RunHistory` makes it) at
    the newest page and deep pages, against the bare cursor page SQL at the same depth."""
    text = "%Y-%m-%d %H:%M:%S.%f"
    failed_runs = args.executions // 10 - 1  # 10 % of the runs failed (`STATUSES`)
    deep_failed = await _position(rt, min(5_000, failed_runs // 10), status="failed")
    deeper_failed = await _position(rt, min(50_000, failed_runs // 2), status="failed")
    halfway = await _position(rt, args.executions // 2)
    async with rt.db.session() as s:
        script_runs = await s.exec(
            select(func.count()).select_from(Execution).where(col(Execution.script_id) == 7)
        )
        script_total = int(script_runs.one())
    script_last = await _position(rt, max(script_total - PAGE_SIZE - 1, 0), script_id=7)
    failed = "status = 'failed' AND"

    def cursor(at: tuple[datetime, int], newer: bool = False) -> str:
        return history_cursor.encode(at[0], at[1], newer=newer)

    def bare_page(at: tuple[datetime, int], where: str = "") -> str:
        return BARE_CURSOR_PAGE.format(where=where, q=at[0].strftime(text), i=at[1])

    pages: dict[str, tuple[RunFilter, str]] = {
        "UI newest page, status=failed": (RunFilter(status="failed"), BARE_PAGE.format(p="'failed'")),
        "UI 5,000 failed runs back": (
            RunFilter(status="failed", cursor=cursor(deep_failed)),
            bare_page(deep_failed, failed),
        ),
        "UI 50,000 failed runs back": (
            RunFilter(status="failed", cursor=cursor(deeper_failed)),
            bare_page(deeper_failed, failed),
        ),
        "UI Newer from 5,000 failed back": (
            RunFilter(status="failed", cursor=cursor(deep_failed, newer=True)),
            bare_page(deep_failed, failed),
        ),
        f"UI {args.executions // 2:,} runs back, unfiltered": (
            RunFilter(cursor=cursor(halfway)),
            bare_page(halfway),
        ),
        "UI script tab, newest": (RunFilter(script_id=7), bare_page((utcnow(), 2**62), "script_id = 7 AND")),
        "UI host-7, newest": (RunFilter(host="host-7"), BARE_HOST_PAGE.format(h="host-7", where="")),
        "UI host-7, failed there": (
            RunFilter(host="host-7", host_status="failed"),
            BARE_HOST_PAGE.format(h="host-7", where="AND h.failed > 0 "),
        ),
        "UI host-7, failed there, status=failed": (
            RunFilter(host="host-7", host_status="failed", status="failed"),
            BARE_HOST_PAGE.format(h="host-7", where="AND h.failed > 0 AND e.status = 'failed' "),
        ),
        f"UI {RARE_HOST} (in 1 run of 10,000)": (
            RunFilter(host=RARE_HOST),
            BARE_HOST_PAGE.format(h=RARE_HOST, where=""),
        ),
        f"UI script tab, last page ({script_total:,} runs)": (
            RunFilter(script_id=7, cursor=cursor(script_last)),
            bare_page(script_last, "script_id = 7 AND"),
        ),
    }

    async def ui_page(filters: RunFilter) -> None:
        await call(executions.list_executions, actor, **filters.service_args())

    async def before(skip: int) -> None:  # the numbered pages the UI had: OFFSET and a count past it
        await call(
            executions.list_executions, actor, **{**RunFilter().service_args(), "cursor": None, "skip": skip}
        )

    for filters, _ in pages.values():  # warm-up
        await ui_page(filters)
    results: dict[str, list[float]] = {}
    for number in range(1, args.rounds + 1):
        for name, (filters, sql) in pages.items():
            results.setdefault(name, []).extend(await _timed(lambda f=filters: ui_page(f), args.requests))  # type: ignore[misc]
            results.setdefault(name + " [bare SQL]", []).extend(
                await _timed(lambda q=sql: bare(q), args.requests)
            )  # type: ignore[misc]
        results.setdefault("bare capped count (status=failed)", []).extend(
            await _timed(lambda: bare(BARE_CAPPED_COUNT), args.requests)
        )
        results.setdefault("before: UI page 20,001 (skip 500,000 + count)", []).extend(
            await _timed(lambda: before(500_000), 3)
        )
        print(f"  UI round {number} done (load {os.getloadavg()[0]:.1f})")
    print("  UI history page data query (one service call per page load), all rounds:")
    for name, values in results.items():
        print(f"    {name:<58} {_summary(values)}")


async def _measure(settings: Any, bare: Callable[[str], Awaitable[Any]], args: argparse.Namespace) -> None:
    rt = await lifecycle.start(settings, migrate=False, worker=False)
    if args.ui_only:
        async with rt.db.session() as s:
            admin = await s.get(User, 1)
        await _measure_ui(rt, Actor(admin), bare, args)
        if args.plans:
            await _plans(rt)
        await lifecycle.stop()
        return
    started = time.perf_counter()
    await execution_counts.refresh_tally(rt.db)
    print(f"  dashboard tally refreshed (background job) in {(time.perf_counter() - started):.2f} s")
    app = FastAPI()
    install_api(app, rt.settings)
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with rt.db.session() as s:
        admin = await s.get(User, 1)
    actor = Actor(admin)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        login = await client.post("/api/v1/auth/login", json={"username": "user0", "password": PASSWORD})
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        queries = _queries(2)
        deep = await client.get("/api/v1/executions", params={"skip": 4950}, headers=headers)
        queries["cursor after 5000 (page 101)"] = {"cursor": deep.json()["next_cursor"]}

        async def route(params: dict[str, Any]) -> None:
            r = await client.get("/api/v1/executions", params=params, headers=headers)
            assert r.status_code == 200, r.text

        async def dashboard() -> None:
            async with rt.db.session() as s:
                await executions.dashboard_stats(s, actor)

        # The engines measured in turns: this one, and on request (PostgreSQL) one with
        # SQLAlchemy's pre-ping as before issue 15 (three more round trips per request).
        engines = {"": rt.db}
        if args.pre_ping_too and not rt.settings.is_sqlite:
            engines[" [pre-ping]"] = Database(rt.settings.effective_database_url, pool_pre_ping=True)
        for db in engines.values():  # warm-up: pools, statement caches, page cache
            rt.db = db
            for params in queries.values():
                await route(params)
        results: dict[str, list[float]] = {}
        for number in range(1, args.rounds + 1):
            for tag, db in engines.items():
                rt.db = db
                everything: list[float] = []
                for name, params in queries.items():
                    got = await _timed(lambda p=params: route(p), args.requests)  # type: ignore[misc]
                    results.setdefault(name + tag, []).extend(got)
                    everything += got
                got = await _timed(dashboard, args.requests)
                results.setdefault("dashboard figures" + tag, []).extend(got)
                base = await _timed(lambda: bare(BARE_SQL["page"]), args.requests)
                results.setdefault("baseline: bare page SQL (driver)", []).extend(base)
                print(
                    f"  round {number}{tag}: all list routes {_summary(everything)}; "
                    f"dashboard p95 {_p95(got):.2f} ms; bare SQL p95 {_p95(base):.2f} ms "
                    f"(load {os.getloadavg()[0]:.1f})"
                )
        for tag, db in engines.items():
            if tag:
                await db.dispose()
        rt.db = engines[""]
        for name in ("exact COUNT(*) (no longer run)", "exact GROUP BY status (no longer run)"):
            results[name] = await _timed(lambda n=name: bare(BARE_SQL[n]), 5)  # type: ignore[misc]
        total = (await client.get("/api/v1/executions", headers=headers)).json()
    floor = _p95(results["baseline: bare page SQL (driver)"])
    print(f"  total shown: {total['total']} (capped: {total['total_capped']})")
    print("  all rounds:")
    for name, values in results.items():
        print(f"    {name:<42} {_summary(values)}  p95/bare {(_p95(values) / floor):5.1f}x")
    await _measure_ui(rt, actor, bare, args)
    if args.plans:
        await _plans(rt)
    await lifecycle.stop()


async def _plans(rt: Any) -> None:
    """The plans the routes rely on (SQLite: EXPLAIN QUERY PLAN; PostgreSQL: EXPLAIN)."""
    sqlite = rt.settings.is_sqlite
    explain = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN "
    week = "'2026-11-01'"
    newest = "ORDER BY queued_at DESC, id DESC LIMIT 50"
    statements = {
        "page": f"SELECT id FROM executions {newest}",
        "status page": f"SELECT id FROM executions WHERE status = 'failed' {newest}",
        "user page": f"SELECT id FROM executions WHERE triggered_by = 2 {newest}",
        "capped count": "SELECT count(*) FROM (SELECT id FROM executions WHERE status = 'failed' "
        "LIMIT 10001) AS m",
        "UI cursor page, older": "SELECT id FROM executions WHERE status = 'failed' AND queued_at <= "
        f"{week} AND (queued_at < {week} OR id < 500000) ORDER BY queued_at DESC, id DESC LIMIT 26",
        "UI cursor page, newer": "SELECT id FROM executions WHERE status = 'failed' AND queued_at >= "
        f"{week} AND (queued_at > {week} OR id > 500000) ORDER BY queued_at, id LIMIT 26",
        "UI script tab, older": "SELECT id FROM executions WHERE script_id = 7 AND queued_at <= "
        f"{week} AND (queued_at < {week} OR id < 500000) ORDER BY queued_at DESC, id DESC LIMIT 26",
        "host page": BARE_HOST_PAGE.format(h="host-7", where=""),
        "host page, failed there": BARE_HOST_PAGE.format(h="host-7", where="AND h.failed > 0 "),
        "host page, failed there, run failed": BARE_HOST_PAGE.format(
            h="host-7", where="AND h.failed > 0 AND e.status = 'failed' "
        ),
        "host capped count": "SELECT count(*) FROM (SELECT execution_id FROM execution_hosts "
        "WHERE host = 'host-7' LIMIT 10001) AS m",
        "host capped count, failed there, run failed": "SELECT count(*) FROM (SELECT h.execution_id "
        "FROM execution_hosts h JOIN executions e ON h.execution_id = e.id WHERE h.host = 'host-7' "
        "AND h.failed > 0 AND e.status = 'failed' LIMIT 10001) AS m",
        "daily rates": "SELECT date(finished_at), count(*) FROM executions "
        f"WHERE finished_at >= {week} GROUP BY date(finished_at)",
        "tally + recent": "SELECT status, count(*) FROM (SELECT status FROM executions WHERE id > 999000 "
        "ORDER BY id) AS r GROUP BY status",
        "retention work list": "SELECT id FROM executions WHERE output_removed_at IS NULL "
        "AND output_stored_bytes > 0 "
        f"AND finished_at IS NOT NULL AND finished_at < {week} ORDER BY finished_at LIMIT 200",
    }
    async with rt.db.engine.connect() as conn:
        for name, sql in statements.items():
            rows = (await conn.exec_driver_sql(explain + sql)).all()
            print(f"  plan, {name}:")
            for row in rows:
                print("    " + (str(row[-1]) if sqlite else str(row[0])))


def _seeded(rows: list[tuple[Any, ...]], args: argparse.Namespace, started: float) -> None:
    took = time.perf_counter() - started
    print(f"  seeded {len(rows):,} executions, {args.log_rows:,} output chunks in {took:.1f} s")


BARE_SQL = {
    "page": BARE_PAGE.format(p="'failed'"),
    "exact COUNT(*) (no longer run)": "SELECT count(*) FROM executions",
    "exact GROUP BY status (no longer run)": "SELECT status, count(*) FROM executions GROUP BY status",
}


async def _sqlite(folder: Path, rows: list[tuple[Any, ...]], args: argparse.Namespace) -> None:
    settings = load_settings(
        OPSCRAFT_DATA_DIR=folder / "sqlite",
        SECRET_KEY="bench-" + "k" * 40,
        OPSCRAFT_RATE_LIMIT_API=10_000_000,
    )
    print("SQLite:")
    await _prepare(settings)
    path = Path(make_url(settings.effective_database_url).database or "")
    started = time.perf_counter()
    _seed_sqlite(path, rows, args.log_rows)
    _seeded(rows, args, started)
    conn = sqlite3.connect(path)

    async def bare(sql: str) -> None:
        conn.execute(sql).fetchall()

    try:
        await _measure(settings, bare, args)
    finally:
        conn.close()


async def _pg(url: str, folder: Path, rows: list[tuple[Any, ...]], args: argparse.Namespace) -> None:
    name = f"opscraft_bench_{secrets.token_hex(4)}"
    admin_dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    bench_url = make_url(url).set(database=name)
    dsn = bench_url.set(drivername="postgresql").render_as_string(hide_password=False)
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        settings = load_settings(
            OPSCRAFT_DATA_DIR=folder / "pg",
            SECRET_KEY="bench-" + "k" * 40,
            DATABASE_URL=bench_url.render_as_string(hide_password=False),
            OPSCRAFT_RATE_LIMIT_API=10_000_000,
        )
        print(f"PostgreSQL ({name}):")
        await _prepare(settings)
        started = time.perf_counter()
        await _seed_pg(dsn, rows, args.log_rows)
        _seeded(rows, args, started)
        conn = await asyncpg.connect(dsn)

        async def bare(sql: str) -> None:
            await conn.fetch(sql)

        try:
            await _measure(settings, bare, args)
        finally:
            await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--executions", type=int, default=1_000_000)
    parser.add_argument("--log-rows", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=40, help="per query per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pg", default=os.environ.get("OPSCRAFT_TEST_PG_URL"))
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--plans", action="store_true", help="print the query plans the routes rely on")
    parser.add_argument("--ui-only", action="store_true", help="only the UI history page's data queries")
    parser.add_argument(
        "--pre-ping-too",
        action="store_true",
        help="PostgreSQL: also measure, in turns, an engine with pool_pre_ping (the path before the fix)",
    )
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")
    print(
        f"output: {args.executions:,} x about {AVERAGE_OUTPUT // 1024} KiB recorded (output_bytes); "
        f"{args.log_rows:,} chunks stored"
    )
    rows = _rows(args.executions, list(range(1, USERS + 1)))  # the users' ids on a new database
    # The million seed tuples stay alive for both databases; a server holds nothing like them.
    # Frozen, the collector no longer walks them in every full collection (200+ ms pauses that
    # showed up as the routes' maximum in earlier runs).
    gc.collect()
    gc.freeze()
    with tempfile.TemporaryDirectory(prefix="opscraft-bench-") as tmp:
        folder = Path(tmp)
        if not args.no_sqlite:
            asyncio.run(_sqlite(folder, rows, args))
        if args.pg:
            asyncio.run(_pg(args.pg, folder, rows, args))
        else:
            print("PostgreSQL: skipped (pass --pg or set OPSCRAFT_TEST_PG_URL)")


if __name__ == "__main__":
    main()
