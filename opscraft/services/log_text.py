"""An execution's stored output as plain text: the log download of its page and of the API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

from opscraft import runtime
from opscraft.services import executions
from opscraft.services.actor import Actor
from opscraft.services.escapes import PlainText


async def plain_text(actor: Actor, execution_id: int) -> AsyncIterator[str]:
    """The stored output of `execution_id` (both streams, in `seq` order), a page of chunks at a
    time, without its escape sequences, also those cut between two chunks of a stream: a cut
    sequence is completed from the next chunk of its own stream, never from the other stream's
    text stored between them (stdout's `ESC[3` and stderr's `hello` read as `ESC[3h`, and the
    `h` was lost); a sequence never finished is left as text (at the end). Each page is read in
    a session of its own (a download may take long). Raises NotFound (no such execution) and
    Forbidden as `executions.read_logs` does, at the first page: callers check with
    `executions.get` before they start an answer.

    A run whose output retention removed (before the download, or while it went on: pages are
    read one by one) ends with a line saying so (`removed_note`): the file is never silently
    empty or cut short."""
    offset = 0
    plain = PlainText()
    while True:
        async with runtime.current().db.session() as session:
            page = await executions.read_logs(session, actor, execution_id, offset)
        if not page.items:
            yield plain.rest()
            if page.output_removed_at is not None:
                yield removed_note(page.output_removed_at, bool(offset))
            return
        yield "".join(plain.add(item.stream, item.content) for item in page.items)
        offset = page.next_offset


def removed_note(removed_at: datetime, partial: bool) -> str:
    """The line that ends the download of a run whose output retention removed (`partial`: while
    the download went on, after some of it was read)."""
    what = "The rest of this run's output was" if partial else "This run's output was"
    when = removed_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    start = "\n" if partial else ""
    return (
        f"{start}[opscraft] {what} removed by output retention on {when}: an admin's setting keeps "
        "output for a limited time.\n"
    )


def attachment(execution_id: int) -> dict[str, str]:
    """The headers that make a browser save the plain text as `execution-<id>.log`."""
    return {"Content-Disposition": f'attachment; filename="execution-{execution_id}.log"'}
