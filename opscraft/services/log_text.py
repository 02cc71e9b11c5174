"""An execution's stored output as plain text: the log download of its page and of the API."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from opscraft import runtime
from opscraft.services import executions
from opscraft.services.actor import Actor

# The escape sequences of ECMA-48 and ECMA-35: a CSI sequence (parameter bytes 0x30-0x3F, so
# `ESC[38:2:1:2:3m` and `ESC[>4;2m` too, intermediates, a final byte); an OSC string (a window
# title, a hyperlink); a DCS, SOS, PM or APC string ended by ST (`ESC P ... ESC \`, sixel
# graphics, tmux passthrough); and the short ones: intermediates and one final byte (`ESC(B`,
# which `tput sgr0` writes, `ESC7`/`ESC8` save and restore the cursor, `ESC=`, `ESCM`, `ESCc`).
_STRING_INTRODUCERS = "PX^_"
ANSI_RE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"
    rf"|\x1b[{_STRING_INTRODUCERS}][^\x1b]*\x1b\\"
    r"|\x1b[ -/]*[0-OQ-WYZ\\`-~]"  # every final byte but the introducers `[`, `]`, P, X, ^, _
)
# Such a sequence cut at the end of a stored chunk (the output pipeline cuts chunks by time and
# size, not between sequences): held back and cleaned with the next chunk (at most 4 Ki held).
ANSI_CUT_RE = re.compile(
    r"\x1b(?:\[[0-?]{0,4096}[ -/]{0,64}|\][^\x07\x1b]{0,4096}\x1b?"
    rf"|[{_STRING_INTRODUCERS}][^\x1b]{{0,4096}}\x1b?|[ -/]{{1,64}})?\Z"
)
MAX_HELD_CHARS = 4096 + 64 + 2


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
