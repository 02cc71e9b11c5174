"""A part of a page drawn from a Vue template (a table's cells) is patched, not replaced, when
another part of the page changes.

NiceGUI 3.18 draws a slot given as a template (`add_slot(name, "<q-td ...>")`: every table's
cells with buttons, badges or links) as a component made anew on every render of the page
(`renderRecursively` in its nicegui.js passes a fresh `{props, template}` object to `Vue.h`).
Vue tells components apart by identity, so each render unmounted every such cell and mounted a
new one. Every change the server sends renders the page again, whatever element it is for: the
navigation drawer closing, a badge's count, a table's own echo of its pagination after it is
first drawn. Each replaced every row's buttons, and a click landing on a replaced button is lost
(Playwright: "Element is not attached to the DOM"; a person: a click that did nothing). A CI run
under load saw a users table's seven rows redrawn between being shown and being clicked.

`STABLE_SLOTS_JS` gives each template one component for the life of the page, so Vue patches the
cells in place, as NiceGUI's own fix proposes (zauberzeug/nicegui#6284, pull request #6287,
open at 3.18). It runs after nicegui.js and before the page's Vue app is created: an inline
module script in the body is run in document order with NiceGUI's deferred scripts, between
nicegui.js and the module that mounts the app (NiceGUI's index.html). Once NiceGUI passes a
component of its own that is kept, the script changes nothing.
"""

from __future__ import annotations

# `globalThis.Vue` is the module namespace NiceGUI's index.html exposes (read-only): it is replaced
# by a copy whose `h` swaps a slot template's fresh `{props, template}` object for the one kept
# for that template (markRaw: a component definition is never made reactive).
STABLE_SLOTS_JS = """<script type="module">
const kept = new Map();
const h = Vue.h;
const isSlotTemplate = (type) => type !== null && typeof type === "object"
  && typeof type.template === "string" && Object.keys(type).join() === "props,template";
globalThis.Vue = Object.freeze({ ...Vue, h(type, ...rest) {
  if (isSlotTemplate(type)) {
    if (!kept.has(type.template)) kept.set(type.template, Vue.markRaw({ ...type }));
    type = kept.get(type.template);
  }
  return h(type, ...rest);
} });
</script>"""
