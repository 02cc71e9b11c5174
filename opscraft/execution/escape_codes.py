"""The terminal escape sequences a run's output may hold, as one definition for the masker
(`masking`, which finds a secret's value also where such sequences split it) and for the
readers of stored output (`services.escapes`: the log download, a notification's excerpt; the
run page's terminal), which show the text without them.

Each pattern exists for `str` (stored text) and for UTF-8 `bytes` (the masker's buffers): the
sequences are ASCII, so both find the same ones.
"""

from __future__ import annotations

import re

# The escape sequences of ECMA-48 and ECMA-35: a CSI sequence (parameter bytes 0x30-0x3F, so
# `ESC[38:2:1:2:3m` and `ESC[>4;2m` too, intermediates, a final byte); an OSC string (a window
# title, a hyperlink); a DCS, SOS, PM or APC string ended by ST (`ESC P ... ESC \`, sixel
# graphics, tmux passthrough); and the short ones: intermediates and one final byte (`ESC(B`,
# which `tput sgr0` writes, `ESC7`/`ESC8` save and restore the cursor, `ESC=`, `ESCM`, `ESCc`).
_STRING_INTRODUCERS = "PX^_"
_ANSI = (
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"
    rf"|\x1b[{_STRING_INTRODUCERS}][^\x1b]*\x1b\\"
    r"|\x1b[ -/]*[0-OQ-WYZ\\`-~]"  # every final byte but the introducers `[`, `]`, P, X, ^, _
)
# Such a sequence cut at the end of a piece of output (output arrives in chunks cut by time and
# size, not between sequences): its reader holds it back and completes it from the next chunk.
_ANSI_CUT = (
    r"\x1b(?:\[[0-?]{0,4096}[ -/]{0,64}|\][^\x07\x1b]{0,4096}\x1b?"
    rf"|[{_STRING_INTRODUCERS}][^\x1b]{{0,4096}}\x1b?|[ -/]{{1,64}})?\Z"
)
ANSI_RE = re.compile(_ANSI)
ANSI_CUT_RE = re.compile(_ANSI_CUT)
ANSI_BYTES_RE = re.compile(_ANSI.encode())
ANSI_CUT_BYTES_RE = re.compile(_ANSI_CUT.encode())
# The longest cut sequence `ANSI_CUT_RE` finds (characters, or bytes for `ANSI_CUT_BYTES_RE`).
MAX_HELD_CHARS = 4096 + 64 + 2
