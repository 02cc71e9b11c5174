"""Pages of a run's stored output (`execution_logs`), bounded by their number of chunks and by
their characters.

A chunk holds up to `output.CHUNK_CHARS` (128 Ki) characters, so a page bounded by its number of
chunks alone was up to 25 M characters for the event stream's catch-up (200 chunks) and 128 M
for `GET /executions/{id}/logs?limit=1000`, built in memory at once on the server and the client.
A page now also ends before the chunk that would take its content past `max_chars` (`PAGE_CHARS`
unless said otherwise), and always holds at least one chunk (a chunk larger than the bound is a
page of its own), so paging always makes progress; the next page starts after its last `seq`, so
nothing is skipped or repeated.

The bound is computed from `execution_logs.chars` (each chunk's length in characters, set on
insert) without reading the contents it leaves out: the statement takes the `(seq, chars)` of the
next `limit + 1` chunks (of one stream, when asked) from the covering index
`ix_execution_logs_page` `(execution_id, seq, chars, stream)`, keeps those
whose running total fits, and only then looks up the content of the chunks kept by
`(execution_id, seq)`. The one extra candidate tells whether more chunks follow (`more`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, Row, Select, and_, bindparam, func, or_, select

from opscraft.db.models import ExecutionLog

PAGE_CHARS = 4 * 1024 * 1024
"""The characters of stored output one page holds at most (4 Mi; a single larger chunk excepted:
none is, chunks hold at most 128 Ki): the event stream's catch-up, the log API's pages, the
log download's reads and a chain's outputs are read in pages of this bound."""

_L = ExecutionLog.__table__.c  # type: ignore[attr-defined]


def page_statement(*, newest_first: bool = False, stream: bool = False) -> Select[Any]:
    """A page of one run's chunks with `seq > :after`, by `seq` (descending with `newest_first`,
    and of one stream with `stream`: its bind parameter `stream`): at most `:limit` of them,
    ending before the chunk that would take their characters past `:max_chars`, at least one.
    Each row is `(seq, stream, content, created_at, candidates)`; `candidates` is how many chunks
    (at most `limit + 1`) were looked at, so more follow when it exceeds the rows returned.
    Bind parameters: `eid`, `after`, `limit`, `max_chars` (see `values`)."""
    where = [_L.execution_id == bindparam("eid"), _L.seq > bindparam("after")]
    if stream:
        where.append(_L.stream == bindparam("stream"))
    sizes = (
        select(_L.seq, _L.chars)
        .where(*where)
        .order_by(_L.seq.desc() if newest_first else _L.seq)
        .limit(bindparam("candidates", type_=Integer))
        .subquery("sizes")
    )
    order = sizes.c.seq.desc() if newest_first else sizes.c.seq
    running = select(
        sizes.c.seq,
        func.sum(sizes.c.chars).over(order_by=order).label("upto"),
        func.row_number().over(order_by=order).label("n"),
        func.count().over().label("candidates"),
    ).subquery("running")
    kept = (
        select(running.c.seq, running.c.candidates)
        .where(
            running.c.n <= bindparam("limit"),
            or_(running.c.n == 1, running.c.upto <= bindparam("max_chars")),
        )
        .subquery("kept")
    )
    return (
        select(_L.seq, _L.stream, _L.content, _L.created_at, kept.c.candidates)
        .select_from(kept.join(ExecutionLog, and_(_L.execution_id == bindparam("eid"), _L.seq == kept.c.seq)))
        .order_by(_L.seq.desc() if newest_first else _L.seq)
    )


def values(
    execution_id: int, after: int, limit: int, max_chars: int = PAGE_CHARS, **more: Any
) -> dict[str, Any]:
    """The bind parameters of `page_statement` (`more`: `stream` when it takes one)."""
    return {
        "eid": execution_id,
        "after": after,
        "limit": limit,
        "candidates": limit + 1,
        "max_chars": max_chars,
        **more,
    }


@dataclass(frozen=True)
class StoredChunk:
    """One stored chunk of output, as a page returns it."""

    seq: int
    stream: str
    content: str
    created_at: datetime


@dataclass(frozen=True)
class StoredPage:
    """A page of stored chunks, and whether more chunks are stored after its last one now."""

    chunks: list[StoredChunk]
    more: bool


def page_of(rows: list[Row[Any]]) -> StoredPage:
    """The `StoredPage` of `page_statement`'s rows."""
    chunks = [StoredChunk(row.seq, row.stream, row.content, row.created_at) for row in rows]
    return StoredPage(chunks, bool(rows) and rows[0].candidates > len(rows))
