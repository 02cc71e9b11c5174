"""Browser journey of the vault against a real `opscraft serve`: create, attach, run, see ***, audit."""

from __future__ import annotations

import base64
import re
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from opscraft.ui.secrets import AUDIT_PAGE_SIZE, PAGE_SIZE
from tests.conftest import LiveServer
from tests.ui_journey import (
    API_TIMEOUT,
    ELEMENTS_HOLD_JS,
    OPERATOR_AND_VIEWER,
    SocketHold,
    Tokens,
    api,
    api_user,
    create_script,
    held_reloads,
    journey_server,
    signed_in,
    wait_for_output,
)

pytestmark = pytest.mark.browser

VALUE = "Br0wser-Journey/Value+42"
NEW_VALUE = "Replaced-Value-Never-Shown-77"
SCRIPT = 'echo "plain: $DB_PASSWORD"\nprintf %s "$DB_PASSWORD" | base64\necho finished\n'


# The admin adds each test's users through the API (`add_users`): a CLI user is seconds of imports.
server = journey_server(
    "secrets-ui", users=(("vault-admin", "admin"), *OPERATOR_AND_VIEWER), through_api=True
)


@pytest.fixture(scope="module")
def tokens(server: LiveServer) -> Tokens:
    """Bearer headers by user name on the module's server, each signed in at its first use (a
    sign-in is an argon2 check at the server's real cost: once a module, not once a test)."""
    return Tokens(server)


def add_users(tokens: Tokens, *users: tuple[str, str]) -> None:
    """Users (user name, role) of one test, made through the API by the module's admin."""
    for username, role in users:
        api_user(tokens.server, tokens["vault-admin"], username, role)


def assert_no_value(page: Any, *values: str) -> None:
    html = page.content()
    for value in values:
        for form in (value, base64.b64encode(value.encode()).decode()):
            assert form not in html


def test_operator_creates_attaches_runs_and_audits_a_secret(
    tokens: Tokens, page: Any, server: LiveServer, browser: Any
) -> None:
    operator = tokens["operator"]
    script_id = create_script(server, operator, "uses-secret", SCRIPT, status="active")["id"]

    signed_in(page, server, "operator")
    page.get_by_test_id("nav-secrets").click()
    page.wait_for_url(f"{server.url}/secrets")
    page.get_by_test_id("new-secret").click()
    page.get_by_test_id("create-name").fill("DB_PASSWORD")
    page.get_by_test_id("create-value").fill(VALUE)
    # A masked multi-line box that browsers neither fill in nor remember.
    value_box = page.get_by_test_id("create-value")
    assert (
        value_box.evaluate("e => e.tagName") == "TEXTAREA"
        and value_box.get_attribute("autocomplete") == "off"
    )
    assert "oc-masked" in (page.locator(".oc-secret-value", has=value_box).get_attribute("class") or "")
    page.get_by_test_id("create-description").fill("Production database")
    page.get_by_test_id("create-submit").click()
    page.get_by_test_id("secret-DB_PASSWORD").wait_for()
    page.get_by_test_id("create-value").wait_for(state="detached")  # closed, then removed once hidden
    assert_no_value(page, VALUE)

    # Search narrows the list.
    page.get_by_test_id("secret-search").fill("nothing-like-this")
    page.get_by_test_id("secrets-summary").filter(has_text="0 secrets").wait_for()
    page.get_by_test_id("secret-search").fill("production")
    page.get_by_test_id("secret-DB_PASSWORD").wait_for()

    # Attach it on the script page's Secrets tab.
    page.goto(f"{server.url}/scripts/{script_id}?tab=secrets")
    page.get_by_test_id("script-secrets-empty").wait_for()
    page.get_by_test_id("attach-select").click()
    page.get_by_role("option", name="DB_PASSWORD").click()
    page.get_by_test_id("attach-submit").click()
    page.get_by_test_id("attached-DB_PASSWORD").wait_for()

    # Run it: the value and its base64 form show as ***.
    page.get_by_test_id("execute-button").click()
    page.get_by_test_id("execute-submit").click()
    page.wait_for_url(re.compile(r".*/executions/\d+$"))
    execution_id = int(page.url.rsplit("/", 1)[1])
    text = wait_for_output(page, r"^finished$")
    assert "plain: ***" in text and re.search(r"^\*\*\*$", text, re.M), text
    page.get_by_test_id("status-success").wait_for(timeout=20_000)
    assert VALUE not in text
    assert_no_value(page, VALUE)
    log = page.request.get(f"{server.url}/executions/{execution_id}/output.log")
    assert log.ok and "plain: ***" in log.text() and VALUE not in log.text()

    # The audit log shows the injection with the execution id.
    page.goto(f"{server.url}/secrets")
    page.get_by_test_id("audit-DB_PASSWORD").click()
    audit = page.get_by_test_id("secret-audit")
    audit.get_by_test_id(f"audit-execution-{execution_id}").wait_for()
    row = audit.locator("tr").filter(has=page.get_by_test_id(f"audit-execution-{execution_id}"))
    assert "inject" in row.inner_text() and "operator" in row.inner_text()
    for action in ("create", "attach"):
        assert audit.locator("td", has_text=re.compile(f"^{action}$")).count() == 1
    page.get_by_test_id("audit-close").click()

    # Edit the description; replace the value (never pre-filled, never shown afterwards).
    page.get_by_test_id("edit-DB_PASSWORD").click()
    assert page.get_by_test_id("edit-description").input_value() == "Production database"
    page.get_by_test_id("edit-description").fill("Production database (rotated monthly)")
    page.get_by_test_id("edit-submit").click()
    page.get_by_text("Production database (rotated monthly)").wait_for()
    page.get_by_test_id("replace-DB_PASSWORD").click()
    assert page.get_by_test_id("replace-value").input_value() == ""
    page.get_by_test_id("replace-value").fill(NEW_VALUE)
    page.get_by_test_id("replace-submit").click()
    page.get_by_text("Value replaced").wait_for()
    page.get_by_test_id("replace-value").wait_for(state="detached")  # closed, then removed once hidden
    assert_no_value(page, VALUE, NEW_VALUE)

    # A viewer sees that the script uses DB_PASSWORD, cannot attach, and cannot open the vault.
    viewer_context = browser.new_context()
    viewer = viewer_context.new_page()
    try:
        signed_in(viewer, server, "viewer", f"/scripts/{script_id}?tab=secrets")
        viewer.get_by_test_id("attached-DB_PASSWORD").wait_for()
        assert viewer.get_by_test_id("attach-select").count() == 0
        assert viewer.get_by_test_id("detach-DB_PASSWORD").count() == 0
        assert viewer.get_by_test_id("nav-secrets").count() == 0
        viewer.goto(f"{server.url}/secrets")
        viewer.get_by_test_id("forbidden").wait_for()
        assert_no_value(viewer, VALUE, NEW_VALUE)
    finally:
        viewer_context.close()

    # Delete: refused while attached unless the operator ticks "detach".
    page.get_by_test_id("delete-DB_PASSWORD").click()
    page.get_by_test_id("delete-confirm").click()
    page.locator(".q-notification").filter(has_text="is attached to 1 script(s)").wait_for()
    page.get_by_test_id("delete-force").click()
    page.get_by_test_id("delete-confirm").click()
    page.get_by_test_id("secrets-summary").filter(has_text="0 secrets").wait_for()
    # Nor did the server log any value.
    assert VALUE not in server.log() and NEW_VALUE not in server.log()


def test_a_secret_audit_log_longer_than_a_page_is_paged(
    tokens: Tokens, page: Any, server: LiveServer
) -> None:
    """An operator reads every event of a busy secret, its creation included (the dialog showed
    the latest 100 and no way to the older ones; operators cannot open the admin audit log).
    Each page checks the session again: demoted meanwhile, the operator reads no further."""
    add_users(tokens, ("pager", "operator"), ("pager-admin", "admin"))
    operator = tokens["pager"]
    api = httpx.Client(base_url=f"{server.url}/api/v1", headers=operator, timeout=API_TIMEOUT)
    created = api.post("/secrets", json={"name": "BUSY_SECRET", "value": "busy-value-123"})
    assert created.status_code == 201, created.text
    secret_id = created.json()["id"]
    script_id = create_script(server, operator, "busy-user", "echo hi\n")["id"]
    for _ in range(AUDIT_PAGE_SIZE // 2):  # + the creation: one event over a page
        assert api.post(f"/scripts/{script_id}/secrets/{secret_id}").status_code == 201
        assert api.delete(f"/scripts/{script_id}/secrets/{secret_id}").status_code == 204
    total = AUDIT_PAGE_SIZE + 1

    held_reloads(page)  # the pager's handler refuses, not the page's periodic re-check
    signed_in(page, server, "pager", "/secrets")
    page.get_by_test_id("audit-BUSY_SECRET").click()
    summary = page.get_by_test_id("secret-audit-summary")
    summary.filter(has_text=f"events 1-{AUDIT_PAGE_SIZE} of {total}, newest first").wait_for()
    audit = page.get_by_test_id("secret-audit")
    assert audit.locator("tbody tr").count() == AUDIT_PAGE_SIZE
    assert audit.locator("td", has_text=re.compile("^create$")).count() == 0
    pager = page.get_by_test_id("secret-audit-pager")
    pager.get_by_role("button", name="2").click()
    summary.filter(has_text=f"events {total}-{total} of {total}, newest first").wait_for()
    assert audit.locator("tbody tr").count() == 1
    assert audit.locator("td", has_text=re.compile("^create$")).count() == 1

    admin = tokens["pager-admin"]
    user_id = api.get("/auth/me").json()["id"]
    demoted = httpx.put(
        f"{server.url}/api/v1/users/{user_id}", json={"role": "viewer"}, headers=admin, timeout=API_TIMEOUT
    )
    assert demoted.status_code == 200, demoted.text
    pager.get_by_role("button", name="1").click()
    page.locator(".q-notification").filter(has_text="your role (viewer) may not do this").wait_for()
    assert summary.inner_text() == f"events {total}-{total} of {total}, newest first"
    assert audit.locator("tbody tr").count() == 1


def test_attach_problems_are_said_under_the_secret_field(
    tokens: Tokens, page: Any, server: LiveServer
) -> None:
    """Attach without a choice, or a secret that would shadow a parameter: said under the field
    (it was a passing toast, and the shadowing refusal named no field)."""
    operator = tokens["operator"]
    created = httpx.post(
        f"{server.url}/api/v1/secrets",
        json={"name": "REGION_KEY", "value": "region-key-123"},
        headers=operator,
        timeout=API_TIMEOUT,
    )
    assert created.status_code == 201, created.text
    script_id = create_script(
        server, operator, "has-region-key", "echo hi\n", parameters={"REGION_KEY": "x"}
    )["id"]
    signed_in(page, server, "operator", f"/scripts/{script_id}?tab=secrets")
    select = page.get_by_test_id("attach-select")
    field = page.locator(".q-field", has=select)
    page.get_by_test_id("attach-submit").click()
    field.filter(has_text="Choose the secret to attach first").wait_for()
    select.click()
    page.get_by_role("option", name="REGION_KEY").click()
    page.get_by_test_id("attach-submit").click()
    field.filter(has_text="Would shadow the script's parameter REGION_KEY").wait_for()
    assert page.get_by_test_id("attached-REGION_KEY").count() == 0


WIDER_THAN_SHOWN = "(() => { const t = document.querySelector('[data-testid=%s] .q-table__middle');"
WIDER_THAN_SHOWN += " return t.scrollWidth > t.clientWidth; })()"


def test_long_audit_details_wrap_inside_the_table(tokens: Tokens, page: Any, server: LiveServer) -> None:
    """A detail without spaces (a 128-character script name) wraps in its cell, in a secret's
    audit log and in the admin's: it ran past the table's edge, cut off."""
    operator = tokens["operator"]
    created = httpx.post(
        f"{server.url}/api/v1/secrets",
        json={"name": "WIDE_DETAILS", "value": "wide-details-1"},
        headers=operator,
        timeout=API_TIMEOUT,
    )
    assert created.status_code == 201, created.text
    script_id = create_script(server, operator, "w" * 128, "echo hi\n")["id"]
    attached = httpx.post(
        f"{server.url}/api/v1/scripts/{script_id}/secrets/{created.json()['id']}",
        headers=operator,
        timeout=API_TIMEOUT,
    )
    assert attached.status_code == 201, attached.text
    add_users(tokens, ("auditor", "admin"))
    signed_in(page, server, "auditor", "/secrets")
    page.get_by_test_id("audit-WIDE_DETAILS").click()
    page.get_by_test_id("secret-audit").get_by_text("w" * 64, exact=False).wait_for()
    assert not page.evaluate(WIDER_THAN_SHOWN % "secret-audit")
    page.goto(f"{server.url}/audit")
    page.get_by_test_id("audit-table").get_by_text("w" * 64, exact=False).first.wait_for()
    assert not page.evaluate(WIDER_THAN_SHOWN % "audit-table")


def test_deleting_the_only_secret_of_the_last_page_shows_the_page_before(
    tokens: Tokens, page: Any, server: LiveServer
) -> None:
    """It left an empty table under "20 secrets" and no pager to go back with."""
    operator = tokens["operator"]
    for i in range(PAGE_SIZE + 1):
        r = httpx.post(
            f"{server.url}/api/v1/secrets",
            json={"name": f"PAGED_{i:02d}", "value": "paged-value-1"},
            headers=operator,
            timeout=API_TIMEOUT,
        )
        assert r.status_code == 201, r.text
    signed_in(page, server, "operator", "/secrets")
    page.get_by_test_id("secret-search").fill("PAGED_")
    page.get_by_test_id("secrets-summary").filter(has_text=f"{PAGE_SIZE + 1} secrets").wait_for()
    page.locator(".q-pagination").get_by_role("button", name="2").click()
    last = f"PAGED_{PAGE_SIZE:02d}"
    page.get_by_test_id(f"delete-{last}").click()
    page.get_by_test_id("delete-confirm").click()
    page.get_by_test_id("secrets-summary").filter(has_text=f"{PAGE_SIZE} secrets").wait_for()
    page.get_by_test_id("secret-PAGED_00").wait_for()
    assert page.locator("[data-testid^=secret-PAGED_]").count() == PAGE_SIZE


def test_a_value_too_short_to_mask_is_saved_with_a_warning_that_stays(page: Any, server: LiveServer) -> None:
    """A value under 4 characters is saved (documented) but not masked: the page said nothing.
    The warning stays until closed and never shows the value; a long enough one warns of nothing."""
    signed_in(page, server, "operator", "/secrets")
    page.get_by_test_id("new-secret").click()
    page.get_by_test_id("create-name").fill("SHORT_PIN")
    page.get_by_test_id("create-value").fill("k7w")
    page.get_by_test_id("create-submit").click()
    page.locator(".q-notification").filter(has_text="Secret created").wait_for()
    page.get_by_test_id("secret-search").fill("SHORT_PIN")  # other tests' secrets may come first
    page.get_by_test_id("secret-SHORT_PIN").wait_for()
    warning = page.locator(".q-notification").filter(has_text="shorter than 4 characters")
    warning.wait_for()
    assert "not masked in runs' output" in warning.inner_text()
    assert "k7w" not in page.content()
    warning.get_by_role("button").click()  # stays until closed
    warning.wait_for(state="detached")
    page.get_by_test_id("replace-SHORT_PIN").click()
    page.get_by_test_id("replace-value").fill("long-enough-now")
    page.get_by_test_id("replace-submit").click()
    page.locator(".q-notification").filter(has_text="Value replaced").wait_for()
    assert warning.count() == 0


def test_the_short_value_warning_comes_after_the_saved_notice(page: Any, server: LiveServer) -> None:
    """The warning was notified from inside the save, while the dialog was still open and before
    "Secret created": a warning about a save not yet said to be done. An observer in the page
    records, at the moment the warning is added, whether the saved notice is already shown."""
    signed_in(page, server, "operator", "/secrets")
    page.get_by_test_id("new-secret").click()
    page.get_by_test_id("create-name").fill("SHORT_ORDER")
    page.get_by_test_id("create-value").fill("q9z")
    page.evaluate(
        """() => {
          window.__warned = null;
          new MutationObserver(() => {
            if (window.__warned) return;
            const texts = [...document.querySelectorAll('.q-notification')].map(n => n.innerText);
            if (!texts.some(t => t.includes('shorter than 4 characters'))) return;
            window.__warned = {saved: texts.some(t => t.includes('Secret created'))};
          }).observe(document.body, {childList: true, subtree: true, characterData: true});
        }"""
    )
    page.get_by_test_id("create-submit").click()
    page.locator(".q-notification").filter(has_text="shorter than 4 characters").wait_for()
    assert page.evaluate("window.__warned") == {"saved": True}


def test_a_search_typed_as_soon_as_a_secret_is_created_filters_the_list(
    page: Any, server: LiveServer
) -> None:
    """ "Secret created" was said before the dialog went, which waited for the tab to forget the
    dialog's draft (a round trip, long on a busy machine): the modal dialog still had the focus,
    and a search typed on seeing the notice went into its name field and was lost (CI: the row
    searched for never showed). The round trip is held here until the search is typed: the
    dialog goes with the notice, and the search filters the list."""
    hold = SocketHold(page)
    signed_in(page, server, "operator", "/secrets")
    page.get_by_test_id("new-secret").click()
    page.get_by_test_id("create-name").fill("QUICK_FIND")
    page.get_by_test_id("create-value").fill("quick-find-value")
    # The draft has begun (the tab answered the dialog's restore): the next answer is the forget's.
    page.wait_for_function(
        "() => (sessionStorage.getItem('oc-draft:secret:new') || '').includes('QUICK_FIND')"
    )
    hold.hold("javascript_response")
    page.get_by_test_id("create-submit").click()
    page.locator(".q-notification").filter(has_text="Secret created").wait_for()
    page.get_by_test_id("secret-search").fill("QUICK_FIND")
    try:
        assert page.get_by_test_id("secret-search").input_value() == "QUICK_FIND"
        page.get_by_test_id("secrets-summary").filter(has_text="1 secret matching “QUICK_FIND”").wait_for()
        page.get_by_test_id("secret-QUICK_FIND").wait_for()
    finally:
        hold.release()
    page.locator(".q-dialog").wait_for(state="detached")


def test_a_become_password_as_an_env_secret_is_refused_under_the_name(page: Any, server: LiveServer) -> None:
    """`ANSIBLE_BECOME_PASSWORD_FILE` must be a file secret (Ansible reads a file's path from it):
    as an environment variable it is refused, said under the name; as a file it is created."""
    signed_in(page, server, "operator", "/secrets")
    page.get_by_test_id("new-secret").click()
    name = page.get_by_test_id("create-name")
    name.fill("ANSIBLE_BECOME_PASSWORD_FILE")
    page.get_by_test_id("create-value").fill("the-sudo-password")
    page.get_by_test_id("create-submit").click()
    field = page.locator(".q-field", has=name)
    field.filter(has_text="must be a file secret").wait_for()
    page.get_by_test_id("create-kind").get_by_role("button", name="File (key, kubeconfig, ...)").click()
    page.get_by_test_id("create-submit").click()
    page.locator(".q-notification").filter(has_text="Secret created").wait_for()
    page.get_by_test_id("secret-search").fill("ANSIBLE_BECOME")
    page.get_by_test_id("secret-ANSIBLE_BECOME_PASSWORD_FILE").wait_for()
    assert "the-sudo-password" not in page.content()


@pytest.mark.parametrize("dialog", ["create", "replace"])
def test_a_value_typed_then_escaped_leaves_the_page(
    tokens: Tokens, page: Any, server: LiveServer, dialog: str
) -> None:
    """Escape closes the value's dialog without Cancel: the dialog stays on the page, hidden, and
    it kept the typed value in the page's elements (the server's and the browser's)."""
    typed = f"Escaped-{dialog}-Value-Zq991"
    add_users(tokens, (f"esc-{dialog}", "operator"))
    name = f"ESC_{dialog.upper()}"
    r = httpx.post(
        f"{server.url}/api/v1/secrets",
        json={"name": name, "value": "stored-before-7781"},
        headers=tokens[f"esc-{dialog}"],
        timeout=API_TIMEOUT,
    )
    assert r.status_code == 201, r.text
    signed_in(page, server, f"esc-{dialog}", then="/secrets")
    if dialog == "create":
        page.get_by_test_id("new-secret").click()
        page.get_by_test_id("create-name").fill("ESC_NEVER_SAVED")
    else:
        page.get_by_test_id(f"replace-{name}").click()
    field = page.get_by_test_id(f"{dialog}-value")
    field.fill(typed)
    page.keyboard.press("Escape")
    field.wait_for(state="detached")
    # A round trip to the server after the dialog's closing (it sent the field's element, with
    # the typed value, to the browser once the dialog was hidden).
    page.get_by_test_id("secret-search").fill(name)
    page.get_by_test_id("secrets-summary").filter(has_text="1 secret").wait_for()
    assert not page.evaluate(ELEMENTS_HOLD_JS, typed)
    assert typed not in page.content()


def test_a_signing_secret_s_new_value_keeps_the_old_one_for_the_window_chosen(
    tokens: Tokens, page: Any, server: LiveServer
) -> None:
    """The New value dialog of a secret that signs a webhook chooses how long the old value is
    still accepted; the Secrets page and the webhook's row say until when, and the webhook's row
    ends it (**Refuse old key now**). A secret that signs nothing offers no such choice."""
    admin = tokens["vault-admin"]
    secret = api(server, "POST", "/secrets", admin, json={"name": "ROLLED_KEY", "value": VALUE})
    api(server, "POST", "/secrets", admin, json={"name": "PLAIN_KEY", "value": VALUE})
    script = create_script(server, admin, "rolled-hook-script", "echo hi\n")
    signing = {"name": "rolled", "secret_id": secret["id"]}
    hook = api(server, "POST", f"/scripts/{script['id']}/webhooks", admin, json=signing)
    signed_in(page, server, "operator", "/secrets")
    page.get_by_test_id("secret-search").fill("PLAIN_KEY")
    page.get_by_test_id("replace-PLAIN_KEY").click()
    page.get_by_test_id("replace-value").wait_for()
    assert page.get_by_test_id("replace-keep-previous").count() == 0
    page.keyboard.press("Escape")
    # Closed, then removed once hidden: the next dialog's field of the same test id would
    # otherwise be the second of two (a strict-mode failure of the fill below, seen once).
    page.get_by_test_id("replace-value").wait_for(state="detached")
    page.get_by_test_id("secret-search").fill("ROLLED_KEY")
    page.get_by_test_id("replace-ROLLED_KEY").click()
    page.get_by_test_id("replace-value").fill(NEW_VALUE)
    page.locator(".q-field", has=page.get_by_test_id("replace-keep-previous")).click()
    page.get_by_role("option", name="1 day", exact=True).click()
    page.get_by_test_id("replace-submit").click()
    page.locator(".q-notification").filter(has_text="Value replaced").wait_for()
    page.get_by_test_id("end-previous-ROLLED_KEY").wait_for()
    until = api(server, "GET", f"/secrets/{secret['id']}", admin)["previous_accepted_until"]
    left = datetime.fromisoformat(until) - datetime.fromisoformat(hook["created_at"])
    assert timedelta(days=1) < left < timedelta(days=1, minutes=10), "a day after the save"
    page.get_by_text(re.compile("old value accepted until")).wait_for()
    assert_no_value(page, VALUE, NEW_VALUE)

    page.goto(f"{server.url}/scripts/{script['id']}?tab=webhooks")
    page.get_by_test_id(f"webhook-previous-{hook['id']}").wait_for()
    page.get_by_test_id(f"webhook-end-previous-{hook['id']}").click()
    page.get_by_test_id("confirm-end-previous").click()
    page.locator(".q-notification").filter(has_text="Old value refused").wait_for()
    page.get_by_test_id(f"webhook-previous-{hook['id']}").wait_for(state="detached")
    shown = api(server, "GET", f"/scripts/{script['id']}/webhooks/{hook['id']}", admin)
    assert shown["previous_key_accepted_until"] is None
    assert_no_value(page, VALUE, NEW_VALUE)
