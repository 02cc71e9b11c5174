"""A read-only `ui.xterm` fed in batches: output is buffered and written every 80 ms.

Writers wait (`wait_for_room`) while too much output is pending, so a fast script slows its
watcher instead of growing server memory; the live-log bus then re-attaches from storage.
Pending output leaves only as fast as the browser takes it: at most `MAX_IN_FLIGHT_CHARS` are
sent and not yet written by the browser's terminal (it says so after each write). Handing
every batch to the page's connection at once made a browser that reads slower than the script
prints (a slow network, a busy tab) queue the run's whole output on the server, per watching
tab, and everything else for the page behind it: a click was answered, and socket.io's pings
arrived, only after that output, so the page dropped its connection and reloaded, again and
again.
"""

from __future__ import annotations

import asyncio
import json
import re
from datetime import datetime
from typing import Any

from nicegui import ui

from opscraft.execution.escape_codes import ANSI_RE
from opscraft.ui.widgets import live_timer

FLUSH_SECONDS = 0.08
MAX_WRITE_CHARS = 256 * 1024
MAX_PENDING_CHARS = 2 * 1024 * 1024
# Characters sent to the browser and not yet written by its terminal (two writes: one drawn while
# the next travels): what the server holds of one page's output (with `MAX_PENDING_CHARS`)
# whatever the speed of its network, and what a click's answer waits behind (5 s at 100 kB/s).
MAX_IN_FLIGHT_CHARS = 2 * MAX_WRITE_CHARS
SCROLLBACK_LINES = 100_000
STDERR_ON, STDERR_OFF = "\x1b[91m", "\x1b[39m"
RESET_RE = re.compile(r"\x1b\[0?m")
# Where a timestamp goes: after a line feed, and after a carriage return that does not start a
# CRLF (a progress bar's `\r50%` redraws its line from the first column, stamp included). A CRLF
# cut between two chunks gets a stamp before its LF, drawn over the line's own (same width).
LINE_END_RE = re.compile(r"(?<=\n)|(?<=\r)(?!\n)")
# What xterm.js cannot parse, and logs a "Parsing error" to the console for (binary output holds
# thousands): DEL, the C1 controls U+0080-U+009F (xterm's 8-bit CSI, OSC, DCS..., which UTF-8
# output never means) and an ESC whose sequence (ESC, CSI or DCS so far) goes on with one of
# those or a non-ASCII character (the ESC only: the rest is then plain text). Each is shown as
# U+FFFD, as undecodable bytes already are.
# An SOS, PM or APC string (ESC X, ESC ^, ESC _) may not hold a non-ASCII character either;
# C0 controls other than CAN, SUB and ESC run inside a sequence without ending it.
UNPARSABLE_RE = re.compile(
    r"[\x7f-\x9f]|\x1b(?=[\x00-\x17\x19\x1c-\x1f]*"
    r"(?:[\[P][\x00-\x17\x19\x1c-\x3f]*|[\x00-\x17\x19\x1c-\x2f]*|[X^_][^\x1b]*?)[^\x00-\x7e])"
)


# A select-graphic-rendition sequence (colours, bold...) with a parameter `8` (conceal, or a
# colour's: `revealed` tells), with its parameters; the others are never looked at.
SGR_RE = re.compile(r"\x1b\[((?:[0-9;]*;)?0*8(?:;[0-9;]*)?)m")
# The parameters of `38`, `48` and `58` (foreground, background, underline colour) that follow
# them: `5;N` (256 colours) or `2;R;G;B` (true colour), so their `8` is a colour, not conceal.
_COLOUR_ARGS = {"5": 1, "2": 3}


def displayable(text: str) -> str:
    """`text` with what xterm.js cannot parse (`UNPARSABLE_RE`) as U+FFFD, and without concealed
    text (`revealed`). Repeated until nothing changes: an ESC followed by another that is
    replaced (ESC ESC U+00E9) is then unparsable too."""
    while True:
        shown = UNPARSABLE_RE.sub("\ufffd", text)
        if shown == text:
            return SGR_RE.sub(revealed, shown)
        text = shown


def revealed(sgr: re.Match[str]) -> str:
    """An SGR sequence (`SGR_RE`) without its conceal attribute (`8`), which drew the text after
    it invisible on the page (a line of untrusted data printed, say a log's `ESC[8m`, hid the run's
    output after it up to the next reset) while the download and the search found it: the page
    is a log, like GitHub's and GitLab's job logs, which ignore it. Colours, bold and the rest are
    kept; a sequence of conceal alone is dropped (an empty one would reset the others)."""
    params = sgr.group(1).split(";")
    kept: list[str] = []
    at = 0
    while at < len(params):
        param = params[at]
        if param in ("38", "48", "58") and at + 1 < len(params):
            size = 2 + _COLOUR_ARGS.get(params[at + 1], -1)
            kept += params[at : at + size]
            at += size
            continue
        if param.lstrip("0") != "8":
            kept.append(param)
        at += 1
    if kept == params:
        return sgr.group(0)
    return f"\x1b[{';'.join(kept)}m" if kept else ""


# A sequence cut at the end of an output chunk: held back and judged with the next chunk.
CUT_RE = re.compile(
    r"\x1b[\x00-\x17\x19\x1c-\x1f]{0,64}(?:[\[P][\x00-\x17\x19\x1c-\x3f]{0,64}|[\x00-\x17\x19\x1c-\x2f]{0,64})\Z"
)
# What would erase or hide earlier output on the page: erase the display (ED 2, as `clear` and
# `tput clear` write after a cursor home), or from a cursor home to its end (ED 0 right after
# CUP 1;1: `clear` of the `linux`, `screen`, `tmux` and `vt100` terminfo entries, and Python's
# `print("\033[H\033[J")` idiom), the scrollback (ED 3), a full reset (RIS, `ESC c`: `reset`,
# `tput reset`), the alternate screen (whose content vanishes when the program leaves it). The
# page is a log: the rows on screen are first scrolled into the scrollback (as VTE and Windows
# Terminal do on ED 2), the scrollback is never erased, the alternate screen is not entered.
# The stored log keeps the sequences as they were.
ERASING_RE = re.compile(
    r"\x1b\[\??[23]J|\x1b\[(?:1?(?:;1?)?)?[Hf]\x1b\[0?J|\x1bc|\x1b\[\?(?:1049|1047|47)[hl]"
)
DEFAULT_ROWS = 24  # xterm.js's, until the browser reports the fitted size
# Dim (not a colour) so a red stderr line stays red after its stamp.
STAMP_ON, STAMP_OFF = "\x1b[2m", "\x1b[22m"
MAX_KEPT_CHARS = 8 * 1024 * 1024
# The characters of one line the page's terminal gets (escape sequences included); the rest of a
# longer line is dropped from the view after `CUT_NOTE` (its escape sequences still pass, so a
# colour reset is not lost). xterm.js re-wraps a line on each resize by spreading its rows as
# a call's arguments: a 300,000-character line, narrowed to a few columns (a full-page capture
# refits it), overflowed the browser's stack ("Maximum call stack size exceeded") and stopped the
# page's output. At FitAddon's 2-column minimum a cut line is 5,000 rows. A carriage return
# starts the line over (a progress bar redraws it in place), as a line feed does.
MAX_LINE_CHARS = 10_000
CUT_NOTE = (
    f"{STAMP_ON} … [line cut at {MAX_LINE_CHARS:,} characters in this view: "
    f"the download has all of it]{STAMP_OFF}"
)
LINE_BREAK_RE = re.compile(r"([\n\r])")


def capped(text: str, line_chars: int) -> tuple[str, int]:
    """`text` with each line past `MAX_LINE_CHARS` cut: `CUT_NOTE` at the cut, then only the
    escape sequences of the rest until the next line feed or carriage return. `line_chars`: the
    characters of the current line before `text` (`MAX_LINE_CHARS + 1` once cut); returns the
    text to show and the count after it."""
    if line_chars + len(text) <= MAX_LINE_CHARS:  # the usual case: nothing to cut
        end = max(text.rfind("\n"), text.rfind("\r"))
        return text, (len(text) - end - 1 if end >= 0 else line_chars + len(text))
    parts = []
    for index, piece in enumerate(LINE_BREAK_RE.split(text)):
        if index % 2:  # a line feed or carriage return
            parts.append(piece)
            line_chars = 0
            continue
        room = MAX_LINE_CHARS - line_chars  # -1 once the line was cut
        if len(piece) <= room:
            line_chars += len(piece)
        elif piece:
            rest = "".join(ANSI_RE.findall(piece[max(room, 0) :]))
            piece = piece[:room] + CUT_NOTE + rest if room >= 0 else rest
            line_chars = MAX_LINE_CHARS + 1
        parts.append(piece)
    return "".join(parts), line_chars


OPTIONS = {
    "convertEol": True,
    "disableStdin": True,
    "scrollback": SCROLLBACK_LINES,
    "fontSize": 13,
    "fontFamily": "ui-monospace, SFMono-Regular, Menlo, Consolas, 'Liberation Mono', monospace",
    "theme": {"background": "#1e1e2e", "foreground": "#e4e4ef", "cursor": "#1e1e2e"},
    # The rows on screen as a list screen readers read (xterm.js draws them hidden from them).
    "screenReaderMode": True,
}

# Copies the terminal's buffer (a hidden textarea outside secure contexts); -1 when refused.
_COPY_JS = """
const term = getElement(%d).terminal;
term.selectAll();
const text = term.getSelection();
term.clearSelection();
try {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
  } else {
    const area = Object.assign(document.createElement("textarea"), {value: text});
    document.body.appendChild(area); area.select();
    const done = document.execCommand("copy");
    area.remove();
    if (!done) return -1;
  }
} catch (error) {
  return -1;
}
return text.length;
"""

# Logical lines (wrapped rows joined) of the terminal's buffer: [{row, text}], row 0 = line 1.
_LINES_JS = """
const lines = (term) => {
  const buf = term.buffer.active, out = [];
  for (let i = 0; i < buf.length; i++) {
    const row = buf.getLine(i), next = buf.getLine(i + 1);
    if (!row.isWrapped || !out.length) out.push({row: i, text: ""});
    out[out.length - 1].text += row.translateToString(!(next && next.isWrapped));
  }
  return out;
};
const mark = (term, row, col, length) => {
  term.scrollToLine(Math.max(0, row - Math.floor(term.rows / 2)));
  term.select(col, row, Math.max(length, 1));
};
"""

# Finds %s (in any case and canonically equivalent spelling, as every search: `fold`) and
# selects the match `step` (+1/-1) from the current one.
_SEARCH_JS = (
    _LINES_JS
    + """
// `text` as every search compares it (db.fold.lower): lower case by the simple mapping (U+0130
// an i, U+03A3 a small sigma anywhere), in NFC; `cells[i]`: the cell, in the line, of folded
// code unit i (a letter and its combining marks are one cell, however they are spelled).
const fold = (text) => {
  let out = "";
  const cells = [];
  (text.match(/\\P{M}\\p{M}*|\\p{M}+/gu) || []).forEach((cluster, cell) => {
    const simple = cluster.normalize("NFC").replace(/\\u0130/g, "i").replace(/\\u03a3/g, "\\u03c3");
    const folded = simple.toLowerCase().normalize("NFC");
    out += folded;
    for (let k = 0; k < folded.length; k++) cells.push(cell);
  });
  return {text: out, cells};
};
const term = getElement(%d).terminal, needle = fold(%s).text, step = %d;
const state = window.__ocSearch || (window.__ocSearch = {needle: null, at: -1});
if (state.needle !== needle) { state.needle = needle; state.at = -1; }
if (!needle) { term.clearSelection(); return [0, 0, 0]; }
const hits = [];
lines(term).forEach((line, index) => {
  const {text, cells} = fold(line.text);
  for (let at = text.indexOf(needle); at >= 0; at = text.indexOf(needle, at + 1)) {
    const col = cells[at], width = cells[at + needle.length - 1] - col + 1;
    hits.push([index + 1, line.row + Math.floor(col / term.cols), col %% term.cols, width]);
  }
});
if (!hits.length) { term.clearSelection(); state.at = -1; return [0, 0, 0]; }
state.at = state.at < 0 ? (step > 0 ? 0 : hits.length - 1) : (state.at + step + hits.length) %% hits.length;
const [line, row, col, width] = hits[state.at];
mark(term, row, col, width);
return [state.at + 1, hits.length, line];
"""
)

# `#L120` in the address: once line 120 has arrived, scroll to it and select it (also on hash change).
_LINE_LINK_JS = (
    _LINES_JS
    + """
const term = getElement(%d).terminal;
const jump = () => {
  const wanted = Number((/^#L(\\d+)$/.exec(location.hash) || [])[1]);
  if (!wanted) return true;
  const all = lines(term);
  if (all.length <= wanted) return false;  // the last line may still be growing
  const start = all[wanted - 1].row, end = all[wanted].row - 1;
  term.scrollToLine(Math.max(0, start - Math.floor(term.rows / 2)));
  term.selectLines(start, end);
  return true;
};
const poll = (tries) => { if (!jump() && tries > 0) setTimeout(() => poll(tries - 1), 250); };
poll(480);
window.addEventListener("hashchange", () => poll(40));
"""
)

# The line of the selection (or search match) as `#L<n>`: put in the address and copied; -1 if none.
_LINK_TO_LINE_JS = (
    _LINES_JS
    + """
const term = getElement(%d).terminal, position = term.getSelectionPosition();
if (!position) return -1;
const number = lines(term).filter((line) => line.row <= position.start.y).length;
history.replaceState(history.state, "", "#L" + number);
const url = location.href;
try {
  if (navigator.clipboard && window.isSecureContext) await navigator.clipboard.writeText(url);
  else {
    const area = Object.assign(document.createElement("textarea"), {value: url});
    document.body.appendChild(area); area.select(); document.execCommand("copy"); area.remove();
  }
} catch (error) {}
return number;
"""
)

# Re-fits the terminal whenever its container changes size (window, drawer).
_FIT_JS = """
const el = getElement(%d);
new ResizeObserver(() => el.fit()).observe(getHtmlElement(%d).parentElement);
"""

# For screen readers: the rows are the run's output, the focusable helper takes no input, and new
# output is said politely (xterm.js interrupts with it, up to 20 lines, then "Too much output").
_A11Y_JS = """
const root = getHtmlElement(%d);
root.querySelector(".xterm-accessibility-tree")?.setAttribute("aria-label", "Output");
const input = root.querySelector(".xterm-helper-textarea");
input?.setAttribute("aria-label", "Output (read only)");
input?.setAttribute("readonly", "");
root.querySelector(".live-region")?.setAttribute("aria-live", "polite");
"""


class LiveTerminal:
    """The output panel: write text from any coroutine; the browser gets it in batches.

    The text written is kept (up to `MAX_KEPT_CHARS`, oldest dropped) so the timestamps toggle can
    redraw it with or without a `HH:MM:SS.mmm` (UTC) stamp at the start of each line.
    """

    def __init__(self) -> None:
        with ui.element("div").classes(
            "w-full h-[60vh] min-h-64 rounded-lg overflow-hidden bg-[#1e1e2e] p-2"
        ):
            self.xterm = ui.xterm(OPTIONS).classes("w-full h-full").props('data-testid="terminal"')
        self.autoscroll = True
        self._pending: list[str] = []
        self._pending_chars = 0
        self._room = asyncio.Event()
        self._room.set()
        self._empty = asyncio.Event()
        self._empty.set()
        self.timestamps = False
        self._kept: list[tuple[datetime | None, str]] = []
        self._kept_chars = 0
        self._line_start = True
        self._line_chars = 0  # characters of the current line sent to the view (`capped`)
        self._line_open = False  # the last visible character written was not a line feed
        self._cut: dict[bool, str] = {}  # by stream (stderr?): the start of a sequence cut off
        self.rows = DEFAULT_ROWS
        self._shown = False  # text on screen since the start or the last clear (`_kept_on_screen`)
        # Characters sent to the browser so far, and of those the ones its terminal has written.
        self._sent = 0
        self._written = 0
        self.xterm.on("resize", self._on_resize)
        self.xterm.on("written", self._on_written)
        live_timer(FLUSH_SECONDS, self.flush)
        client = ui.context.client
        # A reconnect may have lost a "written" on its way: count everything sent as taken, so a
        # page never stops getting output (at most one more `MAX_IN_FLIGHT_CHARS` is in flight).
        client.on_connect(self._on_reconnect)
        client.run_javascript(_FIT_JS % (self.xterm.id, self.xterm.id))
        client.run_javascript(_LINE_LINK_JS % self.xterm.id)
        client.run_javascript(_A11Y_JS % self.xterm.id)

    def write(self, text: str, *, stderr: bool = False, at: datetime | None = None) -> None:
        """Queue `text` (one output chunk produced at `at`, UTC); stderr is drawn red. What
        xterm.js cannot parse is shown as U+FFFD (`UNPARSABLE_RE`)."""
        text = self._cut.pop(stderr, "") + text
        cut = CUT_RE.search(text)
        if cut:
            self._cut[stderr], text = text[cut.start() :], text[: cut.start()]
        if not text:
            return
        text = displayable(text)
        if stderr:  # red, kept red after the script's own colour resets
            text = STDERR_ON + RESET_RE.sub(lambda m: m.group(0) + STDERR_ON, text) + STDERR_OFF
        visible = ANSI_RE.sub("", text)
        if visible:
            self._line_open = not visible.endswith("\n")
        self._kept.append((at, text))
        self._kept_chars += len(text)
        while self._kept_chars > MAX_KEPT_CHARS and len(self._kept) > 1:
            self._kept_chars -= len(self._kept.pop(0)[1])
        self._queue(self._stamped(text, at) if self.timestamps else text)

    def end_line(self) -> None:
        """End the output's last line with a line feed if it has none (call once the run has
        ended). xterm.js does not re-wrap the line its cursor is on when the terminal narrows: it
        cuts it at the narrower width, for good (a last line `end` was left `en` after a narrowing
        to a phone's width). With the cursor on a line of its own, the last line is re-wrapped as
        every other. The stored log and the download are not changed."""
        if self._line_open:
            self.write("\n")

    def _stamped(self, text: str, at: datetime | None) -> str:
        stamp = f"{STAMP_ON}{at:%H:%M:%S}.{at.microsecond // 1000:03d}{STAMP_OFF} " if at else ""
        parts = []
        for piece in LINE_END_RE.split(text):
            if piece:
                parts.append(stamp + piece if self._line_start else piece)
                self._line_start = piece.endswith(("\n", "\r"))
        return "".join(parts)

    def set_timestamps(self, shown: bool) -> None:
        """Redraw everything kept with (or without) a timestamp at the start of each line."""
        self.timestamps = shown
        self._pending, self._pending_chars, self._line_start, self._shown = [], 0, True, False
        self._line_chars = 0
        self.xterm.run_terminal_method("reset")
        for at, text in self._kept:
            self._queue(self._stamped(text, at) if shown else text)
        self.flush()

    async def search(self, needle: str, step: int) -> tuple[int, int, int]:
        """Select the next (`step` 1) or previous (-1) match of `needle`, in any case and any
        canonically equivalent spelling (lower case and NFC on both sides, as every search):
        (match number from 1, matches, line number from 1); (0, 0, 0) when nothing matches."""
        found = await ui.run_javascript(_SEARCH_JS % (self.xterm.id, json.dumps(needle), step), timeout=10)
        return int(found[0]), int(found[1]), int(found[2])

    async def link_to_line(self) -> int | None:
        """Put `#L<n>` for the selected line in the address and copy the link; None without selection."""
        number = int(await ui.run_javascript(_LINK_TO_LINE_JS % self.xterm.id, timeout=10))
        return number if number > 0 else None

    def _on_resize(self, event: Any) -> None:
        self.rows = int(event.args.get("rows") or DEFAULT_ROWS)

    def _on_written(self, event: Any) -> None:
        """The browser's terminal has written the output up to character `event.args` (a count
        of characters sent, `_sent` when that write left): send what waits at once."""
        self._written = max(self._written, min(int(event.args), self._sent))
        self.flush()

    def _on_reconnect(self) -> None:
        self._written = self._sent

    def _kept_on_screen(self, text: str) -> str:
        """`text` with each `ERASING_RE` sequence replaced by what the page's terminal gets: for
        ED 2 (or a cursor home and ED 0) and a reset, the cursor to the last row and a line feed
        per row, which scroll the rows on screen into the scrollback (none while nothing was
        shown since the start or the last such scroll: a `clear` before any output leaves no
        blank screen above it); nothing for the others."""
        parts, start = [], 0
        for match in ERASING_RE.finditer(text):
            before = text[start : match.start()]
            self._shown = self._shown or bool(ANSI_RE.sub("", before).strip())
            sequence, start = match.group(0), match.end()
            scrolls = sequence == "\x1bc" or sequence.endswith(("2J", "[J", "[0J"))
            parts += [before, "\x1b[9999;1H" + "\n" * self.rows if scrolls and self._shown else ""]
            self._shown = self._shown and not scrolls
        rest = text[start:]
        self._shown = self._shown or bool(ANSI_RE.sub("", rest).strip())
        return "".join([*parts, rest])

    def _queue(self, text: str) -> None:
        text, self._line_chars = capped(self._kept_on_screen(text), self._line_chars)
        self._pending.append(text)
        self._pending_chars += len(text)
        self._empty.clear()
        if self._pending_chars > MAX_PENDING_CHARS:
            self._room.clear()

    async def wait_for_room(self) -> None:
        """Wait while more than MAX_PENDING_CHARS characters of output are pending for the browser (flow
        control: a fast script slows to what the page takes).
        """
        await self._room.wait()

    def flush(self) -> None:
        """Send pending output in one message: up to `MAX_WRITE_CHARS`, and no more than keeps
        what the browser has not yet written within `MAX_IN_FLIGHT_CHARS` (none: the rest waits
        for a later tick)."""
        room = min(MAX_WRITE_CHARS, MAX_IN_FLIGHT_CHARS - (self._sent - self._written))
        if not self._pending or room <= 0:
            return
        data = "".join(self._pending)
        chunk, rest = data[:room], data[room:]
        self._pending = [rest] if rest else []
        self._pending_chars = len(rest)
        if self._pending_chars <= MAX_PENDING_CHARS:
            self._room.set()
        if not rest:
            self._empty.set()
        self._sent += len(chunk)
        # Once written: say so (`_on_written`), and keep the viewport where the reader left it
        # (the line remembered before writing) unless auto-scrolling.
        scroll = "t.scrollToBottom()" if self.autoscroll else "t.scrollToLine(y)"
        self.xterm.run_terminal_method(
            ":write",
            json.dumps(chunk),
            f"((t, y, el) => () => {{ {scroll}; el.$emit('written', {self._sent}); }})"
            f"(this, this.buffer.active.viewportY, getElement({self.xterm.id}))",
        )

    async def drain(self) -> None:
        """Wait until everything written so far has been sent."""
        await self._empty.wait()

    async def copy(self) -> int | None:
        """Copy the terminal's text to the clipboard: the number of characters, None if refused."""
        try:
            copied = int(await ui.run_javascript(_COPY_JS % self.xterm.id, timeout=5))
        except TimeoutError:
            return None
        return copied if copied >= 0 else None
