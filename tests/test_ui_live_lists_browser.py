"""Every list follows changes made elsewhere, against a real `opscraft serve`: a change made through
the API (another user, another tab) shows in a page left open within the live interval
(`OPSCRAFT_LIVE_SECONDS`, 1 s here), and an open dialog or a field being typed in stays as it was
while the list changes under it. The lists were read once when the page was built (or after the page's own
clicks): a script's schedules, webhooks, "then run" links and secrets, API tokens, users, secrets,
notification channels and rules, approvals and the scripts list showed another user's change only
after a reload."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.conftest import PASSWORD, LiveServer
from tests.ui_journey import (
    API_TIMEOUT,
    LIVE_ENV,
    create_script,
    journey_server,
    make_users,
    signed_in,
    start_run,
    token,
)

pytestmark = pytest.mark.browser

server = journey_server("live-lists-ui", env=LIVE_ENV)


@pytest.fixture(scope="module")
def tokens(server: LiveServer) -> dict[str, dict[str, str]]:
    """The bearer headers of the admin, operator and viewer, and of a second admin, boss."""
    made = make_users(server)
    body = {"username": "boss", "email": "boss@example.com", "password": PASSWORD, "role": "admin"}
    response = httpx.post(f"{server.url}/api/v1/users", json=body, headers=made["admin"], timeout=API_TIMEOUT)
    assert response.status_code == 201, response.text
    return made | {"boss": token(server, "boss")}


def _api(server: LiveServer, method: str, path: str, headers: dict[str, str], **body: Any) -> Any:
    response = httpx.request(
        method, f"{server.url}/api/v1{path}", headers=headers, timeout=API_TIMEOUT, **body
    )
    assert response.status_code < 300, response.text
    return response.json() if response.content else None


def _cancel(page: Any) -> None:
    page.get_by_role("dialog").get_by_role("button", name="Cancel").click()
    page.locator(".q-dialog").wait_for(state="detached")


# A script's tab -> (its rows' test id, a first row, a change to it, what the row then shows, a second row)
AUTOMATION = {
    "schedules": (
        "schedule",
        {"name": "nightly", "cron": "0 3 * * *"},
        {"cron": "0 4 * * *"},
        "0 4 * * *",
        {"name": "hourly", "cron": "0 * * * *"},
    ),
    "webhooks": ("webhook", {"name": "on-push"}, {"enabled": False}, "Resume", {"name": "on-tag"}),
}


@pytest.mark.parametrize("tab", list(AUTOMATION))
def test_a_scripts_schedules_and_webhooks_follow_other_users(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any, tab: str
) -> None:
    row, first_body, change, changed, second_body = AUTOMATION[tab]
    operator = tokens["operator"]
    script = create_script(server, operator, f"live-{tab}", "echo hi\n", status="active")
    path = f"/scripts/{script['id']}/{tab}"
    first = _api(server, "POST", path, operator, json=first_body)
    signed_in(page, server, "admin", then=f"/scripts/{script['id']}?tab={tab}")
    page.get_by_test_id(f"{row}-edit-{first['id']}").click()
    page.get_by_test_id(f"{row}-name").fill("typed here")

    # The row being edited changes, another is added: both show, the dialog stays as typed.
    _api(server, "PUT", f"{path}/{first['id']}", operator, json=change)
    second = _api(server, "POST", path, operator, json=second_body)
    page.get_by_test_id(f"{row}-{second['id']}").wait_for()
    page.get_by_test_id(f"{row}-{first['id']}").get_by_text(changed, exact=False).wait_for()
    assert page.get_by_test_id(f"{row}-name").input_value() == "typed here"
    _cancel(page)

    _api(server, "DELETE", f"{path}/{second['id']}", operator)
    page.get_by_test_id(f"{row}-{second['id']}").wait_for(state="detached")


def test_a_scripts_then_run_links_follow_other_users(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """The "Then run" tab was read once: another user's new link, a target renamed or deleted
    (which disables the link) showed only after a reload. The dialog being typed in stays."""
    operator = tokens["operator"]
    source = create_script(server, operator, "live-source", "echo hi\n", status="active")
    target = create_script(server, operator, "live-target", "echo hi\n", status="active")
    other = create_script(server, operator, "live-other", "echo hi\n", status="active")
    path = f"/scripts/{source['id']}/chains"
    first = _api(server, "POST", path, operator, json={"target_script_id": target["id"]})
    signed_in(page, server, "admin", then=f"/scripts/{source['id']}?tab=chains")
    page.get_by_test_id(f"chain-target-{first['id']}").get_by_text("live-target").wait_for()
    page.get_by_test_id(f"chain-edit-{first['id']}").click()
    page.get_by_test_id("chain-mapping").fill("typed here")

    second = _api(server, "POST", path, operator, json={"target_script_id": other["id"]})
    _api(server, "PUT", f"/scripts/{target['id']}", operator, json={"name": "live-renamed"})
    page.get_by_test_id(f"chain-{second['id']}").wait_for()
    page.get_by_test_id(f"chain-target-{first['id']}").get_by_text("live-renamed").wait_for()
    assert page.get_by_test_id("chain-mapping").input_value() == "typed here"
    _cancel(page)

    _api(server, "DELETE", f"/scripts/{target['id']}", operator)
    page.get_by_test_id(f"chain-{first['id']}").get_by_text("disabled", exact=True).wait_for()
    _api(server, "DELETE", f"{path}/{second['id']}", operator)
    page.get_by_test_id(f"chain-{second['id']}").wait_for(state="detached")


def test_a_scripts_attached_secrets_follow_other_users(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """The script's Secrets tab was read once: another operator's attach or detach showed only
    after a reload."""
    operator = tokens["operator"]
    script = create_script(server, operator, "live-secrets", "echo hi\n", status="active")
    secret = _api(server, "POST", "/secrets", operator, json={"name": "LIVE_KEY", "value": "live-key-1"})
    signed_in(page, server, "admin", then=f"/scripts/{script['id']}?tab=secrets")
    page.get_by_test_id("script-secrets-empty").wait_for()

    attached = f"/scripts/{script['id']}/secrets/{secret['id']}"
    _api(server, "POST", attached, operator)
    page.get_by_test_id("attached-LIVE_KEY").wait_for()
    assert page.get_by_test_id("script-secrets-empty").count() == 0
    _api(server, "DELETE", attached, operator)
    page.get_by_test_id("attached-LIVE_KEY").wait_for(state="detached")
    page.get_by_test_id("script-secrets-empty").wait_for()


def test_api_tokens_follow_other_tabs(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """The user's own tokens, made and revoked in another tab (here: the API as the same user)."""
    viewer = tokens["viewer"]
    first = _api(server, "POST", "/tokens", viewer, json={"name": "ci-first"})
    signed_in(page, server, "viewer", then="/tokens")
    page.get_by_test_id(f"token-{first['id']}").wait_for()
    page.get_by_test_id("token-add").click()
    page.get_by_test_id("token-name").fill("typed here")

    second = _api(server, "POST", "/tokens", viewer, json={"name": "ci-second"})
    page.get_by_test_id(f"token-{second['id']}").wait_for()
    page.get_by_test_id("tokens-summary").get_by_text("2 tokens").wait_for()
    _api(server, "DELETE", f"/tokens/{first['id']}", viewer)
    page.get_by_test_id(f"token-{first['id']}").get_by_text("revoked").wait_for()
    assert page.get_by_test_id("token-name").input_value() == "typed here"
    _cancel(page)


def test_users_follow_other_admins(server: LiveServer, tokens: dict[str, dict[str, str]], page: Any) -> None:
    boss = tokens["boss"]
    signed_in(page, server, "admin", then="/users")
    table = page.get_by_test_id("users-table")
    table.get_by_text("viewer@example.com").wait_for()
    page.get_by_test_id("edit-operator").click()
    page.get_by_test_id("edit-fullname").fill("typed here")

    body = {"username": "carol", "email": "carol@example.com", "password": "x" * 16, "role": "viewer"}
    _api(server, "POST", "/users", boss, json=body)
    table.get_by_text("carol@example.com").wait_for()
    viewer = next(u for u in _api(server, "GET", "/users", boss)["items"] if u["username"] == "viewer")
    _api(server, "PUT", f"/users/{viewer['id']}", boss, json={"full_name": "Vic Viewer"})
    table.get_by_text("Vic Viewer").wait_for()
    assert page.get_by_test_id("edit-fullname").input_value() == "typed here"
    _cancel(page)


def test_secrets_follow_other_users(server: LiveServer, tokens: dict[str, dict[str, str]], page: Any) -> None:
    operator = tokens["operator"]
    made = _api(server, "POST", "/secrets", operator, json={"name": "LIVE_ONE", "value": "v" * 8})
    signed_in(page, server, "admin", then="/secrets")
    page.get_by_test_id("secret-LIVE_ONE").wait_for()
    page.get_by_test_id("edit-LIVE_ONE").click()
    page.get_by_test_id("edit-description").fill("typed here")

    _api(server, "POST", "/secrets", operator, json={"name": "LIVE_TWO", "value": "w" * 8})
    page.get_by_test_id("secret-LIVE_TWO").wait_for()
    _api(server, "PUT", f"/secrets/{made['id']}", operator, json={"description": "rotated monthly"})
    page.get_by_test_id("secrets-table").get_by_text("rotated monthly").wait_for()
    assert page.get_by_test_id("edit-description").input_value() == "typed here"
    _cancel(page)


def test_notification_channels_and_rules_follow_other_admins(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    boss = tokens["boss"]
    signed_in(page, server, "admin", then="/notifications")
    page.get_by_test_id("channels-empty").wait_for()
    page.get_by_test_id("channel-add").click()
    page.get_by_test_id("channel-name").fill("typed here")

    body = {"name": "ops-hook", "kind": "webhook", "config": {"url": "https://hooks.example.com/x"}}
    channel = _api(server, "POST", "/notifications/channels", boss, json=body)
    page.get_by_test_id("channel-ops-hook").wait_for()
    page.get_by_test_id("channels-empty").wait_for(state="detached")
    rule = _api(
        server,
        "POST",
        "/notifications/rules",
        boss,
        json={"channel_id": channel["id"], "events": ["failure"]},
    )
    page.get_by_test_id(f"rule-{rule['id']}").get_by_text("ops-hook", exact=False).wait_for()
    assert page.get_by_test_id("channel-name").input_value() == "typed here"
    _cancel(page)

    _api(server, "DELETE", f"/notifications/channels/{channel['id']}", boss)
    page.get_by_test_id("channel-ops-hook").wait_for(state="detached")
    page.get_by_test_id(f"rule-{rule['id']}").wait_for(state="detached")


# The repeating `ui.timer`s in the page's body (not the navigation's badge timer), as the browser
# holds NiceGUI's elements. One-shot timers (`widgets.one_shot`, e.g. the frame's read of the
# browser's dark mode) stay in the page once run and carry `data-one-shot`: not counted.
PAGE_TIMERS = """(() => {
  const els = mounted_app.elements;
  const kids = e => [...(e.children || []), ...Object.values(e.slots || {}).flatMap(s => s.ids || [])];
  const seen = new Set();  // a child may be listed both as a child and in its slot
  const stack = Object.keys(els).filter(id => els[id].tag === "q-page");
  while (stack.length) {
    const id = String(stack.pop());
    if (seen.has(id) || !els[id]) continue;
    seen.add(id);
    stack.push(...kids(els[id]));
  }
  const repeating = id => els[id].tag === "nicegui-timer" && !("data-one-shot" in (els[id].props || {}));
  return [...seen].filter(repeating).length;
})()"""


@pytest.mark.parametrize(
    ("path", "part"), [("/notifications", "deliveries"), ("/approvals", "approvals-ended")]
)
def test_a_page_of_several_lists_follows_them_with_one_timer(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any, path: str, part: str
) -> None:
    """The Notifications page re-read its channels, its rules and its delivery log on three timers
    (each list read the channels again); the Approvals page followed its waiting runs only. One
    timer now re-reads each page whole."""
    signed_in(page, server, "admin", then=path)
    page.get_by_test_id(part).wait_for()
    page.wait_for_function(f"{PAGE_TIMERS} === 1")  # three, on the Notifications page


def test_approvals_follow_other_approvers_and_keep_a_comment_being_typed(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    operator, boss = tokens["operator"], tokens["boss"]
    script = create_script(server, operator, "live-approvals", "echo hi\n", status="active")
    policy = {"required": 2, "expires_after_hours": 24}
    _api(server, "PUT", f"/scripts/{script['id']}/approval", tokens["admin"], json=policy)
    first = start_run(server, operator, script["id"])
    signed_in(page, server, "admin", then="/approvals")
    comment = page.get_by_test_id(f"approval-comment-{first}")
    comment.fill("looks fine")

    # Another run waits: a row of its own; the first run's comment box is untouched.
    second = start_run(server, operator, script["id"])
    page.get_by_test_id(f"pending-{second}").wait_for()
    assert comment.input_value() == "looks fine"
    # Another approver approves the first run: its row says so, the comment typed stays.
    _api(server, "POST", f"/executions/{first}/approve", boss, json={"comment": ""})
    page.get_by_test_id(f"pending-{first}").get_by_text("1 of 2 approvals").wait_for()
    assert comment.input_value() == "looks fine"
    _api(server, "POST", f"/executions/{second}/reject", boss, json={"comment": "no"})
    page.get_by_test_id(f"pending-{second}").wait_for(state="detached")
    # ... and shows under "Ended recently" with its outcome (that list was read once, at load).
    page.get_by_test_id(f"ended-outcome-{second}").get_by_text("Rejected at").wait_for()
    # The second approval, given in another tab: the first run leaves the waiting list for it.
    _api(server, "POST", f"/executions/{first}/approve", tokens["admin"], json={"comment": ""})
    page.get_by_test_id(f"ended-outcome-{first}").get_by_text("Approved at").wait_for()
    page.get_by_test_id(f"pending-{first}").wait_for(state="detached")


def test_the_scripts_list_follows_other_users_and_keeps_the_search_and_a_dialog(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    operator = tokens["operator"]
    create_script(server, operator, "follow-one", "echo hi\n", status="active")
    signed_in(page, server, "admin", then="/scripts?search=follow")
    table = page.get_by_test_id("scripts-table")
    page.get_by_test_id("script-link-follow-one").wait_for()
    search = page.get_by_test_id("script-search")
    search.fill("follow-")

    made = create_script(server, operator, "follow-two", "echo hi\n", status="active")
    page.get_by_test_id("script-link-follow-two").wait_for()
    assert search.input_value() == "follow-"
    page.get_by_test_id("run-follow-one").click()
    dialog = page.get_by_role("dialog")
    dialog.wait_for()
    _api(server, "PUT", f"/scripts/{made['id']}", operator, json={"description": "changed elsewhere"})
    table.get_by_text("changed elsewhere").wait_for()
    assert dialog.is_visible()


def test_the_audit_log_follows_new_events_on_page_1_with_its_filters(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """/audit was read once: an event recorded since showed only after a reload. Page 1 now
    follows, with the filters applied (the address's), not one being typed and not yet applied."""
    operator, boss = tokens["operator"], tokens["boss"]
    _api(server, "POST", "/secrets", operator, json={"name": "AUDIT_ONE", "value": "v" * 8})
    signed_in(page, server, "admin", then="/audit?actor_name=operator")
    table = page.get_by_test_id("audit-table")
    table.get_by_text("name: AUDIT_ONE").wait_for()
    page.get_by_test_id("audit-target-id").fill("typed here")

    _api(server, "POST", "/secrets", boss, json={"name": "AUDIT_BOSS", "value": "w" * 8})
    _api(server, "POST", "/secrets", operator, json={"name": "AUDIT_TWO", "value": "x" * 8})
    table.get_by_text("name: AUDIT_TWO").wait_for()
    assert table.get_by_text("name: AUDIT_BOSS").count() == 0  # another actor: filtered out
    assert page.get_by_test_id("audit-target-id").input_value() == "typed here"
    assert page.url == f"{server.url}/audit?actor_name=operator"
    # an action first recorded since the page loaded is offered by the Action box
    _api(server, "POST", "/inventories", operator, json={"name": "audited", "content": "[web]\nw1\n"})
    table.get_by_text("name: audited").wait_for()
    page.get_by_test_id("audit-action").click()
    page.get_by_role("option", name="inventory.create", exact=True).click()
    page.get_by_test_id("audit-target-id").fill("")
    page.get_by_test_id("audit-apply").click()
    page.wait_for_url(re.compile(r".*/audit\?actor_name=operator&action=inventory\.create$"))
    table.get_by_text("name: audited").wait_for()


def test_a_scripts_overview_follows_what_other_users_change_of_the_rows_it_names(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """The Overview named a shared inventory renamed since (and showed an approval policy set
    since, the script's own rename) until the page was reloaded: they follow, as the lists do."""
    admin, operator = tokens["admin"], tokens["operator"]
    shelf = {"name": "racks", "content": "[web]\nw1\n"}
    inventory = _api(server, "POST", "/inventories", operator, json=shelf)
    playbook = "- hosts: all\n  gather_facts: false\n  tasks:\n    - debug: msg=hi\n"
    body = {"name": "racked", "script_type": "ansible", "content": playbook, "inventory_id": inventory["id"]}
    script = _api(server, "POST", "/scripts", operator, json=body)
    signed_in(page, server, "viewer", then=f"/scripts/{script['id']}")
    named = page.get_by_test_id("shared-inventory")
    named.get_by_text("shared inventory racks", exact=True).wait_for()

    _api(server, "PUT", f"/inventories/{inventory['id']}", operator, json={"name": "shelves"})
    named.get_by_text("shared inventory shelves", exact=True).wait_for()
    _api(server, "PUT", f"/scripts/{script['id']}/approval", admin, json={"required": 1})
    page.get_by_test_id("approval-policy").get_by_text("1 approval by other operators").wait_for()
    _api(server, "PUT", f"/scripts/{script['id']}", operator, json={"name": "re-racked"})
    page.get_by_role("heading", name="re-racked", exact=True).wait_for()
    assert page.title() == "re-racked · OpsCraft"
    page.get_by_test_id("tab-versions").click()
    rows = page.get_by_test_id("versions-table").locator("tbody tr")
    rows.first.wait_for()
    assert rows.count() == 1
    _api(server, "PUT", f"/scripts/{script['id']}", operator, json={"content": playbook + "# v2\n"})
    page.get_by_test_id("tab-versions").get_by_text("Versions (2)").wait_for()
    listed = "() => document.querySelectorAll('[data-testid=versions-table] tbody tr').length === 2"
    page.wait_for_function(listed)
