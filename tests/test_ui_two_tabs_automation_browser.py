"""Two tabs editing the same field of one schedule or webhook: the later save is refused under
that field (`partial.three_way`, 409) and the earlier one stays; it used to put its own value
over the other tab's save without a word. Edits of different fields still merge
(tests/test_ui_automation_edit_browser.py)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import LiveServer
from tests.ui_journey import api, create_script, journey_server, journey_tokens, signed_in

pytestmark = pytest.mark.browser

server = journey_server("two-tabs-automation-ui")
tokens = journey_tokens()
# The same user's two tabs: said so (partial.changed_meanwhile; it said "someone else").
CHANGED_MEANWHILE = "changed by you in another tab, window or API client since your edit started"


def _save_in_two_tabs(
    server: LiveServer, page: Any, second: Any, url: str, edit: str, field: str, first: str, later: str
) -> None:
    """Open the edit dialog (`edit`, a test id) in both tabs, save `first` in the second tab,
    then `later` in the first: the first tab is told under `field` and keeps its dialog."""
    for tab in (page, second):
        signed_in(tab, server, "operator", url)
        tab.get_by_test_id(edit).click()
        tab.get_by_test_id(field).wait_for()
    prefix = edit.split("-")[0]
    second.get_by_test_id(field).fill(first)
    second.get_by_test_id(f"{prefix}-submit").click()
    second.get_by_test_id(f"{prefix}-submit").wait_for(state="detached")
    page.get_by_test_id(field).fill(later)
    page.get_by_test_id(f"{prefix}-submit").click()
    box = page.locator(".q-field", has=page.get_by_test_id(field))
    box.locator(".q-field__messages").get_by_text(CHANGED_MEANWHILE).wait_for()
    assert page.get_by_test_id(field).input_value() == later  # what was typed is still there


def test_a_schedules_cron_saved_in_two_tabs_is_refused_in_the_later_one(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    admin = tokens["admin"]
    script = create_script(server, admin, "two-tab-schedule", "#!/bin/bash\necho hi\n", status="active")
    path = f"/scripts/{script['id']}/schedules"
    made = api(server, "POST", path, admin, json={"name": "nightly", "cron": "@daily"})
    second = page.context.new_page()
    url = f"/scripts/{script['id']}?tab=schedules"
    _save_in_two_tabs(
        server, page, second, url, f"schedule-edit-{made['id']}", "schedule-cron", "@hourly", "@weekly"
    )
    assert api(server, "GET", f"{path}/{made['id']}", admin)["cron"] == "0 * * * *"


def test_a_webhooks_name_saved_in_two_tabs_is_refused_in_the_later_one(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    admin = tokens["admin"]
    script = create_script(server, admin, "two-tab-webhook", "#!/bin/bash\necho hi\n", status="active")
    path = f"/scripts/{script['id']}/webhooks"
    made = api(server, "POST", path, admin, json={"name": "on-push"})
    second = page.context.new_page()
    url = f"/scripts/{script['id']}?tab=webhooks"
    _save_in_two_tabs(
        server, page, second, url, f"webhook-edit-{made['id']}", "webhook-name", "on-tag", "on-merge"
    )
    assert api(server, "GET", f"{path}/{made['id']}", admin)["name"] == "on-tag"


def test_a_then_run_links_parameters_saved_in_two_tabs_are_refused_in_the_later_one(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    admin = tokens["admin"]
    source = create_script(server, admin, "two-tab-source", "#!/bin/bash\necho hi\n", status="active")
    target = create_script(
        server,
        admin,
        "two-tab-target",
        "#!/bin/bash\necho $NOTE\n",
        parameters={"NOTE": "n"},
        status="active",
    )
    path = f"/scripts/{source['id']}/chains"
    made = api(server, "POST", path, admin, json={"target_script_id": target["id"]})
    second = page.context.new_page()
    url = f"/scripts/{source['id']}?tab=chains"
    first, later = "from the second tab", "from the first tab"
    _save_in_two_tabs(server, page, second, url, f"chain-edit-{made['id']}", "param-NOTE", first, later)
    assert api(server, "GET", f"{path}/{made['id']}", admin)["parameters"] == {"NOTE": "from the second tab"}
