"""An execution's stored output as plain text: the log download of its page and of the API."""

from __future__ import annotations

from collections.abc import AsyncIterator

from opscraft import runtime
from opscraft.services import executions
from opscraft.services.actor import Actor
from opscraft.services.escapes import ANSI_CUT_RE, ANSI_RE, MAX_HELD_CHARS


async def plain_text(actor: Actor, execution_id: int) -> AsyncIterator[str]:
    """The stored output of `execution_id` (both streams, in `seq` order), a page of chunks at a
    time, without its escape sequences, also those cut between two chunks; a sequence never
    finished is left as text. Each page is read in a session of its own (a download may take
    long). Raises NotFound (no such execution) and Forbidden as `executions.read_logs` does, at
    the first page: callers check with `executions.get` before they start an answer."""
    offset, held = 0, ""
    while True:
        async with runtime.current().db.session() as session:
            page = await executions.read_logs(session, actor, execution_id, offset)
        if not page.items:
            yield held
            return
        text = held + "".join(item.content for item in page.items)
        cut = ANSI_CUT_RE.search(text, max(len(text) - MAX_HELD_CHARS, 0))
        text, held = (text[: cut.start()], text[cut.start() :]) if cut else (text, "")
        yield ANSI_RE.sub("", text)
        offset = page.next_offset


def attachment(execution_id: int) -> dict[str, str]:
    """The headers that make a browser save the plain text as `execution-<id>.log`."""
    return {"Content-Disposition": f'attachment; filename="execution-{execution_id}.log"'}
