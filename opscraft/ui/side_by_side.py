"""Side-by-side diff of two versions as an HTML table, quick on large changes.

`difflib.HtmlDiff` pairs every line of a changed block with every other to mark changes inside
lines (`_fancy_replace`): 300 changed lines of one script took 31 s of the server's event loop,
during which no page or API call of anyone was served. Here lines are
aligned by `difflib.SequenceMatcher` (as the unified diff) and a changed block is shown line
against line, without marks inside the lines.
"""

from __future__ import annotations

import difflib
import html

# Unchanged lines shown around each change, as in the unified diff.
CONTEXT_LINES = 3
# The table's look, light and dark (`ui.add_css` on the page that shows one).
CSS = """
table.diff { font-family: ui-monospace, monospace; font-size: 13px; border-collapse: collapse; width: 100%; }
table.diff td { padding: 0 6px; vertical-align: top; white-space: pre-wrap; }
table.diff th { text-align: left; padding: 4px 6px; }
.diff_header { color: #555; }
.diff_next { display: none; }
.diff_add { background: #c8f0d0; color: #0b3d1a; }
.diff_sub { background: #f8cfd2; color: #5c0a12; }
.diff_chg { background: #f5e6a8; color: #3d3000; }
.body--dark .diff_header { color: #bbb; }
.body--dark .diff_add { background: #1e4d2b; color: #d7f5de; }
.body--dark .diff_sub { background: #5c1d24; color: #fbdde0; }
.body--dark .diff_chg { background: #4d4212; color: #fbf1c7; }
"""

# Props of the element that scrolls a wide table: a keyboard reaches it (Tab, then the arrow keys
# scroll it; axe-core: scrollable-region-focusable), and a screen reader names it (with aria-label).
SCROLL_PROPS = 'tabindex="0" role="region"'

_CLASS = {"replace": "diff_chg", "delete": "diff_sub", "insert": "diff_add", "equal": ""}


def table(old: list[str], new: list[str], from_label: str, to_label: str) -> str:
    """`<table class="diff">` of `old` against `new` (lists of lines without their endings): one
    row per line pair, line numbers on each side, changed cells classed `diff_chg` (both sides
    differ), `diff_sub` (only in `old`) or `diff_add` (only in `new`), groups of changes with
    `CONTEXT_LINES` unchanged lines around them, separated by a row of `…`. Text is escaped."""
    rows = [_header(from_label, to_label)]
    matcher = difflib.SequenceMatcher(None, old, new)
    for index, group in enumerate(matcher.get_grouped_opcodes(CONTEXT_LINES)):
        if index:
            rows.append('<tr><td class="diff_header" colspan="4">…</td></tr>')
        for tag, i1, i2, j1, j2 in group:
            for offset in range(max(i2 - i1, j2 - j1)):
                left = i1 + offset if i1 + offset < i2 else None
                right = j1 + offset if j1 + offset < j2 else None
                # A line without a counterpart is removed (left) or added (right), also inside a
                # changed block of unequal lengths.
                css = _CLASS[tag]
                rows.append(
                    "<tr>"
                    + _cells(old, left, css if right is not None else "diff_sub")
                    + _cells(new, right, css if left is not None else "diff_add")
                    + "</tr>"
                )
    if len(rows) == 1:
        rows.append('<tr><td colspan="4">(the content is identical)</td></tr>')
    return '<table class="diff">' + "".join(rows) + "</table>"


def _header(from_label: str, to_label: str) -> str:
    return (
        f'<thead><tr><th colspan="2" class="diff_header">{html.escape(from_label)}</th>'
        f'<th colspan="2" class="diff_header">{html.escape(to_label)}</th></tr></thead>'
    )


def _cells(lines: list[str], index: int | None, css: str) -> str:
    """The line number and text cells of `lines[index]`, or two empty cells (no line there)."""
    if index is None:
        return '<td class="diff_header"></td><td></td>'
    text = html.escape(lines[index])
    return f'<td class="diff_header">{index + 1}</td><td class="{css}">{text}</td>'
