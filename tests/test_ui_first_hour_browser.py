"""A new team's first hour in the browser, where it went wrong: a long message under a field
covered the field below it (a phone's run form); a choice parameter's "no default on a required
parameter" showed under its Options (and the editor said every script gets its values as
environment variables: not Ansible; why Test run is disabled in a new script's editor showed only
on a mouse's hover); the run form took no typing until clicked and ignored Enter;
a page whose session a logout in another tab ended went to the login page without a word, and
from there to the dashboard instead of back to the page (where the unsaved edit waited); the
Schedules page, empty, did not say where schedules are added; no page said which scripts' runs
wait for approval, nor could one be required there; an empty number setting was "(it is null)";
a timeout past its limit read "At most 86400" where the memory's said "Must be at most 65536";
an emptied Timeout box kept the old value and said "Saved"; an error notification naming long
parameters ran off a phone's screen and went after 5 s."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import pytest
from playwright.sync_api import expect

from opscraft.services import parameters
from tests.conftest import PASSWORD, LiveServer
from tests.ui_journey import (
    api,
    create_script,
    journey_server,
    journey_tokens,
    log_out,
    signed_in,
    type_code,
    wait_connected,
    wait_run,
)

pytestmark = pytest.mark.browser

GREET = '#!/bin/bash\necho "hello $WHO x$TIMES"\n'
PARAMS = [
    {"name": "WHO", "type": "string", "required": True},
    {"name": "TIMES", "type": "integer", "default": 2},
]
# Right-to-left override and pop: refused with a message of three lines at 375 px.
BIDI = "abc \u202edef\u202c"

server = journey_server("first-hour-ui")
tokens = journey_tokens()


def _field(page: Any, testid: str) -> Any:
    """The Quasar field (label, control and messages) around the input `testid`."""
    return page.locator(f'.q-field:has([data-testid="{testid}"])')


def _active_script(server: LiveServer, tokens: dict[str, dict[str, str]], name: str) -> int:
    return int(create_script(server, tokens["admin"], name, GREET, parameters=PARAMS, status="active")["id"])


def test_a_long_message_under_a_field_pushes_the_next_field_down_on_a_phone(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """Quasar keeps one line (20 px) under a field for its message: the rest of a longer message
    was drawn over the field below (the next parameter's label and value)."""
    script = _active_script(server, tokens, "phone-messages")
    page.set_viewport_size({"width": 375, "height": 800})
    signed_in(page, server, "viewer", f"/scripts/{script}")
    page.get_by_test_id("execute-button").click()
    page.get_by_test_id("param-WHO").fill(BIDI)
    page.get_by_test_id("execute-submit").click()
    message = _field(page, "param-WHO").get_by_text("bidirectional control characters")
    message.wait_for()
    below = _field(page, "param-TIMES").locator(".q-field__control").bounding_box()
    shown = message.bounding_box()
    assert shown["height"] > 30, shown  # several lines at this width: the case that overlapped
    assert shown["y"] + shown["height"] <= below["y"], (shown, below)


def test_a_notification_of_long_parameter_names_wraps_on_a_phone_and_stays_until_closed(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """The notification "Fix the highlighted parameters: NAME, ..." with names of 64 characters
    (the longest a parameter may take) ran past the notification's right edge on a phone, cut off, and went
    after 5 s (Quasar's default), like every error notification (`layout.notify_error` said it
    stays until closed): a person reading the list of names lost it mid-way."""
    names = [f"P{i}_" + "X" * 61 for i in range(2)]
    declared = [{"name": name, "type": "string", "required": True} for name in names]
    script = create_script(server, tokens["admin"], "long-names", GREET, parameters=declared, status="active")
    page.set_viewport_size({"width": 375, "height": 800})
    signed_in(page, server, "viewer", f"/scripts/{script['id']}")
    page.get_by_test_id("execute-button").click()
    page.get_by_test_id("execute-submit").click()
    message = page.locator(".q-notification.bg-negative .q-notification__message")
    expect(message).to_contain_text(names[1])
    overflow = "e => [e.scrollWidth - e.clientWidth, e.getBoundingClientRect().right, window.innerWidth]"
    hidden, right, width = message.evaluate(overflow)
    assert hidden <= 0 and right <= width, (hidden, right, width)
    page.wait_for_timeout(6000)  # past Quasar's 5 s default timeout, after which it went
    expect(message).to_be_visible()
    page.locator(".q-notification.bg-negative").get_by_role("button", name="Close").click()
    expect(message).to_have_count(0)


def test_a_required_value_of_blanks_only_is_refused_under_its_field(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """Spaces in a required text field started a run with a blank value."""
    script = _active_script(server, tokens, "blank-required")
    signed_in(page, server, "viewer", f"/scripts/{script}")
    page.get_by_test_id("execute-button").click()
    page.get_by_test_id("param-WHO").fill("   ")
    page.get_by_test_id("execute-submit").click()
    field = _field(page, "param-WHO")
    field.get_by_text(parameters.BLANK_REQUIRED).wait_for()
    assert "q-field--error" in (field.get_attribute("class") or "")
    assert re.search(r"/scripts/\d+$", page.url)  # no run started
    runs = page.request.get(f"{server.url}/api/v1/executions?script_id={script}", headers=tokens["admin"])
    assert runs.json()["total"] == 0


def test_a_choices_default_on_a_required_parameter_is_refused_under_default(
    server: LiveServer, page: Any
) -> None:
    """The message ("... make the parameter optional") contains "option", which sent it under
    the Options box of a choice parameter."""
    signed_in(page, server, "operator", "/scripts/new")
    # How values arrive, for each type (it said "environment variables": not for Ansible).
    page.get_by_text("Ansible as extra vars ({{ NAME }}), Terraform as variables (var.NAME)").wait_for()
    # Why Test run is disabled, said on the page (a tooltip needs a mouse: no keyboard, no phone).
    assert page.get_by_test_id("test-run").is_disabled()
    assert "save the script first" in page.get_by_test_id("test-run-after-save").inner_text()
    page.get_by_test_id("script-name").fill("choice-default")
    page.get_by_test_id("add-parameter").click()
    page.get_by_test_id("param-name-0").fill("REGION")
    page.get_by_test_id("param-type-0").click()
    page.get_by_role("option", name="Choice", exact=True).click()
    options = page.get_by_test_id("param-options-0")
    for option in ("eu", "us"):
        options.fill(option)
        options.press("Enter")
    page.get_by_test_id("param-default-0").fill("eu")
    page.get_by_test_id("param-required-0").click()
    page.get_by_test_id("save-script").click()
    default = _field(page, "param-default-0")
    default.get_by_text(re.compile("default not allowed on a required parameter", re.I)).wait_for()
    assert "q-field--error" in (default.get_attribute("class") or "")
    assert "q-field--error" not in (_field(page, "param-options-0").get_attribute("class") or "")
    assert page.url.endswith("/scripts/new")  # nothing saved


def test_the_run_form_takes_typing_at_once_and_enter_runs(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """Keyboard only: Execute, type the first parameter, Enter. The form had the focus on itself
    (typing went nowhere) and Enter in its fields did nothing, unlike every other form dialog."""
    script = _active_script(server, tokens, "keyboard-run")
    signed_in(page, server, "viewer", f"/scripts/{script}")
    page.get_by_test_id("execute-button").focus()
    page.keyboard.press("Enter")
    page.get_by_test_id("param-WHO").wait_for()
    page.wait_for_function("document.activeElement?.dataset.testid === 'param-WHO'")
    page.keyboard.type("keys")
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")  # a second Enter starts no second run
    page.wait_for_url(re.compile(r".*/executions/\d+$"))
    execution = int(page.url.rsplit("/", 1)[1])
    run = wait_run(server, tokens["admin"], execution)
    assert run["parameters"] == {"WHO": "keys", "TIMES": 2} and "hello keys x2" in run["output"]
    page.wait_for_timeout(1000)  # a second run, had the second Enter started one, is queued by now
    runs = page.request.get(
        f"{server.url}/api/v1/executions?script_id={script}", headers=tokens["admin"]
    ).json()
    assert runs["total"] == 1, runs


def test_a_logout_in_another_tab_says_so_and_leads_back_to_the_page(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    script = _active_script(server, tokens, "logout-elsewhere")
    editor = f"/scripts/{script}/edit"
    page.goto(f"{server.url}/login?next={quote(editor, safe='')}")
    page.get_by_test_id("login-username").fill("operator")
    page.get_by_test_id("login-password").fill(PASSWORD)
    page.get_by_test_id("login-submit").click()
    page.wait_for_url(f"{server.url}{editor}")
    wait_connected(page)
    type_code(page, "#!/bin/bash\necho typed-before-the-logout\n")

    other = page.context.new_page()
    log_out(other, server)
    # The page's own session check (every 10 s: the navigation badge's) finds the session over.
    page.wait_for_url(f"{server.url}/login?next={quote(editor, safe='')}&notice=logout")
    page.get_by_test_id("login-notice").get_by_text("You are logged out.").wait_for()
    page.get_by_test_id("login-username").fill("operator")
    page.get_by_test_id("login-password").fill(PASSWORD)
    page.get_by_test_id("login-submit").click()
    page.wait_for_url(f"{server.url}{editor}")
    wait_connected(page)
    page.get_by_text("Restored unsaved changes").wait_for()
    assert "typed-before-the-logout" in page.locator('[data-testid="script-editor"] .cm-content').inner_text()


def test_the_empty_schedules_page_says_where_schedules_are_added(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """The page lists every script's schedules: it said only "No schedules yet."."""
    signed_in(page, server, "viewer", "/schedules")
    empty = page.get_by_test_id("schedules-empty")
    expect(empty).to_have_text(re.compile(r"Add schedule here, or on a script's page, in its Schedules tab"))


def test_the_overview_says_whether_a_scripts_runs_need_approval(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    free = _active_script(server, tokens, "approval-free")
    held = _active_script(server, tokens, "approval-held")
    policy = {"required": 2, "expires_after_hours": 12}
    set_policy = page.request.put(
        f"{server.url}/api/v1/scripts/{held}/approval", data=policy, headers=tokens["operator"]
    )
    assert set_policy.ok, set_policy.text()
    signed_in(page, server, "viewer", f"/scripts/{held}")
    # The server's team is one admin and one operator: a run either requests gets one approval
    # at most, and the Overview says so next to the rule (it said nothing: runs waited and expired).
    expect(page.get_by_test_id("approval-policy")).to_have_text(
        "2 approvals by other operators or admins before a run starts; a request expires after 12 h. "
        "Warning: runs need 2 approvals, but only 1 could be given to a run an operator or admin "
        "requests: there are 2 active operators or admins, and neither a run's requester nor the "
        "author of the version it runs may approve it; until more operators or admins are added, "
        "such runs wait and expire"
    )
    page.goto(f"{server.url}/scripts/{free}")
    expect(page.get_by_test_id("approval-policy")).to_have_text("not required")
    expect(page.get_by_test_id("approval-edit")).to_have_count(0)  # a viewer sets no requirement


def test_an_operator_requires_approval_from_the_overview_and_an_admin_removes_it(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """The Overview said "not required (PUT /api/v1/scripts/7/approval requires it)": a team in
    the browser could not make a script's runs wait for a second person. The form keeps the
    service's rules: a fraction is refused under its field, an operator may not lower the
    requirement (only an admin may), an admin removes it after a confirmation."""
    sid = _active_script(server, tokens, "approval-from-the-page")
    policy_url = f"{server.url}/api/v1/scripts/{sid}/approval"
    signed_in(page, server, "operator", f"/scripts/{sid}")
    expect(page.get_by_test_id("approval-policy")).to_have_text("not required")
    page.get_by_test_id("approval-edit").click()
    page.get_by_test_id("approval-required").fill("1.5")
    page.get_by_test_id("approval-submit").click()
    expect(_field(page, "approval-required")).to_contain_text("whole number")
    assert page.request.get(policy_url, headers=tokens["operator"]).json() is None, "nothing saved"
    page.get_by_test_id("approval-required").fill("2")
    page.get_by_test_id("approval-hours").fill("12")
    page.get_by_test_id("approval-submit").click()
    # Saved from the form as through the API: the team (one admin, one operator) can give one.
    expect(page.get_by_test_id("approval-policy")).to_contain_text(
        "2 approvals by other operators or admins before a run starts; a request expires after 12 h. "
        "Warning: runs need 2 approvals, but only 1 could be given"
    )
    stored = page.request.get(policy_url, headers=tokens["operator"]).json()
    assert (stored["required"], stored["expires_after_hours"]) == (2, 12), stored
    page.get_by_test_id("approval-edit").click()
    expect(page.get_by_test_id("approval-remove")).to_have_count(0)  # operators never remove one
    page.get_by_test_id("approval-required").fill("1")
    page.get_by_test_id("approval-submit").click()
    page.get_by_text(
        "only an admin may lower the approvals script approval-from-the-page requires"
    ).wait_for()
    assert page.request.get(policy_url, headers=tokens["operator"]).json()["required"] == 2
    page.context.clear_cookies()
    signed_in(page, server, "admin", f"/scripts/{sid}")
    page.get_by_test_id("approval-edit").click()
    page.get_by_test_id("approval-remove").click()
    page.get_by_test_id("confirm-remove-approval").click()
    expect(page.get_by_test_id("approval-policy")).to_have_text("not required")
    assert page.request.get(policy_url, headers=tokens["admin"]).json() is None


def test_removing_the_approval_requirement_ends_its_dialog_and_says_so(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """The removal was made, but its dialog stayed open and said nothing (the Overview changed
    behind it, live): the service answers None, which the form took for a failure
    (`dialog_submit.Saved`)."""
    sid = _active_script(server, tokens, "approval-removed")
    policy = {"required": 1, "expires_after_hours": 24}
    api(server, "PUT", f"/scripts/{sid}/approval", tokens["admin"], json=policy)
    signed_in(page, server, "admin", f"/scripts/{sid}")
    page.get_by_test_id("approval-edit").click()
    page.get_by_test_id("approval-remove").click()
    page.get_by_test_id("confirm-remove-approval").click()
    page.locator(".q-notification", has_text="Approval requirement removed").wait_for()
    expect(page.get_by_test_id("approval-submit")).to_have_count(0)
    expect(page.get_by_test_id("approval-policy")).to_have_text("not required")


def test_an_empty_number_setting_says_it_is_empty(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """A number box left empty sends null: its message said "(it is null)"."""
    signed_in(page, server, "admin", "/settings")
    page.get_by_test_id("setting-warm_pool_size").fill("")
    page.get_by_test_id("settings-save").click()
    _field(page, "setting-warm_pool_size").get_by_text(
        "Must be a whole number (it is empty, a JSON null)"
    ).wait_for()


def test_a_timeout_past_its_limit_says_the_limit_and_the_value(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """It said "At most 86400" where the memory field said "Must be at most 65536"."""
    signed_in(page, server, "operator", "/scripts/new")
    page.get_by_test_id("script-name").fill("long-timeout")
    page.get_by_test_id("timeout").fill("1000000")
    page.get_by_test_id("save-script").click()
    message = "Must be at most 86400, not 1000000"  # the setting's name is the API's (ui.plain_words)
    _field(page, "timeout").get_by_text(message).wait_for()
    assert page.url.endswith("/scripts/new")  # nothing saved


def test_an_emptied_run_setting_is_refused_under_its_box_not_kept(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """The editor sent null for the empty box, which the update dropped: "Saved", a new version,
    and the old timeout still there."""
    script = _active_script(server, tokens, "emptied-timeout")
    signed_in(page, server, "operator", f"/scripts/{script}/edit")
    page.get_by_test_id("timeout").fill("")
    page.get_by_test_id("save-script").click()
    _field(page, "timeout").get_by_text("Must be a whole number (it is empty, a JSON null)").wait_for()
    assert page.url.endswith(f"/scripts/{script}/edit")  # nothing saved
    stored = page.request.get(f"{server.url}/api/v1/scripts/{script}", headers=tokens["admin"]).json()
    assert stored["current_version"] == 1, stored
