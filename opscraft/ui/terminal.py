"""A read-only `ui.xterm` fed in batches: output is buffered and written every 80 ms.

Writers wait (`wait_for_room`) while too much output is pending, so a fast script slows its
watcher instead of growing server memory; the live-log bus then re-attaches from storage.
"""

from __future__ import annotations

import asyncio
import json
import re

from nicegui import ui

from opscraft.ui.widgets import live_timer

FLUSH_SECONDS = 0.08
MAX_WRITE_CHARS = 512 * 1024
MAX_PENDING_CHARS = 2 * 1024 * 1024
SCROLLBACK_LINES = 100_000
STDERR_ON, STDERR_OFF = "\x1b[91m", "\x1b[39m"
RESET_RE = re.compile(r"\x1b\[0?m")

OPTIONS = {
    "convertEol": True,
    "disableStdin": True,
    "scrollback": SCROLLBACK_LINES,
    "fontSize": 13,
    "fontFamily": "ui-monospace, SFMono-Regular, Menlo, Consolas, 'Liberation Mono', monospace",
    "theme": {"background": "#1e1e2e", "foreground": "#e4e4ef", "cursor": "#1e1e2e"},
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

# Re-fits the terminal whenever its container changes size (window, drawer).
_FIT_JS = """
const el = getElement(%d);
new ResizeObserver(() => el.fit()).observe(getHtmlElement(%d).parentElement);
"""


class LiveTerminal:
    """The output panel: write text from any coroutine; the browser gets it in batches."""

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
        live_timer(FLUSH_SECONDS, self.flush)
        ui.context.client.run_javascript(_FIT_JS % (self.xterm.id, self.xterm.id))

    def write(self, text: str, *, stderr: bool = False) -> None:
        if not text:
            return
        if stderr:  # red, kept red after the script's own colour resets
            text = STDERR_ON + RESET_RE.sub(lambda m: m.group(0) + STDERR_ON, text) + STDERR_OFF
        self._pending.append(text)
        self._pending_chars += len(text)
        self._empty.clear()
        if self._pending_chars > MAX_PENDING_CHARS:
            self._room.clear()

    async def wait_for_room(self) -> None:
        await self._room.wait()

    def flush(self) -> None:
        """Send up to `MAX_WRITE_CHARS` of pending output in one message."""
        if not self._pending:
            return
        data = "".join(self._pending)
        chunk, rest = data[:MAX_WRITE_CHARS], data[MAX_WRITE_CHARS:]
        self._pending = [rest] if rest else []
        self._pending_chars = len(rest)
        if self._pending_chars <= MAX_PENDING_CHARS:
            self._room.set()
        if not rest:
            self._empty.set()
        if self.autoscroll:
            self.xterm.write(chunk)
            self.xterm.run_terminal_method("scrollToBottom")
        else:
            # Keep the viewport where the reader left it: remember the line before writing.
            self.xterm.run_terminal_method(
                ":write",
                json.dumps(chunk),
                "((t, y) => () => t.scrollToLine(y))(this, this.buffer.active.viewportY)",
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
