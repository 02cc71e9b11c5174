"""A database that does not answer at all (stopped, restarting, network cut), told apart from a
fault, so that an outage reads as one line in the log and one clear answer to clients.

Before, every API request during an outage was a 500 "internal error" with a traceback of about a
hundred lines in the log, and each background loop (scheduler, chains, notifications, run events,
worker housekeeping, history upkeep) logged the same traceback on every round: about 47,000 log
lines in the first four minutes of a PostgreSQL restart.
"""

from __future__ import annotations

import logging
import traceback

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


def is_disk_full(exc: BaseException) -> bool:
    """True when `exc` (or an exception it was raised from, up to `_CHAIN_LIMIT` links) is the
    database refusing a write because its disk (SQLite's file system) is full: SQLite's
    `SQLITE_FULL` ("database or disk is full"), PostgreSQL's SQLSTATE 53100 ("could not extend
    file ...: No space left on device"). Nothing of that statement was written; like an outage,
    it is the operator's to fix (free space), not a fault of the request."""
    seen: BaseException | None = exc
    for _ in range(_CHAIN_LIMIT):
        if seen is None:
            return False
        if isinstance(seen, DBAPIError):
            orig = seen.orig
            if getattr(orig, "sqlstate", None) == PG_DISK_FULL or "database or disk is full" in str(orig):
                return True
        seen = seen.__cause__ or seen.__context__
    return False


def log_failure(log: logging.Logger, what: str, exc: BaseException) -> None:
    """Log that `what` (`execution 7: storing the output failed`) raised `exc`: a full disk as
    one error line naming it (`...: the database cannot write: its disk is full (OperationalError:
    ...)`), the operator's to fix as in `RoundFailures`; anything else with its traceback."""
    if is_disk_full(exc):
        log.error("%s: %s (%s)", what, DISK_FULL, brief(exc))
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
            condition = DISK_FULL
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
