"""Terminal escape sequences in stored output, and the text a reader is left with without them:
the log download (`log_text`) and the excerpt of a run's notification (`notifications`).

The stored output keeps what the script wrote (colours, cursor moves); these are for places
that are not a terminal.
"""

from __future__ import annotations

from opscraft.execution.escape_codes import ANSI_CUT_RE, ANSI_RE, MAX_HELD_CHARS


class PlainText:
    """Stored output chunks of both streams, in `seq` order, as plain text: each chunk without
    its escape sequences (`escape_codes.ANSI_RE`), a sequence cut at the end of a chunk
    (`escape_codes.ANSI_CUT_RE`) held back and completed from the next chunk of its own stream,
    never from the other stream's output stored between them (stdout's `ESC[3`, stderr's
    `hello`, stdout's `1m` read as `ESC[3h`: the `h` was lost and `1m` left as
    text), as the page's terminal does."""

    def __init__(self) -> None:
        self._held: dict[str, str] = {}

    def add(self, stream: str, content: str) -> str:
        """The plain text of the next chunk, `content` of `stream` ("stdout" or "stderr")."""
        text = self._held.pop(stream, "") + content
        cut = ANSI_CUT_RE.search(text, max(len(text) - MAX_HELD_CHARS, 0))
        if cut:
            text, self._held[stream] = text[: cut.start()], text[cut.start() :]
        return ANSI_RE.sub("", text)

    def rest(self) -> str:
        """What is still held back at the end: sequences never finished, left as text."""
        held, self._held = "".join(self._held.values()), {}
        return held


def screen_lines(text: str) -> list[str]:
    """`text` without its escape sequences (`ANSI_RE`), cut into lines at each `\\n` (a final one
    ends the last line), each line as a terminal leaves it after its carriage returns: the text
    after the last bare `\\r` (a progress bar's last state: `\\r 10%\\r100% done` is `100% done`;
    the `\\r` of a CRLF ends the line)."""
    lines = ANSI_RE.sub("", text).removesuffix("\n").split("\n")
    return [line.removesuffix("\r").rsplit("\r", 1)[-1] for line in lines] if text else []
