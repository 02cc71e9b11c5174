"""NiceGUI's per-user and per-tab storage on Redis (`REDIS_URL`), with bounded waits.

NiceGUI loads a browser session's `app.storage.user` from Redis at the first request of that
session in a web process, before the page is built. Its Redis client set no socket timeout of
its own and retried a timed-out command: a frozen Redis (stopped with SIGSTOP, a network cut
without a reset) held such a page load 20 s with redis-py 8.1 (measured; 5 s per attempt), for
ever with redis-py before 8 (no default timeout); and once it gave up, the page was built with an
empty storage, so a signed-in user was shown the sign-in page and stayed signed out in that
process after Redis came back.

`install()` makes NiceGUI build its Redis storage with `BoundedRedisPersistentDict`: every
command gives up after `TIMEOUT_SECONDS`, without a retry. A user storage that cannot be loaded
is not kept (the next request loads it again), and a page request then ends with
`SessionStoreUnreachable`, which NiceGUI's request tracking middleware (`_RequestTracking`)
answers with a 503 page saying Redis does not answer (`ui.unavailable`); other requests of that
session (NiceGUI's scripts and styles, which read no storage) go on. A tab's storage that
cannot be loaded starts empty, as NiceGUI does (it holds no sign-in). The live subscription to
a storage's changes is not bounded: it waits for messages by design.

That subscription (`follow_changes`) carries what other web processes change in a storage (a
sign-out served by another process after a fail-over, the display preference). NiceGUI's ended
at the first connection error, with tracebacks at ERROR in the log: after a Redis restart every
storage of the process stopped following changes until the process restarted. It now
subscribes again once Redis answers (every `RESUBSCRIBE_SECONDS`; a Redis still loading its data
takes a `SUBSCRIBE`), with one warning per process when Redis goes away and one line when it is
back. A storage closed while it waited (NiceGUI closes the user storage of a session with no page
open 10-20 s after its last use) no longer counts as waiting: it kept the process from ever
saying that Redis came back, or went away again. A change published while Redis was away is not
replayed; the storage's next change, which publishes it whole, brings it up to date (it is not
read again from a Redis that may have lost it: the process's copy is then the only one). A
change made here while Redis does not answer is not written back: a warning naming the storage
(NiceGUI's write-back ended at ERROR with a traceback, per change), and the next change writes
all of it.

NiceGUI's `general` storage is loaded as NiceGUI is imported, before this can be installed;
OpsCraft does not use it, but it follows changes too: `install` gives it the same subscription.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import nicegui.storage
from nicegui import app, background_tasks
from nicegui import json as nicegui_json
from nicegui.persistence import PersistentDict, RedisPersistentDict
from nicegui.persistence.serialization import dumps
from nicegui.storage import USER_PREFIX, RequestTrackingMiddleware, request_contextvar
from redis.exceptions import RedisError
from starlette.middleware.base import RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import Response

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 2.0
"""How long a command of NiceGUI's storage (and its connect) waits for Redis before it fails."""
MESSAGE = "Redis, which keeps the browser sessions, does not answer: try again once it is back"
RESUBSCRIBE_SECONDS = 1.0
"""How long a storage's subscription to its changes waits before it subscribes again after Redis
went away."""
_LOST: set[asyncio.Task[None]] = set()  # the subscriptions waiting for Redis: one warning for all
_ASSETS = "/_nicegui/"  # NiceGUI's scripts, styles and fonts: no storage is read


class SessionStoreUnreachable(ConnectionError):
    """A page request whose session storage could not be loaded from Redis (`reason`: why)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"{MESSAGE} ({reason})")
        self.reason = reason


class BoundedRedisPersistentDict(RedisPersistentDict):
    """NiceGUI's `RedisPersistentDict` whose client waits `TIMEOUT_SECONDS` per command and does
    not retry (see the module docstring)."""

    def __init__(self, *, url: str, id: str, **options: Any) -> None:
        super().__init__(url=url, id=id, **options)
        import redis.asyncio as redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self._redis_client_params = {
            **self._redis_client_params,
            "socket_timeout": TIMEOUT_SECONDS,
            "socket_connect_timeout": TIMEOUT_SECONDS,
            "retry_on_timeout": False,
            "retry": Retry(NoBackoff(), 0),
        }
        # The parent's client has not connected yet (redis-py connects at the first command).
        self.redis_client = redis.from_url(self.url, **self._redis_client_params)
        self.pubsub = self.redis_client.pubsub()
        self._user_session = id.removeprefix(USER_PREFIX) if id.startswith(USER_PREFIX) else None

    async def initialize(self) -> None:
        """Load the stored data and follow its changes; a user storage Redis does not give is
        dropped, and a page request then raises `SessionStoreUnreachable`."""
        if self._user_session is None:
            await super().initialize()  # a tab's storage: empty when it cannot be loaded
            return
        try:
            data = await self.redis_client.get(self.key)
        except Exception as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            users = app.storage._users  # NiceGUI keeps them there, by session id
            if users.get(self._user_session) is self:
                del users[self._user_session]
            request = request_contextvar.get()
            if request is not None and not request.url.path.startswith(_ASSETS):
                raise SessionStoreUnreachable(reason) from None
            log.debug("session storage not loaded for %s: %s", request.url.path if request else "-", reason)
            return
        self.update(nicegui_json.loads(data) if data else {})
        self._start_listening()

    def _start_listening(self) -> None:
        follow_changes(self)

    def publish(self) -> None:
        """Write the whole storage back to Redis and publish it to the other web processes, on a
        task (NiceGUI's `publish`, called at every change); while Redis does not answer, a warning
        (NiceGUI's ended at ERROR with a traceback) and the next change writes it all."""

        async def backup() -> None:
            if not await self.redis_client.exists(self.key) and not self:
                return
            data = dumps(self, self.key)
            pipeline = self.redis_client.pipeline()
            pipeline.set(self.key, data, ex=self.ttl)
            pipeline.publish(self.key + "changes", data)
            await pipeline.execute()

        background_tasks.create_lazy_or_defer(self._unsaved_warned(backup()), name=f"redis-{self.key}")

    def clear(self) -> None:
        """Empty the storage and delete its Redis key on a task (NiceGUI's `clear`, as a sign-out
        does); while Redis does not answer, a warning, as `publish`."""
        PersistentDict.clear(self)
        deleted = self._unsaved_warned(self.redis_client.delete(self.key))
        background_tasks.create_lazy_or_defer(deleted, name=f"redis-delete-{self.key}")

    async def _unsaved_warned(self, write: Awaitable[Any]) -> None:
        """Await `write`, a Redis write of this storage; a Redis error is one warning line."""
        try:
            await write
        except (RedisError, OSError) as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            log.warning(
                "session storage %s not saved to Redis (%s): other web processes see it at its "
                "next change once Redis answers",
                self.key,
                reason,
            )


def follow_changes(storage: RedisPersistentDict) -> None:
    """Follow the changes other web processes publish to `storage` (its `<key>changes` channel)
    on a task of its own, replacing any it had, and subscribe again after Redis went away (see
    the module docstring). Needs the running event loop."""
    import redis

    channel = storage.key + "changes"

    async def listen() -> None:
        task = asyncio.current_task()
        assert task is not None
        try:
            while True:
                try:
                    await storage.pubsub.subscribe(channel)
                    if task in _LOST:
                        _LOST.discard(task)
                        if not _LOST:
                            log.info("session storages: following their changes again")
                    async for message in storage.pubsub.listen():
                        if message["type"] == "message":
                            _take(storage, nicegui_json.loads(message["data"]))
                except (redis.RedisError, OSError) as exc:
                    if not _LOST:
                        reason = " ".join(str(exc).split()) or type(exc).__name__
                        log.warning(
                            "session storages: Redis does not answer (%s): changes other web "
                            "processes make to them reach this one once it does",
                            reason,
                        )
                    _LOST.add(task)
                    await storage.pubsub.aclose()  # a new connection at the next subscribe
                    await asyncio.sleep(RESUBSCRIBE_SECONDS)
        finally:  # the storage was closed (its task cancelled): it no longer waits for Redis
            _LOST.discard(task)

    previous = storage._listener_task
    if previous is not None and not previous.done():
        previous.cancel()
    storage._listener_task = background_tasks.create(listen(), name=f"redis-listen-{storage.key}")


def _take(storage: RedisPersistentDict, data: dict[str, Any]) -> None:
    """Make `storage` hold `data` (published by another process), as NiceGUI's listener does: keys
    it no longer has removed one by one (`clear` would delete the Redis key too)."""
    if data == storage:
        return
    for key in set(storage) - data.keys():
        del storage[key]
    storage.update(data)


class _RequestTracking(RequestTrackingMiddleware):
    """NiceGUI's middleware that loads a session's storage before its request, answering a page
    request whose storage Redis does not give with `respond` (one warning line in the log)."""

    respond: Callable[[Request], Response]

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        try:
            return await super().dispatch(request, call_next)
        except SessionStoreUnreachable as exc:
            log.warning(
                "%s %s: the session storage's Redis does not answer (%s)",
                request.method,
                request.url.path,
                exc.reason,
            )
            return type(self).respond(request)


def install(respond: Callable[[Request], Response]) -> None:
    """Have NiceGUI create its Redis storages (users', tabs') with `BoundedRedisPersistentDict`,
    give its `general` storage the subscription of `follow_changes` at start-up, and answer a
    page whose session Redis does not give with `respond(request)` (a 503 page). Call before
    `ui.run`, which installs NiceGUI's request tracking middleware: both classes are looked up by
    name in `nicegui.storage` when they are used."""
    _RequestTracking.respond = respond
    nicegui.storage.RedisPersistentDict = BoundedRedisPersistentDict  # type: ignore[misc]
    nicegui.storage.RequestTrackingMiddleware = _RequestTracking  # type: ignore[misc]
    general = app.storage._general
    if isinstance(general, RedisPersistentDict):  # NiceGUI's own listener starts before this one
        app.on_startup(lambda: follow_changes(general))
