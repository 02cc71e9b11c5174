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
its subscription is quiet.

A Redis that does not answer (frozen, a network cut: its connections stay open) must not hold
anyone: every command has a socket timeout (a watcher's `XREAD BLOCK` blocks at most
`MAX_BLOCK_SECONDS`, less than its socket timeout `READ_TIMEOUT_SECONDS`; before, the asyncio
client had redis-py's default: none before redis-py 8, so a watcher's read waited for ever; 5 s
from 8 on, so a watcher saw a line every 5.5 s and each publish held the output pump 5 s). After
a failure the bus stops asking
Redis for a pause (`_Outage`: from `OUTAGE_PAUSE_SECONDS`, doubling to `OUTAGE_MAX_PAUSE_SECONDS`
while it lasts): publishing and trimming are skipped, and a watcher's `get` waits without Redis
and answers "quiet", so its execution client follows the run from storage once per poll; the
first command that succeeds ends the pause. Source of the commands:
https://redis.io/docs/latest/develop/data-types/streams/
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import weakref
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import redis
import redis.asyncio as aredis

from opscraft.db.types import utc_text
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
# A watcher's XREAD blocks at most this long (a longer `get` reads again), so that a socket
# timeout a little longer tells a Redis that does not answer from a quiet stream.
MAX_BLOCK_SECONDS = 1.0
READ_TIMEOUT_SECONDS = MAX_BLOCK_SECONDS + 2.0
# Publishing and trimming (worker threads, the web process's cancel of a queued run): XADD and
# XTRIM answer in milliseconds; this bounds how long a frozen Redis holds an output pump.
WRITE_TIMEOUT_SECONDS = 2.0
CONNECT_TIMEOUT_SECONDS = 2.0
OUTAGE_PAUSE_SECONDS = 1.0
OUTAGE_MAX_PAUSE_SECONDS = 8.0


def encode(event: Event) -> dict[str, str]:
    """The stream entry's fields for `event` (one JSON field `e`)."""
    if isinstance(event, LogEvent):
        # `at`, when it was produced: the execution page stamps its lines with it.
        at = utc_text(event.at)
        fields = {"seq": event.seq, "stream": event.stream, "content": event.content, "at": at}
        return {"e": json.dumps(fields)}
    return {"e": json.dumps(event.message())}


def decode(fields: dict[bytes, bytes]) -> Event:
    """The event a stream entry holds (the inverse of `encode`)."""
    data: dict[str, Any] = json.loads(fields[b"e"])
    if "seq" in data:
        at = data.get("at")  # absent from entries a worker of an earlier version added
        return LogEvent(int(data["seq"]), data["stream"], data["content"], _time(at))
    return StatusEvent(
        status=data["status"],
        final=data["type"] == "end",
        exit_code=data["exit_code"],
        error_message=data["error_message"],
        started_at=_time(data["started_at"]),
        finished_at=_time(data["finished_at"]),
    )


def _time(text: str | None) -> datetime | None:
    """A time `encode` wrote (`utc_text`), None for none."""
    return datetime.fromisoformat(text) if text else None


class _Warner:
    """Logs a Redis failure at most once per `WARN_EVERY_SECONDS` (an outage is not a log flood)."""

    def __init__(self) -> None:
        self._last = 0.0

    def __call__(self, what: str, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._last >= WARN_EVERY_SECONDS:
            self._last = now
            log.warning("Redis unreachable (%s): %s; storage and polling carry on", what, exc)


class _Outage:
    """Whether Redis failed recently: after a failure nobody asks it for a pause (doubling while
    failures go on, up to `OUTAGE_MAX_PAUSE_SECONDS`); a success ends it. Shared by one bus's
    threads and watchers (plain attribute writes: a race costs at most one more try)."""

    def __init__(self) -> None:
        self._until = 0.0
        self._pause = OUTAGE_PAUSE_SECONDS

    def now(self) -> bool:
        """True while Redis is not to be asked."""
        return time.monotonic() < self._until

    def remaining(self) -> float:
        """Seconds until Redis may be asked again (0 when it may now)."""
        return max(0.0, self._until - time.monotonic())

    def failed(self) -> None:
        self._until = time.monotonic() + self._pause
        self._pause = min(self._pause * 2, OUTAGE_MAX_PAUSE_SECONDS)

    def answered(self) -> None:
        self._until = 0.0
        self._pause = OUTAGE_PAUSE_SECONDS


class RedisSubscription:
    """One watcher's position in an execution's stream; `backlog` is empty (`get` reads it all)."""

    def __init__(self, client: aredis.Redis, key: str, after_seq: int, outage: _Outage) -> None:
        self.backlog: list[LogEvent] = []
        self.status: StatusEvent | None = None  # storage is always read first (`ports.Subscription`)
        self._client = client
        self._outage = outage
        self._key = key
        self._position = f"{after_seq}-0"
        self._last_seq = after_seq
        self._ready: deque[dict[bytes, bytes]] = deque()  # read, decoded when handed out

    async def get(self, wait_seconds: float | None = None) -> Event | object | None:
        """Wait up to `wait_seconds` (None: no limit) for the run's next event from its Redis stream.

        Returns the event, OVERFLOW when entries were skipped (trimmed, or a gap in `seq`: storage has
        them), or None when nothing came in time or Redis failed (the caller then re-reads storage and the
        row). Redis errors are logged, never raised.
        """
        deadline = None if wait_seconds is None else time.monotonic() + wait_seconds
        while not self._ready:
            left = None if deadline is None else deadline - time.monotonic()
            if self._outage.now():
                # Redis failed a moment ago: wait without it, then "quiet" (the caller re-reads
                # storage and the row, so it follows the run from the database meanwhile).
                pause = self._outage.remaining()
                await asyncio.sleep(pause if left is None else min(left, pause))
                return None
            block = MAX_BLOCK_SECONDS if left is None else min(max(left, 0.001), MAX_BLOCK_SECONDS)
            try:
                reply = await self._client.xread(
                    {self._key: self._position}, count=READ_COUNT, block=max(int(block * 1000), 1)
                )
            except (redis.RedisError, OSError) as exc:
                self._outage.failed()
                _warn("reading live output", exc)
                await asyncio.sleep(min(wait_seconds or RETRY_SECONDS, RETRY_SECONDS))
                return None  # the caller re-reads storage, then subscribes again
            self._outage.answered()
            for _, entries in reply or []:
                for entry_id, fields in entries:
                    self._position = entry_id.decode()
                    self._ready.append(fields)
            if not self._ready and deadline is not None and time.monotonic() >= deadline:
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
        self._sync = redis.Redis.from_url(
            url, socket_timeout=WRITE_TIMEOUT_SECONDS, socket_connect_timeout=CONNECT_TIMEOUT_SECONDS
        )
        self._outage = _Outage()
        self._trimmer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="opscraft-bus-trim")
        self._lock = threading.Lock()
        self._last_seq: dict[int, int] = {}
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aredis.Redis] = (
            weakref.WeakKeyDictionary()
        )

    def key(self, execution_id: int) -> str:
        """The stream of `execution_id`."""
        return f"{self._prefix}:log:{execution_id}"

    def publish(self, execution_id: int, event: Event) -> None:
        """Append a run's event to its Redis stream (entry id from the log `seq`); a status event sets the
        stream's expiry.

        Skipped while Redis is known to be down (storage has the output); Redis errors are logged and mark
        the outage, never raised.
        """
        key = self.key(execution_id)
        with self._lock:
            if isinstance(event, LogEvent):
                self._last_seq[execution_id] = event.seq
                entry_id = f"{event.seq}-*"
            else:
                entry_id = f"{self._last_seq.get(execution_id, 0)}-*"
                if event.final:
                    self._last_seq.pop(execution_id, None)
        if self._outage.now():
            return  # skipped: storage has it, watchers re-read storage meanwhile
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
                self._failed("publishing live output", exc)
        except (redis.RedisError, OSError) as exc:
            self._failed("publishing live output", exc)
        else:
            self._outage.answered()

    def stored(self, execution_id: int, upto_seq: int) -> None:
        """Trim the stream up to `upto_seq` from the trimming thread: this is called when a batch
        is stored, on the worker's event loop, which also writes its heartbeats (a Redis that
        did not answer held it for the socket timeout: with a short `worker_lost_seconds` the
        worker was declared lost and its runs ended)."""
        if self._outage.now():
            return  # the stream keeps those entries a little longer; watchers drop duplicates
        self._trimmer.submit(self._trim, execution_id, upto_seq)

    def _trim(self, execution_id: int, upto_seq: int) -> None:
        try:
            self._sync.xtrim(self.key(execution_id), minid=f"{upto_seq}-0", approximate=False)
        except (redis.RedisError, OSError) as exc:
            self._failed("trimming stored output", exc)

    def _failed(self, what: str, exc: Exception) -> None:
        self._outage.failed()
        _warn(what, exc)

    def subscribe(self, execution_id: int, after_seq: int = 0) -> RedisSubscription:
        """Subscribe to a run's Redis stream from after `after_seq`."""
        return RedisSubscription(self._client_for_loop(), self.key(execution_id), after_seq, self._outage)

    def _client_for_loop(self) -> aredis.Redis:
        loop = asyncio.get_running_loop()
        client = self._async.get(loop)
        if client is None:
            client = aredis.Redis.from_url(
                self._url, socket_timeout=READ_TIMEOUT_SECONDS, socket_connect_timeout=CONNECT_TIMEOUT_SECONDS
            )
            self._async[loop] = client
        return client

    def close(self) -> None:
        """Close the synchronous connections (the asyncio ones close with their loop); trims not
        done yet are dropped (the streams expire)."""
        self._trimmer.shutdown(wait=False, cancel_futures=True)
        self._sync.close()


_warn = _Warner()
