"""Queries that compare or count rows holding a stored value today's version reads as another
(SQLite holds any text in a DATETIME or enum column: a manual edit's `yesterday`, a status `x`)
treat each row as it reads: a time that is no time as the epoch (`db.types.compared`), a status
none of today's as `failed` (`services.execution_counts`). PostgreSQL's types refuse such values
when they are written (checked: the tests end there), and its compiled conditions are the plain
comparisons, their index ranges unchanged."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.dialects import postgresql
from sqlmodel import col, update

from opscraft import runtime
from opscraft.db import clock, read_as
from opscraft.db.models import Execution, RegisteredWorker
from opscraft.db.models.executions import ExecutionStatus
from opscraft.db.types import EPOCH, GE, LT, UTCDateTime, compared, no_time, utcnow, within
from opscraft.execution import store
from opscraft.services import execution_counts, executions, retention
from tests.conftest import LoggedIn
from tests.history import seeding
from tests.history.test_history_queries import captured

NO_TIMES = ["yesterday", "2026-13-45", "2026", "99999-01-01", 1700000000]


async def _settings(client: httpx.AsyncClient, admin: LoggedIn, **values: Any) -> None:
    r = await client.put("/api/v1/settings", json=values, headers=admin.headers)
    assert r.status_code == 200, r.text


async def _listed(client: httpx.AsyncClient, admin: LoggedIn, **params: str) -> list[int]:
    r = await client.get("/api/v1/executions", params=params, headers=admin.headers)
    assert r.status_code == 200, r.text
    return sorted(e["id"] for e in r.json()["items"])


@pytest.mark.parametrize("stored", NO_TIMES)
async def test_a_run_whose_times_are_no_times_is_as_old_as_it_reads(
    client: httpx.AsyncClient, admin: LoggedIn, backend: str, stored: Any
) -> None:
    """A run whose `queued_at` and `finished_at` hold `yesterday` reads as 1970, but SQLite
    compared the text, which sorts after every time: retention never removed its output, a
    `since` filter listed it, the dashboard's last days counted it. Retention now takes it as
    the 1970 run it reads as; a date filter leaves it out whichever way it points (`within`: a
    run whose time is no time is in no date window), but for a digit-led text such as
    `2026-13-45`, compared as text there (the index range, no test per row; `2026` is stored as
    the number 2026 by the column's NUMERIC affinity, which no date window holds)."""
    script_id = await seeding.script()
    now = utcnow()
    old = await seeding.execution(script_id, now - timedelta(days=40))
    recent = await seeding.execution(script_id, now - timedelta(days=1))
    odd = await seeding.execution(script_id, now - timedelta(hours=1))
    times = "UPDATE executions SET queued_at = :v, finished_at = :v WHERE id = :i"
    if not await seeding.stored_on_sqlite(sa.text(times).bindparams(v=stored, i=odd)):
        return
    as_text = [odd] if isinstance(stored, str) and stored[0].isdigit() and not stored.isdigit() else []
    assert await _listed(client, admin, since="2000-01-01") == [old, recent, *as_text]
    assert await _listed(client, admin, until="2000-01-01") == []
    assert await _listed(client, admin, since="1970-01-01", until="1970-01-01") == []
    assert await _listed(client, admin) == [old, recent, odd]
    async with runtime.current().db.session() as session:
        daily = await executions._daily_rates(session, 7)
    assert sum(day.total for day in daily) == 1, "only the run finished yesterday is of the last 7 days"

    await _settings(client, admin, output_retention_days=30)
    done = await retention.run_once(runtime.current().db, now=now)
    assert done.outputs_removed == 2
    removed = {}
    for execution_id in (old, recent, odd):
        shown = (await client.get(f"/api/v1/executions/{execution_id}", headers=admin.headers)).json()
        removed[execution_id] = shown["output_removed_at"] is not None
    assert removed == {old: True, recent: False, odd: True}, removed

    await _settings(client, admin, retention_delete_executions=True)
    assert (await retention.run_once(runtime.current().db, now=now)).executions_deleted == 2
    assert await _listed(client, admin) == [recent]


async def test_a_worker_whose_heartbeat_is_no_time_is_not_alive_and_is_declared_lost(
    client: httpx.AsyncClient, admin: LoggedIn, backend: str
) -> None:
    """A heartbeat `yesterday` (read as 1970) sorted after every time: the worker counted as
    alive for ever (offered its runners, held its id) and was never declared lost."""
    async with runtime.current().db.session() as session:
        session.add(RegisteredWorker(id="odd-worker", host_name="h", pid=1, runners=["docker"], slots=1))
        await session.commit()
    beat = sa.text("UPDATE workers SET heartbeat_at = :v WHERE id = 'odd-worker'").bindparams(v="x")
    if not await seeding.stored_on_sqlite(beat):
        return
    since = utcnow() - timedelta(minutes=5)
    async with runtime.current().db.session() as session:

        def judged(sync_session: Any) -> tuple[list[str], list[str]]:
            conn = sync_session.connection()
            return store.live_workers(conn, since), store.end_lost(conn, "me", since)[0]

        live, lost = await session.run_sync(judged)
        await session.commit()
    assert "odd-worker" not in live and lost == ["odd-worker"], (live, lost)
    r = await client.get("/api/v1/workers", headers=admin.headers)
    assert r.status_code == 200, r.text
    (shown,) = [w for w in r.json()["items"] if w["id"] == "odd-worker"]
    assert shown["state"] != "alive" and shown["heartbeat_at"] == "1970-01-01T00:00:00Z", shown


async def _metric(client: httpx.AsyncClient, admin: LoggedIn, name: str, **labels: str) -> float:
    r = await client.get("/metrics", headers=admin.headers)
    assert r.status_code == 200, r.text
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


async def test_a_run_whose_status_is_none_of_todays_is_counted_as_the_failed_run_it_reads_as(
    client: httpx.AsyncClient, admin: LoggedIn, backend: str
) -> None:
    """A run whose status is `x` reads as failed; the dashboard's tally kept only the final
    statuses' texts, `/metrics` made it a series of its own (or none: its run time), retention
    (`status IN` the final ones) never deleted it. Each counts it as failed, before and after
    retention deletes it."""
    script_id = await seeding.script()
    now = utcnow()
    odd = await seeding.execution(script_id, now - timedelta(days=100))
    await seeding.execution(script_id, now - timedelta(days=100), status=ExecutionStatus.failed)
    if not await seeding.stored_on_sqlite(
        update(Execution).where(col(Execution.id) == odd).values(status="x")
    ):
        return
    failed = {"status": "failed", "script_type": "bash"}
    for _ in range(2):  # the runs after the tally's watermark, then the tally itself
        async with runtime.current().db.session() as session:
            counts = await execution_counts.status_counts(session)
        assert counts["failed"] == 2 and "x" not in counts and sum(counts.values()) == 2, counts
        assert await execution_counts.refresh_tally(runtime.current().db) >= odd
    assert await _metric(client, admin, "opscraft_executions_total", **failed) == 2
    assert await _metric(client, admin, "opscraft_executions_total", status="x") == 0
    # The history's `status=failed` lists it too (it skipped it), the total as the counts say.
    r = await client.get("/api/v1/executions", params={"status": "failed"}, headers=admin.headers)
    assert (r.json()["total"], len(r.json()["items"])) == (2, 2), r.text
    assert await _listed(client, admin, status="running") == []
    # With such text stored, the same index once per text, then the page's runs sorted.
    plan = ["SEARCH executions USING INDEX ix_executions_status_queued", "USE TEMP B-TREE FOR ORDER BY"]
    assert await _plan(ExecutionStatus.failed) == plan
    assert await _metric(client, admin, "opscraft_execution_duration_seconds_count") == 2

    await _settings(client, admin, output_retention_days=30, retention_delete_executions=True)
    assert (await retention.run_once(runtime.current().db, now=now)).executions_deleted == 2
    assert await _metric(client, admin, "opscraft_executions_total", **failed) == 2, "kept when deleted"
    async with runtime.current().db.session() as session:
        counts = await execution_counts.status_counts(session)
    assert sum(counts.values()) == 0, counts


async def _plan(status: ExecutionStatus) -> list[str]:
    """SQLite's plan of a history page of runs that read as `status` (`read_as.reading_as`), the
    lines in order (`(status=?)` and the like cut off)."""
    async with runtime.current().db.session() as session:
        wanted = await read_as.reading_as(session, col(Execution.status), status)
        page = (
            sa.select(Execution.id, Execution.script_name)
            .where(wanted)
            .order_by(col(Execution.queued_at).desc())
            .limit(51)
        )
        sql = str(page.compile(session.bind, compile_kwargs={"literal_binds": True}))
        rows = (await session.exec(sa.text(f"EXPLAIN QUERY PLAN {sql}"))).all()  # type: ignore[call-overload]
    return [str(row[-1]).split(" (")[0] for row in rows]


async def test_a_status_filter_with_no_other_text_stored_is_the_plain_index_search(
    client: httpx.AsyncClient, backend: str
) -> None:
    """With no status none of today's stored (every database this version wrote), the filter of
    the failed runs is `status = 'failed'`, searched in `ix_executions_status_queued` newest
    first (no sort), as before; with one, the same index per text. PostgreSQL: plain equality."""
    script_id = await seeding.script()
    failed = await seeding.execution(script_id, utcnow(), status=ExecutionStatus.failed)
    async with runtime.current().db.session() as session:
        wanted = await read_as.reading_as(session, col(Execution.status), ExecutionStatus.failed)
        listed = (await session.exec(sa.select(Execution.id).where(wanted))).all()  # type: ignore[call-overload]
    assert [i for (i,) in listed] == [failed]
    compiled = str(wanted.compile(compile_kwargs={"literal_binds": True}))
    assert compiled == "executions.status = 'failed'", compiled
    if backend == "sqlite":
        assert await _plan(ExecutionStatus.failed) == [
            "SEARCH executions USING INDEX ix_executions_status_queued"
        ]
        # The look for other texts: one index search per range between today's statuses.
        with captured() as seen:
            async with runtime.current().db.session() as session:
                assert (
                    await read_as.stored_others(session, col(Execution.status), tuple(ExecutionStatus)) == []
                )
        [(sql, parameters)] = [(sql, p) for sql, p in seen if "min(" in sql]
        async with runtime.current().db.engine.connect() as conn:
            rows = (await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", parameters)).all()
        searched = [str(row[-1]) for row in rows if "executions" in str(row[-1])]
        assert len(searched) == len(ExecutionStatus) + 1, searched
        assert all("USING COVERING INDEX ix_executions_status_queued (status" in s for s in searched), (
            searched
        )


# Values SQLite holds in a DATETIME column, each as the reader reads it (None: no time, read as
# the epoch). `compared` must agree with the reader on each.
STORED = [
    "2026-12-04 21:48:07.123456",
    "20261204",
    "20261204T101010",
    "2026-W49-5",
    "2026-12-04T10:00:00+05:00",
    "2026",
    "99999-01-01",
    "2026-12-04 21:48:07",
    "2026-12-04T10:00:00",
    "2026-12-04 10:00",
    "1969-12-31 23:59:59.999999",
    "yesterday",
    "2026-13-45",
    "2026-02-30",
    "2026-12-04 25:00:00",
    "2026-12-04 garbage",
    "26-1-5",
    "",
    5,
    1700000000,
    2.5,
]


async def test_no_time_agrees_with_the_reader_and_leaves_postgresql_comparisons_plain(
    client: httpx.AsyncClient, backend: str
) -> None:
    """`no_time` (SQL) says of each stored value what `UTCDateTime`'s reader does, so that
    `compared` filters rows as they read (`20261204` as 2026-12-04, `2026` as no time: both
    compared as text before); a date filter's `since` (`within`) keeps its index range, no test
    per row: a value in the stored form as its time, one that begins with a letter (or is a
    number) in no window, any other as its text. On PostgreSQL (which holds times only) the
    extra terms are constants its planner drops."""
    table = sa.table("t", sa.column("at", UTCDateTime()))
    bound = datetime(2000, 1, 1, tzinfo=UTC)
    if backend == "postgresql":
        # Constant terms its planner folds away (`true`, `NOT true`): the bare comparison remains.
        def sql(clause: Any) -> str:
            compiled = str(clause.compile(dialect=postgresql.dialect()))
            return re.sub(r"%\(\w+\)s(::TIMESTAMP WITHOUT TIME ZONE)?", "b", compiled)

        assert sql(compared(table.c.at, LT, bound)) == "t.at < b AND true OR NOT true AND t.at < b"
        assert sql(compared(table.c.at, GE, bound)) == "t.at >= b AND (true OR t.at >= b)"
        assert sql(sa.and_(*within(table.c.at, bound, None))) == "t.at >= b AND true"
        return
    # A bound in the middle of the day of `20261204` and the others: as text they sorted after it.
    bounds = [bound, datetime(2026, 12, 4, 5, tzinfo=UTC)]
    async with runtime.current().db.engine.connect() as conn:
        for value, bound in ((v, b) for v in STORED for b in bounds):
            values = sa.select(sa.literal(value).label("at")).subquery()
            at = values.c.at
            query = sa.select(
                sa.type_coerce(at, UTCDateTime()),
                no_time(at),
                compared(at, LT, bound),
                compared(at, GE, bound),
                sa.and_(*within(at, bound, None)),
            )
            read, unread, before, since, dated = (await conn.execute(query)).one()
            assert bool(unread) == (read == EPOCH and value != "1970-01-01 00:00:00"), (value, read, unread)
            assert (bool(before), bool(since)) == (read < bound, read >= bound), (value, bound, read)
            # A date filter's `since`: the times at or after it, never a value that is no time
            # unless it begins with a digit (compared as text: the index range, no test per row).
            if isinstance(value, str) and value[:1].isdigit():
                assert bool(dated) == (value >= bound.strftime("%Y-%m-%d %H:%M:%S.%f")), (value, bound)
            else:
                assert bool(dated) == (read >= bound and not unread), (value, bound, read)


# Other forms of a time than the one OpsCraft stores, each as `{day}` fills it in (a manual edit,
# an older version, an import). SQLite's `date()` read the compact text and the ISO week date as
# NULL (the run fell out of every day) and the one with an offset as the next day; `20261204`
# SQLite stores as the number (the column's NUMERIC affinity), which the reader takes for no
# time (1970). PostgreSQL's `timestamp` takes all but the ISO week date (an offset it ignores,
# as the reader does).
OTHER_FORMS = [
    "{day:%Y%m%d}",
    "{day:%Y-%m-%d}T10:00",
    "{day:%Y-%m-%d} 10:00",
    "{day:%Y-%m-%d} 23:30:00-05:00",
    "{day:%Y%m%d}T100000",
    "{day:%G-W%V-%u}",
]


@pytest.mark.parametrize("form", OTHER_FORMS)
async def test_the_dashboard_counts_a_run_of_another_stored_time_form_on_the_day_it_reads_as(
    client: httpx.AsyncClient, admin: LoggedIn, backend: str, form: str
) -> None:
    """The dashboard's runs per day count each run on the day its `finished_at` reads as (the
    API shows it so; `db.types.read_time`, as background comparisons read it), whatever form the
    time is stored in, and a run that reads as 1970 on no day of the last seven."""
    script_id = await seeding.script()
    yesterday = clock.now() - timedelta(days=1)
    await seeding.execution(script_id, yesterday)
    odd = await seeding.execution(script_id, yesterday, status=ExecutionStatus.failed)
    stored = form.format(day=yesterday)
    edit = sa.text(f"UPDATE executions SET finished_at = '{stored}' WHERE id = :i").bindparams(i=odd)
    if "W" in form:
        if not await seeding.stored_on_sqlite(edit):
            return  # PostgreSQL refused the text (checked): no such row can exist there
    else:
        async with runtime.current().db.session() as session:
            await session.exec(edit)  # type: ignore[call-overload]
            await session.commit()
    r = await client.get(f"/api/v1/executions/{odd}", headers=admin.headers)
    reads_as = datetime.fromisoformat(r.json()["finished_at"]).date()
    expected = {yesterday.date(): (1, 1)}
    if reads_as != EPOCH.date():
        assert reads_as == yesterday.date(), (stored, r.json()["finished_at"])
        expected = {yesterday.date(): (2, 1)}
    async with runtime.current().db.session() as session:
        daily = {d.day: (d.total, d.success) for d in await executions._daily_rates(session, 7)}
    assert {day: counts for day, counts in daily.items() if counts != (0, 0)} == expected, stored
