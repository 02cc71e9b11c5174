"""Terminal escape sequences in stored output, and the text a reader is left with without them:
the log download (`log_text`) and the excerpt of a run's notification (`notifications`).

The stored output keeps what the script wrote (colours, cursor moves); these are for places
that are not a terminal.
"""

from __future__ import annotations

import re

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


class PlainText:
    """Stored output chunks of both streams, in `seq` order, as plain text: each chunk without
    its escape sequences (`ANSI_RE`), a sequence cut at the end of a chunk (`ANSI_CUT_RE`) held
    back and completed from the next chunk of its own stream, never from the other stream's
    output stored between them (stdout's `ESC[3`, stderr's `hello`, stdout's `1m` read as
    `ESC[3h`: the `h` was lost and `1m` left as text), as the page's terminal does."""

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
