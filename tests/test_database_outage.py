"""A PostgreSQL outage seen by a running server: the API and `/metrics` answer 503 saying the
database is unreachable (they answered 500 "internal error", `/metrics` a bare "Internal Server
Error"), and the log says so in a line per request and once per background loop, not a traceback
of about a hundred lines per request and per loop round (47,000 lines in four minutes)."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from opscraft.db.engine import Database
from opscraft.db.unreachable import is_unreachable
from tests.conftest import (
    PASSWORD,
    PG_URL,
    LiveServer,
    free_port,
    postgres_scratch_database,
    require_service,
    start_server,
    stop_server,
)
from tests.ui_journey import log_in
from tests.waiting import wait_until

pytestmark = pytest.mark.postgres
METRICS_TOKEN = "outage-metrics-" + "t" * 16
# The background loops that read the database every round (services and execution engine).
LOOPS = (
    "scheduler tick",
    "starting chained runs",
    "notification delivery round",
    "delivering run events",
    "worker housekeeping",
)


class TcpProxy:
    """Forwards 127.0.0.1:`port` to `target`; `stop` closes the port and every connection through
    it (the database gone, as in a restart), `start` opens it again. `frozen` set: nothing is
    forwarded and every connection stays open (a server that stopped answering: SIGSTOPped,
    swapped out, or a network path dropping packets); cleared: what was held goes on."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self.frozen = threading.Event()
        self._listener: socket.socket | None = None
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    @property
    def stopped(self) -> bool:
        return self._listener is None

    def start(self) -> None:
        listener = socket.create_server(("127.0.0.1", self.port))
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        assert self._listener is not None
        with contextlib.suppress(OSError):  # already stopped
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(); close() does not
        self._listener.close()
        self._listener = None
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._sockets += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                while self.frozen.is_set():
                    self.frozen.wait(0.05)  # a poll until thawed (Event has no wait-for-clear)
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


@contextlib.contextmanager
def _scratch_database() -> Iterator[str]:
    """`postgres_scratch_database`, held open by a thread of its own: the browser's sync Playwright
    runs an event loop on the test's thread, so no async fixture can run there."""
    ready: queue.Queue[str] = queue.Queue()
    done = threading.Event()

    async def hold() -> None:
        async with postgres_scratch_database() as url:
            ready.put(url)
            await asyncio.to_thread(done.wait)

    thread = threading.Thread(target=asyncio.run, args=(hold(),))
    thread.start()
    try:
        yield ready.get(timeout=60)
    finally:
        done.set()
        thread.join(60)


@contextlib.contextmanager
def _served_behind_proxy(data_dir: Path, extra_env: dict[str, str]) -> Iterator[tuple[LiveServer, TcpProxy]]:
    """A server on a scratch PostgreSQL database reached through a `TcpProxy`, with `extra_env`
    added to its environment."""
    require_service(bool(PG_URL), "PostgreSQL (OPSCRAFT_TEST_PG_URL)")
    with _scratch_database() as url:
        target = make_url(url)
        proxy = TcpProxy((target.host or "127.0.0.1", target.port or 5432))
        proxy.start()
        proxied = target.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        env = {"DATABASE_URL": proxied, "OPSCRAFT_METRICS_TOKEN": METRICS_TOKEN, **extra_env}
        server = start_server(data_dir, env)
        try:
            yield server, proxy
        finally:
            stop_server(server)
            if not proxy.stopped:
                proxy.stop()


@dataclass
class Outage:
    """The module's shared server behind its proxy, as one test finds it: `root`'s bearer
    header, and where the server's log stood when the server had started and when the test
    began (a test reads only its own part)."""

    server: LiveServer
    proxy: TcpProxy
    bearer: dict[str, str]
    started: int
    begun: int = 0

    def log(self) -> str:
        """The server's start and what it logged since this test began."""
        log = self.server.log()
        return log[: self.started] + log[self.begun :]


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outage]:
    """One server behind a proxy for the tests whose server has the default settings: a start
    costs seconds of the module's time. `root` is registered once."""
    with _served_behind_proxy(tmp_path_factory.mktemp("outage") / "data", {}) as (server, proxy):
        yield Outage(server, proxy, _register_root(server), len(server.log()))


def _loops_answer(log: str) -> bool:
    """Every background loop that logged a failure logged since that the database answers."""
    # rfind is -1 for a line never logged: a loop that never failed passes (-1 <= -1).
    return all(
        log.rfind(f"{loop} failed: the database is unreachable") <= log.rfind(f"{loop}: the database answers")
        for loop in LOOPS
    )


@pytest.fixture
def outage(shared_server: Outage) -> Iterator[Outage]:
    """The shared server with its database reachable and every loop past an earlier test's
    outage (a loop still failing would log no new failure); the proxy is restarted and thawed
    after the test, whatever its outcome."""
    server, proxy = shared_server.server, shared_server.proxy
    wait_until(lambda: httpx.get(f"{server.url}/api/v1/health").status_code == 200, "the database to answer")
    wait_until(lambda: _loops_answer(server.log()), "every loop to recover from an earlier outage")
    shared_server.begun = len(server.log())
    try:
        yield shared_server
    finally:
        proxy.frozen.clear()
        if proxy.stopped:
            proxy.start()


@pytest.fixture
def behind_proxy(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[LiveServer, TcpProxy]]:
    """A server of its own behind a proxy, with the indirect parameter (a dict) added to its
    environment."""
    with _served_behind_proxy(tmp_path / "data", request.param) as served:
        yield served


def _register_root(server: LiveServer) -> dict[str, str]:
    """Register the first user, `root` (an admin), and return its bearer header."""
    account = {"username": "root", "email": "r@x.io", "password": PASSWORD}
    r = httpx.post(f"{server.url}/api/v1/auth/register", json=account)
    assert r.status_code == 201, r.text
    r = httpx.post(f"{server.url}/api/v1/auth/login", json={"username": "root", "password": PASSWORD})
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _every_loop_logged(outage: Outage, after_name: str) -> bool:
    log = outage.log()
    return all(f"{loop}{after_name}" in log for loop in LOOPS)


def test_an_outage_is_503_database_unreachable_and_a_line_in_the_log_per_loop(outage: Outage) -> None:
    server, proxy, bearer = outage.server, outage.proxy, outage.bearer
    api = f"{server.url}/api/v1"
    assert httpx.get(f"{server.url}/metrics", headers=bearer).status_code == 200

    proxy.stop()
    answers = [
        httpx.get(f"{api}/scripts", headers=bearer),
        httpx.post(f"{api}/auth/login", json={"username": "root", "password": PASSWORD}),
        httpx.get(f"{server.url}/metrics", headers=bearer),
        httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}),
    ]
    for answer in answers:
        assert answer.status_code == 503, (answer.request.url, answer.text)
        assert answer.json()["detail"].startswith("the database is unreachable"), answer.text
        assert answer.headers["Retry-After"] == "5"
    health = httpx.get(f"{api}/health")
    assert (health.status_code, health.json()["database"]) == (503, "disconnected")
    # Every loop has failed several rounds by now (each polls at least every few seconds).
    wait_until(lambda: _every_loop_logged(outage, " failed: the database"), "every loop to notice")
    # An observation window, not a wait for a state: the outage lasts a few more rounds of every
    # loop (each polls at least every 5 s), so the "one warning per loop" check below counts
    # rounds that failed silently; a silent round leaves nothing to wait for.
    time.sleep(6)

    proxy.start()
    wait_until(lambda: httpx.get(f"{api}/health").status_code == 200, "the database back")
    wait_until(lambda: _every_loop_logged(outage, ": the database answers"), "every loop to recover")
    assert httpx.get(f"{api}/scripts", headers=bearer).status_code == 200
    log = outage.log()
    assert "Traceback" not in log, log
    for loop in LOOPS:
        assert log.count(f"{loop} failed: the database is unreachable") == 1, log
    assert log.count("GET /metrics: the database is unreachable (") >= 2, log  # the two answered 503


@pytest.mark.parametrize(
    "behind_proxy", [{"OPSCRAFT_DB_COMMAND_TIMEOUT_SECONDS": "2"}], indirect=True, ids=["command-timeout-2s"]
)
def test_a_frozen_database_is_503_within_the_command_timeout_not_a_request_held_for_ever(
    behind_proxy: tuple[LiveServer, TcpProxy],
) -> None:
    """A statement PostgreSQL never answers: before, the request (and its pooled connection) waited
    for ever (a GET still waiting after 40 s); now a 503 saying the database is unreachable once
    `OPSCRAFT_DB_COMMAND_TIMEOUT_SECONDS` has passed, its connection is discarded, and the server
    answers again as soon as the database does."""
    server, proxy = behind_proxy
    api = f"{server.url}/api/v1"
    bearer = _register_root(server)
    assert httpx.get(f"{api}/scripts", headers=bearer).status_code == 200
    proxy.frozen.set()
    started = time.monotonic()
    answer = httpx.get(f"{api}/scripts", headers=bearer, timeout=60)
    waited = time.monotonic() - started
    assert answer.status_code == 503, answer.text
    assert answer.json()["detail"].startswith("the database is unreachable"), answer.text
    assert answer.headers["Retry-After"] == "5"
    # 2 s unanswered, then up to 2 s for SQLAlchemy's graceful close of the discarded connection;
    # the rest is slack for a loaded machine (the point: not the 60 s the client would wait).
    assert waited < 20, waited
    proxy.frozen.clear()
    wait_until(lambda: httpx.get(f"{api}/scripts", headers=bearer).status_code == 200, "the database back")
    log = server.log()
    assert "GET /api/v1/scripts: the database is unreachable (OperationalError" in log, log
    assert "PostgreSQL did not answer within 2 s" in log, log
    assert "Traceback" not in log, log


async def test_unreachable_is_a_refused_connection_not_an_answered_error() -> None:
    """`is_unreachable`: true for a port nobody listens on, false for an error the server sent."""
    require_service(bool(PG_URL), "PostgreSQL (OPSCRAFT_TEST_PG_URL)")
    assert PG_URL
    nobody = make_url(PG_URL).set(host="127.0.0.1", port=free_port())
    closed = Database(nobody.render_as_string(hide_password=False))
    answering = Database(PG_URL)
    try:
        with pytest.raises(Exception) as refused:
            async with closed.session() as session:
                await session.exec(text("SELECT 1"))  # type: ignore[call-overload]
        with pytest.raises(Exception) as answered:
            async with answering.session() as session:
                await session.exec(text(f"SELECT * FROM missing_{secrets.token_hex(4)}"))  # type: ignore[call-overload]
    finally:
        await closed.dispose()
        await answering.dispose()
    assert is_unreachable(refused.value)
    assert not is_unreachable(answered.value)


@pytest.mark.browser
def test_an_open_page_and_a_page_opened_during_an_outage_say_the_database_is_unreachable(
    outage: Outage, page: Any
) -> None:
    """A Save clicked during the outage did nothing visible, and a page opened then was NiceGUI's
    "500 Server error ConnectionRefusedError: [Errno 111] Connection refused"."""
    server, proxy = outage.server, outage.proxy
    log_in(page, server, "root", then="/settings")
    page.get_by_test_id("settings-save").wait_for()

    proxy.stop()
    page.get_by_test_id("settings-save").click()
    page.locator(".q-notification", has_text="The database is unreachable").wait_for()
    response = page.goto(f"{server.url}/scripts")
    assert (response.status, response.headers["retry-after"]) == (503, "5")
    assert "The database is unreachable" in page.get_by_test_id("unavailable").inner_text()

    proxy.start()
    page.get_by_test_id("unavailable-retry").click()
    page.get_by_test_id("nav-scripts").wait_for()
    assert page.url == f"{server.url}/scripts"
