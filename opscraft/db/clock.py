"""The database server's clock, as this process reads it: what worker heartbeats, their
staleness, losses and run start and end times are written and compared in (also a run's end
written by a cancel, and the day the dashboard calls today: services/executions.py).

Heartbeats are written by each worker and judged stale by every other process, on other
machines: on their own clocks, a worker whose clock was a minute behind was shown `late`/`lost`
for ever, had its runs ended as "worker lost" and its scripts killed, and its runners were not
offered (runs refused with "no worker is running"); one ahead stayed `alive` that long after
dying. So each process measures the offset of PostgreSQL's clock from its own (`measure`, at
start and at every heartbeat or lost-worker check, one `SELECT` of about a millisecond) and
`now()` is its own clock corrected by it. On SQLite every process runs on the database's machine:
the offset stays 0.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, text

from opscraft.db.types import utcnow

_SERVER_NOW = text("SELECT timezone('UTC', clock_timestamp())")
_offset = timedelta(0)


def now() -> datetime:
    """The database server's current time (timezone-aware UTC), as of the last `measure`."""
    return utcnow() + _offset


def to_local(moment: datetime) -> datetime:
    """`moment` of the database's clock on this machine's clock (to compare with what this
    machine's kernel or Docker engine stamped, e.g. a container's creation)."""
    return moment - _offset


def measure(conn: Connection) -> None:
    """Read the server's clock on `conn` (PostgreSQL; nothing to do on SQLite) and keep its
    offset from this machine's, taken at the middle of the round trip."""
    global _offset
    if conn.dialect.name != "postgresql":
        return
    before = utcnow()
    server = conn.execute(_SERVER_NOW).scalar_one()
    after = utcnow()
    _offset = server.replace(tzinfo=UTC) - (before + (after - before) / 2)
