"""Warm containers in real Docker: a run takes a started container of its profile, hands it its
job over stdin, and the container is removed after that one run; secrets never reach the
container's configuration; cancel, masking, output order and the deadline hold; the pool
refills, never reuses a container, shrinks when idle, and a crash's leftovers are swept.
(Limits, OOM, pids, network, read-only root, user and privileges on warm containers:
test_isolation.py runs each of its tests warm and cold.)
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

import docker.api.client
import httpx
import pytest

from opscraft import lifecycle, runtime
from opscraft.execution import docker_runner, warm_pool
from opscraft.execution.docker_runner import DockerRunner
from opscraft.execution.removals import DEADLINE_SECONDS, THREAD_NAME, DeferredRemovals
from opscraft.execution.warm_pool import WarmPool
from opscraft.execution.worker import worker_identity
from tests.conftest import LoggedIn, make_settings
from tests.executions.conftest import (
    BUSYBOX_IMAGE,
    container_of,
    make_script,
    output,
    pool_profile,
    prewarm,
    removals_held,
    removed,
    start,
    stopped,
    wait_for,
    wait_output,
    warm_containers,
)
from tests.waiting import until

pytestmark = pytest.mark.docker

VALUE = "warm-s3cret\nsecond line 'q' $(id)"
PARAMETER = "two\nlines and a 'quote'"


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture(autouse=True)
def _docker(docker_client: Any) -> None:
    """Every test here needs Docker."""


@pytest.fixture
def engine_settings() -> dict[str, Any]:
    return {"OPSCRAFT_WARM_POOL_SIZE": 2}


def pool() -> WarmPool:
    worker = runtime.current().worker
    assert worker is not None
    return worker.docker.pool


async def running_container(client: httpx.AsyncClient, who: LoggedIn, execution_id: int) -> str:
    await wait_for(client, who, execution_id, {"running"})
    return await until(lambda: container_of(execution_id), f"run {execution_id} to get a container", 30)


async def test_secrets_and_parameters_never_in_a_pooled_containers_config(
    client: httpx.AsyncClient, operator: LoggedIn, docker_client: Any
) -> None:
    r = await client.post("/api/v1/secrets", json={"name": "TOKEN", "value": VALUE}, headers=operator.headers)
    assert r.status_code == 201, r.text
    script = (
        'printf "%s|" "$TOKEN" | sha256sum\n'
        'printf "%s|" "$TARGET" | sha256sum\n'
        'echo "token: $TOKEN"\n'
        "cat script.sh | head -n 1\n"
        "sleep 2\n"
    )
    parameters = [{"name": "TARGET", "type": "string", "required": True}]
    script_id = await make_script(client, operator, script, parameters=parameters)
    r = await client.post(f"/api/v1/scripts/{script_id}/secrets/{r.json()['id']}", headers=operator.headers)
    assert r.status_code == 201, r.text
    await prewarm()
    before = warm_containers(docker_client)
    assert before
    for container in before:
        config = json.dumps(container.attrs)
        assert "warm-s3cret" not in config and "TOKEN" not in config and "two\\nlines" not in config

    warm_starts = pool().warm_starts
    with removals_held() as held:
        execution = await start(client, operator, script_id, "docker", parameters={"TARGET": PARAMETER})
        container = await running_container(client, operator, execution["id"])
        assert container in {c.id for c in before}, "the run should have taken a warm container"
        assert pool().warm_starts == warm_starts + 1
        during = json.dumps(docker_client.api.inspect_container(container))  # the script sleeps
        final = await wait_for(client, operator, execution["id"])
        text = await output(client, operator, execution["id"])
        assert final["status"] == "success", text
        assert container in held.ended()
        assert await stopped(docker_client, container), "the loader exits after its end record"
        after = docker_client.api.inspect_container(container)  # ended, not removed yet
        for inspected in (during, json.dumps(after)):
            for leak in ("warm-s3cret", "second line", "TOKEN=", "TARGET=", "two\\nlines", "sha256sum"):
                assert leak not in inspected

    digest = hashlib.sha256(f"{VALUE}|".encode()).hexdigest()
    assert digest in text and hashlib.sha256(f"{PARAMETER}|".encode()).hexdigest() in text
    assert "token: ***" in text and "warm-s3cret" not in text
    assert 'printf "%s|" "$TOKEN" | sha256sum' in text  # the script arrived as a file
    assert await removed(docker_client, container)


async def test_cancel_a_pooled_run(client: httpx.AsyncClient, admin: LoggedIn, docker_client: Any) -> None:
    script_id = await make_script(client, admin, "echo started\nsleep 60\necho never\n")
    await prewarm()
    execution = await start(client, admin, script_id, "docker")
    container = await running_container(client, admin, execution["id"])
    await wait_output(client, admin, execution["id"], "started")
    t0 = time.monotonic()
    r = await client.post(f"/api/v1/executions/{execution['id']}/cancel", headers=admin.headers)
    assert r.status_code == 200, r.text
    final = await wait_for(client, admin, execution["id"], timeout=10)
    assert final["status"] == "cancelled" and time.monotonic() - t0 < 3
    assert await output(client, admin, execution["id"]) == "started\n"
    assert await removed(docker_client, container)


async def test_pooled_output_keeps_its_order(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    script = 'for i in $(seq 1 300); do echo "out $i"; echo "err $i" >&2; done\n'
    script_id = await make_script(client, admin, script)
    await prewarm()
    warm_starts = pool().warm_starts
    execution = await start(client, admin, script_id, "docker")
    final = await wait_for(client, admin, execution["id"])
    assert final["status"] == "success" and pool().warm_starts == warm_starts + 1
    assert await output(client, admin, execution["id"], "stdout") == "".join(
        f"out {i}\n" for i in range(1, 301)
    )
    assert await output(client, admin, execution["id"], "stderr") == "".join(
        f"err {i}\n" for i in range(1, 301)
    )


async def test_deadline_counts_from_the_runs_start_not_the_containers(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    script_id = await make_script(client, admin, "sleep 1\necho in-time\n", timeout_seconds=3)
    await prewarm()
    await asyncio.sleep(4)  # the warm container is now older than the run's deadline
    warm_starts = pool().warm_starts
    execution = await start(client, admin, script_id, "docker")
    final = await wait_for(client, admin, execution["id"])
    assert final["status"] == "success", final
    assert pool().warm_starts == warm_starts + 1
    assert await output(client, admin, execution["id"]) == "in-time\n"


@pytest.mark.parametrize(
    "engine_settings", [{"OPSCRAFT_WARM_POOL_SIZE": 2, "OPSCRAFT_WARM_POOL_IDLE_SECONDS": 6}]
)
async def test_pool_refills_never_reuses_and_shrinks_when_idle(
    client: httpx.AsyncClient, admin: LoggedIn, docker_client: Any
) -> None:
    script_id = await make_script(client, admin, "sleep 2\necho one run\n")
    used: list[str] = []
    for _ in range(3):
        assert await asyncio.to_thread(pool().wait_warm, pool_profile(), 2, 120)
        execution = await start(client, admin, script_id, "docker")
        used.append(await running_container(client, admin, execution["id"]))
        assert (await wait_for(client, admin, execution["id"]))["status"] == "success"
    assert len(set(used)) == 3, "a container serves one run only"
    assert await removed(docker_client, *used)
    stats = pool().stats()
    assert stats["warm_starts"] == 3 and stats["size"] == 2
    await until(
        lambda: not warm_containers(docker_client) and not pool().stats()["warm"],
        "an idle pool to shrink to nothing",
        60,
        0.2,
    )


async def test_warm_container_left_by_a_crash_is_removed_at_start(tmp_path: Path, docker_client: Any) -> None:
    """A crash leaves warm containers and ended runs' containers whose removal was still
    queued (it waits while the pool creates containers): the next start's sweep removes both."""
    settings = make_settings(tmp_path / "other", OPSCRAFT_IMAGE_BASH=BUSYBOX_IMAGE)
    crashed = DockerRunner(worker_identity(settings))  # what the crashed worker had warmed
    warm = crashed._create_warm(pool_profile(BUSYBOX_IMAGE))
    ended = crashed._create_warm(pool_profile(BUSYBOX_IMAGE))
    getattr(ended.sock, "_sock", ended.sock).shutdown(socket.SHUT_WR)  # no job: its loader ends
    leftovers = [warm.container, ended.container]
    try:
        docker_client.api.wait(ended.container, timeout=60)
        assert docker_client.api.inspect_container(warm.container)["State"]["Running"]
        await lifecycle.start(settings)
        await lifecycle.stop()
        assert not docker_client.api.containers(all=True, filters={"id": leftovers})
    finally:
        for container in docker_client.api.containers(all=True, filters={"id": leftovers}):
            docker_client.api.remove_container(container["Id"], force=True)


class _HeldCreations:
    """Holds the pool's container creations until `release` (at most 60 s)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.release = threading.Event()
        self.under_way = threading.Event()
        create = pool()._create

        def held(profile: Any) -> Any:
            self.under_way.set()
            self.release.wait(60)
            return create(profile)

        monkeypatch.setattr(pool(), "_create", held)


async def _run_warm_and_get_its_container(
    client: httpx.AsyncClient, admin: LoggedIn, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, _HeldCreations]:
    script_id = await make_script(client, admin, "sleep 2\necho one run\n")
    await prewarm()
    held = _HeldCreations(monkeypatch)
    execution = await start(client, admin, script_id, "docker")
    container = await running_container(client, admin, execution["id"])
    assert (await wait_for(client, admin, execution["id"]))["status"] == "success"
    assert held.under_way.is_set(), "taking the container started its refill"
    return container, held


def removals() -> DeferredRemovals:
    worker = runtime.current().worker
    assert worker is not None
    return worker.docker._removals


async def test_a_used_containers_removal_lets_creations_go_first(
    client: httpx.AsyncClient, admin: LoggedIn, docker_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(removals(), "deadline_seconds", 120.0)
    container, held = await _run_warm_and_get_its_container(client, admin, monkeypatch)
    try:
        await asyncio.sleep(1)  # a removal that did not wait for the creation would be done by now
        assert docker_client.api.containers(all=True, filters={"id": container}), (
            "removed while a creation was under way"
        )
        held.release.set()
        assert await removed(docker_client, container)
    finally:
        held.release.set()


async def test_a_used_container_is_removed_by_its_deadline_even_while_creations_go_on(
    client: httpx.AsyncClient, admin: LoggedIn, docker_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The wait for quiet is bounded (`DeferredRemovals.deadline_seconds`)."""
    monkeypatch.setattr(removals(), "deadline_seconds", 0.5)
    container, held = await _run_warm_and_get_its_container(client, admin, monkeypatch)
    try:
        assert await removed(docker_client, container, timeout=30)
        assert not held.release.is_set() and pool().stats()["warm"] < 2, "the creation is still held"
    finally:
        held.release.set()


async def test_a_finished_runs_container_is_gone_within_the_bound_and_its_end_waits_for_no_removal(
    client: httpx.AsyncClient, admin: LoggedIn, docker_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Removals held (a removal that takes forever): the run still ends, its container still
    exists; released, the container is gone within `DEADLINE_SECONDS` of the run's end."""
    queued = removals()
    release = threading.Event()
    remove = queued._remove

    def slow_remove(container: str) -> None:
        release.wait(60)
        remove(container)

    monkeypatch.setattr(queued, "_remove", slow_remove)
    script_id = await make_script(client, admin, "sleep 2\necho one run\n")
    await prewarm()
    execution = await start(client, admin, script_id, "docker")
    container = await running_container(client, admin, execution["id"])
    try:
        assert (await wait_for(client, admin, execution["id"]))["status"] == "success"
        ended = time.monotonic()
        assert docker_client.api.containers(all=True, filters={"id": container}), "its removal is held"
    finally:
        release.set()
    assert await removed(docker_client, container, timeout=DEADLINE_SECONDS + 5)
    assert time.monotonic() - ended < DEADLINE_SECONDS + 5


async def test_used_containers_queued_for_removal_are_removed_on_shutdown(
    tmp_path: Path, docker_client: Any
) -> None:
    """Containers whose removal waits (for quiet, up to the deadline) are removed by `stop`."""
    settings = make_settings(tmp_path / "other", OPSCRAFT_IMAGE_BASH=BUSYBOX_IMAGE)
    runner = DockerRunner(worker_identity(settings))
    runner._removals.deadline_seconds = 3600
    with runner._removals.starting():  # a run starting: the runner is not quiet
        used = [runner._create_warm(pool_profile(BUSYBOX_IMAGE)) for _ in range(2)]
        for attached in used:
            attached.sock.close()
            runner._removals.put(attached.container)
        ids = [attached.container for attached in used]
        assert len(docker_client.api.containers(all=True, filters={"id": ids})) == 2
        await asyncio.to_thread(runner.stop_pool)
        assert not docker_client.api.containers(all=True, filters={"id": ids})


async def test_a_stopped_runner_ends_its_removals_thread_and_still_removes_containers(
    tmp_path: Path, docker_client: Any
) -> None:
    """The removals' thread starts with the first used container, serves the next ones, and
    ends with `stop_pool` once the deferred removal is done; a run ending after the stop still
    has its container removed (by a thread that ends then), and so has a run after `start_pool`."""
    settings = make_settings(tmp_path / "other", OPSCRAFT_IMAGE_BASH=BUSYBOX_IMAGE)
    runner = DockerRunner(worker_identity(settings))
    queued = runner._removals
    queued.deadline_seconds = 3600

    def used() -> str:
        attached = runner._create_warm(pool_profile(BUSYBOX_IMAGE))
        attached.sock.close()
        return attached.container

    def queue(container: str) -> threading.Thread:
        """Queue `container` and return the removals' thread serving it (the condition's lock is
        reentrant: the thread cannot take the container, or end, before it is read)."""
        with queued._cond:
            queued.put(container)
            thread = queued._thread
        assert thread is not None and thread.name == THREAD_NAME
        return thread

    try:
        assert queued._thread is None, "no thread before a container is used"
        with queued.starting():  # a run starting: the removal is deferred
            first = used()
            deferring = queue(first)
            assert docker_client.api.containers(all=True, filters={"id": [first]}), "deferred"
            await asyncio.to_thread(runner.stop_pool)
        assert not docker_client.api.containers(all=True, filters={"id": [first]})
        assert not deferring.is_alive() and queued._thread is None

        straggler = used()
        late = queue(straggler)  # the container of a run that outlived the shutdown's grace
        assert await removed(docker_client, straggler, timeout=30)
        await until(lambda: not late.is_alive(), "the late removal's thread to end", timeout=30)
        assert queued._thread is None

        runner.start_pool()  # the pool is off (size 0): only the removals resume
        again = used()
        resumed = queue(again)
        assert await removed(docker_client, again, timeout=30)
        then = used()
        assert queue(then) is resumed, "one thread for the runner's removals"
        assert await removed(docker_client, then, timeout=30)
        assert resumed.is_alive(), "it stays for the next runs"
        await asyncio.to_thread(runner.stop_pool)
        assert not resumed.is_alive() and queued._thread is None
    finally:
        await asyncio.to_thread(runner.stop_pool)
        runner.sweep()


@pytest.mark.parametrize(
    "engine_settings", [{"OPSCRAFT_WARM_POOL_SIZE": 1, "OPSCRAFT_WORKER_HEARTBEAT_SECONDS": 0.5}]
)
async def test_admins_see_warm_and_cold_starts(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    script_id = await make_script(client, admin, "echo hi\n", memory_mb=96)
    cold = await start(client, admin, script_id, "docker")  # first use of the profile: cold
    assert (await wait_for(client, admin, cold["id"]))["status"] == "success"
    await prewarm(memory_mb=96)
    warm = await start(client, admin, script_id, "docker")
    assert (await wait_for(client, admin, warm["id"]))["status"] == "success"
    worker = worker_identity(runtime.current().settings)
    deadline = time.monotonic() + 30
    while True:
        r = await client.get("/api/v1/warm-pools", headers=admin.headers)
        assert r.status_code == 200, r.text
        mine = [item for item in r.json()["items"] if item["worker_id"] == worker]
        # Two runs close together may raise the target for a few seconds (demand): it falls back.
        settled = mine and mine[0]["profiles"] and mine[0]["profiles"][0]["target"] == 1
        if settled and mine[0]["warm_starts"] == 1 and mine[0]["warm"] == 1:
            break
        assert time.monotonic() < deadline, r.json()
        await asyncio.sleep(0.2)
    assert mine[0]["cold_starts"] == 1 and mine[0]["size"] == 1
    (profile,) = mine[0]["profiles"]
    assert profile == {**vars(pool_profile(memory_mb=96)), "warm": 1, "target": 1}


@pytest.mark.parametrize(
    "engine_settings",
    [{"OPSCRAFT_WARM_POOL_SIZE": 1, "OPSCRAFT_WARM_POOL_BURST": 3, "OPSCRAFT_WORKER_HEARTBEAT_SECONDS": 0.5}],
)
async def test_runs_in_quick_succession_grow_the_pool_up_to_burst_and_it_shrinks_back(
    client: httpx.AsyncClient, admin: LoggedIn, docker_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runs that take containers faster than the pool creates them raise their profile's target
    above the size (never above OPSCRAFT_WARM_POOL_BURST); each container still serves one run
    and is removed; once the runs stop the profile is back to its size, the extra warm
    containers removed, and admins see the size, the burst and the target."""
    monkeypatch.setattr(warm_pool, "DEMAND_WINDOW_SECONDS", 1.0)
    script_id = await make_script(client, admin, "echo quick\n")
    await prewarm()
    handed: list[str] = []
    take = pool().take

    def spied_take(profile: Any) -> Any:
        warm = take(profile)
        if warm is not None:
            handed.append(warm.container)
        return warm

    monkeypatch.setattr(pool(), "take", spied_take)
    targets: list[int] = []
    sampling = True

    async def sample() -> None:
        while sampling:
            targets.extend(item["target"] for item in pool().stats()["profiles"])
            await asyncio.sleep(0.01)

    sampler = asyncio.create_task(sample())
    try:
        executions = [await start(client, admin, script_id, "docker") for _ in range(8)]
        for execution in executions:
            finished = await wait_for(client, admin, execution["id"])
            assert finished["status"] == "success", finished
            assert await output(client, admin, execution["id"]) == "quick\n"
    finally:
        sampling = False
        await sampler
    assert 1 < max(targets) <= 3, targets
    assert handed and len(set(handed)) == len(handed), "a container serves one run only"
    assert await removed(docker_client, *handed)
    deadline = time.monotonic() + 60
    while len(warm_containers(docker_client)) != 1 or pool().stats()["profiles"][0]["target"] != 1:
        assert time.monotonic() < deadline, "the pool should fall back to its size"
        await asyncio.sleep(0.1)
    worker = worker_identity(runtime.current().settings)
    while True:  # the admins' view, as of a heartbeat after the runs
        items = (await client.get("/api/v1/warm-pools", headers=admin.headers)).json()["items"]
        mine = [item for item in items if item["worker_id"] == worker]
        if mine and mine[0]["warm"] == 1 and mine[0]["profiles"][0]["target"] == 1:
            break
        assert time.monotonic() < deadline, items
        await asyncio.sleep(0.2)
    assert mine[0]["size"] == 1 and mine[0]["burst"] == 3


class _ApiSpy:
    """Records (thread name, method) of every Docker API call made through it."""

    def __init__(self, api: Any, calls: list[tuple[str, str]]) -> None:
        self._api = api
        self._calls = calls

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._api, name)
        if not callable(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            self._calls.append((threading.current_thread().name, name))
            return value(*args, **kwargs)

        return call


async def test_a_warm_run_makes_no_docker_call_before_its_job(
    client: httpx.AsyncClient, admin: LoggedIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The container was attached when it was pooled, and the loader's end record carries the
    exit status: the run makes no Docker call at all (its removal happens on the remover
    thread, after the run's end)."""
    script_id = await make_script(client, admin, "echo hi\n")
    runner = runtime.current().worker.docker  # type: ignore[union-attr]
    calls: list[tuple[str, str]] = []
    real = runner._api
    monkeypatch.setattr(runner, "_api", lambda: _ApiSpy(real(), calls))
    await prewarm()
    calls.clear()
    warm_starts = pool().warm_starts
    execution = await start(client, admin, script_id, "docker")
    final = await wait_for(client, admin, execution["id"])
    assert final["status"] == "success" and pool().warm_starts == warm_starts + 1
    assert await output(client, admin, execution["id"]) == "hi\n"
    on_the_run = [
        name for thread, name in calls if thread not in ("opscraft-warm-pool", "opscraft-docker-remove")
    ]
    assert on_the_run == [], calls


async def test_a_script_ended_by_a_signal_gets_its_status_from_docker(
    client: httpx.AsyncClient, admin: LoggedIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A status of 128 and above (a signal) is Docker's to tell: `wait`, and after a SIGKILL the
    container's state (was it the OOM killer?)."""
    script_id = await make_script(client, admin, "echo before\nkill -KILL $$\necho never\n")
    runner = runtime.current().worker.docker  # type: ignore[union-attr]
    calls: list[tuple[str, str]] = []
    real = runner._api
    monkeypatch.setattr(runner, "_api", lambda: _ApiSpy(real(), calls))
    await prewarm()
    calls.clear()
    execution = await start(client, admin, script_id, "docker")
    final = await wait_for(client, admin, execution["id"])
    assert (final["status"], final["exit_code"]) == ("failed", 137), final
    assert await output(client, admin, execution["id"]) == "before\n"
    on_the_run = [
        name for thread, name in calls if thread not in ("opscraft-warm-pool", "opscraft-docker-remove")
    ]
    assert on_the_run == ["wait", "inspect_container"], calls


async def test_a_forged_end_record_neither_ends_the_run_nor_sets_its_status(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """The script prints end records (as a file it cats could hold them): without the run's
    token, generated anew for each run and never in the script's reach, they are output."""
    forged = "\\036opscraft-end %s 0\\n"
    script = (
        f"printf '{forged}' 00000000000000000000000000000000\n"
        f"printf '{forged}' \"$OPSCRAFT_T\" >&2\n"
        "sleep 0.5\necho still running\nexit 3\n"
    )
    script_id = await make_script(client, admin, script)
    await prewarm()
    warm_starts = pool().warm_starts
    execution = await start(client, admin, script_id, "docker")
    final = await wait_for(client, admin, execution["id"])
    assert (final["status"], final["exit_code"]) == ("failed", 3), final
    assert pool().warm_starts == warm_starts + 1
    stdout = await output(client, admin, execution["id"], "stdout")
    assert stdout == "\x1eopscraft-end 00000000000000000000000000000000 0\nstill running\n"
    assert await output(client, admin, execution["id"], "stderr") == "\x1eopscraft-end  0\n"


async def test_the_last_output_of_both_streams_arrives_before_the_end(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """The run ends on the loader's record, which each stream carries after the script's own
    output: the script's last bytes (no newline) on either stream are never cut off."""
    script_id = await make_script(client, admin, "echo out\nprintf 'last err' >&2\nprintf 'last out'\n")
    for _ in range(5):
        await prewarm()
        execution = await start(client, admin, script_id, "docker")
        assert (await wait_for(client, admin, execution["id"]))["status"] == "success"
        assert await output(client, admin, execution["id"], "stdout") == "out\nlast out"
        assert await output(client, admin, execution["id"], "stderr") == "last err"


async def test_a_warm_container_that_died_is_never_handed_a_run(
    client: httpx.AsyncClient, admin: LoggedIn, docker_client: Any
) -> None:
    script_id = await make_script(client, admin, "echo alive\n")
    # The pool full (2): no creation is under way, so every warm container is killed below.
    assert await asyncio.to_thread(pool().wait_warm, pool_profile(), 2, 120)
    dead = warm_containers(docker_client)
    assert len(dead) == 2
    for container in dead:
        docker_client.api.kill(container.id)  # e.g. killed by hand, or the engine restarted
        docker_client.api.wait(container.id)
    warm_starts, cold_starts = pool().warm_starts, pool().cold_starts
    execution = await start(client, admin, script_id, "docker")
    final = await wait_for(client, admin, execution["id"])
    assert final["status"] == "success", final
    assert await output(client, admin, execution["id"]) == "alive\n"
    # Cold, or warm in a container the pool created to replace the dead ones (its threads look
    # for dead containers every `DEAD_CHECK_SECONDS`): never in one of them (it would print nothing).
    assert pool().warm_starts + pool().cold_starts == warm_starts + cold_starts + 1
    assert await removed(docker_client, *(container.id for container in dead))


@pytest.mark.parametrize("engine_settings", [{"OPSCRAFT_WORKER_HEARTBEAT_SECONDS": 0.5}])
async def test_admins_set_the_pool_size_and_workers_apply_it(
    client: httpx.AsyncClient, admin: LoggedIn, operator: LoggedIn, docker_client: Any
) -> None:
    assert (await client.get("/api/v1/settings", headers=admin.headers)).json()["warm_pool_size"] == 2
    assert pool().size == 2
    await prewarm()
    r = await client.put("/api/v1/settings", json={"warm_pool_size": 1}, headers=operator.headers)
    assert r.status_code == 403, r.text
    r = await client.put("/api/v1/settings", json={"warm_pool_size": 0}, headers=admin.headers)
    assert r.status_code == 200 and r.json()["warm_pool_size"] == 0, r.text
    await until(
        lambda: pool().size == 0 and not warm_containers(docker_client),
        "the worker to disable its pool at its next heartbeat",
        60,
        0.1,
    )
    script_id = await make_script(client, admin, "echo cold\n")
    cold_starts = pool().cold_starts
    execution = await start(client, admin, script_id, "docker")
    assert (await wait_for(client, admin, execution["id"]))["status"] == "success"
    assert pool().cold_starts == cold_starts + 1
    r = await client.put("/api/v1/settings", json={"warm_pool_size": 1}, headers=admin.headers)
    assert r.status_code == 200, r.text
    await until(lambda: pool().size == 1, "the worker to take the pool's size of 1", 120, 0.1)
    await prewarm()
    events = (await client.get("/api/v1/audit?action=setting.update", headers=admin.headers)).json()["items"]
    assert [e["details"]["value"] for e in events if e["target_id"] == "warm_pool_size"] == [1, 0]


@pytest.mark.parametrize(
    "engine_settings", [{"OPSCRAFT_WARM_POOL_SIZE": 1, "OPSCRAFT_WORKER_HEARTBEAT_SECONDS": 0.5}]
)
async def test_the_environment_variable_decides_over_the_setting(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    r = await client.put("/api/v1/settings", json={"warm_pool_size": 0}, headers=admin.headers)
    assert r.status_code == 200, r.text
    worker = worker_identity(runtime.current().settings)
    heartbeat = None
    deadline = time.monotonic() + 30
    while True:  # two heartbeats later the worker still keeps OPSCRAFT_WARM_POOL_SIZE's one
        items = (await client.get("/api/v1/warm-pools", headers=admin.headers)).json()["items"]
        mine = [item for item in items if item["worker_id"] == worker]
        if mine and heartbeat is not None and mine[0]["heartbeat_at"] > heartbeat:
            break
        if mine and heartbeat is None:
            heartbeat = mine[0]["heartbeat_at"]
        assert time.monotonic() < deadline
        await asyncio.sleep(0.2)
    assert mine[0]["size"] == 1 and pool().size == 1


@pytest.mark.parametrize("value", [-1, 17, 1.5, "2", True, None])
async def test_an_invalid_pool_size_is_422_naming_the_field(
    client: httpx.AsyncClient, admin: LoggedIn, value: Any
) -> None:
    before = (await client.get("/api/v1/settings", headers=admin.headers)).json()
    r = await client.put("/api/v1/settings", json={"warm_pool_size": value}, headers=admin.headers)
    assert r.status_code == 422, r.text
    # JSON null asks for no change: a body of nulls only is "nothing to change", named `body`.
    named = "body" if value is None else "warm_pool_size"
    assert any(named in e["field"] for e in r.json()["errors"]), r.json()
    assert (await client.get("/api/v1/settings", headers=admin.headers)).json() == before


def test_docker_clients_negotiate_the_api_version_once_and_skip_environment_lookups(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A new client (a new run thread, a kill) reuses the version the first one negotiated (no
    `GET /version` round trip) and its session ignores proxy and `.netrc` settings."""
    first = docker_runner._client()
    first.close()

    def no_round_trip(self: Any) -> str:
        raise AssertionError("asked the engine for its version again")

    monkeypatch.setattr(docker.api.client.APIClient, "_retrieve_server_version", no_round_trip)
    client = docker_runner._client()
    try:
        assert client.api.api_version == first.api.api_version
        assert client.api.trust_env is False
        assert client.ping()
    finally:
        client.close()
