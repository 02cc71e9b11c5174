"""Keyset (cursor) paging of `GET /api/v1/executions`, on SQLite and PostgreSQL: the pages walk
the history in order without duplicates or gaps, forward by `next_cursor` and back by
`prev_cursor`, runs queued between two pages do not shift the later ones, the cursor page uses
the filter's index either way, and a bad cursor is a 422 naming it."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from opscraft import runtime
from opscraft.db.models import Role, User
from opscraft.db.models.executions import ExecutionStatus
from opscraft.db.types import utcnow
from opscraft.services import executions, history_cursor, scripts
from opscraft.services.actor import Actor
from opscraft.services.errors import Invalid, NotFound
from tests.conftest import IN_MODULE_LOOP, LoggedIn, Reader
from tests.history import seeding
from tests.history.test_history_queries import _plans_of

URL = "/api/v1/executions"


@pytest.fixture
async def runs(admin: LoggedIn) -> dict[str, Any]:
    """23 finished runs an hour apart, newest first in `ids`, three of them queued at the same
    instant (so only the id orders them), every third one failed."""
    script_id = await seeding.script()
    now = utcnow()
    made: list[tuple[datetime, int]] = []
    for i in range(20):
        at = now - timedelta(hours=i + 1)
        status = ExecutionStatus.failed if i % 3 == 0 else ExecutionStatus.success
        made.append((at, await seeding.execution(script_id, at, status=status, chunks=0)))
    tie = now - timedelta(minutes=30)
    for _ in range(3):
        made.append((tie, await seeding.execution(script_id, tie, chunks=0)))
    ordered = [i for _, i in sorted(made, key=lambda m: (m[0], m[1]), reverse=True)]
    return {"script_id": script_id, "ids": ordered, "now": now}


async def _walk(client: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> list[list[int]]:
    """Every page's ids, following `next_cursor` from the first page to the last."""
    pages: list[list[int]] = []
    cursor: str | None = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        r = await client.get(URL, params=query, headers=headers)
        assert r.status_code == 200, r.text
        body = r.json()
        pages.append([e["id"] for e in body["items"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 50, "the cursor does not advance"


async def test_cursor_pages_walk_the_history_in_order(
    client: httpx.AsyncClient, viewer: LoggedIn, runs: dict[str, Any]
) -> None:
    pages = await _walk(client, viewer.headers, limit=5)
    assert [len(p) for p in pages] == [5, 5, 5, 5, 3]
    assert [i for p in pages for i in p] == runs["ids"], "newest first, ties by id, no gap, no repeat"
    by_skip = (await client.get(URL, params={"limit": 100}, headers=viewer.headers)).json()
    assert [e["id"] for e in by_skip["items"]] == runs["ids"] and by_skip["next_cursor"] is None
    exact = (await client.get(URL, params={"limit": 23}, headers=viewer.headers)).json()
    assert exact["next_cursor"] is None, "a page that ends with the last run has no next page"
    failed = await _walk(client, viewer.headers, limit=3, status="failed")
    flat = [i for p in failed for i in p]
    assert len(flat) == 7 and len(set(flat)) == 7
    assert flat == [i for i in runs["ids"] if i in set(flat)], "a filter keeps the order"
    first = (await client.get(URL, params={"limit": 3, "status": "failed"}, headers=viewer.headers)).json()
    assert (first["total"], first["total_capped"]) == (7, False), "the total counts the whole filter"


async def test_runs_queued_between_pages_do_not_shift_the_next_page(
    client: httpx.AsyncClient, viewer: LoggedIn, runs: dict[str, Any]
) -> None:
    first = (await client.get(URL, params={"limit": 8}, headers=viewer.headers)).json()
    assert [e["id"] for e in first["items"]] == runs["ids"][:8]
    for _ in range(4):  # new runs arrive while the reader looks at page 1
        await seeding.execution(runs["script_id"], utcnow(), chunks=0)
    by_cursor = await client.get(
        URL, params={"limit": 8, "cursor": first["next_cursor"]}, headers=viewer.headers
    )
    assert [e["id"] for e in by_cursor.json()["items"]] == runs["ids"][8:16]
    by_skip = (await client.get(URL, params={"limit": 8, "skip": 8}, headers=viewer.headers)).json()
    repeated = {e["id"] for e in by_skip["items"]} & set(runs["ids"][:8])
    assert len(repeated) == 4, "skip paging repeats what the new runs pushed down: why cursors exist"
    rest = await _walk(client, viewer.headers, limit=8)
    assert [i for p in rest for i in p][4:] == runs["ids"], "a fresh walk shows the new runs first"


async def test_a_skip_page_gives_a_cursor_to_continue(
    client: httpx.AsyncClient, viewer: LoggedIn, runs: dict[str, Any]
) -> None:
    deep = (await client.get(URL, params={"limit": 4, "skip": 10}, headers=viewer.headers)).json()
    assert [e["id"] for e in deep["items"]] == runs["ids"][10:14]
    after = await client.get(URL, params={"limit": 4, "cursor": deep["next_cursor"]}, headers=viewer.headers)
    assert [e["id"] for e in after.json()["items"]] == runs["ids"][14:18]


async def test_prev_cursor_walks_back_to_the_newest_page(
    client: httpx.AsyncClient, viewer: LoggedIn, runs: dict[str, Any]
) -> None:
    for filters, expected in (({}, runs["ids"]), ({"status": "failed"}, None)):
        forward: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            query = {"limit": 3, **filters, **({"cursor": cursor} if cursor else {})}
            forward.append((await client.get(URL, params=query, headers=viewer.headers)).json())
            cursor = forward[-1]["next_cursor"]
            if cursor is None:
                break
        ids = [[e["id"] for e in page["items"]] for page in forward]
        if expected is not None:
            assert [i for p in ids for i in p] == expected
        assert forward[0]["prev_cursor"] is None, "the newest page has no newer page"
        assert all(page["prev_cursor"] for page in forward[1:])
        back: list[list[int]] = [ids[-1]]
        cursor = forward[-1]["prev_cursor"]
        while cursor is not None:
            page = (
                await client.get(
                    URL, params={"limit": 3, **filters, "cursor": cursor}, headers=viewer.headers
                )
            ).json()
            back.append([e["id"] for e in page["items"]])
            assert page["next_cursor"], "a newer page always leads back to the older runs"
            assert (page["total"], page["total_capped"]) == (forward[0]["total"], False)
            cursor = page["prev_cursor"]
            assert len(back) < 50, "the newer cursor does not advance"
        assert back == ids[::-1], f"{filters}: back through the same pages, newest first within each"
    # A newer page's next_cursor continues older from its last row.
    second = (
        await client.get(
            URL, params={"limit": 5, "cursor": forward[0]["next_cursor"]}, headers=viewer.headers
        )
    ).json()
    newer = (
        await client.get(URL, params={"limit": 5, "cursor": second["prev_cursor"]}, headers=viewer.headers)
    ).json()
    older = (
        await client.get(URL, params={"limit": 5, "cursor": newer["next_cursor"]}, headers=viewer.headers)
    ).json()
    assert [e["id"] for e in older["items"]] == [e["id"] for e in second["items"]]


async def test_a_newer_page_shows_runs_queued_since(
    client: httpx.AsyncClient, viewer: LoggedIn, runs: dict[str, Any]
) -> None:
    first = (await client.get(URL, params={"limit": 4}, headers=viewer.headers)).json()
    second = (
        await client.get(URL, params={"limit": 4, "cursor": first["next_cursor"]}, headers=viewer.headers)
    ).json()
    fresh = [await seeding.execution(runs["script_id"], utcnow(), chunks=0) for _ in range(2)]
    back = (
        await client.get(URL, params={"limit": 4, "cursor": second["prev_cursor"]}, headers=viewer.headers)
    ).json()
    assert [e["id"] for e in back["items"]] == runs["ids"][:4], "the 4 runs just newer than page 2"
    assert back["prev_cursor"], "the new runs are newer still"
    top = (
        await client.get(URL, params={"limit": 4, "cursor": back["prev_cursor"]}, headers=viewer.headers)
    ).json()
    assert [e["id"] for e in top["items"]] == fresh[::-1] and top["prev_cursor"] is None


CURSOR_MESSAGE = "not a cursor from this API: pass back the `next_cursor` of a previous page"


def _cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


@IN_MODULE_LOOP
@pytest.mark.parametrize(
    "cursor",
    [
        " ",  # (an emptied `?cursor=` is no cursor: the first page, tests/test_query_filters.py)
        "not a cursor!",
        "%%%",
        _cursor({"queued_at": "2026-01-01T00:00:00+00:00", "id": 3}),
        _cursor(["2026-01-01T00:00:00+00:00"]),
        _cursor(["2026-01-01T00:00:00", 3]),  # no time zone
        _cursor(["yesterday", 3]),
        _cursor(["0001-01-01T00:00:00+01:00", 3]),  # before year 1 in UTC
        # A control character in the time part: `datetime.fromisoformat` took each of them as
        # 2026-01-01 00:00 and the page answered 200 with the wrong runs.
        _cursor(["2026-01-01T00:00:00.000000+00:00\x00", 3]),
        _cursor(["2026-01-01T00:00:00.000000\x00+00:00", 3]),
        _cursor(["2026-01-01\x0000:00:00.000000+00:00", 3]),
        _cursor(["2026-01-01\x0100:00:00.000000+00:00", 3]),
        _cursor(["2026-01-01\x7f00:00:00.000000+00:00", 3]),
        _cursor(["2026-01-01T00:00:00.000000+00:00\n", 3]),
        _cursor(["2026-01-01 00:00:00.000000+00:00", 3]),
        _cursor(["2026-W01-1T00:00:00+00:00", 3]),
        _cursor(["20260101T000000+0000", 3]),
        _cursor(["2026-01-01T00:00:00,5+00:00", 3]),
        _cursor(["\uff12026-01-01T00:00:00+00:00", 3]),
        _cursor(["2026-01-01T00:00:00+00:00", 0]),
        _cursor(["2026-01-01T00:00:00+00:00", True]),
        _cursor(["2026-01-01T00:00:00+00:00", 2**63]),
        _cursor(["2026-01-01T00:00:00+00:00", 2**31]),  # past PostgreSQL's INTEGER ids: was a 500
        _cursor(["2026-01-01T00:00:00+00:00", "3"]),
        _cursor(["2026-01-01T00:00:00+00:00", 3, "older"]),
        _cursor(["2026-01-01T00:00:00+00:00", 3, "newer", "newer"]),
        base64.urlsafe_b64encode(b"\xff\xfe[1]").decode(),
        "A" * 201,
    ],
)
async def test_a_bad_cursor_is_a_422_naming_it(reader: Reader, cursor: str) -> None:
    client, viewer = reader.client, await reader.person(Role.viewer)
    r = await client.get(URL, params={"cursor": cursor}, headers=viewer.headers)
    assert r.status_code == 422, r.text
    # One message for every bad cursor, from the service (not the schema's regex or length).
    assert r.json()["errors"] == [{"field": "cursor", "message": CURSOR_MESSAGE}], r.text


@IN_MODULE_LOOP
@pytest.mark.parametrize(
    ("filters", "field"),
    [
        ({"script_id": 10**30}, "script_id"),
        ({"script_id": 2**31}, "script_id"),
        ({"user_id": 2**40}, "user_id"),
        ({"skip": 10**30}, "skip"),
    ],
)
async def test_out_of_range_filters_of_the_service_are_422_naming_them(
    reader: Reader, filters: dict[str, int], field: str
) -> None:
    """The history page passes its address's numbers (`/executions?page=10**24`, `?script_id=...`)
    to the service, not through the API's bounds: a number no id or offset can be is refused naming
    it (it reached the database and ended the page with a server error)."""
    admin = await reader.person(Role.admin)
    async with runtime.current().db.session() as s:
        user = await s.get(User, admin.id)
        with pytest.raises(Invalid) as refused:
            await executions.list_executions(s, Actor(user), **filters)
    assert [d["field"] for d in refused.value.details] == [field]


async def test_a_cursor_with_skip_is_refused(
    client: httpx.AsyncClient, viewer: LoggedIn, runs: dict[str, Any]
) -> None:
    first = (await client.get(URL, params={"limit": 2}, headers=viewer.headers)).json()
    r = await client.get(URL, params={"cursor": first["next_cursor"], "skip": 2}, headers=viewer.headers)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "skip", r.text


def test_a_cursor_round_trips_any_time_zone() -> None:
    at = datetime.fromisoformat("2026-11-30T19:00:00.000123+02:00")
    assert history_cursor.decode(history_cursor.encode(at, 42)) == history_cursor.Position(at, 42)
    naive = datetime(2026, 11, 30, 17, 0, 0, 123)  # stored naive UTC
    assert history_cursor.decode(history_cursor.encode(naive, 7)).queued_at == at
    newer = history_cursor.decode(history_cursor.encode(at, 42, newer=True))
    assert newer == history_cursor.Position(at, 42, newer=True)


@pytest.mark.parametrize("newer", [False, True], ids=["older", "newer"])
@pytest.mark.parametrize(
    ("filters", "index"),
    [
        ({}, "ix_executions_queued_at"),
        ({"status": "failed"}, "ix_executions_status_queued"),
        ({"script_id": "script"}, "ix_executions_script_queued"),
    ],
)
async def test_a_cursor_page_reads_its_filter_index(
    admin: LoggedIn, runs: dict[str, Any], filters: dict[str, Any], index: str, newer: bool
) -> None:
    await seeding.fresh_statistics()
    async with runtime.current().db.session() as s:
        actor = Actor(await s.get(User, admin.id))
    resolved = {k: runs["script_id"] if v == "script" else v for k, v in filters.items()}
    cursor = history_cursor.encode(runs["now"] - timedelta(hours=5), runs["ids"][5], newer=newer)
    async with runtime.current().db.session() as s:
        plans = await _plans_of(
            lambda: executions.list_executions(s, actor, **resolved, limit=5, cursor=cursor),
            f"ORDER BY executions.queued_at {'ASC' if newer else 'DESC'}",
        )
    assert index in plans[0], plans[0]


@IN_MODULE_LOOP
@pytest.mark.parametrize("wanted", [2**31, 10**23, -1])
async def test_a_page_address_with_an_id_no_row_can_have_is_not_found(reader: Reader, wanted: int) -> None:
    """`/scripts/{id}`, `/scripts/{id}/edit` and `/executions/{id}` hand their address's number to
    these getters without the API's bounds: past the databases' integers (2**31 on PostgreSQL,
    2**63 on SQLite) it is a 404 like any missing row, not a server error page."""
    admin = await reader.person(Role.admin)
    async with runtime.current().db.session() as s:
        actor = Actor(await s.get(User, admin.id))
        with pytest.raises(NotFound):
            await scripts.get(s, actor, wanted)
        with pytest.raises(NotFound):
            await executions.get(s, actor, wanted)


async def test_paging_goes_past_a_run_whose_stored_time_is_no_time(
    client: httpx.AsyncClient, viewer: LoggedIn, runs: dict[str, Any]
) -> None:
    """A run whose `queued_at` is text that is no time (SQLite holds any: a manual edit's) reads
    as 1970; its cursor was made from that 1970, so paging past it ended the history there, every
    older run left out. Its cursor holds the text stored, and the pages walk every run once,
    forward and back. PostgreSQL's timestamp refuses the text."""
    bad = runs["ids"][10]
    written = text("UPDATE executions SET queued_at = 'garbage' WHERE id = :id").bindparams(id=bad)
    if not await seeding.stored_on_sqlite(written):
        return
    # The database orders the text after every time written as text: it is listed first.
    expected = [bad, *(i for i in runs["ids"] if i != bad)]
    for limit in (1, 4):
        pages = await _walk(client, viewer.headers, limit=limit)
        assert [i for p in pages for i in p] == expected, limit
    last = (await client.get(URL, params={"limit": 1, "skip": 22}, headers=viewer.headers)).json()
    back, cursor = [], last["prev_cursor"]
    while cursor is not None:
        page = (await client.get(URL, params={"limit": 2, "cursor": cursor}, headers=viewer.headers)).json()
        back = [e["id"] for e in page["items"]] + back
        cursor = page["prev_cursor"]
    assert back == expected[:-1], "newer pages walk back to the newest run"
