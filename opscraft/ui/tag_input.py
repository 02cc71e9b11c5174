"""A chips field for a script's tags that loses nothing typed.

NiceGUI's `ui.input_chips` waits for the server to echo each change before the browser's list
changes: a second tag entered within that round trip was added to the stale list and replaced
the first (typing `demo` Enter `ops` Enter quickly saved only `ops`). Here the browser updates
its own list at once and the server does not echo it back. Text typed but not yet turned into a
chip (no Enter) becomes one when the field loses focus, where Quasar would clear it, and counts as
a tag if Save is clicked before that reaches the server. In a draft (drafts.py) the field is
kept as its list of chips.
"""

from __future__ import annotations

from typing import Any

from nicegui import ui

# Runs beside NiceGUI's own `update:model-value` handler (which sends the value to the server):
# the list shown changes now, so the next chip is added to it rather than to the old one.
_KEEP_LOCALLY = "(value) => { element.props['model-value'] = value; }"


class TagInput(ui.input_chips):
    """`ui.input_chips` without the lost-update race; `tags()` is the value to save."""

    LOOPBACK = None  # the browser keeps its own list; the server's changes still reach it

    def __init__(
        self, label: str, value: list[str], *, most: int | None = None, longest: int | None = None
    ) -> None:
        """`most` tags of at most `longest` characters each (the service's limits, e.g.
        `scripts.MAX_TAGS` and `scripts.MAX_TAG`), when given, are said under the box, as
        `widgets.says_limit` says a text field's."""
        super().__init__(label, value=value, new_value_mode="add-unique")
        if most is not None and longest is not None:
            self.props(f'hint="At most {most} tags of at most {longest} characters each"')
        self.props("data-draft-chips")  # kept in a draft as a list (drafts.py), not as shown text
        # The box's text reaches the server at once, not up to 500 ms after the last key
        # (Quasar's default), so that a Save right after Enter does not read the box as it was.
        self.props('input-debounce="0"')
        self._typed = ""
        self.on("update:model-value", js_handler=_KEEP_LOCALLY)
        self.on("input-value", self._on_typed)
        # Read before Quasar's focus-out handler empties the box.
        self.on("blur", self._on_left, js_handler="(event) => emit(event.target.value || '')")

    def _on_typed(self, event: Any) -> None:
        self._typed = str(event.args or "")

    def _on_left(self, event: Any) -> None:
        left = str(event.args or "").strip()
        if left and left not in (self.value or []):
            self.value = [*(self.value or []), left]

    def tags(self) -> list[str]:
        """The chips, then the text still in the box if any (untrimmed: the service trims and
        refuses a blank or bad tag under the field), unless it is one of the chips, which the
        box cannot add again (`add-unique`): a CI run under load saw a choice option just
        entered counted twice at Save ("Options must be distinct"), likely the box's emptying
        not yet on the server (not reproduced in isolation)."""
        chips = list(self.value or [])
        typed = self._typed.strip()
        return [*chips, self._typed] if typed and typed not in chips else chips
