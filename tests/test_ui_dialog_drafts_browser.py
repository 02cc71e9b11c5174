"""Typing in the automation dialogs survives a reload (drafts kept per browser tab): the schedule,
webhook and "then run" dialogs opened again with what was typed; after a save or a Cancel
nothing comes back. A value shown once (a token, a webhook's URL) leaves the page when its
dialog is closed with Escape, as with Done."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import LiveServer
from tests.ui_journey import (
    api,
    create_script,
    journey_server,
    journey_tokens,
    reload_keeping,
    signed_in,
    wait_connected,
)

pytestmark = pytest.mark.browser

server = journey_server("dialog-drafts-ui")
tokens = journey_tokens()

# Whether a NiceGUI element of the page (shown or not) still holds `value` in its props.
HELD_JS = """(value) => Object.values(mounted_app.elements).some(
    (element) => element && element.props && Object.values(element.props).includes(value))"""


def _script(server: LiveServer, admin: dict[str, str], name: str) -> int:
    made = create_script(
        server, admin, name, "#!/bin/bash\necho $WHO\n", parameters={"WHO": "x"}, status="active"
    )
    return int(made["id"])


def test_a_new_schedule_typed_before_a_reload_comes_back_and_is_gone_once_added(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """Before, the dialog was gone after a reload, and so was what was typed in it."""
    script_id = _script(server, tokens["admin"], "nightly-report")
    signed_in(page, server, "operator", then=f"/scripts/{script_id}?tab=schedules")
    page.get_by_test_id("schedule-add").click()
    page.get_by_test_id("schedule-name").fill("nightly-backup")
    page.get_by_test_id("schedule-cron").fill("15 2 * * *")
    reload_keeping(page, f"schedule:{script_id}:new", "nightly-backup")
    page.get_by_test_id("draft-restored").wait_for()
    assert page.get_by_test_id("schedule-name").input_value() == "nightly-backup"
    assert page.get_by_test_id("schedule-cron").input_value() == "15 2 * * *"
    page.get_by_test_id("schedule-submit").click()
    page.locator(".q-notification", has_text="Schedule added").wait_for()
    stored = api(server, "GET", f"/scripts/{script_id}/schedules", tokens["admin"])["items"]
    assert [(s["name"], s["cron"]) for s in stored] == [("nightly-backup", "15 2 * * *")]
    page.reload()
    wait_connected(page)
    page.get_by_text("15 2 * * *", exact=False).first.wait_for()
    assert page.get_by_test_id("schedule-name").count() == 0  # saved: no dialog opens again


def test_a_webhook_edit_typed_before_a_reload_comes_back_and_cancel_forgets_it(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    script_id = _script(server, tokens["admin"], "deploy-hooked")
    hook = api(server, "POST", f"/scripts/{script_id}/webhooks", tokens["admin"], json={"name": "github"})
    hook_id = hook["id"]
    signed_in(page, server, "operator", then=f"/scripts/{script_id}?tab=webhooks")
    page.get_by_test_id(f"webhook-edit-{hook_id}").click()
    page.get_by_test_id("webhook-name").fill("github-main")
    reload_keeping(page, f"webhook:{script_id}:{hook_id}", "github-main")
    page.get_by_test_id("draft-restored").wait_for()
    assert page.get_by_test_id("webhook-name").input_value() == "github-main"
    page.get_by_role("button", name="Cancel").click()
    page.get_by_test_id("webhook-name").wait_for(state="detached")
    page.reload()
    wait_connected(page)
    page.get_by_test_id(f"webhook-edit-{hook_id}").wait_for()
    assert page.get_by_test_id("webhook-name").count() == 0  # cancelled: no dialog opens again
    listed = api(server, "GET", f"/scripts/{script_id}/webhooks", tokens["admin"])["items"]
    assert [hook["name"] for hook in listed] == ["github"]


def test_a_then_run_link_typed_before_a_reload_comes_back(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    script_id = _script(server, tokens["admin"], "build-first")
    signed_in(page, server, "operator", then=f"/scripts/{script_id}?tab=chains")
    page.get_by_test_id("chain-add").click()
    page.get_by_test_id("chain-mapping").fill('{"WHO": "/parameters/WHO"}')
    reload_keeping(page, f"chain:{script_id}:new", "/parameters/WHO")
    page.get_by_test_id("draft-restored").wait_for()
    assert page.get_by_test_id("chain-mapping").input_value() == '{"WHO": "/parameters/WHO"}'


def test_a_token_shown_once_leaves_the_page_when_its_dialog_is_closed_with_escape(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """Done emptied the field; Escape closed the dialog with the token still in the page."""
    signed_in(page, server, "viewer", then="/tokens")
    page.get_by_test_id("token-add").click()
    page.get_by_test_id("token-name").fill("laptop")
    page.get_by_test_id("token-submit").click()
    shown = page.get_by_test_id("token-value")
    shown.wait_for()
    page.wait_for_function("() => document.querySelector('[data-testid=token-value]').value !== ''")
    token = shown.input_value()
    assert page.evaluate(HELD_JS, token)
    page.keyboard.press("Escape")
    shown.wait_for(state="hidden")
    page.wait_for_function(f"(value) => !({HELD_JS})(value)", arg=token)
