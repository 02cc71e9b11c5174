"""Shared fixtures: real SQLite and PostgreSQL, an in-process API client, a live server for browsers.

Services come from `tests/run` through environment variables. When `CI=true` a missing service
fails the test instead of skipping it.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from sqlalchemy import text

from opscraft import lifecycle, runtime
from opscraft.api import install_api
from opscraft.config import Settings, load_settings
from opscraft.db.models import Role
from opscraft.services import users
from opscraft.services.users import UserCreate
from tests import compiled_sql, http_calls, migrated_sqlite, module_durations, ports
from tests.migrated_sqlite import DATABASE_FILE
from tests.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"


def _services_of_this_worker() -> None:
    """Under pytest-xdist (`tests/run` runs the suite in several worker processes) each worker
    gets a PostgreSQL database and a Redis database of its own, created empty here, so that one
    worker's truncations and flushes never reach another's tests; the environment variables are
    rewritten so that every server process a test starts uses them too."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1", ...
    # Once per worker: a helper process a test starts (it inherits the rewritten variables)
    # may import this module too, and must neither rename nor empty the worker's databases.
    if not worker.startswith("gw") or os.environ.get("OPSCRAFT_TEST_SERVICES_OF") == worker:
        return
    os.environ["OPSCRAFT_TEST_SERVICES_OF"] = worker
    index = int(worker[2:])
    redis_url = os.environ.get("OPSCRAFT_TEST_REDIS_URL")
    if redis_url:  # redis://host:port/15 -> /15, /14, ... (Redis has 16 databases)
        base, _, db = redis_url.rpartition("/")
        os.environ["OPSCRAFT_TEST_REDIS_URL"] = f"{base}/{int(db) - index}"
    pg_url = os.environ.get("OPSCRAFT_TEST_PG_URL")
    if pg_url:
        import asyncpg
        from sqlalchemy.engine import make_url

        server = make_url(pg_url)
        name = f"{server.database}_{worker}"

        async def fresh() -> None:
            admin_url = server.set(drivername="postgresql").render_as_string(hide_password=False)
            conn = await asyncpg.connect(admin_url)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                await conn.execute(f'CREATE DATABASE "{name}"')
            finally:
                await conn.close()

        asyncio.run(fresh())
        os.environ["OPSCRAFT_TEST_PG_URL"] = server.set(database=name).render_as_string(hide_password=False)


_services_of_this_worker()
compiled_sql.share_across_engines()  # a test's engine reuses what earlier tests' engines compiled

# httpx's default timeout (5 s) failed tests on a loaded CI machine where a live server was only
# slow (a POST /api/v1/scripts read timed out): every httpx call of the suite that does not pass
# its own timeout now waits up to 60 s. The default object is shared by reference by httpx.get,
# httpx.post, ... and httpx.Client, so it is changed in place.
for _phase in ("connect", "read", "write", "pool"):
    setattr(httpx._config.DEFAULT_TIMEOUT_CONFIG, _phase, 60.0)
http_calls.install()  # httpx.get, httpx.post, ... without loading the CA bundle each call
PG_URL = os.environ.get("OPSCRAFT_TEST_PG_URL")
REDIS_URL = os.environ.get("OPSCRAFT_TEST_REDIS_URL")
IN_CI = os.environ.get("CI", "").lower() == "true"
PASSWORD = "Correct-Horse-9"


def require_service(available: bool, what: str) -> None:
    """Skip when a service is missing locally; fail in CI, where a skip would hide a gap."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"{what} is required when CI=true (run the suite through tests/run)")
    pytest.skip(f"{what} not available (run the suite through tests/run)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The order in which `tests/run` hands whole modules to its processes (`--dist loadfile
    --no-loadscope-reorder`): the longest modules first, by their durations in a full run
    (tests/module_durations.py). Handed out by test count (xdist's own order), the browser
    modules came last and one process ran them alone for minutes at the end.

    First, tests that share one node id get the id of their own name: schemathesis 4 names each
    route's test `test_...[GET /api/v1/health]` but hands pytest the bare function name, from which
    pytest 9.2 builds the node id, so the 100 routes of tests/test_openapi_fuzz.py had one id, and
    pytest-xdist, which schedules by node id, ran the first route only."""
    for item in items:
        if isinstance(item, pytest.Function) and not item.nodeid.endswith(f"::{item.name}"):
            item._id = item.parent.id.child(item.name)  # type: ignore[union-attr]  # pytest 9.2: nodeid reads _id
    by_module: dict[str, list[pytest.Item]] = {}
    for item in items:
        by_module.setdefault(item.nodeid.split("::", 1)[0], []).append(item)
    seconds = module_durations.estimate(
        module_durations.load(), {module: len(tests) for module, tests in by_module.items()}
    )
    order = sorted(by_module, key=lambda module: -seconds[module])
    items[:] = [item for module in order for item in by_module[module]]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed test that used a live `server` (or a browser `page`) carries the server's last log
    lines and the page's visible notifications in its report: CI keeps only the report, and a
    browser test that timed out waiting for a message otherwise says nothing of why."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    funcargs = getattr(item, "funcargs", {})
    server = funcargs.get("server")
    if isinstance(server, LiveServer) and server.log_path.exists():
        tail = server.log().splitlines()[-80:]
        report.sections.append(("live server log (last 80 lines)", "\n".join(tail)))
    page = funcargs.get("page")
    if page is not None:
        page.failed = True  # the fixture keeps a screenshot of it
        try:
            shown = page.locator(".q-notification, .q-field--error").all_inner_texts()
            console = "\n".join(getattr(page, "console_tail", ()))
            report.sections.append(
                ("page", f"url {page.url}\nnotifications and field errors: {shown}\nconsole:\n{console}")
            )
            if hasattr(page, "socket_tail"):
                report.sections.append(("page's socket (trace_socket)", "\n".join(page.socket_tail)))
        except Exception as exc:  # a closed or hung page: the report still says what it could
            report.sections.append(("page", f"unreadable: {exc}"))


def make_settings(
    tmp_path: Path, database_url: str | None = None, *, migrated: bool = True, **overrides: Any
) -> Settings:
    """Settings of a test's data directory `tmp_path`. On the default SQLite database in it,
    `migrated` puts an empty database already at the head revision there first
    (`tests.migrated_sqlite`); `migrated=False` leaves the first start to migrate."""
    values: dict[str, Any] = {
        "OPSCRAFT_DATA_DIR": tmp_path,
        "SECRET_KEY": "test-secret-key-" + "x" * 32,
        "ENVIRONMENT": "dev",
        "OPSCRAFT_RATE_LIMIT_AUTH": 10_000,
        "OPSCRAFT_RATE_LIMIT_API": 100_000,
    }
    if database_url:
        values["DATABASE_URL"] = database_url
    values.update(overrides)
    settings = load_settings(**values)
    in_data_dir = f"sqlite+aiosqlite:///{settings.data_dir / DATABASE_FILE}"
    if migrated and settings.effective_database_url == in_data_dir:
        migrated_sqlite.seed(settings.data_dir)
    return settings


async def empty_postgres(url: str) -> None:
    """Empty every table of the test database and restart its sequences (ids from 1 again).

    DELETE of the tables that hold rows, children first, rather than one TRUNCATE of them all:
    TRUNCATE gives each of the 33 tables new files that the commit syncs to disk (0.6-1.7 s per
    test with PostgreSQL's default fsync, most of a short PostgreSQL test), where a test leaves
    rows in a handful of small tables. The tables are the models' (tests/test_migrations.py
    holds the migrated schema to them); a database not migrated yet has none to empty."""
    from sqlmodel import SQLModel

    from opscraft.db.engine import create_engine

    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            rows = await conn.execute(
                text(
                    "SELECT tablename FROM pg_tables"
                    " WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
                )
            )
            names = {r[0] for r in rows}
            if not names:
                return
            probe = " UNION ALL ".join(
                f"SELECT '{n}' WHERE EXISTS (SELECT 1 FROM \"{n}\")" for n in sorted(names)
            )
            filled = {r[0] for r in await conn.execute(text(probe))}
            for table in reversed(SQLModel.metadata.sorted_tables):  # children first
                if table.name in filled:
                    await conn.execute(text(f'DELETE FROM "{table.name}"'))
            await conn.execute(
                text(
                    "SELECT setval(c.oid, 1, false) FROM pg_class c"
                    " WHERE c.relkind = 'S' AND c.relnamespace = 'public'::regnamespace"
                )
            )
    finally:
        await engine.dispose()


@asynccontextmanager
async def postgres_scratch_database() -> AsyncIterator[str]:
    """A new, empty PostgreSQL database of its own (the test role has CREATEDB), dropped afterwards."""
    import asyncpg
    from sqlalchemy.engine import make_url

    assert PG_URL
    name = f"opscraft_scratch_{secrets.token_hex(4)}"
    server = make_url(PG_URL)
    conn = await asyncpg.connect(server.set(drivername="postgresql").render_as_string(hide_password=False))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
        try:
            yield server.set(database=name).render_as_string(hide_password=False)
        finally:
            await _drop_database(conn, name)
    finally:
        await conn.close()


async def drop_databases(names: list[str], at_once: int = 16) -> None:
    """Drop the PostgreSQL databases `names` of the test server (`_drop_database`), up to
    `at_once` at a time, each on a connection of its own: each DROP DATABASE waits for a
    checkpoint, and drops waiting together share one. On a busy 2-core machine: 6 empty
    databases 3.6-4.8 s one after another, 0.1-0.25 s together; 12 with 60 tables each 18.2 s
    one after another, 4.2 s 8 at a time (the server allows 100 connections)."""
    import asyncpg
    from sqlalchemy.engine import make_url

    assert PG_URL
    server = make_url(PG_URL).set(drivername="postgresql").render_as_string(hide_password=False)
    turns = asyncio.Semaphore(at_once)

    async def drop(name: str) -> None:
        async with turns:
            conn = await asyncpg.connect(server)
            try:
                await _drop_database(conn, name)
            finally:
                await conn.close()

    await asyncio.gather(*(drop(name) for name in names))


async def _drop_database(conn: Any, name: str, within: float = 60.0) -> None:
    """DROP DATABASE ... WITH (FORCE), again while an autovacuum worker (a superuser process
    the test role may not terminate) is busy in it: that refusal lasts only as long as its pass."""
    import asyncpg

    deadline = time.monotonic() + within
    while True:
        try:
            await conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            return
        except (asyncpg.InsufficientPrivilegeError, asyncpg.ObjectInUseError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


@pytest.fixture(scope="session", autouse=True)
def fast_password_hashing() -> Iterator[None]:
    """In-process tests hash with cheap argon2id parameters (the live server keeps the real ones)."""
    from argon2 import PasswordHasher

    from opscraft.security import passwords

    real = passwords._hasher
    passwords._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    try:
        yield
    finally:
        passwords._hasher = real


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgresql":
        require_service(bool(PG_URL), "PostgreSQL (OPSCRAFT_TEST_PG_URL)")
    return str(request.param)


@pytest.fixture
async def rt(backend: str, tmp_path: Path) -> AsyncIterator[runtime.Runtime]:
    """A started runtime on a clean database of the parametrized backend."""
    url = PG_URL if backend == "postgresql" else None
    if url:  # before the start, which stores the vault's key check for this test's master key
        await empty_postgres(url)
    settings = make_settings(tmp_path, url)
    started = await lifecycle.start(settings)
    try:
        yield started
    finally:
        await lifecycle.stop()


class _ReadSettings:
    """`Settings` that records which of its fields were read (`api_app_for`)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.read: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        self.read.add(name)
        return getattr(self._settings, name)


# The settings `install_api` reads (its middlewares' limits): an app whose build reads another fails.
_API_APP_FIELDS = ("max_body_bytes", "max_state_bytes", "max_json_depth", "max_json_keys", "cors_origins")
_api_apps: dict[str, FastAPI] = {}


def api_app_for(settings: Settings) -> FastAPI:
    """The API on a bare FastAPI for `settings`, built once per test process for each value of
    the settings it reads. The API reads its runtime from `runtime.current()`, not from the app;
    but FastAPI (0.165) builds each included route's state (its dependency tree and pydantic
    validators) at an app's first request: about 0.5 s of CPU for the whole API, which was most
    of the CPU of a short API test (tests/test_rbac_matrix.py: 80 % of its main thread)."""
    key = repr([getattr(settings, name) for name in _API_APP_FIELDS])
    if key not in _api_apps:
        app = FastAPI()
        recorder = _ReadSettings(settings)
        install_api(app, recorder)  # type: ignore[arg-type]
        unknown = recorder.read - set(_API_APP_FIELDS)
        assert not unknown, f"install_api reads {unknown}: add them to _API_APP_FIELDS"
        _api_apps[key] = app
    return _api_apps[key]


@pytest.fixture
def api_app(rt: runtime.Runtime) -> FastAPI:
    return api_app_for(rt.settings)


@asynccontextmanager
async def api_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client calling `app` in process (ASGI), as if from 127.0.0.1."""
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture
async def client(api_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(api_app) as c:
        yield c


@dataclass
class LoggedIn:
    id: int
    username: str
    role: Role
    headers: dict[str, str]


async def make_user(client: httpx.AsyncClient, role: Role | str, username: str | None = None) -> LoggedIn:
    """Create a user directly through the service layer and log in over the API. The default
    name has 48 random bits: a module's database can hold thousands of users (24 bits made a
    rare duplicate-name 409)."""
    role = Role(role)
    username = username or f"{role.value}-{secrets.token_hex(6)}"
    async with runtime.current().db.session() as session:
        user = await users.bootstrap(
            session,
            UserCreate(username=username, email=f"{username}@example.com", password=PASSWORD, role=role),
        )
    response = await client.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    assert user.id is not None
    return LoggedIn(user.id, username, role, {"Authorization": f"Bearer {token}"})


@pytest.fixture
async def admin(client: httpx.AsyncClient) -> LoggedIn:
    return await make_user(client, Role.admin, "admin")


@pytest.fixture
async def operator(client: httpx.AsyncClient) -> LoggedIn:
    return await make_user(client, Role.operator, "operator")


@pytest.fixture
async def viewer(client: httpx.AsyncClient) -> LoggedIn:
    return await make_user(client, Role.viewer, "viewer")


# --- one runtime for a module's tests that write nothing ----------------------------------------

IN_MODULE_LOOP = pytest.mark.asyncio(loop_scope="module")  # the loop `reader`'s runtime lives in


@dataclass
class Reader:
    """A runtime shared by a module's tests that write no row (`reader`), a client of its API,
    its people (one signed-in user per role) and the rows its tests read (`rows`), each made at
    the first test that asks."""

    runtime: runtime.Runtime
    client: httpx.AsyncClient
    people: dict[Role, LoggedIn]
    made: dict[str, Any] = field(default_factory=dict)

    async def person(self, role: Role) -> LoggedIn:
        if role not in self.people:
            self.people[role] = await make_user(self.client, role, role.value)
        return self.people[role]

    async def rows(self, key: str, make: Callable[[], Awaitable[Any]]) -> Any:
        """What `make()` returned at the first test that asked for `key`: rows the module's
        tests read and none of them changes (an address's script, a run), made once per database."""
        if key not in self.made:
            self.made[key] = await make()
        return self.made[key]


@asynccontextmanager
async def _started_reader(
    data_dir: Path, url: str | None, overrides: dict[str, Any]
) -> AsyncIterator[Reader]:
    """A started runtime on `url` (None: SQLite in `data_dir`) with the settings `overrides`,
    and a client of its API."""
    settings = make_settings(data_dir, url, **overrides)
    started = await lifecycle.start(settings)
    try:
        async with api_client(api_app_for(settings)) as c:
            yield Reader(started, c, {})
    finally:
        runtime.install(started)  # a test between two readers may have started and stopped its own
        await lifecycle.stop()


@pytest.fixture(scope="module")
def reader_settings() -> dict[str, Any]:
    """Settings overrides of the module's `reader` runtime: none here; a directory's conftest
    overrides this fixture so that its refused-input tests run with the settings its per-test
    runtime has (tests/automation: loopback receivers allowed)."""
    return {}


@pytest_asyncio.fixture(
    scope="module",
    loop_scope="module",
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
async def _module_reader(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, reader_settings: dict[str, Any]
) -> AsyncIterator[Reader]:
    """One runtime per database for a module's tests that write nothing, on a database no other
    test empties (PostgreSQL: a scratch database; the per-test `rt` empties the process's own)."""
    data_dir = tmp_path_factory.mktemp("reader")
    if request.param == "sqlite":
        async with _started_reader(data_dir, None, reader_settings) as shared:
            yield shared
        return
    require_service(bool(PG_URL), "PostgreSQL (OPSCRAFT_TEST_PG_URL)")
    async with (
        postgres_scratch_database() as url,
        _started_reader(data_dir, url, reader_settings) as shared,
    ):
        yield shared


@pytest.fixture
def reader(_module_reader: Reader) -> Iterator[Reader]:
    """The module's shared runtime (`_module_reader`, one per database) installed as
    `runtime.current()` for one test that writes no row: a test that writes in between starts
    and stops a runtime of its own (`rt`). Such tests run in the module's event loop
    (`@IN_MODULE_LOOP`). A runtime per test (start, stop, sign-in, emptying PostgreSQL) cost
    several times a request that only reads or is refused (docs/benchmarks.md, session 25)."""
    runtime.install(_module_reader.runtime)
    try:
        yield _module_reader
    finally:
        runtime.install(None)


# --- live server + browser -------------------------------------------------------------------


@dataclass
class LiveServer:
    url: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_server(
    data_dir: Path,
    extra_env: dict[str, str] | None = None,
    port: int | None = None,
    root: Path = ROOT,
    *,
    migrated: bool = True,
) -> LiveServer:
    """Run `opscraft serve` as a real process on `port` (default: a free one) and wait until it
    is healthy. `root`: the source tree it runs (another worktree, for paired benchmarks).
    `migrated`: on the default SQLite database, start on an empty database already at the head
    revision (`tests.migrated_sqlite`), not on an empty directory.

    Healthy means answered by this process (`tests.ports.listens_on`): a free port picked here
    can be taken by another test process's server before this one binds it, and then started
    again on another (twice at most); a `port` given is used as it is."""
    for _ in range(3 if port is None else 1):
        server = _start_server_on(port or free_port(), data_dir, extra_env, root, migrated)
        if server is not None:
            return server
    raise RuntimeError(
        f"server's port was taken every time:\n{(data_dir / 'server.log').read_text(errors='replace')}"
    )


def _start_server_on(
    port: int, data_dir: Path, extra_env: dict[str, str] | None, root: Path, migrated: bool
) -> LiveServer | None:
    """`start_server` on `port`: None when another process took the port first."""
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {
        # Without pytest's marker: NiceGUI would otherwise run the server in its test mode.
        **{k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"},
        "OPSCRAFT_DATA_DIR": str(data_dir),
        "SECRET_KEY": "live-server-secret-" + "y" * 32,
        "OPSCRAFT_RATE_LIMIT_AUTH": "1000",
        "OPSCRAFT_RATE_LIMIT_API": "100000",
        "OPSCRAFT_NO_BOOTSTRAP": "1",
        **(extra_env or {}),
    }
    if migrated and not {"DATABASE_URL", "DB_HOST"} & env.keys():
        migrated_sqlite.seed(data_dir)
    log_path = data_dir / "server.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "opscraft", "serve", "--port", str(port)],
            cwd=root,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    server = LiveServer(f"http://127.0.0.1:{port}", data_dir, process, log_path, env)
    # A bound on a failure, not a wait: a start is about 5 s of CPU (imports, the API's route
    # state), and at load 20-30 on a 2-core machine it took 88-100 s (docs/benchmarks.md, session 27).
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if process.poll() is not None:
            if ports.ADDRESS_IN_USE in server.log().lower():
                return None
            raise RuntimeError(f"server exited early:\n{server.log()}")
        try:
            if httpx.get(f"{server.url}/api/v1/health", timeout=1).status_code == 200 and ports.listens_on(
                process.pid, port
            ):
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"server did not become healthy:\n{server.log()}")


def stop_server(server: LiveServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    server = start_server(tmp_path / "server")
    try:
        yield server
    finally:
        stop_server(server)


@pytest.fixture
def one_rate_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """The rate limiters' clock (the database's: `db.clock`) stands still at the test's start:
    every request of the test counts in one fixed one-minute window. A test counting to a limit
    otherwise failed when its requests straddled a minute's turn (the count starts again: a 202
    where a 429 was due), which at load 25 no wait for a fresh window could rule out. Monotonic
    time (Redis retries) runs on."""
    from types import SimpleNamespace

    from opscraft.db import clock
    from opscraft.security import ratelimit

    frozen = clock.now()
    monkeypatch.setattr(ratelimit, "clock", SimpleNamespace(now=lambda: frozen))


# Debian's Chromium headless shell (package chromium-headless-shell): the same Blink engine as
# the full browser, built for headless use as Playwright's own headless Chromium is. The browser
# modules cost the machine about a fifth less CPU than with the full browser in its headless mode
# (tests/test_ui_dialog_fields_browser.py and test_ui_editor_browser.py: 38 s against 49 s of CPU),
# and the suite is CPU-bound on 2 cores. OPSCRAFT_TEST_CHROMIUM=/usr/bin/chromium runs the full one.
CHROMIUM = os.environ.get("OPSCRAFT_TEST_CHROMIUM", "/usr/bin/chromium-headless-shell")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Chromium run as root raises its renderers' main, compositor and IO threads to nice -8 (it holds
# CAP_SYS_NICE): on a busy 2-core machine they then starve the servers under test, whose event
# loops stall for seconds (a page's socket answered late, a click acted on late). Started
# without that capability (`setpriv`), its threads keep the tests' priority, as a browser on a
# person's own machine leaves the server's CPU alone.
PLAIN_PRIORITY = ROOT / "tests" / "chromium_plain_priority.sh"


def chromium_launch(pw: Any) -> Any:
    """Playwright's Chromium (`CHROMIUM`, `CHROMIUM_ARGS`), launched at the tests' priority
    (`PLAIN_PRIORITY`) when run as root with `setpriv` at hand; returns the Browser."""
    if os.geteuid() == 0 and shutil.which("setpriv"):
        return pw.chromium.launch(
            executable_path=str(PLAIN_PRIORITY),
            args=CHROMIUM_ARGS,
            env={**os.environ, "OPSCRAFT_TEST_CHROMIUM": CHROMIUM},
        )
    return pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


# Module scope: a running sync Playwright leaves its event loop installed, which breaks every
# async test collected after it in the same session.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require_service(Path(CHROMIUM).exists(), f"Chromium ({CHROMIUM})")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        instance = chromium_launch(pw)
        _steady_pages(instance)
        try:
            yield instance
        finally:
            instance.close()


# After `page.goto`: a NiceGUI page (it has `window.socket` once loaded) has shaken hands over
# its socket, so that what a test types next reaches the server; other pages (the API's docs,
# an error page without NiceGUI) as they are.
CONNECTED_JS = "!window.socket || (window.did_handshake === true && window.socket.connected)"
HANDSHAKEN_JS = "window.did_handshake === true"

# Chromium fails the requests it is connecting or queueing with `net::ERR_NETWORK_CHANGED` when
# the machine's addresses change (crbug.com/41465264): here, a Docker container with a network
# adds a veth with an IPv6 link-local address while the other xdist worker loads a page. A page
# whose script failed that way never connects; it is loaded again, as a person would reload it.
NETWORK_CHANGED = "net::ERR_NETWORK_CHANGED"
# How many times one wait reloads a page that lost a request to a network change.
NETWORK_CHANGED_RELOADS = 3
# The address of the page Chromium shows for a document it could not load.
ERROR_PAGE = "chrome-error://chromewebdata/"
# Playwright's default wait (a context's `set_default_timeout` is not readable back), milliseconds.
DEFAULT_WAIT_MS = 30_000


def watch(page: Any) -> None:
    """Give `page` (a Playwright page) `console_tail`, the browser's last 40 console lines (NiceGUI
    logs why it reloads a page) and failed requests (every document's, whatever its failure: a
    navigation that failed says why, and whether the server answered; any other request's lost to
    `NETWORK_CHANGED`) for a failure's report, and `network_changed`, how many of its requests
    failed with `NETWORK_CHANGED` (`network_changed_seen`: as many as `settle` handled).
    Every page of the `browser` fixture is watched from its start (`steady`)."""
    page.console_tail = deque(maxlen=40)
    page.on("console", lambda message: page.console_tail.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: page.console_tail.append(f"pageerror: {error}"))
    page.network_changed = page.network_changed_seen = 0

    def failed(request: Any) -> None:
        failure = request.failure or ""
        if NETWORK_CHANGED in failure:
            page.network_changed += 1
        elif request.resource_type != "document":
            return
        page.console_tail.append(f"requestfailed: {request.url} {failure}")

    page.on("requestfailed", failed)


# How many of a traced page's last socket messages a failure's report shows (`trace_socket`), and
# how much of each (characters).
SOCKET_TAIL = 120
SOCKET_MESSAGE_CHARS = 240


# The NiceGUI element id (`c<id>`: the socket's events name `<id>`) of each element with a test id.
SOCKET_IDS_JS = """Array.from(document.querySelectorAll("[data-testid]"), (el) =>
  `${(el.closest("[id^=c]") || el.querySelector("[id^=c]") || {}).id}=${el.dataset.testid}`).join(" ")"""


def trace_socket(page: Any) -> None:
    """Keep `page`'s last `SOCKET_TAIL` NiceGUI socket messages, each way (`>` to the server: its
    events, with the element id and arguments; `<` from it: updates with the props, JavaScript
    calls), for a failure's report (`socket_tail`): the order of a page's events and the server's
    updates is what a lost input needs read (a CI run saved a choice parameter's default as None,
    not reproduced in 70 runs under load). Set up before the page is opened; opt-in, as each
    message then crosses into the test process."""
    page.socket_tail = deque(maxlen=SOCKET_TAIL)

    def opened(socket: Any) -> None:
        def kept(way: str) -> Callable[[Any], None]:
            def keep(message: Any) -> None:
                page.socket_tail.append(f"{time.monotonic():.3f} {way} {str(message)[:SOCKET_MESSAGE_CHARS]}")

            return keep

        socket.on("framesent", kept(">"))
        socket.on("framereceived", kept("<"))
        socket.on("close", lambda _: page.socket_tail.append(f"{time.monotonic():.3f} closed"))

    page.on("websocket", opened)


def note_element_ids(page: Any) -> None:
    """Add to a `trace_socket`ed page's trace the NiceGUI id of each element with a test id shown
    now (the socket's events name elements by id alone; updates drawn later carry test ids)."""
    page.socket_tail.append(f"{time.monotonic():.3f} element ids: {page.evaluate(SOCKET_IDS_JS)}")


def settle(page: Any, expression: str = CONNECTED_JS, timeout: float = 30.0) -> None:
    """Wait until the JavaScript `expression` holds on `page` (a `steady` page), for at most
    `timeout` seconds, checked in one-second slices: when a request of the page failed with
    `NETWORK_CHANGED` since the last settled wait, the page is reloaded (`NETWORK_CHANGED_RELOADS`
    times at most) and the wait goes on, also when the expression held on a page that has not
    shaken hands (`CONNECTED_JS` holds for a page whose socket script was lost: a CI run's page
    passed that wait, and the next one, which asked for the socket, no longer saw the loss).
    Raises Playwright's TimeoutError as `wait_for_function`."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    deadline = time.monotonic() + timeout
    reloads = 0
    while True:
        left = deadline - time.monotonic()
        try:
            page.wait_for_function(expression, timeout=min(1.0, max(left, 0.1)) * 1000)
            held = True
        except PlaywrightTimeoutError:
            held = False
        lost = page.network_changed > page.network_changed_seen
        if lost and reloads < NETWORK_CHANGED_RELOADS and not (held and _handshaken(page)):
            page.network_changed_seen = page.network_changed
            reloads += 1
            page.console_tail.append(f"test: reloaded after {NETWORK_CHANGED} ({reloads})")
            page.reload_again()
            deadline = time.monotonic() + timeout
        elif held:
            page.network_changed_seen = page.network_changed
            return
        elif left <= 1.0:
            raise PlaywrightTimeoutError(f"{expression} did not hold within {timeout} s") from None


def _handshaken(page: Any) -> bool:
    """Whether `page`'s NiceGUI socket has shaken hands (False while the page navigates away)."""
    from playwright.sync_api import Error as PlaywrightError

    try:
        return bool(page.evaluate(HANDSHAKEN_JS))
    except PlaywrightError:
        return False


def steady(pg: Any) -> Any:
    """`pg` (a new Playwright page) `watch`ed, whose navigations (`goto`, `reload`, `go_back`,
    `go_forward`) are tried again when Chromium failed their document with `NETWORK_CHANGED` (a
    CI run's `page.reload()` did: the page was left on Chromium's error page) and return once a
    NiceGUI page is connected (`CONNECTED_JS`, through `settle`): a value typed into a page still
    shaking hands on a busy CI machine was once lost (a form saved without it:
    tests/test_ui_forms_browser.py). `wait_for_url` (after a click or a script that navigates)
    reloads a page left on the error page by `NETWORK_CHANGED` and goes on waiting (timeouts in
    milliseconds, `DEFAULT_WAIT_MS` when none). `pg.reload_again()` is the reload tried again,
    without the wait (`settle`'s own reload)."""
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    watch(pg)
    goto, reload, go_back, go_forward = pg.goto, pg.reload, pg.go_back, pg.go_forward
    wait_url = pg.wait_for_url

    def reload_error_page(**options: Any) -> Any:
        # Reloaded before Chromium's error page is in place, the page is "not attached".
        wait_url(ERROR_PAGE, wait_until="load")
        return reload(**options)

    def reload_again(**options: Any) -> Any:
        return _tried_again(pg, lambda: reload(**options), lambda: reload_error_page(**options))

    def navigation(first: Callable[..., Any]) -> Callable[..., Any]:
        # A failed document leaves Chromium's error page in the history entry it was going to:
        # a reload of that entry is the navigation again (a second `go_back` would go further).
        def navigate(*args: Any, **options: Any) -> Any:
            if first is goto:
                response = _tried_again(pg, lambda: goto(*args, **options), lambda: goto(*args, **options))
            else:
                response = _tried_again(pg, lambda: first(**options), lambda: reload_error_page(**options))
            settle(pg)
            return response

        return navigate

    def wait_for_url(url: Any, *, timeout: float | None = None, **options: Any) -> None:
        # A click or a script's `location` change lost its document: the page is reloaded (the
        # error page's entry is the address it was going to), as for a navigation of the test's.
        deadline = time.monotonic() + (timeout or DEFAULT_WAIT_MS) / 1000
        while True:
            left = deadline - time.monotonic()
            try:
                return wait_url(url, timeout=max(min(1.0, left), 0.1) * 1000, **options)
            except PlaywrightTimeoutError:
                if left <= 1.0:
                    raise
                lost = pg.url == ERROR_PAGE and pg.network_changed > pg.network_changed_seen
            except PlaywrightError as error:  # the navigation it waited for failed
                if not _lost_to_network_change(pg, error, pg.network_changed_seen):
                    raise
                lost = True
            if lost:
                pg.network_changed_seen = pg.network_changed
                pg.console_tail.append(f"test: reloaded the error page after {NETWORK_CHANGED}")
                _tried_again(pg, reload_error_page, reload_error_page)

    pg.reload_again, pg.wait_for_url = reload_again, wait_for_url
    pg.goto, pg.reload, pg.go_back, pg.go_forward = map(navigation, (goto, reload, go_back, go_forward))
    return pg


def _tried_again(page: Any, navigation: Callable[[], Any], again: Callable[[], Any]) -> Any:
    """`navigation()`'s result (a Playwright navigation of `page`, a `watch`ed page); when it
    raised a Playwright error lost to a network change (`_lost_to_network_change`), `again()`'s,
    tried up to `NETWORK_CHANGED_RELOADS` times. Other errors, and the last attempt's, are raised
    as they are."""
    from playwright.sync_api import Error as PlaywrightError

    attempt = navigation
    for _ in range(NETWORK_CHANGED_RELOADS):
        seen = page.network_changed
        try:
            return attempt()
        except PlaywrightError as error:
            if not _lost_to_network_change(page, error, seen):
                raise
        attempt = again
    return attempt()


def _lost_to_network_change(page: Any, error: Exception, seen: int) -> bool:
    """Whether `error` (a Playwright error of a navigation of `page`) is a loss to a network
    change: it names `NETWORK_CHANGED`, or a request of the page failed with it since the
    navigation began (`seen`: `page.network_changed` then). A CI run's `goto` failed with
    "interrupted by another navigation to chrome-error://chromewebdata/": its page lost a file
    to a network change and loaded itself again (ui/lost_resources.py), and that reload lost its
    document. A failure without a network change (the server down, refusing, closing) is raised:
    never hidden; one coinciding with a change is met again by the navigation tried again."""
    return NETWORK_CHANGED in str(error) or page.network_changed > seen


def _steady_pages(browser: Any) -> None:
    """Every page of every context `browser` (a Playwright browser) makes is `steady`: a test's
    own context (a phone's viewport, a second user) lost a navigation to `NETWORK_CHANGED` in a
    CI run where the `page` fixture's would have been tried again."""
    new_context = browser.new_context

    def steady_context(**options: Any) -> Any:
        context = new_context(**options)
        new_page = context.new_page
        context.new_page = lambda: steady(new_page())
        return context

    browser.new_context = steady_context


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser context's `steady` page. A failed test leaves a full-page screenshot in
    `ARTIFACTS` (taking one after every test cost each about a second)."""
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(30_000)  # generous: CI machines may be busy
    # `expect(...)` has its own default (5 s), which a dialog closing under a load of ~23 missed
    # (tests/test_ui_users_browser.py): as generous as the page's own waits.
    expect.set_options(timeout=30_000)
    pg = context.new_page()
    pg.failed = False
    try:
        yield pg
    finally:
        if pg.failed:
            _screenshot(pg, request.node.name)
        context.close()


def _screenshot(pg: Any, name: str) -> None:
    """A full-page screenshot of `pg` in `ARTIFACTS`, for a human reading a failure."""
    from playwright.sync_api import Error as PlaywrightError

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:  # a slow screenshot on a busy machine is not a second failure
        pg.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True, timeout=60_000)
    except PlaywrightError as exc:
        print(f"artifact screenshot of {name} skipped: {exc.message.splitlines()[0]}")


@pytest.fixture
def patient_linters(monkeypatch: pytest.MonkeyPatch) -> None:
    """Linters in this process get 120 s instead of 6: on a busy CI machine `ansible-playbook`
    alone can take longer to start, and a test asserting what a linter found must not depend on
    the machine's speed (the timeout itself is tested with its own value)."""
    from opscraft.services import linters

    monkeypatch.setattr(linters, "TIMEOUT_SECONDS", 120.0)


@pytest.fixture(scope="module")
def display() -> Iterator[str]:
    """A virtual X display (Xvfb) for the module's desktop windows; a failure when CI=true and the
    X11 test tools are missing (tests/run installs them)."""
    from tests.desktop_session import missing_tools, xvfb

    missing = missing_tools()
    require_service(not missing, f"X11 test tools {missing} (Debian: xvfb xdotool x11-utils imagemagick)")
    with xvfb() as name:
        yield name


@contextmanager
def own_redis_prefix(name: str) -> Iterator[str]:
    """An `OPSCRAFT_REDIS_PREFIX` of its own for a test's new database on the shared test Redis
    (one job queue serves one database, `execution/installation.py`); the keys under it are
    deleted afterwards."""
    prefix = f"{name}-{secrets.token_hex(4)}"
    try:
        yield prefix
    finally:
        if REDIS_URL:
            import redis

            client = redis.Redis.from_url(REDIS_URL)
            try:
                keys = list(client.scan_iter(match=f"{prefix}:*"))
                if keys:
                    client.delete(*keys)
            finally:
                client.close()
