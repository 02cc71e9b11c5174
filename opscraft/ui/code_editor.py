"""NiceGUI's code editor, kept from putting back text the user has since changed.

NiceGUI's CodeMirror element sends every edit to the server as a change set, which the server
applies to its copy of the text. But every update of the element the server sends (a new
theme, the live checks' line marks, a tooltip) carries that copy too, and the browser put it
into the editor: an update sent while an edit was still on its way to the server undid the
edit in the browser only. The two copies then differed for good, and the next edits were
applied to each at different places (field report: `echo 1` replaced by typing
`echo 1 / echo mine` was saved as `echo 1 / echo mine / echo 1`, when the live checks marked
the lines as the keys were typed).

`CodeEditor` numbers the texts the server sets itself (`data-value-seq`); the browser side
(`KEEP_TYPED_JS`) puts the server's text into the editor only when that number moved, and keeps
what is in the editor otherwise. It takes effect from the first focus, paste or drop on the
editor: before that nothing was typed, and the server's text is the editor's.
"""

from __future__ import annotations

from typing import Any

from nicegui import ui

SEQ_PROP = "data-value-seq"

KEEP_TYPED_JS = """<script>
if (!window.ocKeepTyped) {
  window.ocKeepTyped = (event) => {
    const box = event.target.closest && event.target.closest(".cm-editor");
    const root = box && box.parentElement;
    const editor = root && getElement(root);
    if (!editor || !editor.editor || editor.ocKeepsTyped) return;
    editor.ocKeepsTyped = true;
    let seen = editor.$attrs["SEQ_PROP"];
    const apply = editor.setEditorValue;
    editor.setEditorValue = (value) => {
      const seq = editor.$attrs["SEQ_PROP"];
      if (seq === seen) return;  // the server's copy, sent with another change: maybe behind
      seen = seq;
      apply(value);
    };
  };
  ["focusin", "paste", "drop", "dragenter"].forEach((name) =>
    document.addEventListener(name, (event) => ocKeepTyped(event), true));
}
</script>""".replace("SEQ_PROP", SEQ_PROP)


class CodeEditor(ui.codemirror):
    """`ui.codemirror` whose updates never put the server's (possibly older) text over what was
    typed in the browser; a text the server sets (`value = ...`, `set_value`) still replaces
    the editor's. Takes the arguments of `ui.codemirror`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        ui.add_head_html(KEEP_TYPED_JS)

    def _handle_value_change(self, value: Any) -> None:
        """Number a text set by the server (not one applied from the browser's change set, which
        NiceGUI applies with `_send_update_on_value_change` off), in the same update as the text."""
        if self._send_update_on_value_change:
            with self._props.suspend_updates():
                self._props[SEQ_PROP] = int(self._props.get(SEQ_PROP, 0)) + 1
        super()._handle_value_change(value)
