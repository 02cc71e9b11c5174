"""PostgreSQL connections the server closed (`pg_terminate_backend`, a restart, a PgBouncer-like
idle timeout) are found out at checkout and replaced (db/engine.py `_checked_out`): the request
right after, a write as well as a read, the worker's loop and the background loops all go on
without an error. Before, a connection closed a moment before its checkout (its end not read
yet) answered the next request 503 "the database is unreachable"; the worker's loop failed too."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from opscraft import runtime
from tests.conftest import PG_URL, LoggedIn, require_service
from tests.history.test_history_pg_round_trips import database_through, upstream
from tests.waiting import until

pytestmark = pytest.mark.postgres
ROUNDS = 15


@pytest.fixture
def backend() -> str:
    """These tests are about PostgreSQL's connections only."""
    require_service(bool(PG_URL), "PostgreSQL (OPSCRAFT_TEST_PG_URL)")
    return "postgresql"


async def _terminate_every_other_backend() -> None:
    """`pg_terminate_backend` of every client connection to the test's database but the admin's
    own; it returns once each is signalled, before the backends have gone. PostgreSQL's own
    processes on that database are left alone: an autovacuum worker runs as the bootstrap
    superuser, which the test's role may not signal (a CI run's "must be a superuser to
    terminate superuser process")."""
    assert PG_URL
    admin = await asyncpg.connect(make_url(PG_URL).set(drivername="postgresql").render_as_string(False))
    try:
        killed = await admin.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND backend_type = 'client backend' AND usename = current_user"
        )
        assert killed, "no connection to terminate"
    finally:
        await admin.close()


class DroppingRelay:
    """A TCP relay to PostgreSQL that `drop` cuts every connection of, without a word (a
    PgBouncer-like idle timeout, a load balancer's), while it goes on accepting new ones."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self._writers: list[asyncio.StreamWriter] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    def drop(self) -> int:
        """Close every relayed connection at once; how many there were."""
        dropped = len(self._writers)
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()
        return dropped

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self.drop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(*self.upstream)
        self._writers += [client_w, server_w]
        for pipe in (self._pipe(client_r, server_w), self._pipe(server_r, client_w)):
            task = asyncio.create_task(pipe)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()


@pytest.fixture
async def relayed(rt: runtime.Runtime, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[DroppingRelay]:
    """The runtime's database, for the API's requests, reached through a `DroppingRelay`."""
    async with database_through(rt, monkeypatch, DroppingRelay(*upstream())) as relay:
        yield relay


def _loops_answer_again(caplog: pytest.LogCaptureFixture) -> bool:
    """Every background loop whose round failed has had a round succeed since. A round whose
    transaction was under way when its connection was killed fails, as it must (what it did is
    gone with it); the next round runs on a new connection."""
    lines = [r.getMessage() for r in caplog.records]
    failed = {line.split(" failed: ")[0] for line in lines if " failed: the database is unreachable" in line}
    return all(f"{loop}: the database answers again" in lines for loop in failed)


async def _every_round_answers(
    client: httpx.AsyncClient, who: LoggedIn, cut: Callable[[], Awaitable[None]]
) -> None:
    """Each round: a read to fill the pool, `cut` its connections, then at once a read and a
    write (a new script), both answered as if nothing happened."""
    for round_ in range(ROUNDS):
        assert (await client.get("/api/v1/scripts", headers=who.headers)).status_code == 200
        await cut()
        read = await client.get("/api/v1/scripts", headers=who.headers)
        assert read.status_code == 200, (round_, read.text)
        await cut()
        body = {"name": f"after-cut-{round_}", "script_type": "bash", "content": "echo hi"}
        wrote = await client.post("/api/v1/scripts", json=body, headers=who.headers)
        assert wrote.status_code == 201, (round_, wrote.text)
    search = {"search": "after-cut", "limit": 100}
    listed = await client.get("/api/v1/scripts", params=search, headers=who.headers)
    assert listed.json()["total"] == ROUNDS  # each write done once


async def test_requests_right_after_pg_terminate_backend_answer_and_the_loops_go_on(
    client: httpx.AsyncClient, admin: LoggedIn, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    await _every_round_answers(client, admin, _terminate_every_other_backend)
    worker = runtime.current().worker
    assert worker is not None

    async def read_on_the_worker_loop() -> int:
        async with worker.loop.db.session() as session:
            return int((await session.exec(text("SELECT 1"))).scalar_one())  # type: ignore[call-overload]

    for _ in range(ROUNDS):
        assert worker.loop.run(read_on_the_worker_loop()) == 1  # fills the worker loop's pool
        await _terminate_every_other_backend()
        assert worker.loop.run(read_on_the_worker_loop()) == 1
    await until(lambda: _loops_answer_again(caplog), "every background loop to run a round again")


async def test_requests_right_after_an_idle_timeout_dropped_every_connection_answer(
    client: httpx.AsyncClient, admin: LoggedIn, relayed: DroppingRelay
) -> None:
    async def drop() -> None:
        assert relayed.drop()

    await _every_round_answers(client, admin, drop)
