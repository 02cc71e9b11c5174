"""Stored output is read in pages bounded by characters as well as by chunks (`log_pages`): a run
printing more than `PAGE_CHARS` through the local runner is read back by the logs API, the
download, the WebSocket's catch-up and `follow` (the SSE stream's and the execution page's
source) in pages that never pass the bound (a single larger chunk is a page of its own), with
every character exactly once, in order (SQLite and PostgreSQL).

Before, a page was bounded by its number of chunks alone: the first `/logs?limit=1000` page of
such a run held all of its ~10.9 M characters, and the catch-up read them in one statement."""

from __future__ import annotations

import functools
import json
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, select
from websockets.asyncio.client import connect

from opscraft import runtime
from opscraft.db.models import Execution, ExecutionLog
from opscraft.execution import log_pages
from opscraft.execution.client import ExecutionClient
from opscraft.execution.events import LogEvent, StatusEvent
from opscraft.execution.log_pages import PAGE_CHARS
from opscraft.services import chains, notifications
from tests.conftest import LoggedIn
from tests.executions.conftest import make_script, start, wait_for

LINES = 1_500_000


@functools.cache
def printed() -> str:
    """What `seq 1 1500000` prints: 10,888,896 characters, more than two pages' worth. Made at
    its first use, not at import: every pytest process collects this module, and made at import
    it cost each 0.26 s of CPU and 11 MB kept for the session (docs/benchmarks.md, session 53)."""
    return "".join(f"{n}\n" for n in range(1, LINES + 1))


@pytest.fixture
async def big_run(client: httpx.AsyncClient, admin: LoggedIn) -> int:
    """A finished local run that printed `printed()`."""
    script_id = await make_script(client, admin, f"seq 1 {LINES}\n")
    execution_id = int((await start(client, admin, script_id, "local"))["id"])
    ended = await wait_for(client, admin, execution_id, timeout=120)
    assert (ended["status"], ended["output_truncated"]) == ("success", False), ended
    return execution_id


def within_bound(contents: list[str]) -> bool:
    """What a page may hold: at most `PAGE_CHARS` characters, or a single chunk."""
    return len(contents) == 1 or sum(map(len, contents)) <= PAGE_CHARS


async def test_the_logs_api_pages_a_big_run_within_the_bound_every_character_once(
    client: httpx.AsyncClient, admin: LoggedIn, big_run: int
) -> None:
    pages: list[dict[str, Any]] = []
    offset = 0
    while not pages or not pages[-1]["complete"]:
        response = await client.get(
            f"/api/v1/executions/{big_run}/logs",
            params={"offset": offset, "limit": 1000},
            headers=admin.headers,
        )
        assert response.status_code == 200, response.text
        pages.append(response.json())
        offset = pages[-1]["next_offset"]
        assert len(pages) < 20
    sizes = [sum(len(c["content"]) for c in page["items"]) for page in pages]
    assert len(pages) >= 3 and all(within_bound([c["content"] for c in p["items"]]) for p in pages), sizes
    assert [page["more"] for page in pages] == [True] * (len(pages) - 1) + [False]
    chunks = [chunk for page in pages for chunk in page["items"]]
    assert [c["seq"] for c in chunks] == list(range(1, len(chunks) + 1))
    assert "".join(c["content"] for c in chunks) == printed()
    download = await client.get(f"/api/v1/executions/{big_run}/output.log", headers=admin.headers)
    assert download.status_code == 200 and download.text == printed()


async def test_the_catch_up_of_a_big_run_reads_bounded_pages_and_delivers_everything(
    client: httpx.AsyncClient,
    admin: LoggedIn,
    live_api: str,
    big_run: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The WebSocket's catch-up (and `follow` itself: the SSE stream and the execution page)
    reads the stored output in pages within the bound, and sends all of it once, in order."""
    read: list[list[str]] = []
    replay = ExecutionClient._replay

    async def recorded(self: ExecutionClient, execution_id: int, after: int) -> Any:
        rows = await replay(self, execution_id, after)
        read.append([row.content for row in rows if row.seq is not None])
        return rows

    monkeypatch.setattr(ExecutionClient, "_replay", recorded)
    token = admin.headers["Authorization"].removeprefix("Bearer ")
    messages = []
    async with connect(f"ws://{live_api}/ws/executions/{big_run}?token={token}", max_size=2**20) as ws:
        async for message in ws:
            messages.append(json.loads(message))
    logs = [m for m in messages if m["type"] == "log"]
    assert [m["seq"] for m in logs] == list(range(1, len(logs) + 1))
    assert "".join(m["content"] for m in logs) == printed() and messages[-1]["type"] == "end"
    assert len(read) >= 3 and all(map(within_bound, read)), [sum(map(len, page)) for page in read]

    read.clear()
    rt = runtime.current()
    assert rt.executions is not None
    events = [event async for event in rt.executions.follow(big_run, after_seq=1)]
    assert isinstance(events[0], StatusEvent) and isinstance(events[-1], StatusEvent) and events[-1].final
    followed = [e for e in events if isinstance(e, LogEvent)]
    assert [e.seq for e in followed] == list(range(2, len(logs) + 1))
    assert "".join(e.content for e in followed) == "".join(m["content"] for m in logs[1:])
    assert len(read) >= 3 and all(map(within_bound, read))


async def _add_chunks(execution_id: int, contents: list[tuple[str, str]]) -> None:
    """Stored chunks after the run's own first one: (stream, content) as seq 2, 3, ..."""
    async with runtime.current().db.engine.begin() as conn:
        await conn.execute(
            insert(ExecutionLog),
            [
                {"execution_id": execution_id, "seq": seq, "stream": stream, "content": content}
                for seq, (stream, content) in enumerate(contents, start=2)
            ],
        )


async def test_a_chunk_larger_than_the_bound_is_a_page_of_its_own_and_a_full_page_fits_exactly(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """Paging always makes progress: a chunk over the bound (none is written today, chunks hold
    128 Ki) is returned alone; chunks adding up to exactly the bound share a page; `chars` is
    set from each content (characters, not bytes) by the insert."""
    script_id = await make_script(client, admin, "echo first\n")
    execution_id = int((await start(client, admin, script_id, "local"))["id"])
    assert (await wait_for(client, admin, execution_id))["status"] == "success"
    small = "é" * 10
    contents = [
        ("stdout", "a" * (PAGE_CHARS + 5)),
        ("stderr", small),
        ("stdout", "b" * (PAGE_CHARS - len(small))),
        ("stdout", "c"),
    ]
    await _add_chunks(execution_id, contents)
    pages = []
    offset = 0
    while True:
        params = {"offset": offset, "limit": 1000}
        page = (
            await client.get(f"/api/v1/executions/{execution_id}/logs", params=params, headers=admin.headers)
        ).json()
        pages.append([c["seq"] for c in page["items"]])
        if page["complete"]:
            break
        offset = page["next_offset"]
    assert pages == [[1], [2], [3, 4], [5]]
    async with runtime.current().db.session() as session:
        stored = (
            await session.exec(select(ExecutionLog.seq, ExecutionLog.chars).order_by(ExecutionLog.seq))
        ).all()  # type: ignore[call-overload]
    assert [tuple(row) for row in stored if row[0] > 1] == [
        (seq, len(c)) for seq, (_, c) in enumerate(contents, 2)
    ]


async def test_chain_outputs_are_read_in_bounded_pages_a_line_cut_between_two_kept_whole(
    client: httpx.AsyncClient, admin: LoggedIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`chains.stored_outputs` reads stdout page by page (the whole stdout was one read): an
    output line cut between two pages is still found, stderr is never read."""
    script_id = await make_script(client, admin, "echo '::set-output name=first::1'\n")
    execution_id = int((await start(client, admin, script_id, "local"))["id"])
    assert (await wait_for(client, admin, execution_id))["status"] == "success"
    half = PAGE_CHARS // 2
    await _add_chunks(
        execution_id,
        [
            ("stdout", "x" * half + "\n"),
            ("stderr", "::set-output name=err::no\n" + "e" * half),
            ("stdout", "y" * (half - 30) + "\n::set-output na"),
            ("stdout", "me=cut::across pages\n" + "z" * half),
            ("stdout", "\n::set-output name=last::end"),
        ],
    )
    read = _record_pages(monkeypatch)
    async with runtime.current().db.session() as session:
        outputs = await chains.stored_outputs(session, execution_id)
    assert outputs == {"first": "1", "cut": "across pages", "last": "end"}
    assert len(read) >= 2 and all(map(within_bound, read))
    assert not any(content.startswith("::set-output name=err") for page in read for content in page)


def _record_pages(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The contents of every page of stored output read from now on (`log_pages.page_of`)."""
    read: list[list[str]] = []
    page_of = log_pages.page_of

    def recorded(rows: list[Any]) -> log_pages.StoredPage:
        read.append([row.content for row in rows])
        return page_of(rows)

    monkeypatch.setattr(log_pages, "page_of", recorded)
    return read


async def test_a_notification_excerpt_reads_the_newest_chunks_within_its_own_bound(
    client: httpx.AsyncClient, admin: LoggedIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The excerpt reads at most `EXCERPT_READ_CHARS` of the newest chunks (20 chunks of up to
    128 Ki characters each were read for 20 lines)."""
    script_id = await make_script(client, admin, "echo first\n")
    execution_id = int((await start(client, admin, script_id, "local"))["id"])
    assert (await wait_for(client, admin, execution_id))["status"] == "success"
    chunk = ("." * 1023 + "\n") * 128  # 128 Ki characters, as a loud run stores them
    await _add_chunks(execution_id, [("stdout", chunk)] * 19 + [("stderr", "fatal: boom\n")])
    read = _record_pages(monkeypatch)
    async with runtime.current().db.session() as session:
        execution = await session.get(Execution, execution_id)
        assert execution is not None
        message = await notifications.build_message(session, "success", execution)
    assert message["output_excerpt"].endswith("." * 1023 + "\nfatal: boom")
    assert len(read) == 1 and 0 < sum(map(len, read[0])) <= notifications.EXCERPT_READ_CHARS
