"""What the run page writes to xterm.js: escape sequences programs write pass untouched; what
xterm.js cannot parse (binary output) is U+FFFD, also when cut between two output chunks."""

from __future__ import annotations

from opscraft.ui.terminal import CUT_NOTE, CUT_RE, MAX_LINE_CHARS, capped, displayable

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


def test_a_long_line_is_cut_in_the_view_with_a_note() -> None:
    """Counted across writes; the note once per line; the rest's escape sequences kept; a line
    feed or carriage return starts the count over (`MAX_LINE_CHARS`)."""
    shown, count = capped("start\n" + "a" * (MAX_LINE_CHARS - 10), 0)
    assert shown.endswith("a" * (MAX_LINE_CHARS - 10)) and count == MAX_LINE_CHARS - 10
    shown, count = capped("b" * 20 + "\x1b[0m" + "c" * 5, count)
    assert shown == "b" * 10 + CUT_NOTE + "\x1b[0m" and count == MAX_LINE_CHARS + 1
    shown, count = capped("d" * 300_000 + "\x1b[31m\nend", count)
    assert shown == "\x1b[31m\nend" and count == 3
    shown, count = capped("x" * MAX_LINE_CHARS, 0)
    assert capped("y\rz", count) == (CUT_NOTE + "\rz", 1)
    assert capped("50%\r" * 5_000, 0) == ("50%\r" * 5_000, 0)  # a progress bar redrawn in place


def test_concealed_text_is_shown() -> None:
    """SGR 8 (conceal) drew the text after it invisible until the next reset: one line of
    untrusted data holding it (a log's `ESC[8m`) hid the rest of the run's output on the page,
    while the download and the search found it. The attribute is dropped, the rest of the
    sequence kept; an `8` that is a colour's parameter (`38;5;8`, `48;2;8;8;8`) stays."""
    cases = {
        "\x1b[8msecret\x1b[0m": "secret\x1b[0m",
        "\x1b[1;8;31mbold red\x1b[28m": "\x1b[1;31mbold red\x1b[28m",
        "\x1b[08mx": "x",
        "\x1b[38;5;8mgrey": "\x1b[38;5;8mgrey",
        "\x1b[48;2;8;8;8;8mdark": "\x1b[48;2;8;8;8mdark",
        "\x1b[38;5;8;48;5;8;8mx": "\x1b[38;5;8;48;5;8mx",
        "\x1b[mreset": "\x1b[mreset",
    }
    for text, shown in cases.items():
        assert displayable(text) == shown, text
