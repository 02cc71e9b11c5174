"""What the run page writes to xterm.js: escape sequences programs write pass untouched; what
xterm.js cannot parse (binary output) is U+FFFD, also when cut between two output chunks."""

from __future__ import annotations

from opscraft.ui.terminal import CUT_RE, displayable

KEPT = [
    "\x1b[31mred\x1b[0m plain",
    "\x1b]0;titlé\x07after",  # OSC strings may hold any character
    "\x1b(B\x1b[?25l\x1b[2J",
    "café שלום 日本 🙂",
    "tab\there\r\nnext",
]


def test_what_programs_write_is_kept() -> None:
    for text in KEPT:
        assert displayable(text) == text


def test_what_xterm_cannot_parse_is_a_replacement_character() -> None:
    assert displayable("a\x7fb\x9b31m") == "a\ufffdb\ufffd31m"  # DEL, 8-bit CSI
    assert displayable("\x1b[1é") == "\ufffd[1é"  # only the ESC: the rest is text
    assert displayable("\x1b\x02X\u00e9") == "\ufffd\x02X\u00e9"  # a C0 control does not end it
    assert displayable("\x1b\x1b\u00e9") == "\ufffd\ufffd\u00e9"  # ESC ESC é: both
    assert displayable("\x1b_Gé\x1b\\") == "\ufffd_Gé\x1b\\"  # an APC string with non-ASCII


def test_a_sequence_cut_between_chunks_is_held_back() -> None:
    for text, held in {
        "ok\x1b[1;3": "\x1b[1;3",
        "ok\x1b": "\x1b",
        "ok\x1b\n(": "\x1b\n(",
        "ok\x1b[1m": None,
    }.items():
        found = CUT_RE.search(text)
        assert (found.group(0) if found else None) == held, text
