"""The history's per-request path on PostgreSQL (issue 15): a page costs its statements and the
transaction around them, no more round trips (the pool's pre-ping cost three more on every
request), and a pooled connection the server closed is still replaced before use.

Round trips are counted on the wire: the engine talks to PostgreSQL through a TCP relay that
counts the server's ReadyForQuery messages (PostgreSQL frontend/backend protocol, "Message
Flow": the server sends exactly one at the end of every simple query and every extended-query
Sync, i.e. once per round trip)."""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from collections.abc import AsyncIterator
from typing import Any, Protocol, TypeVar

import asyncpg
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from opscraft import runtime
from opscraft.db.engine import Database
from opscraft.db.types import utcnow
from opscraft.services import user_cache
from tests.conftest import PG_URL, LoggedIn, require_service
from tests.history import seeding

pytestmark = pytest.mark.postgres
URL = "/api/v1/executions"


@pytest.fixture
def backend() -> str:
    """These tests are about PostgreSQL's path only."""
    require_service(bool(PG_URL), "PostgreSQL (OPSCRAFT_TEST_PG_URL)")
    return "postgresql"


class CountingRelay:
    """A TCP relay to the PostgreSQL server that counts its ReadyForQuery ('Z') messages."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.ready_for_query = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(*self.upstream)
        for task in (self._copy(client_r, server_w), self._count(server_r, client_w)):
            running = asyncio.create_task(task)
            self._tasks.add(running)

    @staticmethod
    async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _count(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Server to client: every message is a type byte and a length (the client asked for no
        TLS, so there is no one-byte SSL answer first)."""
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                head = await reader.readexactly(5)
                kind, length = head[:1], struct.unpack("!i", head[1:])[0]
                body = await reader.readexactly(length - 4)
                if kind == b"Z":
                    self.ready_for_query += 1
                writer.write(head + body)
                await writer.drain()
        writer.close()


class Relay(Protocol):
    """A TCP relay to the PostgreSQL server of `PG_URL` (started on a port of its own)."""

    async def start(self) -> int: ...

    async def stop(self) -> None: ...


RelayT = TypeVar("RelayT", bound=Relay)


def upstream() -> tuple[str, int]:
    """Host and port of the test's PostgreSQL server, for a relay to it."""
    assert PG_URL
    url = make_url(PG_URL)
    return url.host or "127.0.0.1", url.port or 5432


@contextlib.asynccontextmanager
async def database_through(
    rt: runtime.Runtime, monkeypatch: pytest.MonkeyPatch, relay: RelayT
) -> AsyncIterator[RelayT]:
    """The runtime's database, for the API's requests, reached through `relay` (started here,
    stopped with the database's pool after)."""
    assert PG_URL
    port = await relay.start()
    url = make_url(PG_URL).set(host="127.0.0.1", port=port, query={"ssl": "disable"})
    db = Database(url.render_as_string(False))
    monkeypatch.setattr(rt, "db", db)
    try:
        yield relay
    finally:
        await db.dispose()
        await relay.stop()


@pytest.fixture
async def relayed(rt: runtime.Runtime, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[CountingRelay]:
    """The runtime's database, for the API's requests, reached through a `CountingRelay`."""
    async with database_through(rt, monkeypatch, CountingRelay(*upstream())) as relay:
        monkeypatch.setattr(user_cache, "TTL_SECONDS", 3600.0)  # the token's user read once, not per request
        yield relay


async def test_a_history_page_costs_its_statements_and_no_more_round_trips(
    client: httpx.AsyncClient, viewer: LoggedIn, relayed: CountingRelay
) -> None:
    script_id = await seeding.script()
    for _ in range(3):
        await seeding.execution(script_id, utcnow(), chunks=0)
    queries: list[dict[str, Any]] = [{}, {"status": "success", "limit": 2}]
    for params in queries:  # warm-up: connection, prepared statements, the token's user
        assert (await client.get(URL, params=params, headers=viewer.headers)).status_code == 200
    for params in queries * 3:
        before = relayed.ready_for_query
        r = await client.get(URL, params=params, headers=viewer.headers)
        assert r.status_code == 200, r.text
        # BEGIN, the capped count, the page, ROLLBACK at the connection's return to the pool.
        assert relayed.ready_for_query - before == 4, f"{relayed.ready_for_query - before} round trips"


async def test_a_connection_closed_by_the_server_is_replaced_before_use(
    client: httpx.AsyncClient, viewer: LoggedIn, relayed: CountingRelay
) -> None:
    db = runtime.current().db
    assert (await client.get(URL, headers=viewer.headers)).status_code == 200
    async with db.engine.connect() as conn:  # the one pooled connection the requests use
        pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        pooled = (await conn.get_raw_connection()).driver_connection
    assert PG_URL
    admin = await asyncpg.connect(make_url(PG_URL).set(drivername="postgresql").render_as_string(False))
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()
    deadline = time.monotonic() + 30
    while not pooled.is_closed():
        assert time.monotonic() < deadline, "the pooled connection never saw the server close it"
        await asyncio.sleep(0.05)
    for _ in range(3):
        r = await client.get(URL, headers=viewer.headers)
        assert r.status_code == 200, r.text
