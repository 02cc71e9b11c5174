"""Schedules and webhooks as their users expect them: the /schedules list adds a schedule (the
script first, then the script tab's form), and a schedule's parameters and a webhook's fixed
values are set in one field per declared parameter, as for a manual run (typed, with defaults
and the problem under the field), not typed as a JSON object. Stored values show in the fields;
those the script's declaration no longer takes are shown with the reason, not dropped unsaid."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import LiveServer
from tests.ui_journey import api, create_script, field_messages, journey_server, journey_tokens, signed_in

pytestmark = pytest.mark.browser

server = journey_server("automation-parameters-ui")
tokens = journey_tokens()

TYPED = [
    {"name": "COUNT", "type": "integer", "required": True},
    {"name": "MODE", "type": "choice", "options": ["fast", "safe"], "default": "safe"},
    {"name": "DRY", "type": "boolean", "default": True},
]


def _typed_script(server: LiveServer, admin: dict[str, str], name: str) -> dict[str, Any]:
    return create_script(
        server, admin, name, "#!/bin/bash\necho $COUNT $MODE $DRY\n", parameters=TYPED, status="active"
    )


def _refused_then_saved(
    page: Any, server: LiveServer, admin: dict[str, str], path: str, submit: str, bad: str
) -> None:
    """COUNT typed `bad` (not an integer) is refused under its field and nothing is in the list at
    `path` (API); then COUNT is typed 2 and the form is sent again (its `submit` button)."""
    page.get_by_test_id("param-COUNT").fill(bad)
    page.get_by_test_id(submit).click()
    field_messages(page, "param-COUNT").get_by_text("must be an integer").wait_for()
    assert api(server, "GET", path, admin)["items"] == []
    page.get_by_test_id("param-COUNT").fill("2")
    page.get_by_test_id(submit).click()


def test_the_schedules_page_adds_a_schedule_to_a_chosen_script(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """/schedules listed every schedule and had no way to add one (a new user was stuck there)."""
    script = _typed_script(server, tokens["admin"], "nightly-report")
    signed_in(page, server, "operator", "/schedules")
    page.get_by_test_id("schedule-add").click()
    page.get_by_test_id("schedule-script").click()
    page.get_by_role("option", name="nightly-report").click()
    page.get_by_test_id("schedule-script-next").click()
    # The script tab's form, for that script: its parameters as fields.
    page.get_by_text("Add a schedule to nightly-report").wait_for()
    page.get_by_test_id("schedule-name").fill("every-night")
    page.get_by_test_id("param-COUNT").fill("3")
    page.get_by_test_id("schedule-submit").click()
    page.locator(".q-notification", has_text="Schedule added").wait_for()
    (made,) = api(server, "GET", f"/scripts/{script['id']}/schedules", tokens["admin"])["items"]
    assert (made["name"], made["parameters"]) == ("every-night", {"COUNT": 3, "MODE": "safe", "DRY": True})
    page.get_by_test_id(f"schedule-{made['id']}").get_by_text("every-night").wait_for()


def test_a_viewer_gets_no_add_on_the_schedules_page(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    signed_in(page, server, "viewer", "/schedules")
    page.get_by_test_id("nav-schedules").wait_for(state="attached")
    page.wait_for_load_state("networkidle")
    assert page.get_by_test_id("schedule-add").count() == 0


def test_a_schedules_parameters_are_typed_fields_with_the_problem_under_each(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """The form had one JSON box for every parameter: `{"COUNT": "x"}` was refused in a toast-like
    line under the box, and nothing said which parameters the script takes or their defaults."""
    admin = tokens["admin"]
    script = _typed_script(server, admin, "typed-schedule")
    signed_in(page, server, "operator", f"/scripts/{script['id']}?tab=schedules")
    page.get_by_test_id("schedule-add").click()
    page.get_by_test_id("schedule-name").fill("hourly")
    # The defaults are in their fields, as in the run form.
    assert page.get_by_test_id("param-MODE").locator("..").inner_text().find("safe") >= 0
    assert page.get_by_test_id("param-DRY").get_attribute("aria-checked") == "true"
    page.get_by_test_id("param-COUNT").fill("many")
    page.get_by_test_id("schedule-submit").click()
    field_messages(page, "param-COUNT").get_by_text("must be an integer").wait_for()
    # A value only the service refuses (beyond 64 bits) is said under its field too.
    page.get_by_test_id("param-COUNT").fill("9" * 30)
    field_messages(page, "param-COUNT").get_by_text("64-bit").wait_for()
    assert api(server, "GET", f"/scripts/{script['id']}/schedules", admin)["items"] == []
    page.get_by_test_id("param-COUNT").fill("12")
    page.get_by_test_id("param-DRY").click()
    page.get_by_test_id("schedule-submit").click()
    page.locator(".q-notification", has_text="Schedule added").wait_for()
    (made,) = api(server, "GET", f"/scripts/{script['id']}/schedules", admin)["items"]
    assert made["parameters"] == {"COUNT": 12, "MODE": "safe", "DRY": False}


def test_stored_values_show_in_the_fields_and_misfits_are_explained(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """Values the script's declaration no longer takes (a parameter dropped, or now of another
    type) are shown with the reason; the save then leaves the dropped one out and stores the
    fixed one."""
    admin = tokens["admin"]
    script = create_script(
        server,
        admin,
        "changed-declaration",
        "#!/bin/bash\necho $COUNT\n",
        parameters=[{"name": "COUNT", "type": "string"}, {"name": "OLD", "type": "string"}],
        status="active",
    )
    path = f"/scripts/{script['id']}/schedules"
    made = api(
        server,
        "POST",
        path,
        admin,
        json={"name": "kept", "cron": "0 3 * * *", "parameters": {"COUNT": "lots", "OLD": "x"}},
    )
    api(server, "PUT", f"/scripts/{script['id']}", admin, json={"parameters": TYPED[:1]})
    signed_in(page, server, "operator", f"/scripts/{script['id']}?tab=schedules")
    page.get_by_test_id(f"schedule-edit-{made['id']}").click()
    assert page.get_by_test_id("param-COUNT").input_value() == "lots"
    field_messages(page, "param-COUNT").get_by_text("The stored value must be an integer").wait_for()
    unknown = page.get_by_test_id("param-unknown-OLD")
    unknown.get_by_text("OLD = x: the script no longer declares this parameter").wait_for()
    page.get_by_test_id("param-COUNT").fill("7")
    page.get_by_test_id("schedule-submit").click()
    page.locator(".q-notification", has_text="Schedule saved").wait_for()
    assert api(server, "GET", f"{path}/{made['id']}", admin)["parameters"] == {"COUNT": 7}
    # Opened again: the stored values in their fields, nothing to explain.
    page.get_by_test_id(f"schedule-edit-{made['id']}").click()
    assert page.get_by_test_id("param-COUNT").input_value() == "7"
    assert page.get_by_test_id("param-unknown-OLD").count() == 0


def test_a_webhooks_fixed_values_are_typed_fields(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """A webhook's fixed parameters were a JSON box too. No field is required there (the request
    body may give the value through the mapping), but a required parameter neither mapped nor
    given is said under its field. The fields start empty: a default is not stored as fixed."""
    admin = tokens["admin"]
    script = _typed_script(server, admin, "typed-webhook")
    path = f"/scripts/{script['id']}/webhooks"
    signed_in(page, server, "operator", f"/scripts/{script['id']}?tab=webhooks")
    page.get_by_test_id("webhook-add").click()
    page.get_by_test_id("webhook-name").fill("on-push")
    # Empty at first, each saying the default it leaves to the script.
    field_messages(page, "param-MODE").get_by_text("Empty: the default, safe").wait_for()
    field_messages(page, "param-DRY").get_by_text("Empty: the default, true").wait_for()
    page.get_by_test_id("webhook-submit").click()
    field_messages(page, "param-COUNT").get_by_text(
        "map it from the request body or give it a fixed value"
    ).wait_for()
    _refused_then_saved(page, server, admin, path, "webhook-submit", "1.5")
    page.get_by_test_id("webhook-url").wait_for()
    (made,) = api(server, "GET", path, admin)["items"]
    assert made["parameters"] == {"COUNT": 2}, "an empty field is the default at each call, not stored"
    page.keyboard.press("Escape")
    page.get_by_test_id(f"webhook-edit-{made['id']}").click()
    assert page.get_by_test_id("param-COUNT").input_value() == "2"


def test_a_then_run_links_fixed_values_are_the_chosen_scripts_fields(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """A "then run" link's fixed parameters were a JSON box as well: the fields are those of the
    script chosen to start, built when it is chosen, its stored values in them on an edit."""
    admin = tokens["admin"]
    source = create_script(server, admin, "chain-source", "#!/bin/bash\ntrue\n", status="active")
    _typed_script(server, admin, "chain-target-typed")
    path = f"/scripts/{source['id']}/chains"
    signed_in(page, server, "operator", f"/scripts/{source['id']}?tab=chains")
    page.get_by_test_id("chain-add").click()
    assert page.get_by_test_id("param-COUNT").count() == 0, "no script chosen: no fields"
    page.get_by_test_id("chain-target").click()
    page.get_by_role("option", name="chain-target-typed").click()
    _refused_then_saved(page, server, admin, path, "chain-submit", "x")
    page.locator(".q-notification", has_text="Link added").wait_for()
    (made,) = api(server, "GET", path, admin)["items"]
    assert made["parameters"] == {"COUNT": 2}
    page.get_by_test_id(f"chain-edit-{made['id']}").click()
    assert page.get_by_test_id("param-COUNT").input_value() == "2"


def test_the_approvals_page_says_where_a_script_is_made_to_require_approval(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """The list of waiting runs has nothing to add (a run waits when its script requires
    approval), but it did not say where that is set: a user looking for it was stuck there."""
    signed_in(page, server, "operator", "/approvals")
    page.get_by_test_id("approvals-how").get_by_text("on its page: Overview, Require approval").wait_for()
