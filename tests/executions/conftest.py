"""Fixtures for the execution engine: a runtime whose engine runs scripts for real.

Docker runs use the locally built `opscraft-test/runner:1` image for every script type (its
`terraform` is a stand-in that records its arguments: no Terraform binary can be had here);
local runs use this machine's bash, python3, the ansible-playbook installed next to the test
Python, and the same Terraform stand-in put on PATH.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import shutil
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import event

from opscraft import lifecycle, runtime
from opscraft.app import WS_PROTOCOL
from opscraft.db.models import Execution, Role
from opscraft.db.models.executions import ExecutionStatus
from opscraft.db.types import utcnow
from opscraft.execution import terraform_backend
from opscraft.execution.events import LogEvent
from opscraft.execution.ports import OVERFLOW, LogBus
from tests.conftest import (
    PG_URL,
    ROOT,
    LoggedIn,
    empty_postgres,
    free_port,
    make_settings,
    require_service,
)
from tests.waiting import until

TEST_IMAGE = "opscraft-test/runner:1"
BUSYBOX_IMAGE = "opscraft-test/busybox:1"
DOCKER = os.environ.get("OPSCRAFT_TEST_DOCKER") == "1"
IMAGES = {f"OPSCRAFT_IMAGE_{kind.upper()}": TEST_IMAGE for kind in ("bash", "python", "ansible", "terraform")}
FINAL = {"success", "failed", "cancelled", "timed_out", "error"}


def require_docker() -> None:
    require_service(DOCKER, "Docker engine with the test images (OPSCRAFT_TEST_DOCKER=1)")


@pytest.fixture
def runner_name(request: pytest.FixtureRequest) -> str:
    """`docker` or `local`; parametrize indirectly, or default to local."""
    name = str(getattr(request, "param", "local"))
    if name == "docker":
        require_docker()
    return name


@pytest.fixture
def engine_settings() -> dict[str, Any]:
    """Settings overrides for the engine under test; tests override this fixture to change them."""
    return {}


@pytest.fixture
def worker_runners() -> frozenset[str] | None:
    """The runners the runtime's worker offers (`lifecycle.start(runners=...)`): None, all of them
    (Docker while its engine answers, which makes it the default runner). A module whose runs only
    need to start, not to run in a container, overrides this with `frozenset({"local"})`: a Docker
    run costs its container's start, and the runtime's stop waits for it."""
    return None


@pytest.fixture
def terraform_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The local runner finds the Terraform stand-in (the test image has it too)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shutil.copy(ROOT / "tests" / "images" / "terraform-standin", bin_dir / "terraform")
    (bin_dir / "terraform").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


@pytest.fixture
async def rt(
    backend: str,
    tmp_path: Path,
    engine_settings: dict[str, Any],
    worker_runners: frozenset[str] | None,
    terraform_on_path: None,
) -> AsyncIterator[runtime.Runtime]:
    """A started runtime (engine included) with the local runner allowed and the test images."""
    url = PG_URL if backend == "postgresql" else None
    if backend == "postgresql":
        assert PG_URL
        await empty_postgres(PG_URL)
    overrides = {
        "OPSCRAFT_LOCAL_RUNNER": True,
        # These servers stand for a trusted team's machine: viewers run on the local runner too.
        # Tests of the default (operators and up) set it back to None through `engine_settings`.
        "OPSCRAFT_LOCAL_RUNNER_ROLE": "viewer",
        "OPSCRAFT_SHUTDOWN_GRACE_SECONDS": 2,
        **IMAGES,
        **engine_settings,
    }
    started = await lifecycle.start(make_settings(tmp_path, url, **overrides), runners=worker_runners)
    try:
        yield started
    finally:
        await lifecycle.stop()


@contextlib.contextmanager
def statements_on(target: Any, keep: Callable[[str], bool]) -> Iterator[list[str]]:
    """The statements `target` (an `Engine`, or the `Engine` class for every engine) executes
    meanwhile that `keep` accepts, as they run."""
    seen: list[str] = []

    def on_execute(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if keep(statement):
            seen.append(statement)

    event.listen(target, "before_cursor_execute", on_execute)
    try:
        yield seen
    finally:
        event.remove(target, "before_cursor_execute", on_execute)


async def first_admin(client: httpx.AsyncClient) -> LoggedIn:
    """Register the first account of a fresh live server (`tests.conftest.start_server`: an
    admin) and log it in."""
    account = {"username": "admin", "email": "admin@example.com", "password": "Correct-Horse-9"}
    assert (await client.post("/api/v1/auth/register", json=account)).status_code == 201
    credentials = {k: account[k] for k in ("username", "password")}
    token = (await client.post("/api/v1/auth/login", json=credentials)).json()["access_token"]
    return LoggedIn(1, "admin", Role.admin, {"Authorization": f"Bearer {token}"})


async def make_script(client: httpx.AsyncClient, who: LoggedIn, content: str, **fields: Any) -> int:
    body = {
        "name": f"t-{time.monotonic_ns()}",
        "script_type": "bash",
        "content": content,
        "status": "active",
        "acknowledge_risks": True,
        **fields,
    }
    response = await client.post("/api/v1/scripts", json=body, headers=who.headers)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def terraform_run_row(
    script_id: int, workspace: str = "default", **fields: Any
) -> tuple[int, tuple[str, str]]:
    """A `running` Terraform execution of `script_id` written straight to the database (a run
    that crashed, or one holding the state while a test looks on) and the backend credentials
    it was issued for `workspace`: (execution id, (user name, password)). `fields` override the
    row's columns (`status`, `terraform_action`, `started_at`, ...)."""
    row = {
        "script_id": script_id,
        "script_version": 1,
        "script_name": "held",
        "script_type": "terraform",
        "status": ExecutionStatus.running,
        "runner": "local",
        "terraform_action": "apply",
        "started_at": utcnow(),
        **fields,
    }
    async with runtime.current().db.session() as session:
        execution = Execution(**row)
        session.add(execution)
        await session.commit()
        assert execution.id is not None
        execution_id = execution.id
    secret_key = runtime.current().settings.secret_key
    assert secret_key
    scope = terraform_backend.Scope(execution_id, script_id, workspace, row["started_at"])
    return execution_id, (
        terraform_backend.username(execution_id),
        terraform_backend.password(secret_key, scope),
    )


async def start(
    client: httpx.AsyncClient, who: LoggedIn, script_id: int, runner: str, **body: Any
) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/executions", json={"script_id": script_id, "runner": runner, **body}, headers=who.headers
    )
    assert response.status_code == 202, response.text
    return dict(response.json())


# `wait_for` reads the run again when this process's log bus announces a status of it (a run's
# `running`, and its end once committed: `executor.py`), and every `STATUS_READ_SECONDS` besides
# (a status no event announces, set by a request; a run another process's bus carries). Read every
# 0.05 s, a run's GET through the whole app (about 1.5 ms of CPU) was 30 % of the test process's
# CPU in tests/executions/test_ansible_ssh.py: 20 reads a second while each Ansible run went on.
STATUS_READ_SECONDS = 0.25
POLL_SECONDS = 0.05  # without a started runtime in this process (no bus to wait on)


class StatusWakeups:
    """Waits between two reads of a run (`tests.waiting.until`'s `woken`) for its next status
    event on the log bus of this process's runtime: `woken(seconds)` returns at that event, at
    the bus's OVERFLOW (subscribing again) or after `seconds`; log events are skipped."""

    def __init__(self, bus: LogBus, execution_id: int) -> None:
        self._bus = bus
        self._execution_id = execution_id
        self._sub = bus.subscribe(execution_id)

    async def woken(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            event = await self._sub.get(left)
            if event is OVERFLOW:  # this subscription gets nothing more: a new one
                self._sub.close()
                self._sub = self._bus.subscribe(self._execution_id)
            if not isinstance(event, LogEvent):  # a status, OVERFLOW, or quiet until `left` passed
                return

    def close(self) -> None:
        self._sub.close()


@contextlib.asynccontextmanager
async def status_wakeups(execution_id: int) -> AsyncIterator[StatusWakeups | None]:
    """`StatusWakeups` of `execution_id` on the bus of `runtime.current()`, subscribed before
    the caller's first read (no event missed); None when no runtime is started here."""
    try:
        executions = runtime.current().executions
    except RuntimeError:
        executions = None
    if executions is None:
        yield None
        return
    wakeups = StatusWakeups(executions.bus, execution_id)
    try:
        yield wakeups
    finally:
        wakeups.close()


async def wait_for(
    client: httpx.AsyncClient,
    who: LoggedIn,
    execution_id: int,
    statuses: set[str] = FINAL,
    timeout: float = 60,
) -> dict[str, Any]:
    """The execution's body once its status is one of `statuses` (`tests.waiting.until`: an
    AssertionError after `timeout` scaled seconds, naming the last status seen), read again at
    each of its status events (`status_wakeups`), at the latest every `STATUS_READ_SECONDS`."""
    seen: list[str] = []

    async def reached() -> dict[str, Any] | None:
        response = await client.get(f"/api/v1/executions/{execution_id}", headers=who.headers)
        body = dict(response.json())
        seen[:] = [body["status"]]
        return body if body["status"] in statuses else None

    what = f"execution {execution_id} to be {sorted(statuses)}"
    async with status_wakeups(execution_id) as wakeups:
        try:
            if wakeups is None:
                return await until(reached, what, timeout, POLL_SECONDS)
            return await until(reached, what, timeout, STATUS_READ_SECONDS, wakeups.woken)
        except AssertionError as exc:
            raise AssertionError(f"{exc}: still {seen}") from None


async def wait_output(
    client: httpx.AsyncClient, who: LoggedIn, execution_id: int, text: str, timeout: float = 30
) -> None:
    """Until `text` is in the execution's stored output (`tests.waiting.until`)."""

    async def printed() -> bool:
        return text in await output(client, who, execution_id)

    await until(printed, f"{text!r} in the output of execution {execution_id}", timeout, 0.05)


async def output(
    client: httpx.AsyncClient, who: LoggedIn, execution_id: int, stream: str | None = None
) -> str:
    """The stored output (one stream or both), read page by page."""
    text, offset = [], 0
    while True:
        response = await client.get(
            f"/api/v1/executions/{execution_id}/logs", params={"offset": offset}, headers=who.headers
        )
        page = response.json()
        text += [c["content"] for c in page["items"] if stream in (None, c["stream"])]
        if not page["items"]:
            return "".join(text)
        offset = page["next_offset"]


async def run(
    client: httpx.AsyncClient, who: LoggedIn, content: str, runner: str, *, timeout: float = 60, **fields: Any
) -> tuple[dict[str, Any], str]:
    """Create a script, run it to the end; returns (final execution, stored output)."""
    parameters = fields.pop("run_parameters", {})
    extra = {key: fields.pop(key) for key in ("terraform_action",) if key in fields}
    script_id = await make_script(client, who, content, **fields)
    started = await start(client, who, script_id, runner, parameters=parameters, **extra)
    final = await wait_for(client, who, started["id"], timeout=timeout)
    return final, await output(client, who, started["id"])


@pytest.fixture
async def live_api(api_app: FastAPI) -> AsyncIterator[str]:
    """The API app served by uvicorn (with `opscraft.app.WS_PROTOCOL`, as `opscraft serve` runs it)
    on a free port in this loop."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            api_app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", ws=WS_PROTOCOL
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture
def docker_client() -> Iterator[Any]:
    require_docker()
    import docker

    client = docker.from_env()
    try:
        yield client
    finally:
        client.close()


def pool_profile(image: str = TEST_IMAGE, **fields: Any) -> Any:
    """The warm-pool profile of a run of a script with these fields (the model's defaults)."""
    from opscraft.execution.docker_runner import USER
    from opscraft.execution.warm_pool import Profile

    return Profile(
        image,
        int(fields.get("memory_mb", 512)),
        float(fields.get("cpus", 0.5)),
        bool(fields.get("network_enabled", False)),
        USER,
    )


async def prewarm(**fields: Any) -> None:
    """Wait (generously: the machine is busy) until this server's worker has a warm container
    for the profile of a script with `fields`, so its next run of that profile starts warm."""
    worker = runtime.current().worker
    assert worker is not None
    pool = worker.docker.pool
    profile = pool_profile(**fields)
    assert await asyncio.to_thread(pool.wait_warm, profile, 1, 120), "no warm container within 120 s"


def container_of(execution_id: int) -> str | None:
    """The id of the container running `execution_id` on this server's worker (warm or cold)."""
    worker = runtime.current().worker
    assert worker is not None
    return worker.docker.containers.get(execution_id)


async def removed(docker_client: Any, *containers: str, timeout: float = 60) -> bool:
    """Wait until none of `containers` exists (a run's container is removed just after its end)."""
    # The low-level list: `containers.list` inspects each one it found, which fails (404) when
    # the removal happens in between.
    return await until(
        lambda: not docker_client.api.containers(all=True, filters={"id": list(containers)}),
        f"containers {containers} removed",
        timeout,
    )


async def stopped(docker_client: Any, container: str, timeout: float = 60) -> bool:
    """Wait until `container` is no longer running. A run ends on its loader's end record
    (docker_runner), which the loader writes just before it exits: on a loaded machine the
    container may still be running for a moment after the run's end is reported."""
    return await until(
        lambda: not docker_client.api.inspect_container(container)["State"]["Running"],
        f"container {container} stopped",
        timeout,
    )


def pooled() -> bool:
    """Whether this server's worker keeps warm containers (OPSCRAFT_WARM_POOL_SIZE or the setting)."""
    worker = runtime.current().worker
    assert worker is not None
    return worker.docker.pool.size > 0


def pool_counts() -> tuple[int, int]:
    """(warm starts, cold starts) of this server's worker so far."""
    worker = runtime.current().worker
    assert worker is not None
    return worker.docker.pool.warm_starts, worker.docker.pool.cold_starts


async def start_checked(
    client: httpx.AsyncClient,
    who: LoggedIn,
    script_id: int,
    runner: str,
    profile: dict[str, Any] | None = None,
    **body: Any,
) -> dict[str, Any]:
    """`start`, on a container warmed for the script's profile when the pool is on (`profile`:
    the script's limit fields); for Docker, asserts the run's container started warm (pool on)
    or cold (pool off)."""
    warm = pooled() and runner == "docker"
    if warm:
        await prewarm(**(profile or {}))
    before = pool_counts()
    started = await start(client, who, script_id, runner, **body)
    if runner == "docker":
        await wait_for(client, who, started["id"], {"running", *FINAL})
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (
            pool_counts() == before or container_of(started["id"]) is None
        ):
            response = await client.get(f"/api/v1/executions/{started['id']}", headers=who.headers)
            if response.json()["status"] in FINAL:
                break
            await asyncio.sleep(0.02)
        warm_starts, cold_starts = pool_counts()
        assert (warm_starts - before[0], cold_starts - before[1]) == ((1, 0) if warm else (0, 1))
    return started


class HeldRemovals:
    """The containers of the runs that ended while `removals_held` was open (not removed yet)."""

    def __init__(self, held: queue.SimpleQueue[str]) -> None:
        self._held = held
        self.containers: list[str] = []

    def ended(self) -> list[str]:
        """Every container held so far (the runs' ends queued them)."""
        while not self._held.empty():
            self.containers.append(self._held.get())
        return list(self.containers)


@contextlib.contextmanager
def removals_held() -> Iterator[HeldRemovals]:
    """While open, this server's worker keeps the containers of the runs that end instead of
    removing them, so a test can inspect a container after its run; on exit they are queued
    for removal as usual."""
    worker = runtime.current().worker
    assert worker is not None
    removals = worker.docker._removals
    held = HeldRemovals(queue.SimpleQueue())
    removals.put = held._held.put  # type: ignore[method-assign]
    try:
        yield held
    finally:
        del removals.put  # the class's own again
        for container in held.ended():
            removals.put(container)


def warm_containers(docker_client: Any) -> list[Any]:
    """The warm containers (waiting for a run) of this server's worker."""
    from opscraft.execution.docker_runner import LABEL_WARM, LABEL_WORKER
    from opscraft.execution.worker import worker_identity

    worker = worker_identity(runtime.current().settings)
    from docker.errors import NotFound

    filters = {"label": [f"{LABEL_WORKER}={worker}", f"{LABEL_WARM}=true"]}
    found = []
    # The low-level list, then each one inspected: the pool may remove one in between (an idle
    # pool shrinking), which `containers.list` would turn into a 404.
    for summary in docker_client.api.containers(all=True, filters=filters):
        with contextlib.suppress(NotFound):
            found.append(docker_client.containers.get(summary["Id"]))
    return found


async def queued_row(script_id: int, user_id: int, runner: str, name: str, **parameters: Any) -> int:
    """The id of a `queued` run of version 1 of bash script `script_id` (named `name`) on
    `runner`, written straight to the database as a submission's row, past a submission's
    checks (a runner no live worker offers); not enqueued."""
    async with runtime.current().db.session() as session:
        execution = Execution(
            script_id=script_id,
            script_version=1,
            script_name=name,
            script_type="bash",
            parameters={k: str(v) for k, v in parameters.items()},
            triggered_by=user_id,
            runner=runner,
        )
        session.add(execution)
        await session.commit()
        assert execution.id is not None
        return execution.id
