"""The live-log bus on Redis Streams (`ports.LogBus` across processes).

One stream per execution, `<prefix>:log:<execution id>`. A log event is added with the stream
id `<seq>-*` (its sequence number; Redis fills the second part), a status event with
`<last seq>-*`, so stream ids follow the run's sequence numbers and a watcher resumes with
`XREAD BLOCK ... <after_seq>-0`: everything after its last line, nothing twice. When storage
has committed output up to `seq` the worker trims the stream (`XTRIM MINID seq`), so Redis holds
only what storage does not have yet; a watcher that asks for trimmed entries sees the gap in
sequence numbers and gets `ports.OVERFLOW`, i.e. re-reads storage. A final status sets a
short expiry on the stream. Redis being unreachable loses no output: publishing is skipped
(with a warning), storage keeps every chunk, and the execution client re-reads storage while
its subscription is quiet. Source of the commands: https://redis.io/docs/latest/develop/data-types/streams/
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import weakref
from collections import deque
from datetime import datetime
from typing import Any

import redis
import redis.asyncio as aredis

from opscraft.execution.events import Event, LogEvent, StatusEvent
from opscraft.execution.ports import OVERFLOW

log = logging.getLogger(__name__)

FINAL_EXPIRY_SECONDS = 300
STREAM_EXPIRY_SECONDS = 24 * 3600
# Entries per XREAD. A log entry holds up to `output.CHUNK_CHARS` (128 KiB), so a watcher of a
# loud run reads about 1 MiB at a time and decodes it one entry per `get`: the web process's
# event loop, which serves every other request too, is never held for a whole backlog (500
# entries were up to 64 MB decoded in one step; docs/benchmarks.md, S3).
READ_COUNT = 8
WARN_EVERY_SECONDS = 30.0
RETRY_SECONDS = 0.5


def encode(event: Event) -> dict[str, str]:
    """The stream entry's fields for `event` (one JSON field `e`)."""
    if isinstance(event, LogEvent):
        return {"e": json.dumps({"seq": event.seq, "stream": event.stream, "content": event.content})}
    return {"e": json.dumps(event.message())}


def decode(fields: dict[bytes, bytes]) -> Event:
    """The event a stream entry holds (the inverse of `encode`)."""
    data: dict[str, Any] = json.loads(fields[b"e"])
    if "seq" in data:
        return LogEvent(int(data["seq"]), data["stream"], data["content"])
    return StatusEvent(
        status=data["status"],
        final=data["type"] == "end",
        exit_code=data["exit_code"],
        error_message=data["error_message"],
        started_at=datetime.fromisoformat(data["started_at"]) if data["started_at"] else None,
        finished_at=datetime.fromisoformat(data["finished_at"]) if data["finished_at"] else None,
    )


class _Warner:
    """Logs a Redis failure at most once per `WARN_EVERY_SECONDS` (an outage is not a log flood)."""

    def __init__(self) -> None:
        self._last = 0.0

    def __call__(self, what: str, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._last >= WARN_EVERY_SECONDS:
            self._last = now
            log.warning("Redis unreachable (%s): %s; storage and polling carry on", what, exc)


class RedisSubscription:
    """One watcher's position in an execution's stream; `backlog` is empty (`get` reads it all)."""

    def __init__(self, client: aredis.Redis, key: str, after_seq: int) -> None:
        self.backlog: list[LogEvent] = []
        self._client = client
        self._key = key
        self._position = f"{after_seq}-0"
        self._last_seq = after_seq
        self._ready: deque[dict[bytes, bytes]] = deque()  # read, decoded when handed out

    async def get(self, wait_seconds: float | None = None) -> Event | object | None:
        if not self._ready:
            block = 0 if wait_seconds is None else max(int(wait_seconds * 1000), 1)
            try:
                reply = await self._client.xread({self._key: self._position}, count=READ_COUNT, block=block)
            except (redis.RedisError, OSError) as exc:
                _warn("reading live output", exc)
                await asyncio.sleep(min(wait_seconds or RETRY_SECONDS, RETRY_SECONDS))
                return None  # the caller re-reads storage, then subscribes again
            for _, entries in reply or []:
                for entry_id, fields in entries:
                    self._position = entry_id.decode()
                    self._ready.append(fields)
            if not self._ready:
                return None
        event = decode(self._ready.popleft())
        if isinstance(event, LogEvent):
            if event.seq > self._last_seq + 1:
                self._ready.clear()
                return OVERFLOW  # trimmed (stored) entries: storage has them
            self._last_seq = max(self._last_seq, event.seq)
        return event

    def close(self) -> None:
        """Nothing to release: the connection goes back to the pool after each read."""


class RedisLogBus:
    """`ports.LogBus` on Redis Streams (see the module docstring). `publish`/`stored` are called
    from worker threads (synchronous client); `subscribe` from an event loop (asyncio client,
    one per loop)."""

    def __init__(self, url: str, prefix: str) -> None:
        self._url = url
        self._prefix = prefix
        self._sync = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)
        self._lock = threading.Lock()
        self._last_seq: dict[int, int] = {}
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aredis.Redis] = (
            weakref.WeakKeyDictionary()
        )

    def key(self, execution_id: int) -> str:
        """The stream of `execution_id`."""
        return f"{self._prefix}:log:{execution_id}"

    def publish(self, execution_id: int, event: Event) -> None:
        key = self.key(execution_id)
        with self._lock:
            if isinstance(event, LogEvent):
                self._last_seq[execution_id] = event.seq
                entry_id = f"{event.seq}-*"
            else:
                entry_id = f"{self._last_seq.get(execution_id, 0)}-*"
                if event.final:
                    self._last_seq.pop(execution_id, None)
        try:
            pipe = self._sync.pipeline(transaction=False)
            pipe.xadd(key, encode(event), id=entry_id)
            if isinstance(event, StatusEvent):
                pipe.expire(key, FINAL_EXPIRY_SECONDS if event.final else STREAM_EXPIRY_SECONDS)
            pipe.execute()
        except redis.ResponseError:
            # The stream is ahead of this process's numbering (a final status for a run another
            # process published to): append with an automatic id instead.
            try:
                self._sync.xadd(key, encode(event))
            except (redis.RedisError, OSError) as exc:
                _warn("publishing live output", exc)
        except (redis.RedisError, OSError) as exc:
            _warn("publishing live output", exc)

    def stored(self, execution_id: int, upto_seq: int) -> None:
        try:
            self._sync.xtrim(self.key(execution_id), minid=f"{upto_seq}-0", approximate=False)
        except (redis.RedisError, OSError) as exc:
            _warn("trimming stored output", exc)

    def subscribe(self, execution_id: int, after_seq: int = 0) -> RedisSubscription:
        return RedisSubscription(self._client_for_loop(), self.key(execution_id), after_seq)

    def _client_for_loop(self) -> aredis.Redis:
        loop = asyncio.get_running_loop()
        client = self._async.get(loop)
        if client is None:
            client = aredis.Redis.from_url(self._url, socket_connect_timeout=2)
            self._async[loop] = client
        return client

    def close(self) -> None:
        """Close the synchronous connections (the asyncio ones close with their loop)."""
        self._sync.close()


_warn = _Warner()
