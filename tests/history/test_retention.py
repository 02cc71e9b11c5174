"""Output retention on SQLite and PostgreSQL: what it deletes, in batches, what it keeps, and how
the API and the setting's validation and permissions behave."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import event, func, update
from sqlmodel import col, select

from opscraft import runtime
from opscraft.db.models import AuditEvent, Execution, ExecutionLog, User
from opscraft.db.models.executions import ExecutionStatus
from opscraft.db.types import utcnow
from opscraft.services import app_settings, executions, retention
from opscraft.services.actor import Actor
from opscraft.services.errors import Invalid
from tests.conftest import LoggedIn
from tests.history import seeding


async def _settings(client: httpx.AsyncClient, admin: LoggedIn, **values: Any) -> dict[str, Any]:
    r = await client.put("/api/v1/settings", json=values, headers=admin.headers)
    assert r.status_code == 200, r.text
    return r.json()


async def _chunks(execution_id: int) -> int:
    async with runtime.current().db.session() as s:
        found = await s.exec(
            select(func.count())
            .select_from(ExecutionLog)
            .where(col(ExecutionLog.execution_id) == execution_id)
        )
        return int(found.one())


async def _audit_count() -> int:
    async with runtime.current().db.session() as s:
        return int((await s.exec(select(func.count()).select_from(AuditEvent))).one())


@pytest.fixture
def batches(monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    """The id lists of each output-removing transaction, in order."""
    seen: list[list[int]] = []
    real = retention._remove_output

    async def spy(db: Any, ids: list[int], *args: Any) -> None:
        seen.append(list(ids))
        await real(db, ids, *args)

    monkeypatch.setattr(retention, "_remove_output", spy)
    return seen


async def test_age_removes_old_output_in_batches_and_keeps_the_rest(
    client: httpx.AsyncClient, admin: LoggedIn, viewer: LoggedIn, batches: list[list[int]]
) -> None:
    script_id = await seeding.script()
    now = utcnow()
    old = [await seeding.execution(script_id, now - timedelta(days=40 + i)) for i in range(5)]
    recent = await seeding.execution(script_id, now - timedelta(days=1))
    running = await seeding.execution(script_id, None)
    saved = await _settings(client, admin, output_retention_days=30)
    assert saved["output_retention_days"] == 30
    audit_before = await _audit_count()

    done = await retention.run_once(runtime.current().db, now=now, batch=2)

    assert (done.outputs_removed, done.executions_deleted, done.bytes_freed) == (5, 0, 5 * 20)
    assert [len(b) for b in batches] == [2, 2, 1], "small batches, each its own transaction"
    assert sorted(i for b in batches for i in b) == sorted(old)
    for execution_id in old:
        assert await _chunks(execution_id) == 0
        shown = (await client.get(f"/api/v1/executions/{execution_id}", headers=viewer.headers)).json()
        assert shown["output_removed_at"] is not None and shown["output_bytes"] == 20
        logs = (await client.get(f"/api/v1/executions/{execution_id}/logs", headers=viewer.headers)).json()
        assert logs["items"] == [] and logs["complete"] is True
    for execution_id in (recent, running):
        assert await _chunks(execution_id) == 2
        shown = (await client.get(f"/api/v1/executions/{execution_id}", headers=viewer.headers)).json()
        assert shown["output_removed_at"] is None
    assert await _audit_count() == audit_before + 1, "nothing deleted from the audit; one event added"
    events = (await client.get("/api/v1/audit?action=retention.apply", headers=admin.headers)).json()
    assert events["items"][0]["details"]["outputs_removed"] == 5

    again = await retention.run_once(runtime.current().db, now=now, batch=2)
    assert not again.changed, "a second round (or another process) finds nothing left to do"


async def test_deleting_rows_keeps_audit_events_and_dashboard_counts_true(
    client: httpx.AsyncClient, admin: LoggedIn, operator: LoggedIn
) -> None:
    script_id = await seeding.script()
    now = utcnow()
    old = [await seeding.execution(script_id, now - timedelta(days=100 + i)) for i in range(3)]
    kept = await seeding.execution(script_id, now - timedelta(days=2))
    async with runtime.current().db.session() as s:  # an audit event about an execution retention deletes
        s.add(AuditEvent(action="execution.create", target_type="execution", target_id=str(old[0])))
        await s.commit()
    await _settings(client, admin, output_retention_days=90, retention_delete_executions=True)
    audit_before = await _audit_count()

    done = await retention.run_once(runtime.current().db, now=now, batch=2)

    assert (done.executions_deleted, done.bytes_freed) == (3, 60)
    for execution_id in old:
        r = await client.get(f"/api/v1/executions/{execution_id}", headers=operator.headers)
        assert r.status_code == 404
        assert await _chunks(execution_id) == 0
    assert (await client.get(f"/api/v1/executions/{kept}", headers=operator.headers)).json()[
        "output_removed_at"
    ] is None
    assert await _audit_count() == audit_before + 1
    async with runtime.current().db.session() as s:
        about = await s.exec(select(AuditEvent).where(col(AuditEvent.target_id) == str(old[0])))
        assert about.first() is not None, "audit events outlive the rows they describe"
    listed = (await client.get("/api/v1/executions", headers=operator.headers)).json()
    assert [e["id"] for e in listed["items"]] == [kept] and listed["total"] == 1


async def _counters(client: httpx.AsyncClient, admin: LoggedIn) -> dict[tuple[str, str], float]:
    """Every sample of the execution counters and histogram on `/metrics`: (name, labels) -> value."""
    r = await client.get("/metrics", headers=admin.headers)
    assert r.status_code == 200, r.text
    wanted = ("opscraft_executions", "opscraft_execution_output_bytes", "opscraft_execution_duration_seconds")
    return {
        (sample.name, str(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(r.text)
        if family.name in wanted
        for sample in family.samples
    }


async def test_metrics_counters_never_go_down_when_retention_deletes_runs(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """`/metrics` counters summed the rows left, so deleting runs made them go down, which
    Prometheus reads as a counter reset (`increase()` then counts the whole total again): they
    now keep what the deleted runs had added, each deleted run once."""
    script_id = await seeding.script()
    now = utcnow()
    ran = {
        await seeding.execution(script_id, now - timedelta(days=100)): 2.0,
        await seeding.execution(script_id, now - timedelta(days=101)): 20.0,
        await seeding.execution(script_id, now - timedelta(days=102), status=ExecutionStatus.failed): 400.0,
        await seeding.execution(script_id, now - timedelta(days=1)): 0.2,
    }
    async with runtime.current().db.session() as s:
        for execution_id, seconds in ran.items():
            finished = (await s.get(Execution, execution_id)).finished_at  # type: ignore[union-attr]
            await s.exec(
                update(Execution)
                .where(col(Execution.id) == execution_id)
                .values(started_at=finished - timedelta(seconds=seconds))
            )
        await s.commit()
    before = await _counters(client, admin)
    assert before[("opscraft_executions_total", "[('script_type', 'bash'), ('status', 'success')]")] == 3
    assert before[("opscraft_execution_duration_seconds_bucket", "[('le', '30.0')]")] == 3
    await _settings(client, admin, output_retention_days=90, retention_delete_executions=True)

    done = await retention.run_once(runtime.current().db, now=now, batch=2)
    assert done.executions_deleted == 3
    after = await _counters(client, admin)
    # The same samples (the sum to a millisecond: SQLite computes run time from julianday's floats).
    assert after == pytest.approx(before, abs=1e-3), "no counter, bucket or sum went down"

    await seeding.execution(script_id, now, status=ExecutionStatus.failed)  # counting goes on from there
    assert (await retention.run_once(runtime.current().db, now=now)).executions_deleted == 0
    later = await _counters(client, admin)
    failed = ("opscraft_executions_total", "[('script_type', 'bash'), ('status', 'failed')]")
    assert later[failed] == before[failed] + 1
    assert later[("opscraft_execution_duration_seconds_count", "[]")] == 5


async def test_size_cap_removes_the_oldest_output_first(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    script_id = await seeding.script()
    now = utcnow()
    runs = [
        await seeding.execution(script_id, now - timedelta(hours=10 - i), chunks=4, chunk_bytes=250)
        for i in range(4)
    ]  # 1,000 bytes each, oldest first
    await _settings(client, admin, output_retention_gb=2_500 / retention.GB)

    done = await retention.run_once(runtime.current().db, now=now)

    assert (done.outputs_removed, done.bytes_freed) == (2, 2_000), "4,000 stored, 2,500 allowed"
    assert [await _chunks(i) for i in runs] == [0, 0, 4, 4]
    async with runtime.current().db.session() as s:
        removed = await s.exec(select(Execution.id).where(col(Execution.output_removed_at).is_not(None)))
        assert sorted(removed.all()) == runs[:2]


# Settings the API refuses, and the field it names.
INVALID_RETENTION = [
    ({"output_retention_days": -1}, "output_retention_days"),
    ({"output_retention_days": 36_501}, "output_retention_days"),
    ({"output_retention_days": 1.5}, "output_retention_days"),
    ({"output_retention_days": "30"}, "output_retention_days"),
    ({"output_retention_days": True}, "output_retention_days"),
    ({"output_retention_gb": -0.5}, "output_retention_gb"),
    ({"output_retention_gb": "lots"}, "output_retention_gb"),
    ({"retention_delete_executions": "yes"}, "retention_delete_executions"),
]


async def test_invalid_retention_settings_are_422_naming_the_field(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """Each of `INVALID_RETENTION` in turn, in one test: one server per database, not one per case."""
    for values, field in INVALID_RETENTION:
        before = (await client.get("/api/v1/settings", headers=admin.headers)).json()
        r = await client.put("/api/v1/settings", json=values, headers=admin.headers)
        assert r.status_code == 422, (values, r.text)
        assert field in r.json()["detail"], values
        assert any(field in e["field"] for e in r.json()["errors"]), r.json()
        assert (await client.get("/api/v1/settings", headers=admin.headers)).json() == before, values


async def test_deleting_runs_needs_a_retention_period(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    """`retention_delete_executions` deletes rows only past `output_retention_days`: turned on with
    0 days (or 0 saved while it is on) it was accepted and deleted nothing, with no word."""

    async def refused(values: dict[str, Any], field: str) -> str:
        before = (await client.get("/api/v1/settings", headers=admin.headers)).json()
        r = await client.put("/api/v1/settings", json=values, headers=admin.headers)
        assert r.status_code == 422, (values, r.text)
        assert [e["field"] for e in r.json()["errors"]] == [field], r.json()
        assert (await client.get("/api/v1/settings", headers=admin.headers)).json() == before, values
        return str(r.json()["errors"][0]["message"])

    needs = await refused({"retention_delete_executions": True}, "retention_delete_executions")
    assert needs == "needs a retention period: set output_retention_days above 0 (with 0 no run is deleted)"
    both = {"retention_delete_executions": True, "output_retention_days": 0}
    assert await refused(both, "retention_delete_executions") == needs

    await _settings(client, admin, output_retention_days=30, retention_delete_executions=True)
    message = await refused({"output_retention_days": 0}, "output_retention_days")
    assert "turn retention_delete_executions off too" in message, message
    saved = await _settings(client, admin, output_retention_days=0, retention_delete_executions=False)
    assert (saved["output_retention_days"], saved["retention_delete_executions"]) == (0, False)
    # The size cap removes output only, never rows: no period still refuses the switch.
    await _settings(client, admin, output_retention_gb=1.0)
    assert await refused({"retention_delete_executions": True}, "retention_delete_executions") == needs


async def test_a_negative_zero_is_stored_as_zero(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    """`-0.0` is in the range (0 turns the cap off) and was stored and shown as `-0.0`."""
    headers = {**admin.headers, "Content-Type": "application/json"}
    r = await client.put("/api/v1/settings", content=b'{"output_retention_gb": -0.0}', headers=headers)
    assert r.status_code == 200, r.text
    assert r.text.count('"output_retention_gb":0.0') == 1, r.text
    got = await client.get("/api/v1/settings", headers=admin.headers)
    assert '"output_retention_gb":0.0' in got.text and "-0.0" not in got.text, got.text


async def test_every_bad_setting_of_one_save_is_named_at_once(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """The settings page saves every field through the service at once: each bad one is named (so
    each gets its message under it), not only the first, and nothing is saved."""
    before = (await client.get("/api/v1/settings", headers=admin.headers)).json()
    async with runtime.current().db.session() as s:
        user = await s.get(User, admin.id)
        with pytest.raises(Invalid) as refused:
            await app_settings.update(
                s,
                Actor(user),
                {"warm_pool_size": 99, "output_retention_days": 1.5, "output_retention_gb": -3.0},
            )
    named = {d["field"]: d["message"] for d in refused.value.details}
    assert named == {
        "warm_pool_size": "must be between 0 and 16 (0 turns it off)",
        "output_retention_days": "must be a whole number (it is a number with a decimal point)",
        "output_retention_gb": "must be between 0 and 1000000 (0 turns it off)",
    }
    for field in named:
        assert field in refused.value.message
    assert (await client.get("/api/v1/settings", headers=admin.headers)).json() == before


# A bad setting, and how both the API and the settings page word it.
BAD_SETTINGS = [
    ({"warm_pool_size": 99}, "must be between 0 and 16 (0 turns it off)"),
    ({"warm_pool_size": -1}, "must be between 0 and 16 (0 turns it off)"),
    ({"warm_pool_size": 1.5}, "must be a whole number (it is a number with a decimal point)"),
    ({"output_retention_days": 36_501}, "must be between 0 and 36500 (0 turns it off)"),
    ({"output_retention_days": "7"}, "must be a whole number (it is text)"),
    ({"output_retention_gb": -3.0}, "must be between 0 and 1000000 (0 turns it off)"),
    ({"output_retention_gb": "lots"}, "must be a number (it is text)"),
    # Positive but under one byte: a cap of 0 bytes, which removed every finished run's output.
    (
        {"output_retention_gb": 1e-300},
        "must be 0 (no cap) or at least one byte, 0.000000001 GB: a smaller cap keeps no output at all",
    ),
    ({"registration_open": "yes"}, "must be true or false (it is text)"),
    ({"local_runner_role": "root"}, "must be one of: viewer, operator, admin"),
]


async def test_the_api_words_each_bad_setting_as_the_settings_page_does(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """One message per bound, from the service: the API answered pydantic's "Input should be less
    than or equal to 16" where the settings page said "must be between 0 and 16". Each of
    `BAD_SETTINGS` in turn, in one test: one server per database, not one per case."""
    for values, message in BAD_SETTINGS:
        r = await client.put("/api/v1/settings", json=values, headers=admin.headers)
        assert r.status_code == 422, (values, r.text)
        [field] = values
        assert r.json()["errors"] == [{"field": field, "message": message}], values
        assert message in r.json()["detail"], values
        async with runtime.current().db.session() as s:
            user = await s.get(User, admin.id)
            with pytest.raises(Invalid) as refused:
                await app_settings.update(s, Actor(user), values)
        assert refused.value.details == [{"field": field, "message": message}], values


async def test_only_admins_change_retention_and_the_change_is_audited(
    client: httpx.AsyncClient, admin: LoggedIn, operator: LoggedIn, viewer: LoggedIn
) -> None:
    for user in (viewer, operator):
        r = await client.put("/api/v1/settings", json={"output_retention_days": 1}, headers=user.headers)
        assert r.status_code == 403, r.text
    assert (await client.get("/api/v1/settings", headers=viewer.headers)).json()["output_retention_days"] == 0
    await _settings(client, admin, output_retention_days=7, output_retention_gb=1.5)
    events = (await client.get("/api/v1/audit?action=setting.update", headers=admin.headers)).json()["items"]
    changed = {e["target_id"]: e["details"]["value"] for e in events}
    assert changed == {"output_retention_days": 7, "output_retention_gb": 1.5}
    assert all(e["actor_name"] == "admin" for e in events)


async def test_the_download_of_removed_output_says_it_was_removed(
    client: httpx.AsyncClient, admin: LoggedIn, viewer: LoggedIn
) -> None:
    """It was an empty file, without a word."""
    script_id = await seeding.script()
    now = utcnow()
    old = await seeding.execution(script_id, now - timedelta(days=40))
    recent = await seeding.execution(script_id, now - timedelta(days=1))
    await _settings(client, admin, output_retention_days=30)
    assert (await retention.run_once(runtime.current().db, now=now)).outputs_removed == 1

    r = await client.get(f"/api/v1/executions/{old}/output.log", headers=viewer.headers)
    assert r.status_code == 200
    assert r.text == (
        f"[opscraft] This run's output was removed by output retention on {now:%Y-%m-%d %H:%M:%S} UTC:"
        " an admin's setting keeps output for a limited time.\n"
    )
    kept = await client.get(f"/api/v1/executions/{recent}/output.log", headers=viewer.headers)
    assert kept.text == "x" * 20


async def test_a_run_that_stored_no_output_is_not_said_to_have_lost_it(
    client: httpx.AsyncClient, admin: LoggedIn, viewer: LoggedIn
) -> None:
    """Retention marked every old run, also one that stored no output: its page, `/logs` and
    `output.log` said "output removed by retention" while nothing of it was removed."""
    script_id = await seeding.script()
    now = utcnow()
    quiet = [await seeding.execution(script_id, now - timedelta(days=50 + i), chunks=0) for i in range(2)]
    chatty = await seeding.execution(script_id, now - timedelta(days=40))
    await _settings(client, admin, output_retention_days=30, output_retention_gb=1 / retention.GB)

    done = await retention.run_once(runtime.current().db, now=now)

    assert (done.outputs_removed, done.bytes_freed) == (1, 20), "only the run that stored output"
    for execution_id in quiet:
        shown = (await client.get(f"/api/v1/executions/{execution_id}", headers=viewer.headers)).json()
        assert (shown["output_removed_at"], shown["output_bytes"]) == (None, 0), shown
        log = await client.get(f"/api/v1/executions/{execution_id}/output.log", headers=viewer.headers)
        assert (log.status_code, log.text) == (200, ""), "no output, and no word of a removal"
    shown = (await client.get(f"/api/v1/executions/{chatty}", headers=viewer.headers)).json()
    assert shown["output_removed_at"] is not None
    assert not (await retention.run_once(runtime.current().db, now=now)).changed


async def test_a_download_that_retention_cuts_short_says_so(
    client: httpx.AsyncClient, admin: LoggedIn, viewer: LoggedIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Retention removes the output between two pages of a download: the file ends with a line
    saying the rest was removed (it ended there silently)."""
    script_id = await seeding.script()
    now = utcnow()
    pages = 2
    run = await seeding.execution(
        script_id, now - timedelta(days=40), chunks=pages * executions.MAX_LOG_PAGE, chunk_bytes=1
    )
    real = executions.read_logs
    read: list[int] = []

    async def read_then_remove(*args: Any, **kwargs: Any) -> executions.LogPage:
        page = await real(*args, **kwargs)
        read.append(len(page.items))
        if len(read) == 1:  # retention's round runs between the first page and the next
            await _settings(client, admin, output_retention_days=30)
            assert (await retention.run_once(runtime.current().db, now=now)).outputs_removed == 1
        return page

    monkeypatch.setattr(executions, "read_logs", read_then_remove)
    r = await client.get(f"/api/v1/executions/{run}/output.log", headers=viewer.headers)

    assert read == [executions.MAX_LOG_PAGE, 0]
    first, note = r.text[: executions.MAX_LOG_PAGE], r.text[executions.MAX_LOG_PAGE :]
    assert first == "x" * executions.MAX_LOG_PAGE
    assert note.startswith("\n[opscraft] The rest of this run's output was removed by output retention on ")


@pytest.mark.parametrize("delete_rows", [False, True])
async def test_chunks_are_deleted_in_slices_of_about_slice_bytes(
    client: httpx.AsyncClient, admin: LoggedIn, monkeypatch: pytest.MonkeyPatch, delete_rows: bool
) -> None:
    """Each transaction deletes about `SLICE_BYTES` of output, however large a batch's output is
    (one DELETE took the whole batch's: 29 s per 500 MB on SQLite, with the write lock held
    against the runs storing output meanwhile); a run larger than that goes in ranges."""
    monkeypatch.setattr(retention, "SLICE_BYTES", 1_000)
    script_id = await seeding.script()
    now = utcnow()
    large = await seeding.execution(script_id, now - timedelta(days=50), chunks=40, chunk_bytes=100)
    small = [
        await seeding.execution(script_id, now - timedelta(days=40, minutes=i), chunks=2, chunk_bytes=10)
        for i in range(100)
    ]
    await _settings(client, admin, output_retention_days=30, retention_delete_executions=delete_rows)
    deleted: list[int] = []

    def count(_conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("DELETE FROM EXECUTION_LOGS"):
            deleted.append(cursor.rowcount)

    engine = runtime.current().db.engine.sync_engine
    event.listen(engine, "after_cursor_execute", count)
    try:
        done = await retention.run_once(runtime.current().db, now=now)
    finally:
        event.remove(engine, "after_cursor_execute", count)

    assert done.bytes_freed == 4_000 + 100 * 20
    if delete_rows:
        assert done.executions_deleted == 101
    else:
        assert done.outputs_removed == 101
    assert sorted(n for n in deleted if n) == [10, 10, 10, 10, 100, 100], "1,000 bytes a transaction"
    assert [await _chunks(i) for i in (large, *small)] == [0] * 101
