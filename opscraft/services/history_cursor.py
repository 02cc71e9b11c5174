"""Keyset (cursor) paging of the executions history (issue 15).

The history is ordered newest first by `(queued_at, id)`, both descending. A cursor names the
last run a client has seen; the next page is the runs strictly after it in that order:
`queued_at < q OR (queued_at = q AND id < i)`, written as `queued_at <= q AND (queued_at < q OR
id < i)` so that the `queued_at` bound is an index condition on every history index (each ends
with `queued_at`). Unlike `skip`, a page costs the same at any depth, and runs queued between two
pages (newer than the cursor) neither shift nor repeat the later pages.

Format (opaque to clients, which only pass back `next_cursor`): URL-safe base64 without padding
of the JSON array `[queued_at, id]`, `queued_at` as ISO 8601 UTC with microseconds, e.g.
`WyIyMDI2LTExLTMwVDE4OjAwOjAwLjEyMzQ1NiswMDowMCIsNDJd`.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, or_
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col

from opscraft.db.models import Execution
from opscraft.db.types import MAX_ID
from opscraft.services.errors import Invalid

MAX_CURSOR_LENGTH = 200
CURSOR_PATTERN = r"^[A-Za-z0-9_-]+$"  # the URL-safe base64 alphabet, no padding


def encode(queued_at: datetime, execution_id: int) -> str:
    """The cursor that continues after the run (`queued_at`, `execution_id`)."""
    if queued_at.tzinfo is None:
        queued_at = queued_at.replace(tzinfo=UTC)
    position = [queued_at.astimezone(UTC).isoformat(timespec="microseconds"), execution_id]
    raw = json.dumps(position, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode(cursor: str) -> tuple[datetime, int]:
    """(queued_at, id) of a cursor made by `encode`. Raises Invalid (HTTP 422, field `cursor`)
    for anything else: bad base64 or JSON, another shape, a naive or unparsable time, an id out
    of range."""
    try:
        if len(cursor) > MAX_CURSOR_LENGTH:
            raise ValueError("too long")
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        position: Any = json.loads(raw)
        if not (isinstance(position, list) and len(position) == 2):
            raise ValueError("not a position")
        text, execution_id = position
        if not isinstance(text, str) or type(execution_id) is not int or not 1 <= execution_id <= MAX_ID:
            raise ValueError("not a position")
        queued_at = datetime.fromisoformat(text)
        if queued_at.tzinfo is None:
            raise ValueError("no time zone")
        queued_at = queued_at.astimezone(UTC)
    except (ValueError, OverflowError, binascii.Error, UnicodeDecodeError):
        message = "not a cursor from this API: pass back the `next_cursor` of a previous page"
        raise Invalid(f"cursor is {message}", details=[{"field": "cursor", "message": message}]) from None
    return queued_at, execution_id


def after(cursor: str) -> ColumnElement[bool]:
    """The condition selecting the runs after `cursor` in history order. Raises Invalid."""
    queued_at, execution_id = decode(cursor)
    queued = col(Execution.queued_at)
    return and_(queued <= queued_at, or_(queued < queued_at, col(Execution.id) < execution_id))
