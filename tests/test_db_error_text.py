"""A database error's text (its message, a traceback in the log) never carries a statement's bound
values: they may be password hashes, sealed secrets, token ids or a run's output."""

from __future__ import annotations

import traceback

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from opscraft import runtime

MARKER = "BOUND-VALUE-SECRET-4711"


async def test_a_failed_statement_does_not_repeat_its_values(rt: runtime.Runtime) -> None:
    """SQLAlchemy appends `[parameters: (...)]` to every statement error unless told not to
    (`hide_parameters`); an unhandled one is logged with its traceback (api/errors.py)."""
    insert = text("INSERT INTO probe (k, v) VALUES (:k, :v)")
    async with rt.db.engine.begin() as conn:
        await conn.execute(text("CREATE TABLE IF NOT EXISTS probe (k VARCHAR(20) PRIMARY KEY, v TEXT)"))
        await conn.execute(text("DELETE FROM probe"))  # PostgreSQL: a table the test made before
        await conn.execute(insert, {"k": "one", "v": "first"})
    with pytest.raises(IntegrityError) as caught:
        async with rt.db.engine.begin() as conn:
            await conn.execute(insert, {"k": "one", "v": MARKER})
    written = "".join(traceback.format_exception(caught.value))
    assert "INSERT INTO probe" in written, written  # the statement is still named
    assert MARKER not in written, written
