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

`db.types.utcnow`, where every stored moment and every comparison with stored moments takes the
time, reads `now()`: schedules fire, approval requests expire, chain runs are judged lost,
notifications are retried, tokens and sign-ins end in this clock, whichever process judges them
(a web process an hour ahead fired every schedule due within the hour at once, and refused
every access token the others issued as expired).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, text

_SERVER_NOW = text("SELECT timezone('UTC', clock_timestamp())")
_offset = timedelta(0)


def now() -> datetime:
    """The database server's current time (timezone-aware UTC), as of the last `measure`."""
    return datetime.now(UTC) + _offset


def to_local(moment: datetime) -> datetime:
    """`moment` of the database's clock on this machine's clock (to compare with what this
    machine's kernel or Docker engine stamped, e.g. a container's creation)."""
    return moment - _offset


def measure(conn: Connection) -> None:
    """Read the server's clock on `conn` (PostgreSQL; nothing to do on SQLite) and keep its
    offset from this machine's, taken at the middle of the round trip. An offset within half
    the round trip is no offset (the server read its clock somewhere in it: the same clock, this
    machine's or one NTP keeps in step, measures so): it was the round trip's jitter, milliseconds
    on a loaded machine, added to every time this process stored."""
    global _offset
    if conn.dialect.name != "postgresql":
        return
    before = datetime.now(UTC)
    server = conn.execute(_SERVER_NOW).scalar_one()
    after = datetime.now(UTC)
    half = (after - before) / 2
    offset = server.replace(tzinfo=UTC) - (before + half)
    _offset = offset if abs(offset) > half else timedelta(0)
