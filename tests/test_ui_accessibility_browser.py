"""Accessibility of what the page tour (test_ui_pages_browser.py) does not reach: marked editor
lines, a run awaiting approval, code blocks, tab titles, leaving the editor with the keyboard."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import PASSWORD, LiveServer
from tests.ui_journey import (
    API_TIMEOUT,
    UNMARKED_TABLES_JS,
    api_user,
    check_accessibility,
    create_script,
    journey_server,
    journey_tokens,
    paste_code,
    signed_in,
    start_run,
    wait_connected,
)

pytestmark = pytest.mark.browser

server = journey_server("a11y-ui")
tokens = journey_tokens()


@pytest.fixture(scope="module")
def night(server: LiveServer, tokens: dict[str, dict[str, str]]) -> str:
    """An operator of the dark colour scheme's tests: they may turn dark mode on, a choice NiceGUI
    keeps in the browser's session, so their kept session (`signed_in`) is not the operator's,
    which the light ones share with the rest."""
    api_user(server, tokens["admin"], "night-owl", "operator")
    return "night-owl"


# Keywords (`if`, `then`, `fi`) on a line the dangerous-pattern lint marks, and a byte order mark
# that saving removes (a notice in the problem list).
MARKED = "\ufeff#!/bin/bash\nif true; then rm -rf /; fi\n"


# The focused element's outline: [style, width, colour].
OUTLINE_JS = (
    "(() => { const s = getComputedStyle(document.activeElement);"
    " return [s.outlineStyle, s.outlineWidth, s.outlineColor]; })()"
)
# Escape closes a dialog once it has the focus (pressed while it still opens, it was lost).
FOCUS_IN_DIALOG_JS = "!!document.activeElement?.closest('.q-dialog')"


def _dark(page: Any) -> None:
    if not page.evaluate("document.body.classList.contains('body--dark')"):
        page.get_by_test_id("dark-toggle").click()
        page.wait_for_function("document.body.classList.contains('body--dark')")


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_marked_editor_lines_keep_their_text_readable(
    server: LiveServer, tokens: dict[str, dict[str, str]], browser: Any, scheme: str, night: str
) -> None:
    """A line the lint marked had a tinted background: the editor theme's keywords on it fell to
    4.2:1 (light) and 4.4:1 (dark), under WCAG's 4.5:1; the notice of what saving normalises was
    dark blue on the dark page (2.6:1)."""
    context = browser.new_context(viewport={"width": 1400, "height": 900}, color_scheme=scheme)
    page = context.new_page()
    try:
        signed_in(page, server, night if scheme == "dark" else "operator", then="/scripts/new")
        if scheme == "dark":
            _dark(page)
        paste_code(page, MARKED)
        page.locator('[data-testid="script-editor"] .oc-lint-line').wait_for()
        page.get_by_test_id("notice-byte-order-mark").wait_for()
        check_accessibility(page, f"editor-marked-{scheme}")
    finally:
        context.close()


def test_a_run_awaiting_approval_and_code_blocks_pass_the_checker(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """ "awaiting approval" was white on amber (2:1) wherever a run's status is shown; a code
    block (a shared inventory) had a copy button without a name and colours under 4.5:1."""
    admin = tokens["admin"]
    script = create_script(server, admin, "needs-approval", "echo ok\n", status="active")
    url = f"{server.url}/api/v1/scripts/{script['id']}/approval"
    assert httpx.put(url, json={"required": 1}, headers=admin, timeout=API_TIMEOUT).status_code == 200
    run_id = start_run(server, admin, script["id"])
    inventory = {"name": "web", "content": "[web]\nweb1 ansible_host=10.0.0.1\n"}
    url = f"{server.url}/api/v1/inventories"
    response = httpx.post(url, json=inventory, headers=admin, timeout=API_TIMEOUT)
    assert response.status_code == 201, response.text
    for path, ready in (
        ("/executions", "row-status-awaiting_approval"),
        (f"/executions/{run_id}", "status-awaiting_approval"),
        ("/scripts", "last-run-needs-approval"),
        ("/", "row-status-awaiting_approval"),
        ("/inventories", "inventory-web"),
    ):
        signed_in(page, server, "admin", then=path)  # the first signs in, on its page
        page.get_by_test_id(ready).first.wait_for()
        check_accessibility(page, "awaiting-" + (path.strip("/").replace("/", "-") or "dashboard"))
    copy = page.get_by_test_id("inventory-web").get_by_role("button", name="Copy to the clipboard")
    assert copy.count() == 1


def test_the_tab_title_names_the_script_or_run(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """Every script's tab was "Script · OpsCraft" and every run's "Execution · OpsCraft": several
    open tabs (and a screen reader's page title) could not be told apart."""
    admin = tokens["admin"]
    script = create_script(server, admin, "title-check", "echo hi\n", status="active")
    run_id = start_run(server, admin, script["id"])
    for path, title in (
        (f"/scripts/{script['id']}", "title-check · OpsCraft"),
        (f"/scripts/{script['id']}/edit", "Edit title-check · OpsCraft"),
        (f"/executions/{run_id}", f"Execution #{run_id} · OpsCraft"),
        ("/scripts", "Scripts · OpsCraft"),
    ):
        signed_in(page, server, "admin", then=path)  # the first signs in, on its page
        page.get_by_role("heading", level=1).wait_for()
        assert page.title() == title, path


def test_the_editor_says_how_to_leave_it_with_the_keyboard(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """Tab indents in the editor, so a keyboard user who tabbed into it could not tab out, and
    nothing on the page said that Esc then Tab leaves it."""
    signed_in(page, server, "operator", then="/scripts/new")
    wait_connected(page)
    content = page.locator('[data-testid="script-editor"] .cm-content')
    page.wait_for_function(
        "() => document.querySelector('[data-testid=\"script-editor\"] .cm-content')"
        "?.hasAttribute('aria-describedby')"
    )
    hint = page.locator("#" + str(content.get_attribute("aria-describedby")))
    assert "Esc, then Tab" in hint.inner_text()
    assert hint.is_visible()
    page.get_by_test_id("script-description").focus()
    page.keyboard.press("Tab")
    assert content.evaluate("element => element === document.activeElement")
    page.keyboard.press("Tab")  # indents: still in the editor
    assert content.evaluate("element => element === document.activeElement")
    page.keyboard.press("Escape")
    page.keyboard.press("Tab")
    page.wait_for_function(
        "() => !document.activeElement.closest('[data-testid=\"script-editor\"]')"
        " && document.activeElement !== document.body"
    )


def test_a_runs_output_and_its_end_reach_a_screen_reader(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """xterm.js draws the output hidden from screen readers: they found only an empty "Terminal
    input" box (that takes no input), and a run ending changed a redrawn badge nobody was told of."""
    admin = tokens["admin"]
    content = 'echo "first line"\necho "second line"\nsleep 600\n'
    script = create_script(server, admin, "long-output", content, status="active")
    run_id = start_run(server, admin, script["id"])
    signed_in(page, server, "admin", then=f"/executions/{run_id}")
    output = page.get_by_role("list", name="Output")
    output.get_by_role("listitem").filter(has_text="second line").wait_for()
    helper = page.get_by_role("textbox", name="Output (read only)")
    assert helper.get_attribute("readonly") is not None
    assert page.locator('[data-testid="terminal"] .live-region').get_attribute("aria-live") == "polite"
    # Cancelled from the keyboard; the end is said once in the page's status region.
    page.get_by_test_id("cancel-button").focus()
    page.keyboard.press("Enter")
    page.get_by_test_id("cancel-confirm").focus()
    page.keyboard.press("Enter")
    announcement = page.get_by_test_id("status-announcement")
    announcement.get_by_text(f"Run #{run_id} finished: cancelled").wait_for(state="attached")
    assert announcement.get_attribute("role") == "status"


def test_dialogs_are_named_by_their_title_and_the_file_button_by_its_label(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """A screen reader said only "dialog" when a form, a confirmation or the cancel question
    opened (axe-core's `aria-dialog-name`); the new secret's "read it from a file" button was an
    unnamed icon with an unlabelled file input inside (axe-core's `aria-command-name`, `label`),
    then a named button with the input still inside it (`nested-interactive`): now the input is
    named by the label around it, and the open dialog passes the checker (run on it by
    test_ui_pages_browser, see below)."""
    admin = tokens["admin"]
    script = create_script(server, admin, "dialog-names", "sleep 600\n", status="active")
    run_id = start_run(server, admin, script["id"])
    signed_in(page, server, "admin", then="/users")
    page.get_by_test_id("new-user").click()
    page.get_by_role("dialog", name="New user").wait_for()
    page.wait_for_function(FOCUS_IN_DIALOG_JS)
    page.keyboard.press("Escape")
    page.get_by_role("dialog").wait_for(state="detached")
    page.goto(f"{server.url}/secrets")
    page.get_by_test_id("new-secret").click()
    dialog = page.get_by_role("dialog", name="New secret")
    dialog.get_by_label("Or read it from a file").wait_for(state="attached")
    page.wait_for_function(FOCUS_IN_DIALOG_JS)
    # The open dialog passes every rule, colour included: checked in this state (light, the
    # same viewport) by test_ui_pages_browser's
    # `test_every_dialog_passes_every_rule_on_the_light_scheme_and_is_built_once`, once per suite
    # (axe-core's run is about half a second of CPU).
    dialog.get_by_role("button", name="Cancel").click()  # Escape does not drop a typed secret
    page.get_by_role("dialog").wait_for(state="detached")
    page.goto(f"{server.url}/executions/{run_id}")
    page.get_by_test_id("cancel-button").click()
    page.get_by_role("dialog", name=f"Cancel execution #{run_id}?").wait_for()
    page.get_by_test_id("cancel-confirm").click()
    page.get_by_test_id("status-announcement").get_by_text("finished: cancelled").wait_for(state="attached")


def test_keyboard_focus_on_a_button_shows_a_ring(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """A button with the keyboard's focus was only a shade lighter (Quasar's focus helper, 1.6:1
    against the button): on a filled button or the header's white icons it was hardly seen."""
    signed_in(page, server, "admin", then="/scripts")
    page.get_by_test_id("new-script").wait_for()
    page.keyboard.press("Tab")  # the skip link
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == "Navigation menu"
    assert page.evaluate(OUTLINE_JS) == ["solid", "2px", "rgb(255, 255, 255)"]  # on the blue header
    page.get_by_test_id("script-search").focus()
    for _ in range(10):  # the filters, then the button
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.dataset.testid") == "new-script":
            break
    assert page.evaluate("document.activeElement.dataset.testid") == "new-script"
    assert page.evaluate(OUTLINE_JS) == ["solid", "2px", "rgb(21, 101, 192)"]


def test_a_tooltip_is_readable(server: LiveServer, tokens: dict[str, dict[str, str]], page: Any) -> None:
    """The header's "Toggle dark mode" tooltip had 4.41:1 (#fafafa on Quasar's #757575), under
    WCAG AA's 4.5:1: the checker found it whenever a test left the mouse on the toggle."""
    signed_in(page, server, "admin", then="/scripts")
    page.get_by_test_id("dark-toggle").hover()
    page.locator(".q-tooltip", has_text="Toggle dark mode").wait_for()
    check_accessibility(page, "tooltip")


def test_enter_in_a_form_dialogs_field_submits_it(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """Enter in a field of a form dialog (a new user, secret, token, schedule...) did nothing: a
    keyboard user had to Tab past Cancel to the submit button."""
    signed_in(page, server, "admin", then="/users")
    page.get_by_test_id("new-user").click()
    page.get_by_role("dialog", name="New user").wait_for()
    page.get_by_test_id("create-username").fill("entered")
    page.get_by_test_id("create-email").fill("entered@example.com")
    page.get_by_test_id("create-password").fill(PASSWORD)
    page.get_by_test_id("create-password").press("Enter")
    page.get_by_role("dialog").wait_for(state="detached")
    users = httpx.get(f"{server.url}/api/v1/users", headers=tokens["admin"], timeout=API_TIMEOUT).json()
    assert "entered" in [user["username"] for user in users["items"]]


def test_a_dashboard_count_is_named_by_what_it_shows(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """A status card's link was named "0 queued, all time: open these runs" while it showed
    "0" over "Queued" (and "1.2k" where the name said "1,234"): a name that does not contain the
    shown label fails WCAG 2.5.3 (axe-core's `label-content-name-mismatch`, serious), and a
    speech-input user saying what they see does not reach the link."""
    signed_in(page, server, "viewer")
    link = page.get_by_test_id("count-queued")
    link.wait_for()
    assert link.get_attribute("aria-label") is None
    shown = link.get_by_test_id("count-value").inner_text()
    name = page.get_by_role("link", name=f"{shown} Queued runs, all time: open them", exact=True)
    assert name.get_attribute("data-testid") == "count-queued"
    check_accessibility(page, "dashboard-count-names", ["label-content-name-mismatch"])


def test_an_editors_wide_lines_scroll_with_the_keyboard_on_a_phone(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """On a 375 px phone a script line wider than the screen made the editor's scroller a
    scrolling region with nothing a checker counts as focusable in it (its editable area is a
    contenteditable without a tabindex: axe-core's `scrollable-region-focusable`, serious); the
    area now has tabindex 0, in the Tab order as before."""
    wide = 'echo "' + "deploying to every host of the inventory " * 3 + '"\n'
    script = create_script(server, tokens["operator"], "wide-line", wide)
    page.set_viewport_size({"width": 375, "height": 812})
    signed_in(page, server, "operator", then=f"/scripts/{script['id']}/edit")
    page.locator('[data-testid="script-editor"] .cm-content[tabindex="0"]').wait_for()
    scroller = page.locator('[data-testid="script-editor"] .cm-scroller')
    assert scroller.evaluate("e => e.scrollWidth > e.clientWidth")
    check_accessibility(page, "editor-wide-line-phone", ["scrollable-region-focusable"])


# The parameters table's scroll area as it is when first drawn: whether it overflows, and its
# tabindex, role and name then (`page.wait_for_function` polls once per frame).
PARAMETERS_SCROLL_JS = """() => {
  const r = document.querySelector('[data-testid="parameters-table"] .q-table__middle');
  return r && [r.scrollWidth > r.clientWidth, r.getAttribute("tabindex"), r.getAttribute("role"),
    r.getAttribute("aria-label")];
}"""


def test_a_table_wider_than_a_phone_scrolls_with_the_keyboard(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """A table whose columns are wider than a 390 px phone scrolls sideways; with no link or button
    in its rows (a script's parameters) a keyboard could not scroll it (axe-core's
    `scrollable-region-focusable`, serious; the page tour found it on a script's page). Its
    scroll area took the focus only at the next tick of a 500 ms timer, and had no name: it is a
    region named as its table from the moment it is drawn, and arrow keys scroll it."""
    wide = "a-default-value-far-wider-than-a-phone-shows-in-one-column"
    parameters = [{"name": f"TARGET_{n}", "type": "string", "default": wide} for n in range(3)]
    script = create_script(server, tokens["operator"], "wide-params", "echo hi\n", parameters=parameters)
    page.set_viewport_size({"width": 390, "height": 844})
    signed_in(page, server, "operator", then=f"/scripts/{script['id']}")
    drawn = page.wait_for_function(PARAMETERS_SCROLL_JS).json_value()
    assert drawn == [True, "0", "region", "Parameters"]
    assert page.evaluate(UNMARKED_TABLES_JS) == []
    check_accessibility(page, "table-wider-than-a-phone", ["scrollable-region-focusable"])
    region = page.locator('[data-testid="parameters-table"] .q-table__middle')
    page.keyboard.press("Shift")  # the last interaction a key: a focus shows its ring
    region.focus()
    assert page.evaluate(OUTLINE_JS) == ["solid", "2px", "rgb(21, 101, 192)"]
    page.keyboard.press("ArrowRight")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=\"parameters-table\"] .q-table__middle').scrollLeft > 0"
    )


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_a_hovered_or_focused_button_keeps_its_text_readable(
    server: LiveServer, tokens: dict[str, dict[str, str]], browser: Any, scheme: str, night: str
) -> None:
    """Under the mouse (and with the keyboard's focus) Quasar tints a button with 15% of its text
    colour: a filled primary button went to #387cc9 under white text (4.29:1), a green one
    (Execute, Run again) to 3.82:1, a flat red Delete to 4.42:1 on its tint (WCAG AA: 4.5:1)."""
    script = create_script(server, tokens["operator"], f"hovered-{scheme}", "echo hi\n", status="active")
    context = browser.new_context(viewport={"width": 1400, "height": 900}, color_scheme=scheme)
    page = context.new_page()
    try:
        signed_in(page, server, night if scheme == "dark" else "operator", then=f"/scripts/{script['id']}")
        if scheme == "dark":
            _dark(page)
        for testid in ("execute-button", "edit-script", "delete-script"):
            button = page.get_by_test_id(testid)
            button.hover()
            page.wait_for_function(
                "b => getComputedStyle(b.querySelector('.q-focus-helper')).opacity !== '0'",
                arg=button.element_handle(),
            )
            check_accessibility(page, f"hovered-{testid}-{scheme}", ["color-contrast"])
            button.focus()
            page.mouse.move(1390, 890)  # focus only, no hover
            check_accessibility(page, f"focused-{testid}-{scheme}", ["color-contrast"])
    finally:
        context.close()


def test_the_loading_bar_is_named_while_it_shows(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """Quasar's loading bar (shown while a request of the page is under way) became a
    `progressbar` without a name (axe-core's aria-progressbar-name, serious). Started here
    through Quasar's own LoadingBar plugin, as NiceGUI's page does for its requests."""
    signed_in(page, server, "viewer", then="/scripts")
    # The bar's width grows in steps, each a transition: with less motion asked for they end at
    # once and the checker (which waits for running animations to end) looks at it right away.
    page.emulate_media(reduced_motion="reduce")
    page.evaluate("Quasar.LoadingBar.start()")
    page.wait_for_function("document.querySelector('.q-loading-bar')?.getAttribute('role') === 'progressbar'")
    assert page.locator(".q-loading-bar").get_attribute("aria-label") == "Loading"
    check_accessibility(page, "loading-bar", ["aria-progressbar-name"])
