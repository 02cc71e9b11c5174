"""Unsaved form contents kept in the browser tab, so a reconnect or a reload loses no typing.

A form marks its container with `data-draft-form="KEY"` and each field with `data-draft="NAME"`.
The browser copies the fields' values into `sessionStorage` (per tab, gone when the tab closes)
on every keystroke, once a second and when the page is left (`pagehide`: a reload), including
while the connection to the server is down. When
the form is built again (after NiceGUI reloads the page on reconnect, or a manual reload), the
server asks the tab for the stored values, puts them back and shows a "restored unsaved changes"
notice with a Discard button. A successful save or a Cancel clears the draft; a form that stays
open after its save begins a new one at once, from what it saved: the script editor, under the
saved script's key (`Draft.restart`), the Profile and Settings pages (`Draft.saved`: what was
typed while the save was on its way stays in the draft).

An edit also keeps the `base` it started from (`Draft.hold_base`: the row's fields as stored when
the form opened) in its draft: a form restored after a reload reads the row again, and saving the
restored typing against that newer row would silently replace what was saved meanwhile (by someone
else, or by the same user in another tab).
The held base is sent instead (a field saved meanwhile is a 409 under it), and the form says so
at once (`stale_warning`), with "Keep my edit" (save over theirs) and "Discard it". Every form
holds its base so, the script editor too (its base adds the version the edit started from).

Password and secret-value fields are never marked: a secret must not sit in web storage, where any
script of the origin could read it (the long reconnect window keeps them across short drops).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from nicegui import context, ui

from opscraft.services.partial import saved_by
from opscraft.ui.session import current_actor
from opscraft.ui.widgets import one_shot, opening_dialog

# Browser side. `take` hands the stored draft to the server, and capturing of the whole form is
# armed only once the server has put it back (`arm`; at once when there is none), so the freshly
# rendered (empty) form never overwrites the draft it is about to restore; before that, only the
# fields the person changed are kept (`early`).
DRAFTS_JS = """<script>
window.ocDrafts = window.ocDrafts || {
  armed: {},
  // Forms taken (`take`) whose draft the server has not put back yet (`arm`): kept as `early`.
  restoring: {},
  key(form) { return "oc-draft:" + form; },
  read(el) {
    if (el.querySelector(".cm-editor")) {
      const comp = getElement(el);
      return comp && comp.editor ? comp.editor.state.doc.toString() : null;
    }
    if (el.dataset.draftChips !== undefined) {  // tag_input.py: the chips, then the text not yet one
      const box = el.closest(".q-select");
      const shown = box ? box.querySelectorAll(".q-chip__content") : [];
      const chips = Array.from(shown, (chip) => chip.innerText.trim());
      return el.value.trim() ? [...chips, el.value] : chips;
    }
    if (el.dataset.draftMultiple !== undefined) {  // a multiple select (with chips): their labels
      return Array.from(el.querySelectorAll(".q-chip__content"), (chip) => chip.innerText.trim());
    }
    if (el.classList.contains("q-select")) {
      const shown = el.querySelector(".q-field__native");
      return shown ? shown.innerText.trim() : null;
    }
    const box = el.matches("[aria-checked]") ? el : el.querySelector("[aria-checked]");
    if (box) return box.getAttribute("aria-checked") === "true";
    const field = el.matches("input, textarea") ? el : el.querySelector("textarea, input");
    return field ? field.value : null;
  },
  origins: {},
  // The fields of each form not armed yet that the person changed (typed into, clicked) on this
  // page: their values are kept before the server's `take` arms the form (`early`).
  touched: {},
  values(container, only) {
    const values = {};
    container.querySelectorAll("[data-draft]").forEach((el) => {
      if (only && !only.has(el.dataset.draft) && el.dataset.draftAlways === undefined) return;
      const value = this.read(el);
      if (value !== null) values[el.dataset.draft] = value;
    });
    return values;
  },
  capture() {
    document.querySelectorAll("[data-draft-form]").forEach((container) => {
      const form = container.dataset.draftForm;
      if (!this.armed[form] || this.restoring[form]) return this.early(form, container);
      const values = this.values(container);
      values.__origin = this.origins[form] || null;
      try { sessionStorage.setItem(this.key(form), JSON.stringify(values)); } catch (e) { /* full */ }
    });
  },
  // Typing before the server armed the form (a busy server answers the page's connection late,
  // and a reload then lost what was typed): only the touched fields (and those restored always,
  // such as the base the edit started from) are written, into the draft an earlier page left
  // (its origin kept) or into one marked `__early`, which `take` completes with the fields as
  // they show (no origin: each is compared with the form as built again).
  early(form, container) {
    const touched = this.touched[form];
    if (!touched || !touched.size) return;
    let values = null;
    try { values = JSON.parse(sessionStorage.getItem(this.key(form)) || "null"); } catch (e) { /* bad */ }
    values = Object.assign(values || { __early: true }, this.values(container, touched));
    try { sessionStorage.setItem(this.key(form), JSON.stringify(values)); } catch (e) { /* full */ }
  },
  touch(event) {
    const el = event.target && event.target.closest ? event.target.closest("[data-draft]") : null;
    const container = el ? el.closest("[data-draft-form]") : null;
    const form = container ? container.dataset.draftForm : null;
    if (!container || (this.armed[form] && !this.restoring[form])) return;
    (this.touched[form] = this.touched[form] || new Set()).add(el.dataset.draft);
  },
  take(form, origin) {
    this.armed[form] = true;
    delete this.touched[form];
    const raw = sessionStorage.getItem(this.key(form));
    let stored = raw ? JSON.parse(raw) : null;
    if (stored && stored.__early) {
      delete stored.__early;
      const container = document.querySelector(`[data-draft-form="${CSS.escape(form)}"]`);
      stored = Object.assign(container ? this.values(container) : {}, stored);
    }
    // The values the form was built with when the draft began (kept across reloads).
    this.origins[form] = (stored && stored.__origin) || origin;
    // A draft to put back is captured whole only once the server has (`arm`): a reload before
    // that (a busy server, a reconnect) wrote the form as built over it, and the typing was lost.
    if (stored) this.restoring[form] = true;
    return stored;
  },
  // The server has put the draft of `form` back (`Draft.restore`): capture the whole form.
  arm(form) {
    delete this.restoring[form];
    delete this.touched[form];
  },
  // Whether the tab's draft of `form` holds something typed: a value other than the one the form
  // was built with (`__origin`, in the form the field shows it: Draft.shown). A dialog closed
  // untouched (Escape) left its defaults behind, and the page reopened it on every visit.
  peek(form) {
    const raw = sessionStorage.getItem(this.key(form));
    if (raw === null) return false;
    const values = JSON.parse(raw);
    const origin = values.__origin;
    delete values.__origin;
    delete values.__early;
    const same = (value, built) => JSON.stringify(value) === JSON.stringify(built)
      || (typeof value !== "object" && String(value) === String(built ?? ""));
    return Object.entries(values).some(([name, v]) =>
      origin ? !same(v, origin[name]) : v !== "" && v !== false);
  },
  // Put restored values (NiceGUI element id -> value) into text fields (`ui.input`, `ui.textarea`)
  // as typing would: each field's own component takes its value and sends it to the server, in
  // order with whatever is typed next (`Draft._put`). A field typed into since the server last
  // set it (what it shows is not its `value` prop) keeps what was typed: the newer input wins.
  // Resolves once the values are on their way to the server.
  put(values) {
    for (const [id, value] of Object.entries(values)) {
      const field = getElement(id);
      if (field && field.$data && "inputValue" in field.$data && field.inputValue === field.value) {
        field.inputValue = value;
      }
    }
    return Vue.nextTick().then(() => true);
  },
  clear(form) {
    this.armed[form] = false;
    delete this.restoring[form];
    delete this.touched[form];
    sessionStorage.removeItem(this.key(form));
  },
  // Whether the draft of `form` holds something typed (`peek`) and was left by an earlier page:
  // not a form armed or typed into in this page (a dialog opened and typed into before the
  // page's check came back, on a busy server, was opened a second time over itself).
  left(form) {
    return !this.armed[form] && !this.touched[form] && this.peek(form);
  },
  // The forms whose key starts with `prefix` and whose draft was left by an earlier page (`left`).
  pending(prefix) {
    const found = [];
    for (let i = 0; i < sessionStorage.length; i++) {
      const form = (sessionStorage.key(i) || "").slice(this.key("").length);
      if (sessionStorage.key(i).startsWith(this.key(prefix)) && this.left(form)) found.push(form);
    }
    return found;
  },
};
if (!window.ocDraftsTimer) {
  window.ocDraftsTimer = setInterval(() => ocDrafts.capture(), 1000);
  ["input", "change", "keyup", "click"].forEach((name) =>
    document.addEventListener(name, (event) => {
      ocDrafts.touch(event);
      setTimeout(() => ocDrafts.capture(), 0);
    }, true));
  // A reload or a navigation within the timer's second keeps the very last input too.
  window.addEventListener("pagehide", () => ocDrafts.capture());
}
</script>"""

Converter = Callable[[Any], Any]


def install() -> None:
    """Add the browser side to the current page (the page frame does this once per page)."""
    ui.add_head_html(DRAFTS_JS)


def _number(raw: Any) -> float | None:
    text = str(raw).strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _option_value(select: ui.select, shown: Any) -> Any:
    """The value of `select`'s option labelled `shown` (options given as value -> label, e.g.
    ui/labels.py), else `shown` itself (options that are their own labels); a multiple select's
    list of labels as the list of their values; an empty text, when no option is labelled so, as
    no choice (None: a select nothing was chosen in shows nothing)."""
    if isinstance(shown, list):
        return [_option_value(select, label) for label in shown]
    labels = select.options.values() if isinstance(select.options, dict) else select.options
    if shown == "" and "" not in labels:
        return None
    if isinstance(select.options, dict):
        for value, label in select.options.items():
            if label == shown:
                return value
    return shown


def _shown(element: Any, value: Any) -> Any:
    """`value` as the tab stores a field holding it (`ocDrafts.read`): a select's option by its
    label (a multiple select's options as the list of their labels), any other field's value as
    it is. The origin of a draft is kept so, and compared so in the tab (`ocDrafts.peek`)."""
    if isinstance(element, ui.select) and isinstance(element.options, dict):
        if isinstance(value, list):
            return [element.options.get(one, one) for one in value]
        return element.options.get(value, value)
    return value


class Draft:
    """The draft of one form. `KEY` names the form in the tab (e.g. `script:new`, `script:7`).

    `field(name, element)` marks an element; `restore()` (after the page is connected) puts a
    stored draft back; `clear()` after a successful save or a cancel.
    """

    def __init__(self, key: str, container: ui.element) -> None:
        self.key = key
        self.container = container
        container.props(f'data-draft-form="{key}"')
        # name -> (element, converter, the value the form was built with)
        self.fields: dict[str, tuple[Any, Converter, Any]] = {}
        # Fields restored even when unchanged since the draft began (`field(..., always=True)`).
        self.always: set[str] = set()
        with container:
            self.notice = ui.row().classes("w-full")
        self.notice.set_visibility(False)
        # Called with the stored draft before it is put back: a hook may build the fields it
        # names (parameter rows, a "then run" link's fixed values of the script it chose: then
        # awaited) or drop the entries the form must keep as they are now.
        self.on_restore: list[Callable[[dict[str, Any]], Awaitable[None] | None]] = []
        # `hold_base`: the hidden field holding the base the edit started from, the base as the
        # form was built (the row as stored now), and where a restored older base is warned of.
        self._held: tuple[ui.input, dict[str, Any], ui.row] | None = None
        # The edited row as stored when the form was built (`hold_base`'s `row`): who saved it
        # last is said in that warning (`partial.saved_by`).
        self._row: object | None = None

    def field(
        self, name: str, element: Any, convert: Converter | None = None, *, always: bool = False
    ) -> Any:
        """Mark `element` as part of the draft under `name`; returns the element. The tab keeps
        what the field shows: a number's text, a select's label (`convert`, by default, turns
        them back into the number and the option's value). A restore puts back only the fields
        the user changed since the draft began, and those marked `always` (such as the version
        an edit started from)."""
        element.props(f'data-draft="{name}"')
        if isinstance(element, ui.select) and element.multiple:  # read as its chips (`use-chips`)
            element.props("data-draft-multiple")
        if always:
            self.always.add(name)
            element.props("data-draft-always")  # kept with typing done before the tab is asked
        if convert is None:
            if isinstance(element, ui.number):
                convert = _number
            elif isinstance(element, ui.select):
                convert = functools.partial(_option_value, element)
            else:
                convert = lambda value: value  # noqa: E731
        self.fields[name] = (element, convert, element.value)
        return element

    def forget_fields(self, names: Iterable[str]) -> None:
        """Unmark the fields `names` (a form that replaced them: a "then run" link's fixed values
        when another script is chosen); the tab keeps only the fields the form shows."""
        for name in names:
            self.fields.pop(name, None)

    async def restore(self) -> bool:
        """Ask the tab for this form's draft and apply what differs; True when something came back.

        A field changed since the form was built (typed into on a slow connection before the
        draft came back) keeps what was typed: the newer input wins over the stored one. A draft
        holding nothing typed (every field as when it began: left by a save of a form that stayed
        open, `restart`, or by a dialog closed untouched) is no edit: it begins again from the
        form as built, its held base with it (the row may have been saved since: no warning), and
        so does one that is no draft at all (the tab's storage is the browser's to change). The
        tab captures the whole form again once the draft is put back (`ocDrafts.arm`); a tab that
        does not answer within 10 seconds keeps only the fields changed from then on (`early`)."""
        try:
            stored = await ui.run_javascript(
                f"return ocDrafts.take({json.dumps(self.key)}, {self._origin(built=True)})", timeout=10
            )
        except TimeoutError:
            return False
        if not isinstance(stored, dict):
            if stored is not None:
                await self._begin(self._origin(built=True))
            return False
        # A field the user did not change keeps what the form shows now: the page may have been
        # reloaded after someone else changed it (another tab set a script's tags or status), and
        # the draft's copy of the old value would undo that change on save.
        origin = stored.pop("__origin", None)
        for hook in self.on_restore:
            built = hook(stored)  # e.g. add the parameter rows the draft has, so their fields exist
            if inspect.isawaitable(built):
                await built
        typed: dict[str, Any] = {}
        for name, raw in stored.items():
            if name in self.fields:
                convert = self.fields[name][1]
                value = convert(raw)
                kept = isinstance(origin, dict) and name in origin and convert(origin[name]) == value
                if not kept or name in self.always:
                    typed[name] = value
        if not typed.keys() - self.always:
            await self._begin(self._origin(built=True))
            return False
        changed = await self._put(typed)
        with contextlib.suppress(TimeoutError):
            await ui.run_javascript(f"ocDrafts.arm({json.dumps(self.key)})", timeout=5)
        if changed:
            self._show_notice()
        actor = await current_actor()
        self._warn_if_base_moved(saved_by(self._row, actor.user.id if actor and actor.user else None))
        return changed

    async def _put(self, values: Mapping[str, Any]) -> bool:
        """Put `values` (field name -> value, converted) into the fields not changed since the
        form was built (a field typed into meanwhile keeps what was typed); whether any changed.

        A text field (`ui.input`, `ui.textarea`) takes its value in the browser, as typing would
        (`ocDrafts.put`), awaited: NiceGUI follows a set on the server (`.value = ...`) with a
        separate `updateValue` message putting the server's value into the browser's field, which
        reached a busy page after the restored value showed and the person typed over it, and
        replaced the typing on screen and on the server (Save stored the restored text). The
        other fields are set on the server, whose value reaches the browser in the same update
        and nothing follows it (a select, a checkbox, a number, chips; the code editor applies it
        from that update). A text field the tab did not put (no answer within 10 seconds, not
        found, or disabled: its event is ignored) is set on the server too."""
        wanted = {
            name: value
            for name, value in values.items()
            if self.fields[name][0].value == self.fields[name][2] and value != self.fields[name][0].value
        }
        texts = {
            self.fields[name][0].id: value
            for name, value in wanted.items()
            if isinstance(self.fields[name][0], ui.input)
        }
        if texts:
            with contextlib.suppress(TimeoutError):
                await ui.run_javascript(f"return ocDrafts.put({json.dumps(texts)})", timeout=10)
        changed = False
        for name, value in wanted.items():
            element, _, built = self.fields[name]
            if element.value == built and element.value != value:
                element.value = value
            changed = changed or element.value == value
        return changed

    def hold_base(self, base: Mapping[str, Any], row: object | None = None) -> None:
        """Keep `base` (field -> value, JSON values: the edited row's fields as stored now, e.g.
        `widgets.stored_base`) in this draft as the base the edit started from: `held_base()` gives
        it back at save, and a restore puts back the one the tab's draft began with. Called first
        before `restore` runs (`dialog_draft(base=...)` does; the hidden field and the warning's
        row are added to the container then), and again with the row as stored now when the edit
        goes on from there: after "Keep my edit", after a save of a form that stays (`restart`).
        `row`: the stored row `base` was read from (kept until another is given), whose last
        saver the warning of a restored older base names."""
        if row is not None:
            self._row = row
        if self._held is None:
            with self.container:
                holder = ui.input(value=base_json(base)).classes("hidden")
                stale = ui.row().classes("w-full").props('data-testid="draft-stale"')
            self.field("__base", holder, always=True)
        else:
            holder, _, stale = self._held
            holder.value = base_json(base)
        stale.set_visibility(False)
        self._held = (holder, json.loads(base_json(base)), stale)

    def held_base(self) -> dict[str, Any]:
        """The base the edit started from (`hold_base`), as the draft kept it; {} without one."""
        if self._held is None:
            return {}
        try:
            held = json.loads(str(self._held[0].value or "{}"))
        except ValueError:
            return {}
        return held if isinstance(held, dict) else {}

    def _warn_if_base_moved(self, by: str) -> None:
        """After a restore: when the held base differs from the row as stored now (some of its
        fields were saved since the edit began), say which and who saved (`by`: "by someone else",
        "by you in another tab, window or API client": `partial.saved_by`; `stale_warning`)."""
        if self._held is None:
            return
        _, now, stale = self._held
        held = self.held_base()
        moved = sorted(_said(key, held[key], now[key]) for key in now if held.get(key, now[key]) != now[key])
        if not moved:
            return
        stale_warning(
            stale,
            f"This unsaved edit started before {', '.join(moved)} {'was' if len(moved) == 1 else 'were'} "
            f"saved {by}: saving it would replace that save.",
            lambda: self.hold_base(now),
            self.discard,
        )

    def _show_notice(self) -> None:
        self.notice.clear()
        with self.notice:
            with (
                ui.row()
                .classes("w-full items-center gap-2 rounded px-3 py-2 bg-amber-2 text-black no-wrap")
                .props('role=status data-testid="draft-restored"')
            ):
                ui.icon("restore", color="deep-orange-10").props('aria-hidden="true"')
                ui.label("Restored unsaved changes from this browser tab.").classes("flex-grow")
                ui.button("Discard them", on_click=self.discard).props(
                    'flat dense color=deep-orange-10 data-testid="draft-discard"'
                )
        self.notice.set_visibility(True)

    async def discard(self) -> None:
        """Forget the draft and show the form as the server has it."""
        await self.clear()
        ui.navigate.reload()

    async def clear(self) -> None:
        """Forget the draft in the tab (after a save or a cancel), returning once the tab has.

        Awaited, never fired and forgotten: NiceGUI sends an un-awaited JavaScript call a loop
        turn later, after a navigation requested meanwhile (`ui.navigate.to` is sent at once),
        and the tab would leave with the draft kept, to restore it into the next new form. A tab
        that does not answer within 5 seconds (connection down) keeps its draft."""
        self.notice.set_visibility(False)
        await forget(self.key)

    async def restart(
        self, key: str, base: Mapping[str, Any] | None = None, row: object | None = None
    ) -> None:
        """The form stays open on what it just saved, as `key` (a new script once saved is
        `script:<id>`: what is typed from here is never restored into a later new form): the
        draft so far is forgotten, `base` (the saved row's fields as stored now, read from `row`)
        is the held base of the edit going on from here (`hold_base`), and the tab keeps what is
        typed from now on, the form as saved being its origin (a `clear` alone stopped that:
        typing after a save was lost to a reload). Returns once the tab has begun it (a tab that
        does not answer within 5 seconds begins when the form is built again)."""
        self.notice.set_visibility(False)
        await forget(self.key)
        self.key = key
        self.container.props(f'data-draft-form="{key}"')
        if base is not None:
            self.hold_base(base, row)
        await self._begin(self._origin(built=False))

    async def saved(self, values: Mapping[str, Any]) -> None:
        """After a save of a form that stays open on what it saved (the Profile and Settings
        pages): the tab's draft begins again with `values` (field name -> the value stored, as
        the page is built with it after a reload) as its origin. A field typed into while the save
        was on its way (it shows something else than what was saved) stays in the draft, and a
        reload puts it back; the fields showing what was saved are no edit. A `clear` there lost
        that typing at the next reload (the draft was dropped after the typing it held, and the
        form was no longer kept). Returns once the tab has begun it (a tab that does not answer
        within 5 seconds keeps its draft as it was)."""
        self.notice.set_visibility(False)
        await self._begin(self._origin(built=False, values=values))

    def _origin(self, *, built: bool, values: Mapping[str, Any] | None = None) -> str:
        """The fields' values as JSON, as the tab stores each (`_shown`): those the form was built
        with (`built`), else `values` (field name -> value), by default those it shows now; the
        origin of a draft (`ocDrafts.take`)."""
        shown = {
            name: _shown(element, first if built else (values or {}).get(name, element.value))
            for name, (element, _, first) in self.fields.items()
        }
        return json.dumps(shown, default=str)

    async def _begin(self, origin: str) -> None:
        """Begin the tab's draft of this form afresh from `origin` (`_origin`): any it holds is
        dropped, and what is typed from now on is kept."""
        key = json.dumps(self.key)
        with contextlib.suppress(TimeoutError):
            await ui.run_javascript(f"ocDrafts.clear({key}); ocDrafts.take({key}, {origin})", timeout=5)


# How `Draft._warn_if_base_moved` names a base's field where its key is no word of the form.
_FIELD_WORDS = {
    "url_fingerprint": "the webhook URL",
    "content_sha256": "content",
    "secret_id": "secret",
    "channel_id": "channel",
    "script_id": "script",
}


def _said(key: str, held: Any, now: Any) -> str:
    """How the stale warning names a base's field `key` saved meanwhile (`held`: its value when
    the edit started, `now`: as stored): a version counter (`current_version`, the script
    editor's) by both versions, any other field by its word."""
    if key == "current_version":
        return f"version {now} (this edit started from version {held}; see the Versions tab)"
    return _FIELD_WORDS.get(key, key.replace("_", " "))


def base_json(base: Mapping[str, Any]) -> str:
    """`base` (field -> JSON value) as the text a hidden base field and the tab's draft keep."""
    return json.dumps(base, sort_keys=True, ensure_ascii=False)


def stale_warning(
    area: ui.row, text: str, keep: Callable[[], None], discard: Callable[[], Awaitable[None]]
) -> None:
    """Show in `area` (a hidden row of the form) that a restored edit started before another
    save (`text` says what), that Save is refused until the author keeps it over theirs (`keep`:
    the form then sends the base as stored now) or discards it (`discard`); test ids
    `draft-take-over`, `draft-stale-discard`."""
    area.clear()
    with area, ui.row().classes("w-full items-center gap-2 rounded px-3 py-2 bg-red-1 text-black no-wrap"):
        ui.icon("warning", color="negative").props('aria-hidden="true"')
        ui.label(f"{text} Save is refused until you discard your edit or keep it over them.").classes(
            "flex-grow"
        )
        ui.button("Keep my edit", on_click=keep).props(
            'flat dense color=negative data-testid="draft-take-over"'
        )
        ui.button("Discard it", on_click=discard).props(
            'flat dense color=negative data-testid="draft-stale-discard"'
        )
    area.set_visibility(True)


def dialog_draft(
    key: str,
    card: ui.element,
    fields: Mapping[str, Any],
    base: Mapping[str, Any] | None = None,
    row: object | None = None,
    on_restore: Callable[[dict[str, Any]], Awaitable[None] | None] | None = None,
) -> Draft:
    """The draft of a dialog's form (`key`, e.g. `schedule:7`): `fields` (name -> element) marked,
    the tab's draft put back once the dialog is up. The caller clears it on Cancel
    (`dialog_buttons(on_cancel=draft.clear)`) and after a save; a page reopens the dialog of a
    draft left by a reload (`reopen`). `base` (an edit: the row's fields as stored when the
    dialog opened) is held in the draft (`Draft.hold_base`, with the `row` it was read from):
    the save sends `draft.held_base()`. `on_restore`: a hook run with the stored draft before it
    is put back (`Draft.on_restore`)."""
    draft = Draft(key, card)
    for name, element in fields.items():
        draft.field(name, element)
    if base is not None:
        draft.hold_base(base, row)
    if on_restore is not None:
        draft.on_restore.append(on_restore)
    with card:
        one_shot(0, draft.restore)
    return draft


async def pending_forms(prefix: str) -> list[str]:
    """The keys of the tab's drafts that start with `prefix` and hold something typed (e.g.
    `schedule:` -> `["schedule:7"]`), left by an earlier page (not a form of this page); none
    when the tab does not answer within 10 seconds."""
    try:
        keys = await ui.run_javascript(f"return ocDrafts.pending({json.dumps(prefix)})", timeout=10)
    except TimeoutError:
        return []
    return [str(key) for key in keys] if isinstance(keys, list) else []


async def reopen(
    prefix: str,
    open_form: Callable[[Any], Awaitable[Any]],
    stored: Callable[[list[str]], Awaitable[Mapping[str, Any]]] | None = None,
) -> bool:
    """Open again the dialog whose typing a reload interrupted; whether one was opened. Of the
    tab's drafts under `prefix` that hold something typed (`pending_forms`), the first that is
    `<prefix>new` is opened empty (`open_form(None)`), one that is a key of `stored(keys)` (the
    rows the page may edit among the pending drafts' `keys`, by their draft key, e.g.
    `{"schedule:3:7": view}`; asked only when a draft is pending: a page listing all its rows
    may ignore `keys`, a paged one reads them by id) with its row (`open_form(row)`). A draft
    `stored` names no row for is left alone, and none is opened while a dialog is open or being
    opened (one the person opened before the check came back, on a busy server:
    `widgets.opening_dialog`)."""
    client = context.client
    keys = await pending_forms(prefix)
    rows = await stored(keys) if keys and stored is not None else {}
    key = next((key for key in keys if key == f"{prefix}new" or key in rows), None)
    return key is not None and await _open_by_page(client, lambda: open_form(rows.get(key)))


async def _open_by_page(client: Any, open_form: Callable[[], Awaitable[Any]]) -> bool:
    """`open_form()` for the page itself (a draft's dialog a reload interrupted) unless a dialog
    is open or being opened in `client`'s page (`widgets.opening_dialog`); whether it did."""
    with opening_dialog(client, by_page=True) as free:
        if free:
            await open_form()
        return free


async def forget(key: str) -> None:
    """Forget the tab's draft `key`, returning once the tab has (`Draft.clear`, which says why it
    is awaited); a tab that does not answer within 5 seconds (connection down) keeps it."""
    with contextlib.suppress(TimeoutError):
        await ui.run_javascript(f"ocDrafts.clear({json.dumps(key)})", timeout=5)


async def reopen_one(key: str, open_form: Callable[[], Awaitable[Any]]) -> bool:
    """Open again (`open_form()`) the dialog whose draft `key` a reload interrupted (a form that
    is no row of a list: the run form's `run:<script id>`), when the tab holds one left by an
    earlier page; whether it did. Not while a dialog is open or being opened (one the person
    opened before the tab answered, on a busy server: `widgets.opening_dialog`), nor when the
    tab does not answer within 10 seconds."""
    client = context.client
    try:
        left = bool(await ui.run_javascript(f"return ocDrafts.left({json.dumps(key)})", timeout=10))
    except TimeoutError:
        return False
    return left and await _open_by_page(client, open_form)
