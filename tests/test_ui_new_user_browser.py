"""What a new user met (issue: a tester's first hour): test runs unmarked on the Approvals page,
the run page's approval card without its count, a schedule's JSON list answered with a raw path,
stored values shown as `run_once`, missing pages answering 200 or NiceGUI's raw 404, unknown
address parameters ignored, and binary output flooding the console with xterm.js errors."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from opscraft.api.methods import NOT_FOUND_MESSAGE
from opscraft.services.errors import GONE_WHY
from tests.conftest import PASSWORD, LiveServer
from tests.ui_journey import (
    API_TIMEOUT,
    create_script,
    journey_server,
    journey_tokens,
    signed_in,
    start_run,
    token,
    wait_connected,
    wait_for_output,
    wait_run,
)

pytestmark = pytest.mark.browser

server = journey_server("new-user-ui")
tokens = journey_tokens()


def _field(page: Any, testid: str) -> Any:
    return page.locator(".q-field", has=page.get_by_test_id(testid))


def test_a_test_run_is_marked_in_every_list_and_its_card_counts_approvals(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    script = create_script(server, tokens["admin"], "t-bash", "echo SAVED\n", status="active")
    policy = {"required": 2, "expires_after_hours": 24}
    url = f"{server.url}/api/v1/scripts/{script['id']}/approval"
    assert httpx.put(url, json=policy, headers=tokens["admin"]).status_code == 200
    r = httpx.post(
        f"{server.url}/api/v1/scripts/{script['id']}/test-runs",
        json={"content": "echo DRAFT\n"},
        headers=tokens["operator"],
    )
    assert r.status_code == 202, r.text
    run_id = r.json()["id"]
    signed_in(page, server, "admin")
    # Approvals: the pending run says it is a test run, and its count.
    page.goto(f"{server.url}/approvals")
    pending = page.get_by_test_id(f"pending-{run_id}")
    pending.get_by_text("test run (unsaved, from v1)").wait_for()
    assert "0 of 2 approvals" in pending.inner_text()
    # How it started, in the words of the history and the run page (it said "(api)").
    assert "requested by operator (API)" in pending.inner_text(), pending.inner_text()
    # The run page's approval card counts too, and after one approval says so.
    page.goto(f"{server.url}/executions/{run_id}")
    wait_connected(page)
    progress = page.get_by_test_id("approval-progress")
    assert progress.inner_text() == "0 of 2 approvals"
    # An approval by someone demoted since counts no more: the card counted the trail's.
    body = {"username": "approver", "email": "approver@example.com", "password": PASSWORD, "role": "operator"}
    r = httpx.post(f"{server.url}/api/v1/users", json=body, headers=tokens["admin"], timeout=API_TIMEOUT)
    assert r.status_code == 201, r.text
    approver_id = r.json()["id"]
    approve = f"{server.url}/api/v1/executions/{run_id}/approve"
    r = httpx.post(approve, json={}, headers=token(server, "approver"), timeout=API_TIMEOUT)
    assert r.status_code == 200, r.text
    demoted = {"role": "viewer"}
    r = httpx.put(
        f"{server.url}/api/v1/users/{approver_id}", json=demoted, headers=tokens["admin"], timeout=API_TIMEOUT
    )
    assert r.status_code == 200, r.text
    page.reload()
    page.get_by_test_id("approval-trail-approver").wait_for()
    assert page.get_by_test_id("approval-progress").inner_text() == "0 of 2 approvals"
    page.get_by_text("the approval of approver no longer counts").wait_for()
    page.get_by_test_id(f"approve-{run_id}").click()  # the page reloads once it is recorded
    page.wait_for_function(
        "document.querySelector('[data-testid=\"approval-progress\"]')?.innerText === '1 of 2 approvals'"
    )
    # The lists of runs: the executions history, the script's tab, the dashboard.
    for address, shown in {
        "/executions": "t-bash · test run (unsaved, from v1)",
        f"/scripts/{script['id']}?tab=executions": "test run (unsaved, from v1)",  # its version column
        "/": "t-bash · test run (unsaved, from v1)",
    }.items():
        page.goto(server.url + address)
        page.get_by_test_id("runs-table").get_by_text(shown, exact=True).first.wait_for()


def test_the_schedule_dialog_shows_labels_and_a_field_per_parameter(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    script = create_script(server, tokens["admin"], "greet", "echo $NAME\n", parameters={"NAME": "x"})
    signed_in(page, server, "operator", then=f"/scripts/{script['id']}?tab=schedules")
    wait_connected(page)
    page.get_by_test_id("schedule-add").click()
    page.get_by_test_id("schedule-name").fill("nightly")
    # The parameter has its field, holding its default (a JSON box said only "must be a JSON object").
    assert page.get_by_test_id("param-NAME").input_value() == "x"
    # The selects show words for people; the stored values are what is saved.
    assert "Run once, for the latest missed time" in _field(page, "schedule-missed").inner_text()
    assert "Skip this run" in _field(page, "schedule-overlap").inner_text()
    page.get_by_test_id("schedule-overlap").click()
    page.get_by_role("option", name="Queue it until the previous run ends", exact=True).click()
    page.get_by_test_id("param-NAME").fill("night")
    page.get_by_test_id("schedule-submit").click()
    page.locator(".q-notification", has_text="Schedule added").wait_for()
    listed = httpx.get(f"{server.url}/api/v1/scripts/{script['id']}/schedules", headers=tokens["admin"])
    assert [(s["missed_policy"], s["overlap_policy"], s["parameters"]) for s in listed.json()["items"]] == [
        ("run_once", "queue", {"NAME": "night"})
    ]


# address -> (status, the message shown, where the page's link leads)
MISSING = {
    "/nonexistent": (404, "There is no page at /nonexistent.", "/"),
    "/scripts/99999": (404, f"this script was not found: {GONE_WHY}", "/scripts"),
    "/scripts/99999/edit": (404, f"this script was not found: {GONE_WHY}", "/scripts"),
    "/executions/99999": (404, f"this execution was not found: {GONE_WHY}", "/executions"),
}


def test_a_missing_page_answers_404_inside_the_frame_and_unknown_parameters_are_named(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    signed_in(page, server, "admin")
    for path, (status, message, back) in MISSING.items():
        response = page.goto(server.url + path)
        assert response.status == status, path
        assert page.get_by_test_id("not-found").inner_text() == message, path
        page.get_by_test_id("whoami").wait_for()  # inside the usual frame
        page.get_by_test_id("not-found-back").click()
        page.wait_for_url(server.url + back)
    # An API address keeps its JSON.
    missing_api = httpx.get(f"{server.url}/api/v1/nonexistent", headers=tokens["admin"])
    assert missing_api.status_code == 404 and missing_api.json()["detail"] == NOT_FOUND_MESSAGE
    # An address parameter a page does not read is named, but the page opens: a mistyped filter
    # does not pass for an applied one, and a link with a tracking tag still works.
    for path, problem in {
        "/audit?actor_id=abc": "actor_id is not a parameter of this page (it reads only action, "
        "actor_name, page, since, target_id, target_type, until)",
        "/executions?scrip_id=1": "scrip_id is not a parameter of this page (it reads only cursor, host, "
        "host_status, script_id, since, status, trigger, until, user_id)",
        "/?utm_source=mail": "utm_source is not a parameter of this page (it reads none)",
        # Given twice, a filter is read once (the last): said, as the API refuses it.
        "/executions?status=success&status=failed": "status is given 2 times (the page reads only the last)",
    }.items():
        response = page.goto(server.url + path)
        assert response.status == 200, path
        page.locator(".q-notification", has_text=f"Ignored in the address: {problem}").wait_for()
        page.get_by_test_id("whoami").wait_for()
        assert page.get_by_test_id("bad-address").count() == 0, path
    # An emptied filter box (`?script_id=`) is no filter, as `?status=` already was.
    response = page.goto(f"{server.url}/executions?script_id=&status=")
    assert response.status == 200
    page.get_by_test_id("whoami").wait_for()
    assert page.get_by_test_id("bad-address").count() == 0


def test_binary_output_does_not_flood_the_console(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """Random bytes hold ESC and C1 controls (U+0080-U+009F, xterm's 8-bit CSI, OSC, DCS) followed
    by anything: xterm.js logged a "Parsing error" for each."""
    content = "#!/bin/bash\nhead -c 200000 /dev/urandom\necho\necho BINARY-DONE\n"
    script = create_script(server, tokens["admin"], "noise", content, status="active")
    run_id = start_run(server, tokens["admin"], script["id"])
    assert "BINARY-DONE" in wait_run(server, tokens["admin"], run_id)["output"]
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type in ("error", "warning") else None)
    signed_in(page, server, "viewer", then=f"/executions/{run_id}")
    wait_connected(page)
    wait_for_output(page, "BINARY-DONE")
    parse_errors = [e for e in errors if "Parsing error" in e]
    assert parse_errors == [], f"{len(parse_errors)} xterm.js parse errors, first: {parse_errors[:3]}"


def test_a_rollback_that_breaks_a_schedule_says_so_after_the_page_changes(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """The notices of a save or rollback were toasts on the page the save left at once: a
    schedule whose stored parameters no longer fit must be said on the page shown next."""
    choice = [{"name": "P", "type": "choice", "options": ["x"], "default": "x"}]
    script = create_script(server, tokens["admin"], "param-change", "echo $P\n", parameters=choice)
    integer = [{"name": "P", "type": "integer", "default": 1}]
    url = f"{server.url}/api/v1/scripts/{script['id']}"
    assert httpx.put(url, json={"parameters": integer}, headers=tokens["admin"]).status_code == 200
    body = {"name": "nightly", "cron": "0 1 * * *", "parameters": {"P": 5}}
    assert httpx.post(f"{url}/schedules", json=body, headers=tokens["admin"]).status_code == 201
    signed_in(page, server, "operator")
    page.goto(f"{url.replace('/api/v1', '')}?tab=versions")
    wait_connected(page)
    page.get_by_test_id("rollback-1").click()
    page.get_by_test_id("rollback-confirm").click()
    page.wait_for_url(f"{server.url}/scripts/{script['id']}?tab=versions")
    notice = page.locator(".q-notification", has_text="schedule 'nightly' stores parameters")
    notice.wait_for()
    assert "its next fire will fail; edit or pause it" in notice.inner_text()


def test_an_unknown_tab_is_named_not_silently_the_overview(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """`?tab=` naming no tab of the script page (a typo, an old link) opens the overview with a
    warning naming the value and the page's tabs, like any address part the page ignores; a
    known tab opens without one."""
    script = create_script(server, tokens["admin"], "tabbed", "echo hi\n")
    signed_in(page, server, "viewer")
    response = page.goto(f"{server.url}/scripts/{script['id']}?tab=webhoks")
    assert response is not None and response.status == 200
    note = page.locator(".q-notification", has_text="Ignored in the address: tab 'webhoks' is not one of")
    note.wait_for()
    assert "overview, content, versions" in note.inner_text() and "webhooks" in note.inner_text()
    page.get_by_test_id("tab-overview").wait_for()
    assert "q-tab--active" in (page.get_by_test_id("tab-overview").get_attribute("class") or "")
    page.goto(f"{server.url}/scripts/{script['id']}?tab=versions")
    wait_connected(page)
    page.get_by_test_id("tab-versions").wait_for()
    assert "q-tab--active" in (page.get_by_test_id("tab-versions").get_attribute("class") or "")
    assert page.locator(".q-notification", has_text="Ignored in the address").count() == 0
