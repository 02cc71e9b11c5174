"""Which database a Redis job queue serves: a process whose database is not the one of the
processes already using the queue (`REDIS_URL` and `OPSCRAFT_REDIS_PREFIX`) stops at start.

A worker started with the team's `REDIS_URL` but without `DATABASE_URL` (it then opens a SQLite
database in its own data directory), or with another installation's database, took runs from
the shared queue, found no such run in its database and dropped them, saying nothing: they
stayed `queued` while a correct worker sat idle (the stall check sends the oldest of each script
again every 10 s, and the stray worker's waiting consumers took most of those too).

The database keeps a random id (`app_settings` row `installation`, created by the first start;
not one of the admin-editable settings); Redis keeps the id of the database its queue serves
(`<prefix>:installation`), set by the first process that checks, and again by each running web
process every heartbeat period when it is empty (`keep_records`: after a Redis restart without
persistence).

The other way round, one database served by two Redis queues: a process started with another
`REDIS_URL` (or `OPSCRAFT_REDIS_PREFIX`) than the rest of its installation, on the right database,
claimed that other (empty) Redis for the database and started without a word. A web process of
that kind enqueued every run where no worker reads: each started only when a worker's stall check
sent it again, 10 to 15 s later; a worker of that kind sat `alive` with free slots and took only
what its own stall checks sent there. So each Redis queue has a random id too
(`<prefix>:queue-id`, created by the first process that asks, again after a Redis restart without
persistence), and web processes record the id of theirs (and its place: the server's own TCP
port, database number, prefix) in the database at start and at every heartbeat period, in a round
of their run event dispatcher (`app_settings` row `queue`, `updated_at` in the database's clock).
A process starting while that record is fresh (OPSCRAFT_WORKER_LOST_SECONDS) and names another
queue stops with one line, after waiting a few seconds for the record to change. So does a process
started without `REDIS_URL` (its queue then in its data directory) while that record is fresh.

A Redis restarted without persistence since the record (its uptime shorter than the record's age)
at the recorded place is the same queue with a new id: such a process starts at once. Waiting for
a web process to record the new id refused a worker restarted while every web process was down
(and held a web process restarted then for 15 s).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any

import redis
from redis.connection import parse_url
from sqlalchemy import Connection, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from opscraft.config import ConfigError, Settings
from opscraft.db import clock
from opscraft.db.engine import Database
from opscraft.db.models import AppSetting
from opscraft.db.types import utcnow
from opscraft.execution import run_events

STATE_KEY = "installation"
QUEUE_STATE_KEY = "queue"
_TIMEOUT_SECONDS = 5
_TOKEN_TIMEOUT_SECONDS = 2


async def database_id(db: Database) -> str:
    """The database's installation id (32 hex characters), created on first use; concurrent
    first starts agree on one (`stored_id`)."""
    async with db.engine.begin() as conn:
        return await conn.run_sync(stored_id)


def stored_id(conn: Connection) -> str:
    """`database_id` as a step of a synchronous connection (a worker's `store.Store.run`): the
    `app_settings` row `installation`, inserted when missing; an insert that loses to another
    process's is skipped (ON CONFLICT DO NOTHING) and theirs is read."""
    table = AppSetting.__table__
    read = select(table.c.value).where(table.c.key == STATE_KEY)
    value = conn.execute(read).scalar_one_or_none()
    if value is None:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        row = {"key": STATE_KEY, "value": {"id": uuid.uuid4().hex}, "updated_at": utcnow()}
        conn.execute(dialect.insert(table).values(**row).on_conflict_do_nothing(index_elements=["key"]))
        value = conn.execute(read).scalar_one()
    return str(value["id"])


def claim_queue(settings: Settings, installation: str) -> bool:
    """Record `installation` as the database the job queue at `settings.redis_url` serves, or
    check it against the one recorded; whether this call made the record (the key was empty: a
    start refused afterwards gives it back, `release_queue`). `ConfigError` when another
    database's id is recorded (the message names this process's database without its password).
    A Redis that does not answer is not judged here: a worker refuses one at start
    (`cli/worker.check_redis`), and a web process waits for it (docs/deployment.md)."""
    stored, made = _claim(settings, installation, _TIMEOUT_SECONDS)
    if stored is None or stored == installation:
        return made
    key = f"{settings.redis_prefix}:{STATE_KEY}"
    database = make_url(settings.effective_database_url).render_as_string(hide_password=True)
    raise ConfigError(
        f"REDIS_URL: the job queue there serves another OpsCraft database than this process's "
        f"({database}): check DATABASE_URL (without it a process opens the SQLite database of its "
        "data directory); installations sharing one Redis need each their own OPSCRAFT_REDIS_PREFIX; "
        f"if this database replaced that one for good, delete the Redis key {key}"
    )


_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then redis.call('del', KEYS[1], KEYS[2]) end"


def release_queue(settings: Settings, installation: str) -> None:
    """Undo a claim this process made (`claim_queue` returned True) when its start is refused
    after it (`require_same_queue`: its database's web processes use another queue): a worker
    started with a wrong Redis database number left `<prefix>:installation` naming its database
    there, and the installation that later used that Redis database was refused as "another
    OpsCraft database". The key is deleted only while it still names `installation` (one atomic
    script), with the queue id the same check made (`<prefix>:queue-id`: a queue no database
    claimed before has no web process that recorded its id). Redis not answering within 2 s:
    nothing done (the refusal's message is what matters)."""
    assert settings.redis_url
    client = _client(settings, _TOKEN_TIMEOUT_SECONDS)
    keys = (f"{settings.redis_prefix}:{STATE_KEY}", f"{settings.redis_prefix}:queue-id")
    try:
        client.eval(_RELEASE, len(keys), *keys, installation)
    except redis.RedisError:
        return
    finally:
        client.close()


def _claim(settings: Settings, installation: str, timeout: float) -> tuple[str | None, bool]:
    """Set `<prefix>:installation` to `installation` unless it holds an id already (SET NX): the
    id it holds afterwards (None when Redis does not answer within `timeout` seconds) and
    whether this call set it."""
    assert settings.redis_url
    client = _client(settings, timeout)
    try:
        key = f"{settings.redis_prefix}:{STATE_KEY}"
        made = bool(client.set(key, installation, nx=True))
        stored = client.get(key)
    except redis.RedisError:
        return None, False
    finally:
        client.close()
    return (None if stored is None else stored.decode(errors="replace")), made


def _client(settings: Settings, timeout: float) -> redis.Redis:
    """A client of the job queue's Redis (`settings.redis_url`) giving up after `timeout` seconds
    (connect and each command)."""
    assert settings.redis_url
    return redis.Redis.from_url(settings.redis_url, socket_connect_timeout=timeout, socket_timeout=timeout)


async def keep_records(db: Database, settings: Settings, installation: str) -> None:
    """For a web process, every heartbeat period: record its job queue (`record_queue`), and claim
    that queue for `installation` (this database's id) again when its key is empty (SET NX). A
    Redis restarted without persistence lost `<prefix>:installation`: the first process to start
    claimed it, and a stray worker on another database starting first took the queue and had
    the installation's own processes refused; now the running web process fills the key within
    one heartbeat period. A key naming another database is left as it is (`claim_queue` refuses
    the processes starting on it, naming the key to delete). Redis is given 2 s, as in
    `record_queue`, and once: the round holds the run event dispatcher, and a Redis that does
    not answer has no queue to record."""
    stored, _ = await asyncio.to_thread(_claim, settings, installation, _TOKEN_TIMEOUT_SECONDS)
    if stored is not None:
        await record_queue(db, settings)


@dataclass(frozen=True)
class Queue:
    """A Redis job queue as one process sees it. `id`: its random id (32 hex characters);
    `place`: where it is, however REDIS_URL spells the host (`port`: the server's own TCP port
    from `INFO server`, `db`: the database number, `prefix`: OPSCRAFT_REDIS_PREFIX); `uptime`:
    seconds that Redis server has been up. `port` and `uptime` are None when the Redis user may
    not run INFO."""

    id: str
    place: dict[str, int | str | None]
    uptime: float | None


def queue_of(settings: Settings) -> Queue | None:
    """The job queue at `settings.redis_url` and `settings.redis_prefix`; its id
    (`<prefix>:queue-id`) is created by the first process that asks. None when Redis does not
    answer within 2 s (not judged here, as in `claim_queue`)."""
    assert settings.redis_url
    key = f"{settings.redis_prefix}:queue-id"
    client = _client(settings, _TOKEN_TIMEOUT_SECONDS)
    try:
        client.set(key, uuid.uuid4().hex, nx=True)
        stored = client.get(key)
        try:
            server = client.info("server")
        except redis.ResponseError:  # INFO not allowed to this user (ACL): no restart rule
            server = {}
    except redis.RedisError:
        return None
    finally:
        client.close()
    if stored is None:
        return None
    uptime = server.get("uptime_in_seconds")
    place = {
        "port": server.get("tcp_port"),
        "db": int(client.connection_pool.connection_kwargs.get("db") or 0),
        "prefix": settings.redis_prefix,
    }
    return Queue(stored.decode(errors="replace"), place, None if uptime is None else float(uptime))


async def _recorded_queue(db: Database, fresh_seconds: float) -> tuple[dict[str, Any], float] | None:
    """The queue the web processes recorded within `fresh_seconds` (its `id` and place, see
    `Queue`) and the record's age in seconds (database clock), else None."""
    async with db.session() as session:
        row = await session.get(AppSetting, QUEUE_STATE_KEY)
    if row is None:
        return None
    age = (clock.now() - row.updated_at).total_seconds()
    if age > fresh_seconds or not (row.value or {}).get("id"):
        return None
    return dict(row.value), age


async def record_queue(db: Database, settings: Settings) -> None:
    """For a web process, at start and every heartbeat period: record its job queue (`queue_of`:
    id and place) as the installation's, now. Nothing when Redis does not answer."""
    queue = await asyncio.to_thread(queue_of, settings)
    if queue is None:
        return
    value = {"id": queue.id, **queue.place}
    async with db.session() as session:
        row = await session.get(AppSetting, QUEUE_STATE_KEY)
        if row is None:
            session.add(AppSetting(key=QUEUE_STATE_KEY, value=value, updated_at=clock.now()))
        else:
            row.value, row.updated_at = value, clock.now()
        try:
            await session.commit()
        except IntegrityError:  # another web process recorded it at the same moment
            await session.rollback()


def _same_queue(queue: Queue | None, recorded: tuple[dict[str, Any], float] | None) -> bool:
    """Whether a starting process on `queue` may start next to the web processes' record: Redis
    not answering or no fresh record (not judged), the recorded id, or the recorded place on a
    Redis server started after the record was written (restarted without persistence: its queue
    got a new id that no web process has recorded yet, none may be running to do so)."""
    if queue is None or recorded is None:
        return True
    value, age = recorded
    if value["id"] == queue.id:
        return True
    place = {name: value.get(name) for name in queue.place}
    return queue.uptime is not None and queue.uptime < age and place == queue.place


async def require_same_queue(db: Database, settings: Settings) -> None:
    """At start (web and worker processes): `ConfigError` when the web processes of this database
    recorded another job queue than this process's (`queue_of`) within OPSCRAFT_WORKER_LOST_SECONDS
    (a web process silent that long is gone), and still do after two heartbeat periods and a
    round of their run event dispatcher, which records it (a queue id deleted by hand is made
    again and recorded within that time). A Redis server started after the record with the
    recorded port, database number and prefix passes at once (`_same_queue`: it lost its queue
    id in a restart without persistence, and the web processes may all be down). The message
    names this process's Redis without its password. Without `REDIS_URL` (the job queue in the
    data directory) a queue recorded within OPSCRAFT_WORKER_LOST_SECONDS is another one, at once."""
    fresh = settings.worker_lost_seconds
    if not settings.redis_url:
        if await _recorded_queue(db, fresh) is not None:
            raise ConfigError(
                "REDIS_URL: not set, but the web processes of this database use a Redis job queue: "
                "this process's queue would be the one in its data directory, which they never "
                "fill; give it their REDIS_URL and OPSCRAFT_REDIS_PREFIX"
            )
        return
    deadline = time.monotonic() + min(fresh, 2 * settings.worker_heartbeat_seconds + run_events.POLL_SECONDS)
    while True:
        queue = await asyncio.to_thread(queue_of, settings)
        if _same_queue(queue, await _recorded_queue(db, fresh)):
            return
        if time.monotonic() >= deadline:
            break
        await asyncio.sleep(min(0.5, settings.worker_heartbeat_seconds / 4))
    assert settings.redis_url
    parts = parse_url(settings.redis_url)  # named without its user name and password
    place = parts.get("path") or f"{parts.get('host', 'localhost')}:{parts.get('port', 6379)}"
    raise ConfigError(
        f"REDIS_URL: the web processes of this database use another Redis job queue than this "
        f"process's ({place} database {parts.get('db', 0)}, OPSCRAFT_REDIS_PREFIX "
        f"{settings.redis_prefix!r}): runs would wait for "
        "the stall check or never reach this process; give every web and worker process of the "
        "installation the same REDIS_URL and OPSCRAFT_REDIS_PREFIX"
    )
