"""Dialogs with the keyboard, and a list that follows other tabs, against a real `opscraft serve`:
the focus is in a dialog as soon as it shows and goes back to the button that opened it however it
closes (Escape, Cancel, Save, a confirmation answered), also when that button disabled itself while
it opened the dialog (Execute, Run again); the Inventories page shows what another
user or tab changed, without taking an open dialog away; long names wrap on a phone. One server
and one operator page for the module (browser tests are slow)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer
from tests.ui_journey import API_TIMEOUT, LIVE_ENV, create_script, journey_server, log_in, token, wait_run

pytestmark = pytest.mark.browser

server = journey_server(
    "dialog-keyboard-ui",
    users=(("boss", "admin"), ("operator", "operator"), ("other", "operator")),
    env=LIVE_ENV,
    through_api=True,
)

INVENTORY = "[web]\nweb1 ansible_host=192.0.2.10\n"

# For each dialog that entered the page since `WATCH_JS` ran: whether the focus was in it by the
# time the page could handle anything else (the next key). Quasar moved the focus in only after its
# 300 ms opening transition: keys typed meanwhile went to the page's body.
WATCH_JS = """() => {
  window.ocFocusedAtOnce = [];
  const seen = new WeakSet();
  new MutationObserver((changes) => {
    for (const change of changes) for (const node of change.addedNodes) {
      const inner = node.nodeType === 1
        && (node.matches('.q-dialog__inner') ? node : node.querySelector('.q-dialog__inner'));
      if (inner && !seen.has(inner)) {
        seen.add(inner);
        window.ocFocusedAtOnce.push(inner.contains(document.activeElement));
      }
    }
  }).observe(document.body, {childList: true, subtree: true});
}"""


# The transition durations of each dialog that entered the page since it ran, read as it entered
# (while its opening transition's classes are on it).
MOTION_JS = """() => {
  window.ocMotion = [];
  new MutationObserver((changes) => {
    for (const change of changes) for (const node of change.addedNodes) {
      const inner = node.nodeType === 1
        && (node.matches('.q-dialog__inner') ? node : node.querySelector('.q-dialog__inner'));
      if (inner) window.ocMotion.push(getComputedStyle(inner).transitionDuration);
    }
  }).observe(document.body, {childList: true, subtree: true});
}"""


@pytest.fixture(scope="module")
def operator_page(browser: Any, server: LiveServer) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(30_000)
    page = context.new_page()
    log_in(page, server, "operator")
    yield page
    context.close()


def _open_inventories(page: Any, server: LiveServer) -> None:
    page.goto(f"{server.url}/inventories")
    page.wait_for_function("window.did_handshake === true && window.socket && window.socket.connected")
    page.evaluate(WATCH_JS)


def _focused_testid(page: Any) -> str | None:
    return page.evaluate("document.activeElement?.getAttribute('data-testid') ?? null")


def _focus_back_on(page: Any, testid: str) -> None:
    """Until the dialog is gone and the focus is on `testid` (it fell to the body)."""
    page.locator(".q-dialog").wait_for(state="detached")
    page.wait_for_function(
        f"document.activeElement?.getAttribute('data-testid') === '{testid}'", timeout=5_000
    )


def test_the_focus_enters_a_dialog_as_it_shows(operator_page: Any, server: LiveServer) -> None:
    page = operator_page
    body = {"name": "db", "content": INVENTORY}
    url = f"{server.url}/api/v1/inventories"
    assert httpx.post(url, json=body, headers=token(server, "other"), timeout=API_TIMEOUT).status_code == 201
    _open_inventories(page, server)

    # A form (its name field), then a confirmation (the dialog); Escape closes each.
    page.get_by_test_id("inventory-new").focus()
    page.keyboard.press("Enter")
    page.get_by_test_id("inventory-name").wait_for()
    page.wait_for_function("window.ocFocusedAtOnce.length === 1")
    assert page.evaluate("window.ocFocusedAtOnce") == [True]
    page.keyboard.press("Escape")
    _focus_back_on(page, "inventory-new")
    page.get_by_test_id("inventory-delete-db").focus()
    page.keyboard.press("Enter")
    page.get_by_role("dialog", name="Delete the inventory db?").wait_for()
    page.wait_for_function("window.ocFocusedAtOnce.length === 2")
    page.keyboard.press("Escape")
    _focus_back_on(page, "inventory-delete-db")
    assert page.evaluate("window.ocFocusedAtOnce") == [True, True]


def test_the_focus_returns_to_the_opener_after_cancel_save_or_an_answer(
    operator_page: Any, server: LiveServer
) -> None:
    """Cancel, Save and a confirmation's answer deleted the dialog at once: the browser never
    closed it, and the focus fell to the page's body (Escape alone gave it back). The inventory it
    answers a deletion for is its own (it read the one the test before made: run alone, it failed)."""
    page = operator_page
    body = {"name": "answered", "content": INVENTORY}
    url = f"{server.url}/api/v1/inventories"
    assert httpx.post(url, json=body, headers=token(server, "other"), timeout=API_TIMEOUT).status_code == 201
    _open_inventories(page, server)
    page.get_by_test_id("inventory-new").focus()
    page.keyboard.press("Enter")
    page.get_by_role("dialog").get_by_role("button", name="Cancel").focus()
    page.keyboard.press("Enter")
    _focus_back_on(page, "inventory-new")

    # Saved with Enter in the name field.
    page.keyboard.press("Enter")
    page.get_by_test_id("inventory-content").fill(INVENTORY)
    page.get_by_test_id("inventory-name").fill("web")
    page.keyboard.press("Enter")
    page.get_by_test_id("inventory-web").wait_for()
    _focus_back_on(page, "inventory-new")

    page.get_by_test_id("inventory-delete-answered").focus()
    page.keyboard.press("Enter")
    page.get_by_role("dialog").get_by_role("button", name="Cancel").focus()
    page.keyboard.press("Enter")
    _focus_back_on(page, "inventory-delete-answered")
    assert page.get_by_test_id("inventory-answered").count() == 1


def test_the_inventories_list_follows_other_users_and_keeps_an_open_dialog(
    operator_page: Any, server: LiveServer
) -> None:
    """The list was read once when the page was built: an inventory another operator added,
    changed or deleted (another tab, the API) showed only after a reload."""
    page = operator_page
    other = token(server, "other")
    url = f"{server.url}/api/v1/inventories"
    _open_inventories(page, server)
    page.get_by_test_id("inventory-new").wait_for()

    body = {"name": "edge", "description": "edge proxies", "content": INVENTORY}
    response = httpx.post(url, json=body, headers=other, timeout=API_TIMEOUT)
    assert response.status_code == 201, response.text
    edge = response.json()["id"]
    page.get_by_test_id("inventory-edge").get_by_text("edge proxies").wait_for()

    # A dialog open on this page stays (with what was typed) while the rows are redrawn under it.
    page.get_by_test_id("inventory-edit-edge").click()
    page.get_by_test_id("inventory-description").fill("typed here")
    response = httpx.put(
        f"{url}/{edge}", json={"description": "moved to DC2"}, headers=other, timeout=API_TIMEOUT
    )
    assert response.status_code == 200, response.text
    page.get_by_test_id("inventory-edge").get_by_text("moved to DC2").wait_for()
    assert page.get_by_test_id("inventory-description").input_value() == "typed here"
    page.get_by_role("dialog").get_by_role("button", name="Cancel").click()
    page.locator(".q-dialog").wait_for(state="detached")

    assert httpx.delete(f"{url}/{edge}", headers=other, timeout=API_TIMEOUT).status_code == 204
    page.get_by_test_id("inventory-edge").wait_for(state="detached")


def test_long_names_wrap_on_a_phone(browser: Any, server: LiveServer) -> None:
    """A schedule's, webhook's, channel's or inventory's name of one long word (a mix of Latin and
    right-to-left Arabic here), or a "then run" link's target, ran past the card: the Schedules
    and Notifications pages scrolled sideways on a phone, and the script's tabs cut the name off."""
    operator, boss = token(server, "operator"), token(server, "boss")
    name = "x" * 40 + "مرحبا" * 4 + "y" * 4  # 64 characters, the longest allowed
    long_script = "t" * 128
    script = create_script(server, operator, "phone-names", "echo hi\n", status="active")
    target = create_script(server, operator, long_script, "echo hi\n", status="active")
    api = f"{server.url}/api/v1"
    for url, body, headers in (
        (f"{api}/scripts/{script['id']}/schedules", {"name": name, "cron": "0 3 * * *"}, operator),
        (f"{api}/scripts/{script['id']}/webhooks", {"name": name}, operator),
        (f"{api}/scripts/{script['id']}/chains", {"target_script_id": target["id"]}, operator),
        (f"{api}/inventories", {"name": "i" * 128, "content": INVENTORY}, operator),
        (
            f"{api}/notifications/channels",
            {"name": name, "kind": "webhook", "config": {"url": "https://hooks.example.com/x"}},
            boss,
        ),
    ):
        response = httpx.post(url, json=body, headers=headers, timeout=API_TIMEOUT)
        assert response.status_code == 201, response.text
    context = browser.new_context(viewport={"width": 375, "height": 667})
    context.set_default_timeout(30_000)
    page = context.new_page()
    try:
        log_in(page, server, "boss")
        for path, shown in (
            ("/schedules", name),
            ("/notifications", name),
            ("/inventories", "i" * 128),
            (f"/scripts/{script['id']}?tab=schedules", name),
            (f"/scripts/{script['id']}?tab=webhooks", name),
            (f"/scripts/{script['id']}?tab=chains", long_script),
        ):
            page.goto(server.url + path)
            label = page.get_by_text(shown, exact=True).first
            label.wait_for()
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 1, f"{path}: {overflow} px wider than the screen"
            box = label.bounding_box()
            assert box is not None and box["x"] + box["width"] <= 375 + 1, f"{path}: name cut off ({box})"
    finally:
        context.close()


def _opened_and_closed(page: Any, opener: str, shown: str) -> None:
    """Open the dialog with Enter on `opener` (a button that is disabled while its click is
    handled), then close it with Escape, then again with its Cancel button: the focus goes back
    to `opener` each time."""
    for close in ("Escape", "Cancel"):
        page.get_by_test_id(opener).focus()
        page.keyboard.press("Enter")
        page.get_by_test_id(shown).wait_for()
        if close == "Escape":
            page.keyboard.press("Escape")
        else:
            page.get_by_role("dialog").get_by_role("button", name="Cancel").focus()
            page.keyboard.press("Enter")
        _focus_back_on(page, opener)


def test_the_focus_returns_to_a_button_that_was_disabled_while_it_opened_the_dialog(
    operator_page: Any, server: LiveServer
) -> None:
    """Execute and Run again are disabled while their click is handled (`widgets.one_click`), and
    the browser takes the focus off a disabled button: the dialog they opened took the page's body
    for its opener, and closing it (Escape, Cancel) left the focus there."""
    page = operator_page
    operator = token(server, "operator")
    script = create_script(server, operator, "focus-execute", "echo hi\n", status="active")
    page.goto(f"{server.url}/scripts/{script['id']}")
    page.wait_for_function("window.did_handshake === true && window.socket && window.socket.connected")
    _opened_and_closed(page, "execute-button", "execute-submit")

    # Run again of a Terraform destroy asks first.
    body = {
        "name": "focus-destroy",
        "script_type": "terraform",
        "content": "terraform {}\n",
        "status": "active",
    }
    response = httpx.post(f"{server.url}/api/v1/scripts", json=body, headers=operator, timeout=API_TIMEOUT)
    assert response.status_code == 201, response.text
    run = {"script_id": response.json()["id"], "terraform_action": "destroy", "confirm_destroy": True}
    response = httpx.post(f"{server.url}/api/v1/executions", json=run, headers=operator, timeout=API_TIMEOUT)
    assert response.status_code == 202, response.text
    run_id = response.json()["id"]
    wait_run(server, operator, run_id)
    page.goto(f"{server.url}/executions/{run_id}")
    page.wait_for_function("window.did_handshake === true && window.socket && window.socket.connected")
    _opened_and_closed(page, "run-again", "confirm-destroy")


def test_escape_closes_the_secret_forms(operator_page: Any, server: LiveServer) -> None:
    """The New secret and Replace value forms were `persistent`: Escape did nothing (a keyboard user
    had to Tab to Cancel), unlike every other form dialog (`widgets.FORM_DIALOG_PROPS`)."""
    page = operator_page
    body = {"name": "ESCAPE_KEY", "value": "escape-value"}
    r = httpx.post(
        f"{server.url}/api/v1/secrets", json=body, headers=token(server, "operator"), timeout=API_TIMEOUT
    )
    assert r.status_code == 201, r.text
    page.goto(f"{server.url}/secrets")
    page.wait_for_function("window.did_handshake === true && window.socket && window.socket.connected")
    _opened_and_closed(page, "new-secret", "create-name")
    _opened_and_closed(page, "replace-ESCAPE_KEY", "replace-value")


def test_each_automation_dialog_opens_with_the_focus_in_its_first_field(
    operator_page: Any, server: LiveServer
) -> None:
    """A new user's keyboard pass: the "Then run" dialog opened with the focus on the dialog
    itself, one Tab more than the schedule and webhook dialogs, which start in their first field."""
    page = operator_page
    script = create_script(server, token(server, "operator"), "focus-first", "echo hi\n", status="active")
    for tab, opener, first in (
        ("schedules", "schedule-add", "schedule-name"),
        ("webhooks", "webhook-add", "webhook-name"),
        ("chains", "chain-add", "chain-target"),
    ):
        page.goto(f"{server.url}/scripts/{script['id']}?tab={tab}")
        page.get_by_test_id(opener).focus()
        page.keyboard.press("Enter")
        page.get_by_test_id(first).wait_for()
        page.wait_for_function(f"!!document.activeElement?.closest('[data-testid=\"{first}\"]')")
        page.keyboard.press("Escape")
        _focus_back_on(page, opener)


def test_a_dialog_opens_without_motion_when_the_system_asks_for_less(
    operator_page: Any, server: LiveServer
) -> None:
    """A system set to reduce motion (prefers-reduced-motion, WCAG 2.3.3) got the dialogs' 300 ms
    zoom like everyone; now a dialog shows at once there (and still opens and closes), and zooms
    as before otherwise."""
    page = operator_page
    durations: dict[str, list[str]] = {}
    try:
        for preference in ("no-preference", "reduce"):
            page.emulate_media(reduced_motion=preference)
            _open_inventories(page, server)
            page.evaluate(MOTION_JS)
            page.get_by_test_id("inventory-new").click()
            page.get_by_test_id("inventory-name").wait_for()
            page.keyboard.press("Escape")
            page.locator(".q-dialog").wait_for(state="detached")
            durations[preference] = page.evaluate("window.ocMotion")
    finally:
        page.emulate_media(reduced_motion="no-preference")
    seconds = {
        key: [float(value.split(",")[0].removesuffix("s")) for value in found]
        for key, found in durations.items()
    }
    assert seconds["no-preference"] and min(seconds["no-preference"]) >= 0.1, durations
    assert seconds["reduce"] and max(seconds["reduce"]) < 0.001, durations


# The dialog's Tab stops in order, as the page's wrap finds them (`layout.A11Y_JS`), and whether
# the focus is on the first or the last of them, or in the dialog at all.
TAB_STOP_JS = """() => {
  const inners = document.querySelectorAll('.q-dialog__inner');
  const inner = inners[inners.length - 1];
  const stops = Array.from(inner.querySelectorAll(
    'a[href], button, input, select, textarea, [tabindex], [contenteditable="true"]'
  )).filter((el) => el.tabIndex >= 0 && !el.matches(':disabled') && el.getClientRects().length > 0);
  const active = document.activeElement;
  return {count: stops.length, at: stops.indexOf(active), inside: inner.contains(active)};
}"""


def test_tab_goes_round_a_dialog_without_leaving_it(operator_page: Any, server: LiveServer) -> None:
    """Tab from a dialog's last control left the page (the focus on the page's body as far as the
    page could tell) and came back to the dialog's first only with the next Tab; Shift+Tab from the
    first the same way round."""
    page = operator_page
    _open_inventories(page, server)
    page.get_by_test_id("inventory-new").focus()
    page.keyboard.press("Enter")
    page.get_by_test_id("inventory-name").wait_for()
    page.wait_for_function(f"({TAB_STOP_JS})().inside")
    start = page.evaluate(TAB_STOP_JS)
    assert start["count"] >= 3, start
    seen = []
    for _ in range(start["count"] + 2):  # past the last once, and one more
        page.keyboard.press("Tab")
        seen.append(page.evaluate(TAB_STOP_JS))
    assert all(step["inside"] for step in seen), seen
    positions = [step["at"] for step in seen]
    wrapped = positions.index(start["count"] - 1) + 1
    assert positions[wrapped] == 0, positions
    back = []  # Shift+Tab back to the first, then once more: to the last
    while not back or back[-1] != 0:
        assert len(back) < start["count"], back
        page.keyboard.press("Shift+Tab")
        back.append(page.evaluate(TAB_STOP_JS)["at"])
    page.keyboard.press("Shift+Tab")
    assert page.evaluate(TAB_STOP_JS)["at"] == start["count"] - 1, back
    page.keyboard.press("Escape")
    _focus_back_on(page, "inventory-new")
