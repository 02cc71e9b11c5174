"""The shared page frame and the guard every page and event handler goes through."""

from __future__ import annotations

import inspect
import re
import weakref
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import Response
from fastapi.responses import RedirectResponse
from nicegui import app, context, ui
from pydantic import ValidationError

from opscraft.db.text import NOT_UTF8_MESSAGE, not_utf8_parameters
from opscraft.services.actor import Actor
from opscraft.services.errors import ServiceError, input_message
from opscraft.services.permissions import Permission, can
from opscraft.ui import address, drafts, one_line, session, stable_slots
from opscraft.ui.plain_words import without_internal_names
from opscraft.ui.widgets import OneRead, confirm, dismiss, live_seconds, live_timer, one_shot

# How long the server keeps a page whose browser lost its connection (laptop lid, flaky VPN)
# before dropping it; a browser that comes back within it carries on where it was.
RECONNECT_SECONDS = 300.0
# How long a page may take to build before NiceGUI gives up on it. NiceGUI's default (3 s) turns a
# page built slowly on a busy server (a few database reads queued behind other work) into an error
# page; serving it late is better.
RESPONSE_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class NavItem:
    """One entry of the navigation drawer, shown only to users with `permission`."""

    label: str
    icon: str
    path: str
    permission: Permission | None = None
    # A key of NAV_BADGES: a count shown next to the label (e.g. runs awaiting approval).
    badge: str | None = None


# badge key -> async count for the acting user; pages register theirs (ui/approvals.py).
NAV_BADGES: dict[str, Callable[[Actor], Awaitable[int]]] = {}


NAV: list[NavItem] = [
    NavItem("Dashboard", "dashboard", "/"),
    NavItem("Scripts", "description", "/scripts", Permission.view_scripts),
    NavItem("Executions", "play_circle", "/executions", Permission.view_scripts),
    NavItem("Schedules", "schedule", "/schedules", Permission.view_scripts),
    NavItem("Inventories", "lan", "/inventories", Permission.view_scripts),
    NavItem("Approvals", "how_to_reg", "/approvals", Permission.view_scripts, badge="approvals"),
    NavItem("Secrets", "key", "/secrets", Permission.manage_secrets),
    NavItem("Users", "group", "/users", Permission.manage_users),
    NavItem("Audit log", "policy", "/audit", Permission.view_audit),
    NavItem("Workers", "dns", "/workers", Permission.view_system),
    NavItem("Settings", "settings", "/settings", Permission.manage_settings),
    NavItem("Notifications", "notifications", "/notifications", Permission.manage_settings),
    NavItem("API tokens", "vpn_key", "/tokens"),
]


# Colours with a contrast of at least 4.5:1 for text (WCAG AA) on white, and on the dark background
# in dark mode (checked by axe-core in tests/test_ui_pages_browser.py).
PRIMARY = "#1565c0"
LANGUAGE = "en-US"
# In NiceGUI's first cascade layer: for `!important` rules the first layer wins over Quasar's.
THEME_CSS = """
@layer theme {
  .nicegui-link { color: #1565c0 !important; }
  .text-warning { color: #8a5a00 !important; }
  .body--dark .nicegui-link, .body--dark .text-primary { color: #90caf9 !important; }
  .q-header .nicegui-link { color: #fff !important; }
  .body--dark .text-grey-7, .body--dark .text-grey-8 { color: #bdbdbd !important; }
  .body--dark .text-warning { color: #f2c037 !important; }
  .body--dark .text-negative { color: #ef9a9a !important; }
  .body--dark .text-info { color: #81d4fa !important; }
  .body--dark .text-positive { color: #a5d6a7 !important; }
  .body--dark .text-deep-orange-10 { color: #ffab91 !important; }
  /* Keyboard focus as a ring: Quasar's own is a 22% lighter shade of the control (1.6:1 against
     it, hardly seen on a filled button and on the header's white icons). */
  :is(.q-btn, .q-tab, .q-item, .q-toggle, .q-checkbox, .q-radio):focus-visible {
    outline: 2px solid #1565c0 !important; outline-offset: 2px;
  }
  /* A table's scroll area with the focus (`A11Y_JS`): the ring inside its border, where no
     card or panel around it clips it. */
  .q-table__middle:focus-visible { outline: 2px solid #1565c0 !important; outline-offset: -2px; }
  .q-header :focus-visible, .body--dark :focus-visible { outline-color: #fff !important; }
  /* A hovered or focused button gets a tint (Quasar's focus helper, 15% of its text colour): a
     filled button lightened under its white text (4.29:1 on primary, 3.82:1 on positive) and a
     flat red one went to 4.42:1 on its own tint (AA: 4.5). A filled button now darkens, a flat or
     outlined one takes a 10% tint. */
  body.desktop .q-btn:not(.q-btn--flat):not(.q-btn--outline) > .q-focus-helper {
    background: #000 !important;
  }
  body.desktop .q-btn:not(.q-btn--flat):not(.q-btn--outline) > .q-focus-helper::after {
    opacity: 0 !important;
  }
  body.desktop .q-btn:is(.q-btn--flat, .q-btn--outline):is(.q-hoverable:hover, .q-focusable:focus)
    > .q-focus-helper { opacity: .1 !important; }
  /* A tooltip (the header's "Toggle dark mode"): Quasar's grey-7 behind near-white text had
     4.41:1; grey-8 (#616161) has 5.9:1 (AA: 4.5). */
  .q-tooltip { background: #616161 !important; }
  /* The Close button of an error notification: it came out primary blue on red (1.1:1). */
  .q-notification.bg-negative .q-btn { color: #fff !important; }
}
/* A code block (ui.code) on white: Pygments' default colours have 4.8:1 on white, under 4.5:1 on
   NiceGUI's tinted block. Its copy button shows when it has the keyboard's focus. */
body:not(.body--dark) .nicegui-code { background-color: #fff; }
/* A field with the focus (every form dialog's first one) draws its label and outline in Quasar's
   primary, #1565c0: 2.93:1 on a dark card (AA asks 4.5:1 for the label). Unlayered, so it beats
   Quasar's `.q-field__control` rule; an error's text-negative (!important) still wins. */
.body--dark .q-field__control { color: #90caf9; }
.nicegui-code-copy:focus-visible { opacity: 1; }
/* Stored text people choose (a script's 128-character name, a description) breaks where it must:
   one long word widened the whole page past the window and cut the text beside it. So does a
   notification's: "Fix the highlighted parameters: NAME, ..." with parameter names of 64
   characters ran past its right edge on a phone, cut off. */
.oc-wrap, .q-notification__message { overflow-wrap: anywhere; }
/* A table's cell of such text (`widgets.WRAPPED`) wraps at 24rem, and a row's buttons stay at the
   table's right edge over the cells (`widgets.STICKY_ACTIONS`): a description of two sentences
   made the scripts table 1,230 px wide, its Run buttons out of view in a 1280 px window. */
.q-table td.oc-cell-wrap { white-space: normal; overflow-wrap: anywhere; min-width: 8rem; max-width: 24rem; }
/* Its chips (a script's tags, the scripts a secret is attached to) go to the next line, and a
   chip's label breaks too: kept on one line, 20 tags made the scripts table 2,540 px wide and a
   50-character tag alone still widened it past a 1280 px window. */
.q-table td.oc-cell-wrap .q-chip { height: auto; max-width: 100%; }
.q-table td.oc-cell-wrap .q-chip .ellipsis { white-space: normal; overflow-wrap: anywhere; }
/* An identifier in a table's cell (`widgets.IDENTIFIER`: an e-mail address, a user name) stays on
   one line, cut with an ellipsis, whole in its tooltip: broken anywhere, an address split mid-domain. */
.oc-ident {
  display: block; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; max-width: min(12rem, 45vw);
}
.oc-sticky-actions { position: sticky; right: 0; z-index: 1; background: var(--oc-sticky-bg, #fff); }
.body--dark .oc-sticky-actions { --oc-sticky-bg: var(--q-dark, #1d1d1d); }
/* A select in a form dialog is as wide as the dialog's inputs: sized to its value, its label was cut. */
.oc-form-card > .q-select { align-self: stretch; }
/* A field's message (an error, a hint) takes the room it needs below the field: Quasar keeps one
   line (20 px of padding) and draws the message over it, absolutely placed, so a message of
   several lines (a narrow field, a phone) covered the next field's label and value. In the flow,
   its 8 px top padding and a line make the same 20 px for a one-line message. */
.q-field--with-bottom { padding-bottom: 0; }
.q-field--with-bottom > .q-field__inner > .q-field__bottom--animated { position: static; transform: none; }
/* A person who asked their system for less motion (prefers-reduced-motion, WCAG 2.3.3) gets no
   sliding or fading: dialogs, menus, notifications and expanding rows show and go at once, and
   spinners stand still. Durations of 0.01 ms rather than none, so that the transition and
   animation end events Quasar's components wait for still fire. */
@media (prefers-reduced-motion: reduce) {
  *, *::before, *::after {
    animation-duration: 0.01ms !important; animation-iteration-count: 1 !important;
    transition-duration: 0.01ms !important; transition-delay: 0s !important;
    scroll-behavior: auto !important;
  }
}
"""
NAV_CSS = """
.oc-nav { display: block; width: 100%; border-radius: 6px; color: inherit; text-decoration: none; }
.oc-nav:hover { background: rgba(127, 127, 127, 0.12); }
.oc-nav-active { background: rgba(25, 118, 210, 0.14); color: var(--q-primary); font-weight: 600; }
"""


def notify_error(message: str) -> None:
    """Show a red notification that stays until closed (`timeout=0`: Quasar's default took it
    away after 5 s, while a person was still reading it or looking for the field it names), as
    a sentence (`sentence`: a service's message is lower case, as the API's `detail`)."""
    ui.notify(
        sentence(message), type="negative", position="top", multi_line=True, close_button=True, timeout=0
    )


def notify_ok(message: str) -> None:
    """Show a green notification that fades on its own."""
    ui.notify(message, type="positive", position="top")


async def close_saved(
    dialog: ui.dialog, done: str | None, draft: drafts.Draft | None = None, warnings: Sequence[str] = ()
) -> None:
    """After the save of a form dialog succeeded: the dialog goes (`widgets.dismiss`), then `done`
    ("Secret created") is said, then each of the save's `warnings` (a value saved that will not
    be masked: `secrets.value_warnings`) as a notification that stays until closed, then the tab
    forgets the dialog's `draft` (a round trip to it).

    In this order so that the notice never shows while the dialog is still up: said first (as
    `run_action(..., done)` does) and followed by the draft's round trip, the notice told a person
    the form was saved while the dialog still held the keyboard's focus (a modal dialog takes it
    back), and what they typed next, e.g. the search of the list behind, went into the dialog's
    field and was lost with it (a busy machine makes the round trip long). A caller whose list
    behind the dialog shows the change redraws it first (the dialog is the page's, `page_dialog`):
    said before the redraw, the notice sent a person (and a test) to a row's button that the
    redraw then replaced, and their click on it was lost."""
    dismiss(dialog)
    if done:
        notify_ok(done)
    for warning in warnings:
        ui.notify(
            plain(warning), type="warning", position="top", multi_line=True, close_button=True, timeout=0
        )
    if draft is not None:
        await drafts.forget(draft.key)  # `Draft.clear` but its notice, which went with the dialog


# A first word that is a word, not a name (`script_id`, `config.security`, `DB_PASSWORD`, `x-api`).
_FIRST_WORD = re.compile(r"[a-z]+(?=[\s:,]|$)")


def sentence(message: str) -> str:
    """`message` as a sentence for a person, the one place the UI capitalises what services say
    (they say it lower case, as the API's `detail`: "secret X is attached to 1 script(s)"
    reads "Secret X is attached..."): its first letter in upper case when its first word is a
    plain lower-case word; a name that keeps its case (`script_id: must be...`, `x-opscraft-
    timestamp is missing`) is left as written. The environment variables and documentation files
    a message names are said in words (`plain_words`: "raise OPSCRAFT_MAX_SCRIPT_BYTES" is "ask
    the server's administrator to raise that limit")."""
    message = without_internal_names(message)
    if _FIRST_WORD.match(message) is None:
        return message
    return message[:1].upper() + message[1:]


def plain(message: str) -> str:
    """A validator's message as a sentence for a person: no "Value error, " prefix, `sentence`."""
    return sentence(str(message).removeprefix("Value error, ").strip())


def validation_message(exc: ValidationError) -> str:
    """'field: what is wrong' for the first problem (never the submitted value)."""
    err = exc.errors()[0]
    field = ".".join(str(part) for part in err["loc"]) or "input"
    return f"{field}: {input_message(err)}"


def _problems(exc: ValidationError | ServiceError) -> list[tuple[str, str]]:
    """(field, message) pairs; the field is '' when the problem belongs to no field."""
    if isinstance(exc, ValidationError):
        return [(".".join(str(p) for p in err["loc"]), input_message(err)) for err in exc.errors()]
    return [(str(d.get("field", "")), str(d.get("message", ""))) for d in exc.details if d.get("message")]


def _field_for(fields: Mapping[str, Any], field: str, message: str) -> tuple[Any, str] | None:
    """The input element a problem of `field` belongs to, and the text to show under it.

    The field itself or its last part (`parameters.count` -> `count`) when the form has an input
    of that name; otherwise the input holding the whole value (a JSON `parameters` box for
    `parameters.NOPE`), with the part it names before the message."""
    for name in (field, field.rsplit(".", 1)[-1], field.split(".", 1)[-1]):
        element = fields.get(name)
        if element is not None:
            return element, plain(message)
    head, _, rest = field.partition(".")
    element = fields.get(head) if rest else None
    if element is not None:
        return element, f"{rest}: {without_internal_names(message)}"
    return None


def _on_screen(element: Any) -> bool:
    """Whether `element` and every container holding it are visible: a problem of a field the
    form hides (the Ansible fields of a Bash script) is not put under it, where nobody sees it."""
    while element is not None:
        if not getattr(element, "visible", True):
            return False
        slot = getattr(element, "parent_slot", None)
        element = slot.parent if slot is not None else None
    return True


def show_field_errors(fields: Mapping[str, Any], exc: ValidationError | ServiceError) -> bool:
    """Put each problem under its field (in plain words); True when every problem found its
    visible field (one the form hides counts as not found: the caller says it in a toast).

    `fields` maps the service's field names (`username`, `parameters.count`...) to input elements;
    a problem inside a field's value (`parameters.NOPE` of a JSON box named `parameters`) goes under
    that field. Several problems of one field are all shown. An element's error goes away as soon
    as its value changes.
    """
    shown: dict[int, tuple[Any, list[str]]] = {}
    every = True
    for field, message in _problems(exc):
        found = _field_for(fields, field, message)
        if found is None or not _on_screen(found[0]):
            every = False
            continue
        element, text = found
        shown.setdefault(id(element), (element, []))[1].append(text)
    for element, texts in shown.values():
        element.error = "; ".join(dict.fromkeys(texts))
    return every and bool(shown)


def clear_field_errors(fields: Mapping[str, Any]) -> None:
    """Remove the error message under each of the form's fields."""
    for element in fields.values():
        element.error = None


# Pages `guard` has sent to the login page (a page's client is dropped when the browser leaves it).
_SENT_TO_LOGIN: weakref.WeakSet[Any] = weakref.WeakSet()
# The role each open page was drawn for (`frame`): its header, navigation and buttons show that role.
_DRAWN_ROLE: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
# The title each open page's `frame` shows (`retitle` changes it).
_TITLES: weakref.WeakKeyDictionary[Any, ui.label] = weakref.WeakKeyDictionary()


async def guard(permission: Permission | None = None, *, ticking: bool = False) -> Actor | None:
    """Re-check the session (and a permission) on the server; on failure, say so and redirect.

    `ticking`: for a page's periodic refresh rather than a click. A role that lost `permission`
    (an admin demoted meanwhile) then loads the page again, which says that the role may not
    open it, instead of leaving the page as it was with a red notice at every tick. So does a
    page drawn for another role than the user's now (`frame`): a promoted viewer's page kept
    "viewer" in its header and offered no New button, a demoted operator's page still offered
    the operator's buttons and navigation, each refused only when clicked."""
    actor = await session.current_actor()
    if actor is None:
        # Once per page: a page's timers re-check together (a list's and the badge's), and the
        # second, finding the session already ended by the first, sent the page to the login
        # page again without saying why.
        # Back to this page after logging in (its unsaved typing waits there: ui/drafts.py), saying
        # why: a session with no sign-in left in this browser was ended by a logout in another
        # tab (it went to the login page without a word, and from there to the dashboard).
        if context.client not in _SENT_TO_LOGIN:
            _SENT_TO_LOGIN.add(context.client)
            ui.navigate.to(session.login_url(_request_path(), session.ended_notice() or "logout"))
        return None
    if ticking and _drawn_for_another_role(actor):
        ui.navigate.reload()
        return None
    if permission is not None and not can(actor.user, permission):
        if ticking:
            ui.navigate.reload()
        else:
            notify_error(f"your role ({actor.user.role if actor.user else '-'}) may not do this")
        return None
    return actor


async def confirmed(
    permission: Permission | None,
    question: str,
    consequence: str,
    verb: str = "Delete",
    testid: str = "confirm-delete",
) -> Actor | None:
    """Ask `question` (`widgets.confirm`); on its `verb`, the actor to act as, checked as the
    answer comes (`guard`: the session and `permission` then), else None. A handler that checked
    before asking and acted with that actor after the answer let an operator demoted, deactivated
    or signed out while the question was open delete with it (a webhook, a "then run" link...),
    for as long as the page lived for one who kept its socket and skipped the reload."""
    if not await confirm(question, consequence, verb, testid):
        return None
    return await guard(permission)


def _drawn_for_another_role(actor: Actor) -> bool:
    """Whether the page in context was drawn (`frame`) for another role than `actor`'s now; True
    once per page (its other timers then wait for the page to load again). False where no page
    is in context: a handler whose element was deleted meanwhile (a closed dialog's) has none."""
    try:
        client = context.client
    except RuntimeError:
        return False
    drawn = _DRAWN_ROLE.get(client)
    if drawn is None or actor.user is None or drawn == actor.user.role:
        return False
    del _DRAWN_ROLE[client]
    return True


T = TypeVar("T")


def follow(
    read: Callable[[Actor], Awaitable[T]],
    show: Callable[[T], Any],
    permission: Permission | None = None,
    interval: float | None = None,
    *,
    reads: OneRead,
) -> ui.timer:
    """Keep a list live: every `interval` seconds (`live_seconds()` by default) while the browser
    is connected (`live_timer`), `read(actor)` the rows again, as the user is now
    (`guard(permission, ticking=True)`), and hand them to `show` (`widgets.Rows.show`,
    `widgets.Redrawn.show`; awaited when it is async), which changes the page only where they
    changed. A refusal (the script deleted meanwhile) leaves the page as it is, unsaid at every tick.

    `reads` is the page's `OneRead`, through which the page runs its own reads of the list too
    (after a switch, a pager's turn, a save): a tick is skipped while one of those runs, and one
    started during a tick waits for it. They overlapped, and the older ending last (a busy
    database) showed the older state (the switch on "every user's tokens" above only mine).

    The lists followed nothing but the person's own clicks: another user's change, another tab's
    or the API's stayed unseen until a reload."""

    async def update() -> None:
        current = await guard(permission, ticking=True)
        if current is None:
            return
        try:
            value = await read(current)
        except ServiceError:
            return
        shown = show(value)
        if inspect.isawaitable(shown):  # a `show` that reads more (the script page's)
            await shown

    seconds = live_seconds() if interval is None else interval
    return live_timer(seconds, lambda: reads.run(update, ticking=True))


async def show_and_follow(
    read: Callable[[Actor], Awaitable[T]],
    show: Callable[[T], Any],
    actor: Actor,
    permission: Permission | None = None,
    *,
    reads: OneRead,
) -> T | None:
    """A list's first read, once the browser is connected: `read(actor)` handed to `show`, then
    kept live (`follow`). Returns what was read, or None when it was refused (said by
    `run_action`: nothing is shown or followed)."""
    value = await run_action(lambda: read(actor))
    if value is None:
        return None
    show(value)
    follow(read, show, permission, reads=reads)
    return value


async def reread(
    read: Callable[[Actor], Awaitable[T]],
    show: Callable[[T], Any],
    permission: Permission | None = None,
    *,
    reads: OneRead,
) -> None:
    """A person's read of a followed list (after a switch, a pager's turn, a save): once no other
    read of the page runs (`reads`, the one given to `follow`), `read(actor)` as the user is now
    (`guard(permission)`: a refusal is said) and `show` it; a service error is a red
    notification (`run_action`) and leaves the page as it is."""

    async def once() -> None:
        current = await guard(permission)
        if current is None:
            return
        value = await run_action(lambda: read(current))
        if value is not None:
            show(value)

    await reads.run(once)


async def run_action(
    action: Callable[[], Awaitable[Any]],
    success: str | None = None,
    fields: Mapping[str, Any] | None = None,
) -> Any:
    """Run a service call from an event handler. Returns the action's result, or None when it failed.

    Problems with a field in `fields` (name -> input element) are shown under that field; the
    rest (and every service error without a field) is a red notification."""
    fields = fields or {}
    clear_field_errors(fields)
    try:
        result = await action()
    except ValidationError as exc:
        if not show_field_errors(fields, exc):
            notify_error(validation_message(exc))
        return None
    except ServiceError as exc:
        if not show_field_errors(fields, exc):
            notify_error(exc.message)
        return None
    if success:
        notify_ok(success)
    return result


def protected_page(path: str, permission: Permission | None = None, title: str = "") -> Callable[..., Any]:
    """`@ui.page` that requires a logged-in user with `permission`; the page function gets the Actor
    first, then the page's own (path/query) parameters."""

    def decorator(func: Callable[..., Awaitable[None]]) -> Callable[..., Any]:
        async def page(*args: Any, **kwargs: Any) -> Response | None:
            actor = await session.current_actor()
            if actor is None:
                target = session.login_url(_request_path(), session.ended_notice())
                return RedirectResponse(target, status_code=303)
            if permission is not None and not can(actor.user, permission):
                context.client.status_code = 403
                with frame(actor, "Not allowed"):
                    with ui.card().classes("p-6 items-center gap-2"):
                        ui.icon("block", color="negative").classes("text-5xl")
                        ui.label(
                            f"Your role ({actor.user.role if actor.user else '-'}) may not open this page."
                        ).classes("text-negative text-lg").props('data-testid="forbidden"')
                        ui.link("Back to the dashboard", "/")
                return None
            kwargs, problems = address.parse(converters, kwargs)
            if context.client.request is not None:  # as the API's (security/http.py)
                scope = context.client.request.scope
                problems |= {name: NOT_UTF8_MESSAGE for name in not_utf8_parameters(scope)}
            if problems:
                with frame(actor, title or "OpsCraft"):
                    address.show_bad_address(problems, path, context.client.request.url.path)
                return None
            await func(actor, *args, **kwargs)
            request = context.client.request
            sent = [name for name, _ in request.query_params.multi_items()] if request else []
            ignored = address.ignored_parameters(sent, names)
            if ignored:
                address.say_ignored(ignored)
            return None

        # FastAPI reads the page's parameters from this signature: all of func's but the actor, with
        # annotations resolved in func's own module; typed ones as text, converted by the page
        # (ui/address.py: a malformed address is a page saying what is wrong, not JSON).
        params, converters = address.exposed_parameters(
            list(inspect.signature(func, eval_str=True).parameters.values())[1:]
        )
        names = frozenset(p.name for p in params)
        page.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        page.__name__ = func.__name__
        page.__doc__ = func.__doc__
        ui.page(
            path,
            title=page_title(title),
            reconnect_timeout=RECONNECT_SECONDS,
            response_timeout=RESPONSE_TIMEOUT_SECONDS,
            language=LANGUAGE,
        )(page)
        return func

    return decorator


def page_title(title: str) -> str:
    """The browser tab's title of a page titled `title` (none: the product's name)."""
    return f"{title} · OpsCraft" if title else "OpsCraft"


def _request_path() -> str:
    request = context.client.request
    return request.url.path + (f"?{request.url.query}" if request.url.query else "") if request else "/"


# Themes whose every token has 4.5:1 on its background (githubLight's orange literals had 3.5:1).
EDITOR_THEMES = {False: "vscodeLight", True: "githubDark"}
# CodeMirror's editable area gets the accessible name of its editor (`data-a11y-label`) and its
# description (the id of the element in `data-a11y-hint`). A table's scroll area (scrolled
# sideways on a phone) takes the keyboard's focus, where arrow keys scroll it, and is a region
# named as its table (`widgets.data_table`'s `data-a11y-label`): rows with no link or button in
# them could not be scrolled with the keyboard (WCAG 2.1.1). So can an editor's lines wider than a
# phone: its editable area takes the focus (a read-only one too, where arrow keys then scroll),
# and says so with a tabindex, without which a checker sees a scrolling region with nothing
# focusable in it (axe-core's `scrollable-region-focusable`: it does not count a contenteditable
# element). Marked as soon as they are in the page (a mutation observer, whose callback runs
# before any later script or event), not by a timer: a table drawn (or redrawn) between two ticks
# of the 500 ms one it had went unmarked meanwhile, which a checker running then found.
A11Y_JS = """<script>
function ocMarkA11y() {
  document.querySelectorAll(".cm-content:not([tabindex])").forEach((content) => {
    content.setAttribute("tabindex", "0");
  });
  document.querySelectorAll(".cm-content:not([aria-label])").forEach((content) => {
    const owner = content.closest("[data-a11y-label]");
    if (!owner) return;
    content.setAttribute("aria-label", owner.dataset.a11yLabel);
    if (owner.dataset.a11yHint) content.setAttribute("aria-describedby", owner.dataset.a11yHint);
  });
  document.querySelectorAll(".q-table__middle.scroll:not([tabindex])").forEach((region) => {
    region.setAttribute("tabindex", "0");
    const owner = region.closest("[data-a11y-label]");
    if (!owner) return;
    region.setAttribute("role", "region");
    region.setAttribute("aria-label", owner.dataset.a11yLabel);
  });
  // Quasar's Ajax bar (NiceGUI's loading bar) turns into a `progressbar` without a name while a
  // request of the page is under way (axe-core's aria-progressbar-name); idle, it is aria-hidden.
  document.querySelectorAll(".q-loading-bar:not([aria-label])").forEach((bar) => {
    bar.setAttribute("aria-label", "Loading");
  });
}
new MutationObserver(ocMarkA11y).observe(document.documentElement, {childList: true, subtree: true});
// A dialog takes the keyboard's focus as soon as it is in the page (its `autofocus` field, else the
// dialog itself, as Quasar chooses): Quasar moves it in only after its 300 ms opening transition,
// and what a person typed meanwhile (Escape included) went to the page's body.
// When it closes, the focus goes back to its opener. Quasar gives it back to what had the focus as
// the dialog opened, but a button disabled while its click is handled (`widgets.one_click`:
// Execute, Run again) has lost it to the page's body by then, and is still disabled when a dialog
// it awaits closes: the focus stayed on the body. So the opener is the control focused last, and
// once the dialog is gone and the focus is on the body, it goes to that control as soon as it is
// enabled again (for up to 5 s); to a control with the same test id if it was redrawn meanwhile;
// else to the opener of the dialog it was in (a dialog opened from a dialog), else to the page's
// first control.
let ocLastFocused = null;
document.addEventListener("focusin", (event) => { ocLastFocused = event.target; }, true);
function ocOpenerOf(inner) {
  for (let at = inner; at; at = at.ocOuter) {
    const opener = at.ocOpener;
    if (!opener) continue;
    if (opener.isConnected) return opener;
    const testid = opener.getAttribute("data-testid");
    const twin = testid && document.querySelector(`[data-testid="${CSS.escape(testid)}"]`);
    if (twin) return twin;
  }
  return document.querySelector(".q-page button:not(:disabled), .q-page a[href], .q-page input");
}
function ocGiveFocusBack(inner) {
  const until = Date.now() + 5000;
  const tick = () => {
    const active = document.activeElement;
    if (active && active !== document.body && active.isConnected) return;
    const opener = ocOpenerOf(inner);
    if (opener && !opener.matches(":disabled")) opener.focus({preventScroll: true});
    else if (Date.now() < until) setTimeout(tick, 50);
  };
  setTimeout(tick, 0);
}
new MutationObserver((changes) => {
  for (const change of changes) {
    for (const node of change.removedNodes) {
      const inner = node.nodeType === 1
        && (node.matches(".q-dialog__inner") ? node : node.querySelector(".q-dialog__inner"));
      if (inner) ocGiveFocusBack(inner);
    }
    for (const node of change.addedNodes) {
      const inner = node.nodeType === 1
        && (node.matches(".q-dialog__inner") ? node : node.querySelector(".q-dialog__inner"));
      if (!inner) continue;
      const active = document.activeElement;
      const opener = active && active !== document.body ? active : ocLastFocused;
      if (opener && !inner.contains(opener)) {  // not when the dialog comes back into the page
        inner.ocOpener = opener;
        inner.ocOuter = opener.closest(".q-dialog__inner");
      }
      if (inner.contains(active)) continue;
      (inner.querySelector("[autofocus][tabindex], [data-autofocus][tabindex]")
        || inner.querySelector("[autofocus] [tabindex], [data-autofocus] [tabindex]")
        || inner.querySelector("[autofocus], [data-autofocus]") || inner).focus({preventScroll: true});
    }
  }
}).observe(document.documentElement, {childList: true, subtree: true});
// Tab from a dialog's last control goes to its first, Shift+Tab from its first to its last (the
// WAI-ARIA modal dialog pattern). Quasar keeps the focus in a dialog only when it lands elsewhere
// in the page: Tab from the last control left the page (to the browser's own controls, the page's
// body as far as the page knows) and came back in with the next one. A key a control used itself
// (Tab indenting in a code editor) is left to it.
const OC_TABBABLE = 'a[href], button, input, select, textarea, [tabindex], [contenteditable="true"]';
document.addEventListener("keydown", (event) => {
  if (event.key !== "Tab" || event.defaultPrevented || event.altKey || event.ctrlKey || event.metaKey) return;
  const inners = document.querySelectorAll(".q-dialog__inner");
  const inner = inners[inners.length - 1];
  if (!inner) return;
  const stops = Array.from(inner.querySelectorAll(OC_TABBABLE)).filter((el) =>
    el.tabIndex >= 0 && !el.matches(":disabled") && el.getClientRects().length > 0);
  if (!stops.length) return;
  const active = document.activeElement;
  const first = stops[0], last = stops[stops.length - 1];
  const outside = !inner.contains(active) || active === inner;
  if (event.shiftKey ? active === first || outside : active === last || outside) {
    event.preventDefault();
    (event.shiftKey ? last : first).focus();
  }
});
</script>"""
# Every event a page sends, with lone UTF-16 surrogates (a half emoji pasted from a broken
# clipboard, or set by a script) made U+FFFD, which is also how the browser shows them: the browser
# escapes one as `\ud800` in the event's JSON, NiceGUI's parser (orjson) refuses that, and the
# event was dropped with a traceback in the server's log, so the server kept the field's older
# value and Save stored it: the script editor saved the content from before the paste.
# `stringifyEventArgs` is a global function of NiceGUI's nicegui.js (a deferred script: it is
# defined by DOMContentLoaded), called by name for every event.
WELL_FORMED_EVENTS_JS = r"""<script>
document.addEventListener("DOMContentLoaded", () => {
  const original = window.stringifyEventArgs;
  if (typeof original !== "function") return;
  const lone = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
  const fix = (v) => typeof v === "string" ? v.replace(lone, "\uFFFD")
    : Array.isArray(v) ? v.map(fix)
    : v !== null && typeof v === "object"
      ? Object.fromEntries(Object.entries(v).map(([k, x]) => [fix(k), fix(x)]))
    : v;
  const escaped = /\\u[dD][89a-fA-F]/;  // how JSON.stringify writes a lone one (a pair is written as is)
  window.stringifyEventArgs = (args, eventArgs) => original(args, eventArgs).map((text) =>
    typeof text === "string" && escaped.test(text) ? JSON.stringify(fix(JSON.parse(text))) : text);
});
</script>"""
SKIP_LINK_CSS = """
.oc-skip { position: absolute; left: -10000px; top: 0; z-index: 10000; padding: 8px 16px;
           background: #fff; color: #0d47a1; font-weight: 600; border-radius: 0 0 6px 0; }
.oc-skip:focus { left: 0; }
"""


def theme() -> None:
    """Colours of every page (the frame's and the pages before login), its one-line fields'
    refusal of a pasted line break (`one_line`), and its template-drawn cells kept across
    renders (`stable_slots`). Every page's reload when a file of its own failed to load
    (`lost_resources`) comes with its stylesheet (`stylesheet.install`)."""
    ui.add_body_html(stable_slots.STABLE_SLOTS_JS)
    ui.colors(primary=PRIMARY, positive="#2e7d32", negative="#c62828", info="#01579b", warning="#f2c037")
    ui.add_css(THEME_CSS)
    ui.add_head_html(WELL_FORMED_EVENTS_JS)
    ui.add_head_html(one_line.script())


def editor_theme() -> str:
    """The CodeMirror theme matching the user's dark-mode choice (light when they made none)."""
    return EDITOR_THEMES[bool(app.storage.user.get("dark"))]


def _badge_seconds() -> float:
    """Seconds between refreshes of a navigation badge: twice the live lists' (10 by default)."""
    return 2 * live_seconds()


def _nav_badge(key: str) -> None:
    """A red count beside a navigation entry, refreshed every few seconds; hidden at zero.

    Counted for the user as they are at each refresh (`guard`), not as they opened the page. Every
    page's frame has one, so a page left open by a user who is deactivated, deleted or signed out
    everywhere goes to the login page within `_badge_seconds()`, even a page that refreshes
    nothing else (it stayed until the next click, and its badge went on counting as them), and a
    page of a user whose role changed is drawn again for the new role (`guard`)."""
    badge = ui.badge("", color="negative").props(f'rounded data-testid="nav-badge-{key}"')
    badge.set_visibility(False)

    async def update() -> None:
        current = await guard(ticking=True)
        if current is None:
            return
        try:
            count = await NAV_BADGES[key](current)
        except ServiceError:
            count = 0
        badge.set_text(str(count))
        badge.set_visibility(count > 0)

    # Not on pages kept after the browser left them (they would end the session's storage first,
    # and the page in view would then not say why it went to the login page).
    live_timer(_badge_seconds(), update)


def _theme_editors(theme: str) -> None:
    """Give the page's code editors `theme`; an editor already in it is left alone (each update
    of an editor sends its whole text to the browser)."""
    for element in context.client.elements.values():
        if isinstance(element, ui.codemirror) and element.theme != theme:
            element.theme = theme


@contextmanager
def frame(actor: Actor, title: str) -> Iterator[None]:
    """The page frame: header, navigation drawer (closed by default below 1024 px), skip link, and
    the main column with the page's title, into which the page writes. The browser tab's title
    is `title` too (a script's name, `Execution #7`): tabs and screen readers name the page."""
    user = actor.user
    assert user is not None
    _DRAWN_ROLE[context.client] = user.role
    ui.page_title(page_title(title))
    dark = ui.dark_mode(app.storage.user.get("dark"))

    def toggle_dark() -> None:
        dark.value = not dark.value
        app.storage.user["dark"] = dark.value
        _theme_editors(EDITOR_THEMES[bool(dark.value)])

    theme()
    ui.add_css(NAV_CSS + SKIP_LINK_CSS)
    if app.storage.user.get("dark") is None:  # "auto": the browser decides; the editors follow it

        async def follow_browser() -> None:
            try:
                browser_dark = await ui.run_javascript(
                    "document.body.classList.contains('body--dark')", timeout=10
                )
            except TimeoutError:
                return  # the browser left meanwhile
            if app.storage.user.get("dark") is not None:
                return  # toggled while the browser answered: that choice stands, not the older answer
            _theme_editors(EDITOR_THEMES[bool(browser_dark)])

        one_shot(0.5, follow_browser)
    ui.add_head_html(A11Y_JS)
    with ui.header(elevated=True).classes("items-center justify-between bg-primary no-wrap px-2 sm:px-4"):
        ui.link("Skip to main content", "#oc-main").classes("oc-skip").props('data-testid="skip-link"')
        with ui.row().classes("items-center gap-1 sm:gap-2 no-wrap"):
            ui.button(icon="menu", on_click=lambda: drawer.toggle()).props(
                'flat round color=white aria-label="Navigation menu" data-testid="nav-toggle"'
            )
            ui.link("OpsCraft", "/").classes("text-xl font-bold text-white no-underline")
        with ui.row().classes("items-center gap-1 sm:gap-2 no-wrap"):
            ui.button(icon="dark_mode", on_click=toggle_dark).props(
                'flat round color=white aria-label="Toggle dark mode" data-testid="dark-toggle"'
            ).tooltip("Toggle dark mode")
            name = f"{user.full_name or user.username} · {user.role}"
            with ui.button(icon="account_circle").props(
                f'flat color=white aria-label="Account: {_attr(name)}" data-testid="user-menu"'
            ):
                # At most a third of the bar, cut with "...": a 200-character name without a space
                # pushed this button (Profile, Log out) past the window's right edge.
                ui.label(name).classes("ml-1 gt-xs ellipsis max-w-[33vw]").props('data-testid="whoami"')
                with ui.menu():
                    ui.menu_item("Profile", lambda: ui.navigate.to("/profile"))
                    ui.menu_item("Log out", session.sign_out).props('data-testid="logout"')
    drafts.install()
    here = context.client.request.url.path if context.client.request else "/"
    # Closed at first, opened by Quasar itself on screens of 1024 px and more (`show-if-above`).
    drawer = ui.left_drawer(value=False, bordered=True)
    with drawer.props('show-if-above width=220 breakpoint=1024 aria-label="Navigation"'):
        with ui.element("nav").classes("w-full column gap-1 p-2").props('aria-label="Main"'):
            for item in NAV:
                if item.permission is not None and not can(user, item.permission):
                    continue
                active = here == item.path or (item.path != "/" and here.startswith(item.path + "/"))
                link = ui.link(target=item.path).classes("oc-nav" + (" oc-nav-active" if active else ""))
                if active:
                    link.props('aria-current="page"')
                with link.props(f'data-testid="nav-{item.path.strip("/") or "home"}"'):
                    with ui.row().classes("items-center gap-3 px-3 py-2 no-wrap"):
                        ui.icon(item.icon).classes("text-xl").props('aria-hidden="true"')
                        ui.label(item.label).classes("text-body1")
                        if item.badge in NAV_BADGES:
                            _nav_badge(item.badge)
    with ui.element("div").classes("w-full max-w-7xl mx-auto p-2 sm:p-4 column no-wrap gap-4"):
        ui.element("span").props("id=oc-main tabindex=-1")
        heading = ui.label(title).classes("text-2xl font-semibold oc-wrap")
        _TITLES[context.client] = heading.props('role="heading" aria-level="1"')
        yield


def retitle(title: str) -> None:
    """Show `title` as the page's title, in the page and its browser tab (`frame`), when it
    changed: a script renamed by another user while its page is open (it kept the old name)."""
    heading = _TITLES.get(context.client)
    if heading is not None and heading.text != title:
        heading.set_text(title)
        ui.page_title(page_title(title))


def _attr(text: str) -> str:
    """`text` safe inside a double-quoted props value."""
    return text.replace("\\", "").replace('"', "'")
