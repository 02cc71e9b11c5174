"""Which database a Redis job queue serves: a process whose database is not the one of the
processes already using the queue (`REDIS_URL` and `OPSCRAFT_REDIS_PREFIX`) stops at start.

A worker started with the team's `REDIS_URL` but without `DATABASE_URL` (it then opens a SQLite
database in its own data directory), or with another installation's database, took runs from
the shared queue, found no such run in its database and dropped them, saying nothing: they
stayed `queued` while a correct worker sat idle (the stall check sends the oldest of each script
again every 10 s, and the stray worker's waiting consumers took most of those too).

The database keeps a random id (`app_settings` row `installation`, created by the first start;
not one of the admin-editable settings); Redis keeps the id of the database its queue serves
(`<prefix>:installation`), set by the first process that checks.
"""

from __future__ import annotations

import uuid

import redis
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from opscraft.config import ConfigError, Settings
from opscraft.db.engine import Database
from opscraft.db.models import AppSetting

STATE_KEY = "installation"
_TIMEOUT_SECONDS = 5


async def database_id(db: Database) -> str:
    """The database's installation id (32 hex characters), created on first use; concurrent
    first starts agree on one."""
    async with db.session() as session:
        row = await session.get(AppSetting, STATE_KEY)
        if row is None:
            session.add(AppSetting(key=STATE_KEY, value={"id": uuid.uuid4().hex}))
            try:
                await session.commit()
            except IntegrityError:  # another process stored one first: theirs counts
                await session.rollback()
    async with db.session() as session:
        row = await session.get(AppSetting, STATE_KEY)
        assert row is not None  # stored above, or by the process that won
        return str(row.value["id"])


def claim_queue(settings: Settings, installation: str) -> None:
    """Record `installation` as the database the job queue at `settings.redis_url` serves, or
    check it against the one recorded. `ConfigError` when another database's id is recorded
    (the message names this process's database without its password). A Redis that does not
    answer is not judged here: a worker refuses one at start (`cli/worker.check_redis`), and a
    web process waits for it (docs/deployment.md)."""
    assert settings.redis_url
    key = f"{settings.redis_prefix}:{STATE_KEY}"
    client = redis.Redis.from_url(
        settings.redis_url, socket_connect_timeout=_TIMEOUT_SECONDS, socket_timeout=_TIMEOUT_SECONDS
    )
    try:
        client.set(key, installation, nx=True)
        stored = client.get(key)
    except redis.RedisError:
        return
    finally:
        client.close()
    if stored is None or stored.decode(errors="replace") == installation:
        return
    database = make_url(settings.effective_database_url).render_as_string(hide_password=True)
    raise ConfigError(
        f"REDIS_URL: the job queue there serves another OpsCraft database than this process's "
        f"({database}): check DATABASE_URL (without it a process opens the SQLite database of its "
        "data directory); installations sharing one Redis need each their own OPSCRAFT_REDIS_PREFIX; "
        f"if this database replaced that one for good, delete the Redis key {key}"
    )
