"""Every log record OpsCraft writes is one line: in text, its further lines indented; in JSON,
its line breaks escaped. Found on a first start: Alembic logs each migration's description (the
first paragraph of its docstring, several lines for 31 of them), and the lines after the first
read as records of their own, with no time or level."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from opscraft import logs
from opscraft.db.engine import Database
from opscraft.db.migrate import upgrade

# A text record's first line: `2026-12-06 14:07:15,123 INFO name: ...`.
RECORD_START = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ \S+: ")


@contextlib.contextmanager
def logged(log_format: str) -> Iterator[io.StringIO]:
    """The root logger set up by `logs.configure` for the block, writing into the stream yielded;
    then the test run's logging as it was."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    stream = io.StringIO()
    try:
        logs.configure("INFO", log_format)
        root.handlers[0].setStream(stream)  # type: ignore[attr-defined]
        yield stream
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        for name in (*logs.QUIET_LOGGERS, *logs.CHATTY_LOGGERS):
            logging.getLogger(name).setLevel(logging.NOTSET)


def text_records(text: str) -> list[str]:
    """The records of a text log, each with its continuation lines; fails on a line that is
    neither a record's start nor indented."""
    records: list[str] = []
    for line in text.splitlines():
        if line.startswith(logs.CONTINUATION) and records:
            records[-1] += "\n" + line
        else:
            assert RECORD_START.match(line), f"a line that is no record's start: {line!r}"
            records.append(line)
    return records


def test_a_first_starts_migration_log_is_one_line_a_record(tmp_path: Path) -> None:
    """Alembic's own records on migrating a new SQLite database (the first start): each one line,
    and none of its plugin registry's `setup plugin ...` lines (seven on every start that
    migrated, found by a new user reading the first start's log)."""

    async def migrate() -> None:
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'new.db'}")
        try:
            await upgrade(db.engine)
        finally:
            await db.dispose()

    with logged("text") as stream:
        asyncio.run(migrate())
    records = text_records(stream.getvalue())
    running = [r for r in records if "Running upgrade" in r]
    assert len(running) > 40, records[:3]
    assert any("\n" in r for r in running)  # the multi-line descriptions, folded
    assert not [r for r in records if "setup plugin" in r], records[:9]


def log_both(message: str, error: str) -> None:
    """Log `message` as a warning's argument, then `error` as an exception's message with its
    traceback."""
    log = logging.getLogger("opscraft.test")
    log.warning("stderr: %s", message)
    try:
        raise RuntimeError(error)
    except RuntimeError:
        log.exception("the run failed")


BREAKS = ["\n", "\r\n", "\r", "\v", "\f", "\x85", "\u2028", "\u2029"]


@pytest.mark.parametrize("brk", BREAKS, ids=[repr(b) for b in BREAKS])
def test_a_message_or_traceback_with_line_breaks_stays_one_record(brk: str) -> None:
    """A message that carries a subprocess's stderr (the Docker engine's, Terraform's), an
    exception's several-line message and its traceback: continuation lines, never a line
    that reads as a record (`forged` below) or returns the terminal's cursor (`\\r`)."""
    forged = "2026-01-01 00:00:00,000 CRITICAL opscraft: forged"
    with logged("text") as stream:
        log_both(f"Error: one{brk}{forged}", f"stderr:{brk}{forged}")
    out = stream.getvalue()
    records = text_records(out)
    assert len(records) == 2, records
    assert "\r" not in out.replace("\r\n", "")
    assert all(not line.startswith(forged) for line in out.splitlines())
    assert "Traceback (most recent call last):" in records[1]


@pytest.mark.parametrize("brk", BREAKS, ids=[repr(b) for b in BREAKS])
def test_a_json_record_is_one_line_whatever_its_text_holds(brk: str) -> None:
    with logged("json") as stream:
        log_both(f"one{brk}two", f"a{brk}b")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2, lines
    assert json.loads(lines[0])["message"] == f"stderr: one{brk}two"
    assert f"a{brk}b" in json.loads(lines[1])["exception"]


def test_a_credential_given_as_the_messages_argument_is_redacted_and_the_record_kept() -> None:
    """`?token=%s` with the token as the argument: the message and its arguments were redacted
    apart, the message's `%s` became `***` and the record, its argument left over, was lost to a
    "--- Logging error ---" traceback."""
    with logged("text") as stream:
        logging.getLogger("opscraft.test").warning("GET /ws?token=%s HTTP/1.1", "plain-secret-value")
    (record,) = text_records(stream.getvalue())
    assert record.endswith("WARNING opscraft.test: GET /ws?token=*** HTTP/1.1"), record
