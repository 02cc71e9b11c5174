"""A double-click on a button that opens a dialog (a form, a "Delete …?" question) opens one
dialog (`widgets.opens_dialog`): the second click reached the button before the first click's
dialog was up, and each click opened its own, so a second form or question stayed under the one
answered (a second Delete then said the row was not found)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import LiveServer
from tests.ui_journey import api, create_script, journey_server, journey_tokens, signed_in

pytestmark = pytest.mark.browser

server = journey_server("double-click-ui")
tokens = journey_tokens()


def _no_dialog_left(page: Any) -> None:
    """Once the one dialog was answered and its outcome shown, none is open under it."""
    page.locator(".q-dialog").first.wait_for(state="detached")
    assert page.locator(".q-dialog").count() == 0


def test_a_double_click_on_add_webhook_and_on_its_delete_opens_one_dialog_each(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    admin = tokens["admin"]
    script = create_script(server, admin, "dbl-hooks", "#!/bin/bash\necho hi\n", status="active")
    signed_in(page, server, "operator", f"/scripts/{script['id']}?tab=webhooks")
    page.get_by_test_id("webhook-add").dblclick()
    page.get_by_test_id("webhook-name").fill("on-push")
    page.get_by_test_id("webhook-submit").click()
    page.get_by_test_id("webhook-url").wait_for()
    page.get_by_role("button", name="Done").click()
    _no_dialog_left(page)
    hooks = api(server, "GET", f"/scripts/{script['id']}/webhooks", admin)["items"]
    assert [hook["name"] for hook in hooks] == ["on-push"]
    page.get_by_test_id(f"webhook-delete-{hooks[0]['id']}").dblclick()
    page.get_by_test_id("confirm-delete").click()
    page.locator(".q-notification", has_text="Webhook deleted").wait_for()
    _no_dialog_left(page)
    assert page.locator(".q-notification", has_text="was not found").count() == 0


def test_a_double_click_on_a_schedules_edit_and_delete_opens_one_dialog_each(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    admin = tokens["admin"]
    script = create_script(server, admin, "dbl-schedules", "#!/bin/bash\necho hi\n", status="active")
    made = api(
        server, "POST", f"/scripts/{script['id']}/schedules", admin, json={"name": "n", "cron": "@daily"}
    )
    signed_in(page, server, "operator", f"/scripts/{script['id']}?tab=schedules")
    page.get_by_test_id(f"schedule-edit-{made['id']}").dblclick()
    page.get_by_test_id("schedule-cron").fill("@hourly")
    page.get_by_test_id("schedule-submit").click()
    page.locator(".q-notification", has_text="Schedule saved").wait_for()
    _no_dialog_left(page)
    page.get_by_test_id(f"schedule-delete-{made['id']}").dblclick()
    page.get_by_test_id("confirm-delete").click()
    page.locator(".q-notification", has_text="Schedule deleted").wait_for()
    _no_dialog_left(page)
    assert api(server, "GET", f"/scripts/{script['id']}/schedules", admin)["items"] == []


def test_a_double_click_on_create_token_opens_one_form(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    signed_in(page, server, "viewer", "/tokens")
    page.get_by_test_id("token-add").dblclick()
    page.get_by_test_id("token-name").fill("ci-double")
    page.get_by_test_id("token-submit").click()
    page.get_by_test_id("token-done").click()
    _no_dialog_left(page)


def test_a_double_click_on_a_table_rows_button_opens_one_dialog(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """The Users table's row buttons reach the page as table events (`opens_dialog(with_args)`)."""
    signed_in(page, server, "admin", "/users")
    page.get_by_test_id("edit-viewer").dblclick()
    page.get_by_test_id("edit-role").wait_for()
    page.get_by_role("button", name="Cancel").click()
    _no_dialog_left(page)


def test_a_double_click_on_a_versions_roll_back_or_a_script_lists_run_opens_one_dialog(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """The Versions table's Roll back and the Scripts table's Run are table events too."""
    admin = tokens["admin"]
    script = create_script(server, admin, "dbl-versions", "#!/bin/bash\necho one\n", status="active")
    api(server, "PUT", f"/scripts/{script['id']}", admin, json={"content": "#!/bin/bash\necho two\n"})
    signed_in(page, server, "operator", f"/scripts/{script['id']}?tab=versions")
    page.get_by_test_id("rollback-1").dblclick()
    # The rollback loads the Versions tab again: a `goto` while that navigation is on its way
    # raced it (CI: the page stayed on the Versions tab).
    with page.expect_navigation(url=f"{server.url}/scripts/{script['id']}?tab=versions"):
        page.get_by_test_id("rollback-confirm").click()
    page.locator(".q-notification", has_text="Rolled back to version 1").wait_for()
    _no_dialog_left(page)
    page.goto(f"{server.url}/scripts?search=dbl-versions")
    page.get_by_test_id("run-dbl-versions").dblclick()
    page.get_by_test_id("execute-dialog").wait_for()
    page.get_by_role("button", name="Cancel").click()
    _no_dialog_left(page)
