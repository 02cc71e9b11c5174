"""One-line fields and pasted line breaks: refused next to the field, never silently joined.

A browser's `<input>` holds one line: Chromium turns each line break of a pasted text into a
space (Firefox may drop what follows the first), so a name, username, email or URL pasted with a
line break was saved with spaces nobody typed, and nothing said so. The API refuses a line break
in every such field (a control character: `invisible.control_problem`, the email and URL rules),
so the page refuses the paste the same way: `PASTED_LINES_JS` keeps the field as it was and says
`PASTED_LINES` under it, until the field is typed into again. Fields whose text may hold line
breaks (descriptions, the JSON boxes of schedules, webhooks and chain links) are text areas
(`widgets.prose_input`) and keep what was pasted, as the API does.
"""

from __future__ import annotations

import json

PASTED_LINES = (
    "Not pasted: the copied text has line breaks and this field holds one line. "
    "Copy one line, or remove the line breaks first."
)
# A document-wide listener (capture phase, before Quasar's field sees the paste) for every
# one-line text field of every page; the note is a sibling after the field's Quasar wrapper.
PASTED_LINES_JS = """<script>
(() => {
  const notes = new WeakMap();
  const clear = (field) => { notes.get(field)?.remove(); notes.delete(field); };
  document.addEventListener("paste", (event) => {
    const field = event.target;
    if (!(field instanceof HTMLInputElement) || field.type === "file") return;
    const text = event.clipboardData?.getData("text/plain") ?? "";
    if (!/[\\r\\n]/.test(text)) { clear(field); return; }
    event.preventDefault();
    if (notes.has(field)) return;
    const note = document.createElement("div");
    note.className = "text-negative text-caption q-px-sm";
    note.setAttribute("role", "alert");
    note.dataset.testid = "pasted-lines";
    note.textContent = %s;
    (field.closest(".q-field") || field).after(note);
    notes.set(field, note);
  }, true);
  document.addEventListener("input", (event) => clear(event.target), true);
})();
</script>"""
"""The page script refusing a paste with line breaks into a one-line field (module doc)."""


def script() -> str:
    """`PASTED_LINES_JS` with its message, for `ui.add_head_html`."""
    return PASTED_LINES_JS % json.dumps(PASTED_LINES)
