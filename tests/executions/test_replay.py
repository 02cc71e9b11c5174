"""The event stream's replay (`ExecutionClient.follow`, issue 15's one-statement `_REPLAY`): the
status, every stored chunk in order across pages, the end; nothing for a run that does not
exist (SQLite and PostgreSQL)."""

from __future__ import annotations

import httpx
from sqlalchemy import insert

from opscraft import runtime
from opscraft.db.models import ExecutionLog
from opscraft.execution import client as execution_client
from opscraft.execution.events import LogEvent, StatusEvent
from tests.conftest import LoggedIn
from tests.executions.conftest import make_script, start, wait_for


async def test_the_replay_pages_through_stored_output_in_order_then_ends(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    script_id = await make_script(client, admin, "echo first\n")
    execution_id = (await start(client, admin, script_id, "local"))["id"]
    ended = await wait_for(client, admin, execution_id)
    assert ended["status"] == "success"
    rt = runtime.current()
    assert rt.executions is not None
    extra = 2 * execution_client.REPLAY_PAGE + 7  # three pages after the run's own chunk
    async with rt.db.engine.begin() as conn:
        await conn.execute(
            insert(ExecutionLog),
            [
                {"execution_id": execution_id, "seq": seq, "stream": "stderr", "content": f"line {seq}\n"}
                for seq in range(2, 2 + extra)
            ],
        )
    events = [event async for event in rt.executions.follow(execution_id)]
    first, *logs, last = events
    assert isinstance(first, StatusEvent) and not first.final and first.status == "success"
    assert isinstance(last, StatusEvent) and last.final and last.exit_code == 0
    assert all(isinstance(e, LogEvent) for e in logs)
    assert [e.seq for e in logs] == list(range(1, 2 + extra))  # type: ignore[union-attr]
    assert logs[0].content == "first\n" and logs[-1].content == f"line {1 + extra}\n"  # type: ignore[union-attr]
    resumed = [event async for event in rt.executions.follow(execution_id, after_seq=extra)]
    assert [e.seq for e in resumed if isinstance(e, LogEvent)] == [extra + 1]
    assert [event async for event in rt.executions.follow(execution_id + 1000)] == []
