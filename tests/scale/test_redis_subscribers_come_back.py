"""Every Redis subscriber of OpsCraft follows its channel again after each kind of Redis outage,
in process against a private `redis-server` (`private_redis`): a web process's session storages
(`ui.redis_storage`, NiceGUI's `opscraft:nicegui:*changes` channels) and a worker's cancel
listener (`execution.redis_cancel`, `<prefix>:cancel`). The other readers of Redis poll (a run's
live output: `XREAD`; the job queue: `BRPOP`) and are tested across restarts in
`test_scale_out.py` and `test_queue_restart.py`.

The outages: a restart; Redis down for several resubscription periods (each attempt refused); a
restart where Redis loads its data for seconds (every command but a few, `SUBSCRIBE` among them,
answers `LOADING` meanwhile: `--key-load-delay` slows the load of each key, a Redis test setting);
a freeze (SIGSTOP: connections stay open, nothing answers) that ends in a restart. Also: a
storage closed while it waited for Redis, and a change made to one while Redis was away.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Callable

import pytest
import redis
from nicegui import background_tasks, core
from nicegui.persistence import RedisPersistentDict

from opscraft.execution.redis_cancel import RedisCancelSignal
from opscraft.ui import redis_storage
from opscraft.ui.redis_storage import BoundedRedisPersistentDict, follow_changes
from tests.scale.cluster import RedisServer, wait_for
from tests.waiting import until

pytestmark = pytest.mark.redis

LOADED_KEYS = 2000
KEY_LOAD_DELAY_MICROSECONDS = 1000  # 2 s of `LOADING` at least, more on a loaded machine
DOWN_SECONDS = 3 * redis_storage.RESUBSCRIBE_SECONDS
WARNING = "session storages: Redis does not answer"
BACK = "session storages: following their changes again"


def _client(server: RedisServer) -> redis.Redis:
    return redis.Redis(port=server.port, socket_timeout=5)


def _redis_args(server: RedisServer) -> list[str]:
    """The command line of `server` (no snapshot taken: `--save ""`)."""
    port = ["--port", str(server.port), "--bind", "127.0.0.1"]
    return ["redis-server", *port, "--save", "", "--dir", str(server.workdir)]


def _restart_loading(server: RedisServer) -> None:
    """Restart `server` on a snapshot of `LOADED_KEYS` more keys, loaded one per
    `KEY_LOAD_DELAY_MICROSECONDS`; returns once it answers `LOADING` (or, on a machine slow
    enough, has loaded them all)."""
    pipe = _client(server).pipeline(transaction=False)
    for i in range(LOADED_KEYS):
        pipe.set(f"filler:{i}", "x" * 100)
    pipe.execute()
    _client(server).save()
    server.stop()
    slow = ["--key-load-delay", str(KEY_LOAD_DELAY_MICROSECONDS)]
    slow += ["--loading-process-events-interval-bytes", "1024"]  # clients answered while loading
    server.process = subprocess.Popen([*_redis_args(server), *slow], stdout=subprocess.DEVNULL)

    def answering() -> bool:
        try:
            return bool(redis.Redis(port=server.port, socket_timeout=1, retry=None).ping())
        except redis.BusyLoadingError:
            return True
        except redis.ConnectionError:
            return False  # not listening yet

    wait_for(answering, 30, "redis to answer, loading")


def _restart(server: RedisServer) -> None:
    server.stop()
    server.start()


def _down_a_while(server: RedisServer) -> None:
    server.stop()
    time.sleep(DOWN_SECONDS)  # the outage itself: every resubscription meanwhile is refused
    server.start()


def _frozen_then_restarted(server: RedisServer) -> None:
    assert server.process is not None
    server.process.send_signal(signal.SIGSTOP)
    time.sleep(DOWN_SECONDS)  # the freeze itself: commands wait, nothing fails yet
    server.process.kill()  # a stopped process is killed all the same, and its sockets closed
    server.process.wait(30)
    server.process = None
    server.start()


OUTAGES: dict[str, Callable[[RedisServer], None]] = {
    "restart": _restart,
    "down-a-while": _down_a_while,
    "loading": _restart_loading,
    "frozen-then-restarted": _frozen_then_restarted,
}


@pytest.fixture
async def nicegui_loop() -> AsyncIterator[None]:
    """NiceGUI's `core.loop` set to the test's loop (its background tasks run there)."""
    previous = core.loop
    core.loop = asyncio.get_running_loop()
    try:
        yield
    finally:
        core.loop = previous


def _storages(url: str) -> tuple[BoundedRedisPersistentDict, RedisPersistentDict]:
    """A tab's storage as OpsCraft builds it, and one on NiceGUI's own client (as its `general`
    storage is, loaded before `install`), each under a key of its own."""
    suffix = secrets.token_hex(4)
    return (
        BoundedRedisPersistentDict(url=url, id=f"tab-{suffix}", key_prefix="test:"),
        RedisPersistentDict(url=url, id=f"general-{suffix}", key_prefix="test:"),
    )


async def _subscribed(server: RedisServer, *storages: RedisPersistentDict) -> bool:
    channels = [storage.key + "changes" for storage in storages]
    counts = dict(await asyncio.to_thread(_client(server).pubsub_numsub, *channels))
    return all(counts.get(channel.encode()) for channel in channels)


async def _changed_by_another_process(server: RedisServer, storage: RedisPersistentDict, value: int) -> None:
    """Publish `{"n": value}` as another web process's copy of `storage` does (`publish`: the
    whole data, set and published) until `storage` holds it (a change published while it is not
    subscribed is not replayed)."""
    data = json.dumps({"n": value})

    def publish() -> None:
        _client(server).pipeline().set(storage.key, data).publish(storage.key + "changes", data).execute()

    async def reached() -> bool:
        if storage.get("n") != value:
            try:
                await asyncio.to_thread(publish)
            except (redis.RedisError, OSError):
                return False  # not answering yet (loading): the next poll publishes again
        return storage.get("n") == value

    await until(reached, f"{storage.key} to hold a change made elsewhere ({value})", 60, every=0.1)
    # Taking the change writes it back (NiceGUI's `publish`, a task): done before any outage
    # starts (one that meets Redis gone ends at ERROR with a traceback: not the subject here).
    backup = f"redis-{storage.key}"
    await until(lambda: backup not in background_tasks.lazy_tasks_running, f"{storage.key}'s write-back", 30)


@pytest.mark.parametrize("outage", OUTAGES)
async def test_session_storages_follow_changes_again_after_each_kind_of_outage(
    private_redis: RedisServer, nicegui_loop: None, caplog: pytest.LogCaptureFixture, outage: str
) -> None:
    """After the outage, a change another web process makes reaches both kinds of storage (an
    OpsCraft one, and one on NiceGUI's own client with its retries and health checks), within
    seconds of Redis answering; the outage is one warning and one line when it is over, no
    traceback."""
    caplog.set_level(logging.INFO)
    ours, nicegui_own = _storages(private_redis.url)
    await ours.initialize()
    follow_changes(nicegui_own)
    try:
        await until(lambda: _subscribed(private_redis, ours, nicegui_own), "the storages to subscribe", 30)
        for storage in (ours, nicegui_own):
            await _changed_by_another_process(private_redis, storage, 1)
        await asyncio.to_thread(OUTAGES[outage], private_redis)
        for storage in (ours, nicegui_own):
            await _changed_by_another_process(private_redis, storage, 2)
        await until(lambda: BACK in caplog.text, "the line saying they follow again", 30)
        assert caplog.text.count(WARNING) == 1, caplog.text
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info], caplog.text
    finally:
        await ours.close()
        await nicegui_own.close()


async def test_a_storage_closed_while_redis_was_away_silences_no_later_outage(
    private_redis: RedisServer, nicegui_loop: None, caplog: pytest.LogCaptureFixture
) -> None:
    """NiceGUI closes the storage of a session with no page open 10-20 s after its last use,
    whatever Redis does. One closed while its subscription waited for Redis was counted as
    waiting for ever: the process never said Redis came back, and said nothing of any later
    outage."""
    caplog.set_level(logging.INFO)
    gone, _ = _storages(private_redis.url)
    await gone.initialize()
    await until(lambda: _subscribed(private_redis, gone), "the storage to subscribe", 30)
    await asyncio.to_thread(private_redis.stop)
    await until(lambda: WARNING in caplog.text, "the outage's warning", 30)
    await gone.close()  # as NiceGUI's `prune_user_storage` does
    await asyncio.to_thread(private_redis.start)
    kept, _ = _storages(private_redis.url)
    await kept.initialize()
    try:
        await until(lambda: _subscribed(private_redis, kept), "the new storage to subscribe", 30)
        caplog.clear()
        await asyncio.to_thread(_restart, private_redis)
        await until(lambda: BACK in caplog.text, "the line saying they follow again", 30)
        assert caplog.text.count(WARNING) == 1, caplog.text
    finally:
        await kept.close()


async def test_a_change_made_while_redis_is_away_is_a_warning_and_the_next_one_saves_it(
    private_redis: RedisServer, nicegui_loop: None, caplog: pytest.LogCaptureFixture
) -> None:
    """A change to a session storage (the display preference; a sign-out clears it) while Redis
    does not answer: NiceGUI's write-back failed with an ERROR and a traceback per change. It is
    a warning naming the storage; the next change once Redis answers writes all of it."""
    caplog.set_level(logging.INFO)
    ours, _ = _storages(private_redis.url)
    await ours.initialize()
    try:
        await until(lambda: _subscribed(private_redis, ours), "the storage to subscribe", 30)
        await asyncio.to_thread(private_redis.stop)
        try:
            ours["dark"] = True  # written back on a task of its own
            ours.clear()  # as a sign-out does: the Redis key deleted on a task of its own
            unsaved = f"session storage {ours.key} not saved"
            await until(lambda: caplog.text.count(unsaved) >= 2, "a warning per change", 30)
            assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info], caplog.text
        finally:
            await asyncio.to_thread(private_redis.start)
        await until(lambda: _subscribed(private_redis, ours), "the storage to subscribe again", 30)
        ours["dark"] = False

        def saved() -> bool:
            return _client(private_redis).get(ours.key) == b'{"dark":false}'

        await until(lambda: asyncio.to_thread(saved), "the next change to be written", 30)
    finally:
        await ours.close()


@pytest.mark.parametrize("outage", OUTAGES)
def test_a_cancel_reaches_the_watching_worker_after_each_kind_of_outage(
    private_redis: RedisServer, outage: str
) -> None:
    """A worker's cancel listener (a thread of its own) subscribes again after the outage: a
    cancel published from another process then reaches the run's kill callback."""
    prefix = f"test-{secrets.token_hex(4)}"
    worker_side, web_side = (
        RedisCancelSignal(private_redis.url, prefix),
        RedisCancelSignal(private_redis.url, prefix),
    )
    killed: list[int] = []
    try:
        worker_side.watch(7, lambda: killed.append(7))
        channel = worker_side.channel.encode()
        wait_for(lambda: dict(_client(private_redis).pubsub_numsub(channel)).get(channel), 30, "the listener")
        OUTAGES[outage](private_redis)

        def cancelled() -> bool:
            if not killed:
                web_side._publish(7)  # from the web process's publishing thread, as `request` does
            return bool(killed)

        wait_for(cancelled, 60, "the cancel to reach the worker after the outage", every=0.5)
    finally:
        worker_side.close()
        web_side.close()
