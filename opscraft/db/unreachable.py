"""A database that does not answer at all (stopped, restarting, network cut), told apart from a
fault, so that an outage reads as one line in the log and one clear answer to clients.

Before, every API request during an outage was a 500 "internal error" with a traceback of about a
hundred lines in the log, and each background loop (scheduler, chains, notifications, run events,
worker housekeeping, history upkeep) logged the same traceback on every round: about 47,000 log
lines in the first four minutes of a PostgreSQL restart.
"""

from __future__ import annotations

import errno
import logging
import os
import traceback
from pathlib import Path

from asyncpg.exceptions import AdminShutdownError, CannotConnectNowError, ConnectionDoesNotExistError
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.pool import base as pool_base

# The frame of SQLAlchemy's pool opening a new connection (`_ConnectionRecord.__connect`): every
# error raised under it (refused, timed out, unknown host, server starting up) is a database that
# cannot be reached, whatever the driver's own exception type (asyncpg raises a bare OSError).
_POOL_FILE = pool_base.__file__
_CONNECT_FRAME = "__connect"
#: What the API (503, `detail`) and the web pages say while the database does not answer, and the
#: `Retry-After` of the API's and the pages' 503.
MESSAGE = "the database is unreachable: try again once it is back"
RETRY_AFTER_SECONDS = 5
_CHAIN_LIMIT = 8  # causes and contexts followed from the exception that reached the caller
# PostgreSQL going away under a connection in use: restarting or shutting down ("terminating
# connection due to administrator command", "the database system is starting up") or the
# connection cut (SQLAlchemy does not always mark these `connection_invalidated`, e.g. in the
# rollback that closes a session).
_GONE = (AdminShutdownError, CannotConnectNowError, ConnectionDoesNotExistError)


def _raised_while_connecting(exc: BaseException) -> bool:
    return any(
        frame.f_code.co_filename == _POOL_FILE and frame.f_code.co_name == _CONNECT_FRAME
        for frame, _line in traceback.walk_tb(exc.__traceback__)
    )


def is_unreachable(exc: BaseException) -> bool:
    """True when `exc` (or an exception it was raised from, up to `_CHAIN_LIMIT` links) is the
    database not answering: no new connection could be opened, or the server dropped a connection
    in use (SQLAlchemy's `connection_invalidated`, `_GONE`). Not true for overload
    (`engine.is_busy`) or for an error the database answered with (a constraint, a syntax error)."""
    seen: BaseException | None = exc
    for _ in range(_CHAIN_LIMIT):
        if seen is None:
            return False
        if isinstance(seen, _GONE) or (isinstance(seen, DBAPIError) and seen.connection_invalidated):
            return True
        if _raised_while_connecting(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


#: PostgreSQL's SQLSTATE for "disk full" (class 53, insufficient resources).
PG_DISK_FULL = "53100"
#: What the API (503, `detail`), the background loops' log line and a run cut short say when the
#: database cannot write because its disk is full.
DISK_FULL = "the database cannot write: its disk is full"


#: Free space below which a directory's disk counts as full (`nearly_full`): SQLite, short of
#: room for its journal, says only "disk I/O error" (SQLITE_IOERR) on a disk with a few KB left.
FULL_BELOW_BYTES = 1 << 20
_located: str | None = None  # the database this process uses (`locate`)


def locate(database_url: str) -> None:
    """Name the database this process uses (`Settings.effective_database_url`), so that the log
    lines of a full disk say which one (`disk_full`); the runtime's start calls it."""
    global _located
    _located = database_url


def sqlite_directory(database_url: str) -> Path | None:
    """The directory of a SQLite database's file (where its journal and WAL go too); None for
    another database or an in-memory one."""
    if not database_url.startswith("sqlite"):
        return None
    file = database_url.split(":///", 1)[-1].split("?", 1)[0]
    return Path(file).parent if file and file != ":memory:" else None


def nearly_full(directory: Path) -> bool:
    """True when the file system of `directory` has less than FULL_BELOW_BYTES for this user."""
    try:
        stat = os.statvfs(directory)
    except OSError:
        return False
    return stat.f_bavail * stat.f_frsize < FULL_BELOW_BYTES


def disk_full(database_url: str | None = None) -> str:
    """What a full disk under the database is and what to do, in one line: `the database cannot
    write: the disk of /var/lib/opscraft is full; free space there`, for PostgreSQL `...: the
    PostgreSQL server's disk is full; free space on it`. `database_url`: the database (default:
    the one `locate` named; `DISK_FULL` when none)."""
    url = database_url or _located
    if url is None:
        return DISK_FULL
    directory = sqlite_directory(url)
    if directory is None:
        return "the database cannot write: the PostgreSQL server's disk is full; free space on it"
    return f"the database cannot write: the disk of {directory} is full; free space there"


def is_disk_full(exc: BaseException, database_url: str | None = None) -> bool:
    """True when `exc` (or an exception it was raised from, up to `_CHAIN_LIMIT` links) is the
    database refusing a write because its disk (SQLite's file system) is full: SQLite's
    `SQLITE_FULL` ("database or disk is full"), PostgreSQL's SQLSTATE 53100 ("could not extend
    file ...: No space left on device"), a file write's ENOSPC or EDQUOT, and SQLite's "disk I/O
    error" when the directory of its file (`database_url`, default: the one `locate` named) is
    `nearly_full`: SQLite says only that when it cannot write its journal. Nothing of that
    statement was written; like an outage, it is the operator's to fix (free space), not a fault
    of the request."""
    url = database_url or _located
    directory = sqlite_directory(url) if url else None
    seen: BaseException | None = exc
    for _ in range(_CHAIN_LIMIT):
        if seen is None:
            return False
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if isinstance(seen, DBAPIError):
            orig = str(seen.orig)
            if getattr(seen.orig, "sqlstate", None) == PG_DISK_FULL or "database or disk is full" in orig:
                return True
            if "disk I/O error" in orig and directory is not None and nearly_full(directory):
                return True
        seen = seen.__cause__ or seen.__context__
    return False


def log_failure(log: logging.Logger, what: str, exc: BaseException) -> None:
    """Log that `what` (`execution 7: storing the output failed`) raised `exc`: a full disk as
    one error line naming it and what to do (`...: the database cannot write: the disk of /data
    is full; free space there (OperationalError: ...)`: `disk_full`) and an unreachable database
    as one warning line, both the operator's to fix as in `RoundFailures`; anything else with its
    traceback."""
    if is_disk_full(exc):
        log.error("%s: %s (%s)", what, disk_full(), brief(exc))
    elif is_unreachable(exc):
        log.warning("%s: the database is unreachable (%s)", what, brief(exc))
    else:
        log.error("%s", what, exc_info=exc)


def brief(exc: BaseException) -> str:
    """`ConnectionRefusedError: [Errno 111] Connect call failed ...`: the exception's type and
    message on one line, for a log line that replaces its traceback. A statement's error without
    its SQL and bound parameters: a run's output chunks (the finisher's retries, a full disk) put
    up to megabytes of its text into the line."""
    text = str(exc.args[0]) if isinstance(exc, StatementError) and exc.args else str(exc)
    return f"{type(exc).__name__}: {' '.join(text.split())}"


class RoundFailures:
    """How a background loop reports its failed rounds.

    A round that failed because the database is unreachable is logged once, as a warning of one
    line, when the outage begins; the rounds failing after it are not logged; the first round that
    succeeds again logs that the database answers. Any other failure is logged with its traceback
    every time, as before (`failed; retrying` in the message)."""

    def __init__(self, log: logging.Logger, what: str) -> None:
        """`what` names the loop's work in the log: "scheduler tick", "worker housekeeping"."""
        self._log = log
        self._what = what
        self._down = False

    def failed(self, exc: BaseException) -> None:
        """Report a round that raised `exc` (call from its `except` block). A full disk is
        reported as an outage is: once, until a round succeeds."""
        if is_unreachable(exc):
            condition = "the database is unreachable"
        elif is_disk_full(exc):
            condition = disk_full()
        else:
            self._log.error("%s failed; retrying", self._what, exc_info=exc)
            return
        if not self._down:
            self._down = True
            self._log.warning(
                "%s failed: %s (%s); retrying, quietly until it answers", self._what, condition, brief(exc)
            )

    def succeeded(self) -> None:
        """Report a round that completed (logs once after an outage)."""
        if self._down:
            self._down = False
            self._log.info("%s: the database answers again", self._what)
