"""A database whose disk is full: the API answers 503 saying so (it was a 500 "internal error"
with a traceback in the log), and the log has one line. Found with a server whose data directory
filled up (a tmpfs): `POST /api/v1/executions` was a 500. Here SQLite's own SQLITE_FULL comes from
a database capped at its current size (`PRAGMA max_page_count`), a real write refused by SQLite."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.exc import OperationalError

from opscraft.api.errors import DISK_FULL_MESSAGE, InternalErrorMiddleware
from opscraft.db import unreachable
from opscraft.db.unreachable import RoundFailures, is_disk_full


def sqlite_disk_full(tmp_path: Path) -> OperationalError:
    """The error SQLAlchemy raises for an insert into a SQLite database that cannot grow."""
    engine = create_engine(f"sqlite:///{tmp_path / 'full.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (v TEXT)"))

    @event.listens_for(engine, "connect")
    def cap(dbapi_connection: object, _record: object) -> None:
        dbapi_connection.execute("PRAGMA max_page_count = 1")  # type: ignore[attr-defined]

    engine.dispose()
    try:
        with pytest.raises(OperationalError) as refused, engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (:v)"), {"v": "x" * 100_000})
    finally:
        engine.dispose()
    return refused.value


def test_a_full_disk_is_told_apart(tmp_path: Path) -> None:
    full = sqlite_disk_full(tmp_path)
    assert "database or disk is full" in str(full.orig)
    assert is_disk_full(full)
    assert not is_disk_full(RuntimeError("database or disk is full"))  # not a database error


@pytest.fixture
def located(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The database of this process (`unreachable.locate`) is a SQLite file in `tmp_path`: the
    disk-full lines name that directory and say to free space there."""
    monkeypatch.setattr(unreachable, "_located", None)
    unreachable.locate(f"sqlite+aiosqlite:///{tmp_path / 'opscraft.db'}")
    return tmp_path


async def test_a_request_that_meets_a_full_disk_is_503_and_one_log_line(
    located: Path, caplog: pytest.LogCaptureFixture
) -> None:
    full = sqlite_disk_full(located)

    async def app(_scope: object, _receive: object, _send: object) -> None:
        raise full

    sent: list[dict[str, object]] = []

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b""}

    scope = {"type": "http", "method": "POST", "path": "/api/v1/executions", "headers": []}
    scope["query_string"] = b""
    with caplog.at_level(logging.INFO, logger="opscraft.api.errors"):
        await InternalErrorMiddleware(app, {})(scope, receive, send)  # type: ignore[arg-type]
    assert sent[0]["status"] == 503
    assert (b"retry-after", b"5") in sent[0]["headers"]  # type: ignore[operator]
    assert json.loads(sent[1]["body"]) == {"detail": DISK_FULL_MESSAGE, "errors": []}  # type: ignore[arg-type]
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and lines[0].startswith(
        f"POST /api/v1/executions: the database cannot write: the disk of {located} is full; free space "
        "there (OperationalError: "
        "(sqlite3.OperationalError) database or disk is full"
    ), lines
    assert all(r.exc_info is None for r in caplog.records)  # no traceback


def test_a_background_loop_says_once_that_the_disk_is_full(
    located: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Each background loop (worker housekeeping, scheduler, upkeep) logged the full traceback
    every round while the disk stayed full (every 2-5 s); it now says so once, as for an outage,
    and once more when a round succeeds."""
    full = sqlite_disk_full(located)
    rounds = RoundFailures(logging.getLogger("tests.disk_full"), "worker housekeeping")
    with caplog.at_level(logging.INFO, logger="tests.disk_full"):
        for _ in range(3):
            rounds.failed(full)
        rounds.succeeded()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines
    assert lines[0].startswith(
        f"worker housekeeping failed: the database cannot write: the disk of {located} is full; free "
        "space there (OperationalError: "
    ), lines
    assert lines[1] == "worker housekeeping: the database answers again"
    assert all(r.exc_info is None for r in caplog.records)
