"""The history's host filter (`GET /api/v1/executions?host=...&host_status=...`, services/
host_filter.py) on SQLite and PostgreSQL: runs finished through the worker's own write
(`execution.store.finish` with a per-host summary read from a PLAY RECAP by `ansible_recap`),
each status, every other filter and both pagings combined with it, the 422s, the same rights
as the list, the index its page reads, and the host rows going with their run. A real
`ansible-playbook` run found by its host: tests/executions/test_ansible_host_summary.py."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlmodel import col, delete, select, update

from opscraft import runtime
from opscraft.db.models import Execution, ExecutionHost, Script
from opscraft.db.models.executions import ExecutionStatus
from opscraft.db.models.scripts import ScriptType
from opscraft.db.types import utcnow
from opscraft.execution import ansible_recap, store
from opscraft.services import executions
from tests.conftest import LoggedIn
from tests.history import seeding
from tests.history.test_history_queries import _actor, _plans_of, captured

RECAP = "PLAY RECAP *********************************************************************\n"


def _recap(**hosts: tuple[int, int, int, int]) -> dict[str, Any]:
    """A run's stored summary from a PLAY RECAP of `hosts` (name: (ok, changed, unreachable, failed))."""
    lines = [
        f"{name:<26} : ok={ok}    changed={changed}    unreachable={unreachable}    failed={failed}    "
        "skipped=0    rescued=0    ignored=0"
        for name, (ok, changed, unreachable, failed) in sorted(hosts.items())
    ]
    return ansible_recap.summary(RECAP + "\n".join(lines) + "\n\n", ended=True, output_cut=False)


async def _finished_run(script_id: int, hours_ago: int, summary: dict[str, Any], **fields: Any) -> int:
    """A run queued `hours_ago` hours ago, ended by the worker's write with `summary`."""
    execution_id = await seeding.execution(script_id, None, **fields)
    async with runtime.current().db.engine.begin() as conn:
        await conn.execute(
            Execution.__table__.update()  # type: ignore[attr-defined]
            .where(col(Execution.id) == execution_id)
            .values(queued_at=utcnow() - timedelta(hours=hours_ago), script_type="ansible")
        )
        status = ExecutionStatus.failed if summary["totals"]["failed"] else ExecutionStatus.success
        await conn.run_sync(store.finish, [(execution_id, store.Finish(status=status, host_summary=summary))])
    return execution_id


@pytest.fixture
async def runs(admin: LoggedIn) -> dict[str, int]:
    """Six runs, newest first: db1 failed (0 h ago), db1 unreachable (1 h), db1 changed, web ok
    (2 h), db1 ok (3 h, a webhook's), web only (4 h), db1 failed and changed (5 h, another script)."""
    script_id = await seeding.script()
    async with runtime.current().db.session() as s:
        row = Script(name="other", script_type=ScriptType.ansible, content="- hosts: all\n")
        s.add(row)
        await s.commit()
        other = int(row.id or 0)
    ids = {
        "db1 failed": await _finished_run(script_id, 0, _recap(db1=(1, 0, 0, 1), web=(2, 0, 0, 0))),
        "db1 unreachable": await _finished_run(script_id, 1, _recap(db1=(0, 0, 1, 0))),
        "db1 changed": await _finished_run(script_id, 2, _recap(db1=(2, 1, 0, 0), web=(2, 0, 0, 0))),
        "db1 ok": await _finished_run(script_id, 3, _recap(db1=(2, 0, 0, 0)), trigger="webhook"),
        "web only": await _finished_run(script_id, 4, _recap(web=(1, 0, 0, 0))),
        "db1 failed, changed": await _finished_run(other, 5, _recap(db1=(3, 2, 0, 1))),
    }
    return {**ids, "script_id": script_id, "other": other}


async def _page(client: httpx.AsyncClient, who: LoggedIn, **params: Any) -> dict[str, Any]:
    r = await client.get("/api/v1/executions", params=params, headers=who.headers)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def _ids(client: httpx.AsyncClient, who: LoggedIn, **params: Any) -> list[int]:
    return [item["id"] for item in (await _page(client, who, **params))["items"]]


async def test_a_host_s_runs_newest_first_and_each_status(
    client: httpx.AsyncClient, viewer: LoggedIn, runs: dict[str, int]
) -> None:
    db1 = ["db1 failed", "db1 unreachable", "db1 changed", "db1 ok", "db1 failed, changed"]
    assert await _ids(client, viewer, host="db1") == [runs[k] for k in db1]
    assert await _ids(client, viewer, host="db1", host_status="failed") == [
        runs["db1 failed"],
        runs["db1 failed, changed"],
    ]
    assert await _ids(client, viewer, host="db1", host_status="unreachable") == [runs["db1 unreachable"]]
    assert await _ids(client, viewer, host="db1", host_status="changed") == [
        runs["db1 changed"],
        runs["db1 failed, changed"],
    ]
    assert await _ids(client, viewer, host="db1", host_status="ok") == [runs["db1 changed"], runs["db1 ok"]]
    web = ["db1 failed", "db1 changed", "web only"]
    assert await _ids(client, viewer, host="web", host_status="ok") == [runs[k] for k in web]
    # Whole names, in any case: a part of a name or an unknown host finds nothing.
    assert await _ids(client, viewer, host="DB1") == [runs[k] for k in db1]
    for other in ("db", "db1 ", "nohost"):
        assert await _ids(client, viewer, host=other) == [], other
    # An empty filter is no filter, as `?status=` is.
    assert len(await _ids(client, viewer, host="", host_status="")) == 6


async def test_the_host_filter_combines_with_every_other_filter_and_both_pagings(
    client: httpx.AsyncClient, viewer: LoggedIn, admin: LoggedIn, runs: dict[str, int]
) -> None:
    assert await _ids(client, viewer, host="db1", script_id=runs["other"]) == [runs["db1 failed, changed"]]
    assert await _ids(client, viewer, host="db1", status="failed") == [
        runs["db1 failed"],
        runs["db1 failed, changed"],
    ]
    assert await _ids(client, viewer, host="db1", trigger="webhook") == [runs["db1 ok"]]
    assert await _ids(client, viewer, host="db1", user_id=admin.id) == []
    since = (utcnow() - timedelta(hours=2, minutes=30)).isoformat()
    until = (utcnow() - timedelta(minutes=30)).isoformat()
    assert await _ids(client, viewer, host="db1", since=since, until=until) == [
        runs["db1 unreachable"],
        runs["db1 changed"],
    ]

    first = await _page(client, viewer, host="db1", limit=2)
    assert [i["id"] for i in first["items"]] == [runs["db1 failed"], runs["db1 unreachable"]]
    assert (first["total"], first["total_capped"], first["prev_cursor"]) == (5, False, None)
    second = await _page(client, viewer, host="db1", limit=2, cursor=first["next_cursor"])
    assert [i["id"] for i in second["items"]] == [runs["db1 changed"], runs["db1 ok"]]
    assert second["total"] == 5
    last = await _page(client, viewer, host="db1", limit=2, cursor=second["next_cursor"])
    assert [i["id"] for i in last["items"]] == [runs["db1 failed, changed"]]
    assert last["next_cursor"] is None
    back = await _page(client, viewer, host="db1", limit=2, cursor=last["prev_cursor"])
    assert [i["id"] for i in back["items"]] == [runs["db1 changed"], runs["db1 ok"]]
    assert await _ids(client, viewer, host="db1", host_status="ok", skip=1, limit=5) == [runs["db1 ok"]]


@pytest.mark.parametrize(
    ("params", "field", "said"),
    [
        ({"host": "db1", "host_status": "broken"}, "host_status", "one of: failed, unreachable, changed, ok"),
        ({"host_status": "failed"}, "host_status", "needs a host"),
        ({"host": "db1\x00"}, "host", "NUL"),
        ({"host": "db1\nweb"}, "host", "control characters"),
        ({"host": "h" * 256}, "host", "at most 255 characters"),
    ],
)
async def test_a_bad_host_filter_is_a_422_naming_its_field(
    client: httpx.AsyncClient, viewer: LoggedIn, params: dict[str, str], field: str, said: str
) -> None:
    r = await client.get("/api/v1/executions", params=params, headers=viewer.headers)
    assert r.status_code == 422, r.text
    errors = r.json()["errors"]
    assert [e["field"] for e in errors] == [field] and said in errors[0]["message"], errors


async def test_the_host_filter_needs_what_the_list_needs(
    client: httpx.AsyncClient, viewer: LoggedIn, runs: dict[str, int]
) -> None:
    r = await client.get("/api/v1/executions", params={"host": "db1"})
    assert r.status_code == 401, r.text
    assert len(await _ids(client, viewer, host="db1")) == 5  # a viewer sees every user's runs


async def test_hosts_the_masker_named_alike_are_one_row_and_go_with_their_run(
    admin: LoggedIn, client: httpx.AsyncClient
) -> None:
    """Two hosts whose names were secret values read `***` in the recap: one row with their
    counts added (a second row of that name was a failed insert, losing the run's end)."""
    script_id = await seeding.script()
    summary = ansible_recap.summary(
        RECAP
        + "*** : ok=1 changed=0 unreachable=0 failed=1\n*** : ok=1 changed=1 unreachable=1 failed=0\n"
        + "web : ok=1 changed=0 unreachable=0 failed=0\n\n",
        ended=True,
        output_cut=False,
    )
    execution_id = await _finished_run(script_id, 0, summary)
    async with runtime.current().db.session() as s:
        rows = (await s.exec(select(ExecutionHost).order_by(col(ExecutionHost.host)))).all()
        assert [(r.host, r.changed, r.unreachable, r.failed) for r in rows] == [
            ("***", 1, 1, 1),
            ("web", 0, 0, 0),
        ]
        assert {r.queued_at for r in rows} == {(await s.get(Execution, execution_id)).queued_at}
        await s.exec(delete(Execution).where(col(Execution.id) == execution_id))
        await s.commit()
    async with runtime.current().db.session() as s:
        assert (await s.exec(select(ExecutionHost))).all() == []  # deleted with the run (retention)


async def test_a_host_is_found_in_any_case_and_spelling_as_every_search_finds_text(
    admin: LoggedIn, client: httpx.AsyncClient
) -> None:
    """`?host=` was matched exactly as the recap printed the name: `DB1` missed `db1`, and
    `café` typed (U+00E9) missed a host printed `cafe` + U+0301, where every other search folds
    case and compares in NFC. The host rows are kept folded (`DB1` and `db1` of one run: one row,
    their counts added) and the term is folded alike."""
    script_id = await seeding.script()
    summary = _recap(DB1=(1, 0, 0, 1), db1=(1, 1, 0, 0), **{"cafe\u0301": (1, 0, 0, 0)})
    execution_id = await _finished_run(script_id, 0, summary)
    async with runtime.current().db.session() as s:
        rows = (await s.exec(select(ExecutionHost).order_by(col(ExecutionHost.host)))).all()
    assert [(r.host, r.changed, r.failed) for r in rows] == [("caf\u00e9", 0, 0), ("db1", 1, 1)]
    for host, status in (("Db1", "failed"), ("db1", "changed"), ("CAF\u00c9", "ok"), ("cafe\u0301", "")):
        params = {"host": host, "host_status": status}
        r = await client.get("/api/v1/executions", params=params, headers=admin.headers)
        assert [e["id"] for e in r.json()["items"]] == [execution_id], (host, r.text)
    r = await client.get("/api/v1/executions", params={"host": "cafe"}, headers=admin.headers)
    assert r.json()["items"] == [], "accents are not folded away, as in every search"


async def test_a_host_s_page_and_count_read_the_host_index(admin: LoggedIn, runs: dict[str, int]) -> None:
    """The page and the capped count of a host's runs read its index; the count of the host filter
    alone reads no run (every host row has its run)."""
    await seeding.fresh_statistics()
    actor = await _actor(admin)
    for filters in ({"host": "db1"}, {"host": "db1", "host_status": "failed", "status": "failed"}):
        async with runtime.current().db.session() as s:
            plans = await _plans_of(
                lambda f=filters: executions.list_executions(s, actor, **f, limit=25),
                "ORDER BY execution_hosts.queued_at DESC",
            )
        assert "ix_execution_hosts_host_queued" in plans[0], plans[0]
    with captured() as seen:
        async with runtime.current().db.session() as s:
            await executions.list_executions(s, actor, host="db1", host_status="failed")
    count = next(sql for sql, _ in seen if "count(" in sql)
    assert "execution_hosts" in count and "executions" not in count.replace("execution_hosts", ""), count


def test_the_openapi_documents_the_host_filter(api_app: FastAPI) -> None:
    listing = api_app.openapi()["paths"]["/api/v1/executions"]["get"]
    params = {p["name"]: p for p in listing["parameters"]}
    assert params["host_status"]["schema"]["enum"] == ["failed", "unreachable", "changed", "ok"]
    assert "failed > 0" in params["host_status"]["description"]
    assert params["host"]["schema"]["anyOf"][0]["maxLength"] == ansible_recap.MAX_HOST_CHARS
    assert "exactly" in params["host"]["description"] and "`host`" in listing["description"]


async def test_a_host_s_pages_follow_its_rows_copy_of_the_queue_time(
    client: httpx.AsyncClient, viewer: LoggedIn, runs: dict[str, int]
) -> None:
    """A host's runs are ordered by its rows' copy of `queued_at`, but the cursor was made from
    the run's own: a run whose time no longer matched the copy (a manual edit's; on SQLite any
    text that is no time, read as 1970) ended the paging there, the host's older runs left out.
    The cursor is made from what the order read: every run once, forward and back."""
    moved = update(Execution).where(col(Execution.id) == runs["db1 unreachable"])
    async with runtime.current().db.session() as session:
        await session.exec(moved.values(queued_at=utcnow() - timedelta(days=30)))
        await session.commit()
    db1 = ["db1 failed", "db1 unreachable", "db1 changed", "db1 ok", "db1 failed, changed"]
    expected = [runs[name] for name in db1]
    walked, cursor = [], None
    while True:
        page = await _page(client, viewer, host="db1", limit=1, **({"cursor": cursor} if cursor else {}))
        walked += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert walked == expected
    back, cursor = [], (await _page(client, viewer, host="db1", limit=1, skip=4))["prev_cursor"]
    while cursor is not None:
        page = await _page(client, viewer, host="db1", limit=1, cursor=cursor)
        back = [item["id"] for item in page["items"]] + back
        cursor = page["prev_cursor"]
    assert back == expected[:-1]
