"""Several watchers of one live run while the bus holds it (issue 15's lean path) and after it no
longer does: WebSocket watchers joining at its start, one reconnecting mid-run after a sequence
number, and the in-process follow the execution page uses. Each sees every chunk once, in order,
the script's secret only masked; once the run ended and they left, the bus keeps nothing of it."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from opscraft import runtime
from opscraft.execution.bus import LocalLogBus
from opscraft.execution.events import LogEvent
from tests.conftest import LoggedIn
from tests.executions.conftest import make_script, output, start, wait_for
from tests.executions.test_executions_ws import check_exactly_once, collect, token_of, url
from tests.waiting import until

SECRET = "Zq8-bus-secret-Vk3"
# Quiet first (the bus holds the whole run while watchers join), then output large enough to be
# stored in several batches while they watch, the secret on every line.
SCRIPT = 'sleep 1\necho "first $S"\nseq 1 20000 | sed "s/$/ $S/"\nsleep 0.5\necho "last $S"\n'
EXPECTED = "".join(["first ***\n", *(f"{i} ***\n" for i in range(1, 20001)), "last ***\n"])


@pytest.fixture
def backend() -> str:
    """The lean path is SQLite's (this process's worker, the in-process bus)."""
    return "sqlite"


async def _secret_script(client: httpx.AsyncClient, operator: LoggedIn) -> int:
    r = await client.post("/api/v1/secrets", json={"name": "S", "value": SECRET}, headers=operator.headers)
    assert r.status_code == 201, r.text
    script_id = await make_script(client, operator, SCRIPT)
    r = await client.post(f"/api/v1/scripts/{script_id}/secrets/{r.json()['id']}", headers=operator.headers)
    assert r.status_code == 201, r.text
    return script_id


async def _watch(address: str, execution_id: int, token: str) -> list[dict[str, Any]]:
    """Every message of one WebSocket watcher, to the server's normal close."""
    async with connect(url(address, execution_id, token)) as ws:
        messages, code = await collect(ws)
    assert code == 1000
    return messages


async def _reconnecting(address: str, execution_id: int, token: str, after_logs: int) -> list[dict[str, Any]]:
    """Watch until `after_logs` chunks came, leave, come back with `?after=` the last seq."""
    first: list[dict[str, Any]] = []
    async with connect(url(address, execution_id, token)) as ws:
        while sum(m["type"] == "log" for m in first) < after_logs:
            first.append(json.loads(await ws.recv()))
    last = max(m["seq"] for m in first if m["type"] == "log")
    async with connect(url(address, execution_id, token, after=last)) as ws:
        rest, code = await collect(ws)
    assert code == 1000
    assert rest[0]["type"] == "status"
    return [*first, *rest[1:]]


async def test_several_watchers_of_a_held_run_see_it_once_masked_and_the_bus_lets_it_go(
    client: httpx.AsyncClient, live_api: str, operator: LoggedIn, rt: runtime.Runtime
) -> None:
    assert rt.executions is not None and isinstance(rt.executions.bus, LocalLogBus)
    bus = rt.executions.bus
    script_id = await _secret_script(client, operator)
    started = await start(client, operator, script_id, "local")
    execution_id, token = started["id"], token_of(operator)

    async def in_process() -> list[dict[str, Any]]:
        assert rt.executions is not None
        return [event.message() async for event in rt.executions.follow(execution_id)]

    assert await _held(bus, execution_id)  # as the watchers below join
    watched = await asyncio.wait_for(
        asyncio.gather(
            _watch(live_api, execution_id, token),
            _watch(live_api, execution_id, token),
            in_process(),
            _reconnecting(live_api, execution_id, token, after_logs=3),
        ),
        120,
    )
    for messages in watched:
        text = json.dumps(messages)
        assert SECRET not in text and "Vk3" not in text
        assert messages[0] == {**messages[0], "type": "status", "status": "running"}
        assert check_exactly_once(messages) == EXPECTED
        assert messages[-1]["status"] == "success"
    assert await output(client, operator, execution_id) == EXPECTED
    assert (await wait_for(client, operator, execution_id))["status"] == "success"
    # Every watcher left and every chunk is stored: the bus keeps no channel for the run.
    assert await until(lambda: execution_id not in bus._channels, "the run's bus channel released", 10)


async def _held(bus: LocalLogBus, execution_id: int) -> bool:
    """Wait until the bus holds the run whole (its `running` event, nothing stored)."""

    def held() -> bool:
        channel = bus._channels.get(execution_id)
        return channel is not None and channel.whole is not None

    return await until(held, "the bus holding the whole run", 10)


@pytest.mark.parametrize("how", ["cancel", "timeout"])
async def test_a_held_run_cancelled_or_timed_out_ends_its_watchers(
    client: httpx.AsyncClient, live_api: str, operator: LoggedIn, rt: runtime.Runtime, how: str
) -> None:
    """Watchers that joined while the bus held the run get its end as the row says it, once."""
    assert rt.executions is not None and isinstance(rt.executions.bus, LocalLogBus)
    bus = rt.executions.bus
    script_id = await make_script(client, operator, "sleep 0.5\necho begun\nsleep 60\n", timeout_seconds=2)
    started = await start(client, operator, script_id, "local")
    execution_id = started["id"]
    assert await _held(bus, execution_id)

    token = token_of(operator)
    watchers = asyncio.gather(*(_watch(live_api, execution_id, token) for _ in range(2)))
    if how == "cancel":
        assert await until(
            lambda: bool((c := bus._channels.get(execution_id)) and c.logs), "output on the bus", 10
        )
        r = await client.post(f"/api/v1/executions/{execution_id}/cancel", headers=operator.headers)
        assert r.status_code == 200, r.text
    watched = await asyncio.wait_for(watchers, 60)
    final = await wait_for(client, operator, execution_id)
    assert final["status"] == ("cancelled" if how == "cancel" else "timed_out"), final
    for messages in watched:
        assert messages[0]["status"] == "running"
        assert check_exactly_once(messages) == "begun\n"
        end = messages[-1]
        assert {k: end[k] for k in ("status", "exit_code", "error_message", "finished_at")} == {
            k: final[k] for k in ("status", "exit_code", "error_message", "finished_at")
        }
    assert await until(lambda: execution_id not in bus._channels, "the run's bus channel released", 10)


async def test_a_chunk_has_the_same_time_live_and_stored(
    client: httpx.AsyncClient, operator: LoggedIn, rt: runtime.Runtime
) -> None:
    """The page's *Timestamps* stamped a line live with the time the worker produced it, and
    after a reload with the time its batch was stored (a quarter of a second later, minutes
    after a database outage): a chunk is stored with the time it was produced, on the
    database's clock as the run's own times."""
    assert rt.executions is not None
    script_id = await make_script(client, operator, "sleep 1\necho one\nsleep 1\necho two >&2\n")
    started = await start(client, operator, script_id, "local")
    execution_id = started["id"]
    live = [(e.seq, e.at) async for e in rt.executions.follow(execution_id) if isinstance(e, LogEvent)]
    stored = [(e.seq, e.at) async for e in rt.executions.follow(execution_id) if isinstance(e, LogEvent)]
    assert [seq for seq, _ in live] == [1, 2] and all(at is not None for _, at in live)
    assert stored == live
