"""Typing in the inventory, notification channel and rule, API token, secret (description) and
user edit dialogs survives a reload (drafts kept per browser tab, `ui.drafts`): the dialog is
opened again with what was typed and the "restored unsaved changes" notice; after a save or a
Cancel nothing comes back. A channel's webhook URL (it may carry a token), a secret's value and a
password are never kept in the tab."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from opscraft.ui import labels
from tests.conftest import LiveServer
from tests.ui_journey import api, journey_server, journey_tokens, reload_keeping, signed_in, wait_connected

pytestmark = pytest.mark.browser

server = journey_server("more-dialog-drafts-ui")
tokens = journey_tokens()

INVENTORY = "[web]\nweb1 ansible_host=10.0.0.1\nweb2 ansible_host=10.0.0.2\n\n[db]\ndb1\n"
MAIL = {"host": "smtp.example.com", "from": "ops@example.com", "to": ["oncall@example.com"]}


def _stored(page: Any) -> str:
    """Everything the tab keeps in sessionStorage, as one text."""
    return str(page.evaluate("() => JSON.stringify(Object.entries(sessionStorage))"))


def _restored(page: Any) -> None:
    """Wait for the reopened dialog's "restored unsaved changes" notice."""
    page.get_by_test_id("draft-restored").wait_for()


def _reload_to_nothing(page: Any, shown_testid: str, field_testid: str) -> None:
    """Reload once the tab keeps no draft (what a save or a Cancel leaves), and check no dialog
    opens again (`shown_testid`: an
    element of the page proving it is built, `field_testid`: a field of the dialog)."""
    page.wait_for_function("() => !Object.keys(sessionStorage).some((k) => k.startsWith('oc-draft:'))")
    page.reload()
    wait_connected(page)
    page.get_by_test_id(shown_testid).wait_for()
    assert page.get_by_test_id(field_testid).count() == 0


def _cancel(page: Any) -> None:
    page.locator(".q-dialog").get_by_role("button", name="Cancel").click()
    page.locator(".q-dialog").wait_for(state="detached")


def test_a_new_inventory_typed_before_a_reload_comes_back_and_is_gone_once_saved(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """Before, the dialog was gone after a reload, and so was the whole inventory typed in it."""
    signed_in(page, server, "operator", "/inventories")
    page.get_by_test_id("inventory-new").click()
    page.get_by_test_id("inventory-name").fill("web-fleet")
    page.get_by_test_id("inventory-content").fill(INVENTORY)
    reload_keeping(page, "inventory:new", "web2 ansible_host")
    _restored(page)
    assert page.get_by_test_id("inventory-name").input_value() == "web-fleet"
    assert page.get_by_test_id("inventory-content").input_value() == INVENTORY
    page.get_by_test_id("inventory-save").click()
    page.get_by_test_id("inventory-web-fleet").wait_for()
    stored = api(server, "GET", "/inventories", tokens["admin"])["items"]
    assert [(i["name"], i["content"]) for i in stored] == [("web-fleet", INVENTORY)]
    _reload_to_nothing(page, "inventory-web-fleet", "inventory-name")


def test_an_inventory_edit_typed_before_a_reload_comes_back_and_cancel_forgets_it(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    body = {"name": "edge", "content": "[edge]\ne1\n"}
    made = api(server, "POST", "/inventories", tokens["admin"], json=body)
    signed_in(page, server, "operator", "/inventories")
    page.get_by_test_id("inventory-edit-edge").click()
    page.get_by_test_id("inventory-content").fill("[edge]\ne1\ne2\n")
    reload_keeping(page, f"inventory:{made['id']}", "e2")
    _restored(page)
    assert page.get_by_test_id("inventory-content").input_value() == "[edge]\ne1\ne2\n"
    assert page.get_by_test_id("inventory-name").input_value() == "edge"
    _cancel(page)
    _reload_to_nothing(page, "inventory-edge", "inventory-name")
    stored = api(server, "GET", f"/inventories/{made['id']}", tokens["admin"])
    assert stored["content"] == "[edge]\ne1\n"


def test_a_webhook_channel_edit_comes_back_without_its_url(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """The name typed comes back; the URL typed (it may hold a token) is never in the tab."""
    body = {"name": "hook-ops", "kind": "webhook", "config": {"url": "https://hooks.example.com/in"}}
    channel = api(server, "POST", "/notifications/channels", tokens["admin"], json=body)
    signed_in(page, server, "admin", "/notifications")
    page.get_by_test_id("channel-edit-hook-ops").click()
    page.get_by_test_id("channel-url").fill("https://hooks.example.com/in?token=s3cr3t-t0ken")
    page.get_by_test_id("channel-name").fill("hook-oncall")
    reload_keeping(page, f"channel:{channel['id']}", "hook-oncall")
    assert "s3cr3t-t0ken" not in _stored(page)
    _restored(page)
    assert page.get_by_test_id("channel-name").input_value() == "hook-oncall"
    assert "s3cr3t-t0ken" not in page.get_by_test_id("channel-url").input_value()  # as stored (masked)
    page.get_by_test_id("channel-submit").click()
    page.get_by_test_id("channel-hook-oncall").wait_for()
    _reload_to_nothing(page, "channel-hook-oncall", "channel-name")


def test_a_new_email_channel_typed_before_a_reload_comes_back_and_cancel_forgets_it(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    signed_in(page, server, "admin", "/notifications")
    page.get_by_test_id("channel-add").click()
    page.locator(".q-field", has=page.get_by_test_id("channel-kind")).click()
    page.get_by_role("option", name="Email (SMTP)", exact=True).click()
    page.get_by_test_id("channel-name").fill("mail-night")
    page.get_by_test_id("channel-host").fill("smtp.night.example.com")
    page.get_by_test_id("channel-to").fill("night@example.com")
    reload_keeping(page, "channel:new", "night@example.com")
    _restored(page)
    assert page.get_by_test_id("channel-name").input_value() == "mail-night"
    assert page.get_by_test_id("channel-host").input_value() == "smtp.night.example.com"
    assert page.get_by_test_id("channel-to").input_value() == "night@example.com"
    _cancel(page)
    _reload_to_nothing(page, "channel-add", "channel-name")
    listed = api(server, "GET", "/notifications/channels", tokens["admin"])["items"]
    assert "mail-night" not in [c["name"] for c in listed]


def test_a_new_rule_typed_before_a_reload_comes_back_and_is_saved_as_typed(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """The channel chosen and the events (a multiple select: its chips) come back."""
    body = {"name": "mail-rules", "kind": "email", "config": MAIL}
    channel = api(server, "POST", "/notifications/channels", tokens["admin"], json=body)
    signed_in(page, server, "admin", "/notifications")
    page.get_by_test_id("rule-add").click()
    page.locator(".q-field", has=page.get_by_test_id("rule-channel")).click()
    page.get_by_role("option", name="mail-rules", exact=True).click()
    events = page.locator(".q-field", has=page.get_by_test_id("rule-events"))
    events.locator(".q-select__dropdown-icon").click()
    page.get_by_role("option", name="Success", exact=True).click()
    page.locator(".q-dialog").get_by_text("Add a rule").click()  # the menu closes
    reload_keeping(page, "rule:new", "Success")
    _restored(page)
    dialog = page.locator(".q-dialog")
    dialog.get_by_text("mail-rules").wait_for()
    page.get_by_test_id("rule-submit").click()
    page.locator(".q-notification", has_text="Rule added").wait_for()
    rules = api(server, "GET", "/notifications/rules", tokens["admin"])["items"]
    saved = [(r["channel_id"], sorted(r["events"])) for r in rules]
    assert saved == [(channel["id"], ["failure", "success"])]
    _reload_to_nothing(page, f"rule-{rules[0]['id']}", "rule-channel")


def test_a_token_typed_before_a_reload_comes_back_and_is_gone_once_created(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    signed_in(page, server, "operator", "/tokens")
    page.get_by_test_id("token-add").click()
    page.get_by_test_id("token-name").fill("ci-deploy")
    page.locator(".q-field", has=page.get_by_test_id("token-expiry")).click()
    page.get_by_role("option", name="1 year", exact=True).click()
    reload_keeping(page, "token:new", "1 year")
    _restored(page)
    assert page.get_by_test_id("token-name").input_value() == "ci-deploy"
    page.get_by_test_id("token-submit").click()
    shown = page.get_by_test_id("token-value")
    shown.wait_for()
    page.wait_for_function("() => document.querySelector('[data-testid=token-value]').value !== ''")
    assert shown.input_value() not in _stored(page)
    listed = api(server, "GET", "/tokens", tokens["operator"])["items"]
    assert [t["name"] for t in listed] == ["ci-deploy"]
    expires = datetime.fromisoformat(listed[0]["expires_at"])
    assert expires > datetime.now(UTC) + timedelta(days=300)  # the "1 year" chosen, restored
    page.get_by_test_id("token-done").click()
    _reload_to_nothing(page, "token-add", "token-name")


def _secret(server: LiveServer, tokens: dict[str, dict[str, str]], name: str) -> dict[str, Any]:
    body = {"name": name, "value": f"{name}-v4lue-s3cr3t", "description": "as first written"}
    return dict(api(server, "POST", "/secrets", tokens["admin"], json=body))


def test_a_secret_description_typed_before_a_reload_comes_back_and_is_gone_once_saved(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """Before, the Edit dialog was gone after a reload, and the description typed in it too."""
    made = _secret(server, tokens, "DEPLOY_KEY")
    signed_in(page, server, "operator", "/secrets")
    page.get_by_test_id("edit-DEPLOY_KEY").click()
    page.get_by_test_id("edit-description").fill("Rotated monthly by the release team")
    reload_keeping(page, f"secret:{made['id']}", "Rotated monthly")
    assert "v4lue-s3cr3t" not in _stored(page)
    _restored(page)
    typed = page.get_by_test_id("edit-description").input_value()
    assert typed == "Rotated monthly by the release team"
    page.get_by_test_id("edit-submit").click()
    page.locator(".q-notification", has_text="Description saved").wait_for()
    _reload_to_nothing(page, "secret-DEPLOY_KEY", "edit-description")
    stored = api(server, "GET", f"/secrets/{made['id']}", tokens["admin"])
    assert stored["description"] == "Rotated monthly by the release team"


def _user(server: LiveServer, tokens: dict[str, dict[str, str]], username: str) -> dict[str, Any]:
    body = {
        "username": username,
        "email": f"{username}@example.com",
        "full_name": "First Name",
        "password": "a-l0ng-enough-passw0rd",
        "role": "viewer",
    }
    return dict(api(server, "POST", "/users", tokens["admin"], json=body))


def test_a_user_edit_typed_before_a_reload_comes_back_and_is_saved_as_typed(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """Email, full name, role (a select: its label) and Active (a switch) all come back."""
    made = _user(server, tokens, "dora")
    signed_in(page, server, "admin", "/users")
    page.get_by_test_id("edit-dora").click()
    page.get_by_test_id("edit-email").fill("dora@ops.example.com")
    page.get_by_test_id("edit-fullname").fill("Dora Marsh")
    page.locator(".q-field", has=page.get_by_test_id("edit-role")).click()
    page.get_by_role("option", name=labels.ROLE["operator"], exact=True).click()
    page.get_by_test_id("edit-active").click()
    reload_keeping(page, f"user:{made['id']}", '"is_active":false')
    assert "passw0rd" not in _stored(page)
    _restored(page)
    assert page.get_by_test_id("edit-email").input_value() == "dora@ops.example.com"
    assert page.get_by_test_id("edit-fullname").input_value() == "Dora Marsh"
    assert page.get_by_test_id("edit-active").get_attribute("aria-checked") == "false"
    page.locator(".q-dialog").get_by_text(labels.ROLE["operator"]).wait_for()
    page.get_by_test_id("edit-submit").click()
    page.locator(".q-notification", has_text="User updated").wait_for()
    _reload_to_nothing(page, "edit-dora", "edit-email")
    stored = api(server, "GET", f"/users/{made['id']}", tokens["admin"])
    shown = (stored["email"], stored["full_name"], stored["role"], stored["is_active"])
    assert shown == ("dora@ops.example.com", "Dora Marsh", "operator", False)


@pytest.mark.parametrize("kind", ["secret", "user"])
def test_an_edit_typed_before_a_reload_comes_back_and_cancel_forgets_it(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any, kind: str
) -> None:
    """A secret's description, a user's full name: typed, back after a reload, and a Cancel
    leaves the row as it was and nothing to reopen."""
    if kind == "secret":
        made, name, path, user = _secret(server, tokens, "MIRROR"), "MIRROR", "/secrets", "operator"
        field, shown, column, first = "edit-description", f"secret-{name}", "description", "as first written"
    else:
        made, name, path, user = _user(server, tokens, "ellis"), "ellis", "/users", "admin"
        field, shown, column, first = "edit-fullname", "edit-ellis", "full_name", "First Name"
    signed_in(page, server, user, path)
    page.get_by_test_id(f"edit-{name}").click()
    page.get_by_test_id(field).fill("Never saved")
    reload_keeping(page, f"{kind}:{made['id']}", "Never saved")
    _restored(page)
    assert page.get_by_test_id(field).input_value() == "Never saved"
    _cancel(page)
    _reload_to_nothing(page, shown, field)
    stored = api(server, "GET", f"{path}/{made['id']}", tokens["admin"])
    assert stored[column] == first


def test_an_inventory_edit_restored_after_someone_saved_it_does_not_replace_theirs_unasked(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """An edit restored after a reload compared with the inventory as read at the reload, so it
    was saved over the content someone saved between the edit's start and the reload. The draft
    now keeps the base the edit started from: a red notice names what was saved meanwhile, Save
    is refused under the field (409), and "Keep my edit" saves over it knowingly."""
    made = api(
        server, "POST", "/inventories", tokens["admin"], json={"name": "core", "content": "[core]\nc1\n"}
    )
    signed_in(page, server, "operator", "/inventories")
    page.get_by_test_id("inventory-edit-core").click()
    page.get_by_test_id("inventory-content").fill("[core]\nc1\nc2\n")
    theirs = "[core]\nc1\nc9\n"
    api(server, "PUT", f"/inventories/{made['id']}", tokens["admin"], json={"content": theirs})
    reload_keeping(page, f"inventory:{made['id']}", "c2")
    _restored(page)
    page.get_by_test_id("draft-stale").get_by_text("content was saved by someone else:").wait_for()
    page.get_by_test_id("inventory-save").click()
    page.locator(".q-dialog").get_by_text("changed by someone else").first.wait_for()
    assert api(server, "GET", f"/inventories/{made['id']}", tokens["admin"])["content"] == theirs
    page.get_by_test_id("draft-take-over").click()
    page.get_by_test_id("draft-stale").wait_for(state="hidden")
    page.get_by_test_id("inventory-save").click()
    page.locator(".q-dialog").wait_for(state="detached")
    assert api(server, "GET", f"/inventories/{made['id']}", tokens["admin"])["content"] == "[core]\nc1\nc2\n"
    _reload_to_nothing(page, "inventory-core", "inventory-name")


def test_a_user_edit_restored_after_another_admin_saved_it_is_refused_until_kept_or_discarded(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """The same for a user's edit (the email another admin saved meanwhile); "Discard it"
    shows the user as stored, with no draft left."""
    made = _user(server, tokens, "erin")
    signed_in(page, server, "admin", "/users")
    page.get_by_test_id("edit-erin").click()
    page.get_by_test_id("edit-email").fill("erin@mine.example.com")
    api(server, "PUT", f"/users/{made['id']}", tokens["admin"], json={"email": "erin@theirs.example.com"})
    reload_keeping(page, f"user:{made['id']}", "erin@mine")
    _restored(page)
    # A user records no saver (partial.saved_by): both possibilities are said.
    either = "email was saved by someone else, or by you in another tab, window or API client:"
    page.get_by_test_id("draft-stale").get_by_text(either).wait_for()
    page.get_by_test_id("edit-submit").click()
    page.locator(".q-dialog").get_by_text("changed by someone else").first.wait_for()
    assert api(server, "GET", f"/users/{made['id']}", tokens["admin"])["email"] == "erin@theirs.example.com"
    with page.expect_navigation():  # "Discard it" reloads the page: a reload of ours racing it was aborted
        page.get_by_test_id("draft-stale-discard").click()
    wait_connected(page)
    _reload_to_nothing(page, "edit-erin", "edit-email")
    assert api(server, "GET", f"/users/{made['id']}", tokens["admin"])["email"] == "erin@theirs.example.com"


@pytest.mark.parametrize("kind", ["secret", "user"])
def test_an_edit_of_a_row_on_page_two_comes_back_after_a_reload_and_a_deleted_ones_is_dropped(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any, kind: str
) -> None:
    """The lists show 20 rows a page (`users.PAGE_SIZE`, `secrets.PAGE_SIZE`): the draft of an
    Edit of a row on page 2 was reopened only for a row of the first page, the one shown after the
    reload, so the typing came back only once that row's Edit was opened again. The row is now
    read by its id: the dialog reopens with the typing. A row deleted meanwhile: that is said, and
    its draft is dropped (nothing reopens later)."""
    # 20 rows after the other tests' rows and before the edited one (the lists are by name).
    if kind == "secret":
        for n in range(20):
            _secret(server, tokens, f"ZY_PAGED_{n:02}")
        made, name = _secret(server, tokens, "ZZ_PAGED"), "ZZ_PAGED"
    else:
        for n in range(20):
            _user(server, tokens, f"zy-paged-{n:02}")
        made, name = _user(server, tokens, "zz-paged"), "zz-paged"
    path, user, field = {
        "secret": ("/secrets", "operator", "edit-description"),
        "user": ("/users", "admin", "edit-fullname"),
    }[kind]
    signed_in(page, server, user, path)
    page.locator(".q-pagination").get_by_role("button", name="2", exact=True).click()
    page.get_by_test_id(f"edit-{name}").click()
    page.get_by_test_id(field).fill("Typed on page two")
    reload_keeping(page, f"{kind}:{made['id']}", "Typed on page two")
    _restored(page)
    assert page.get_by_test_id(field).input_value() == "Typed on page two"
    # page 2 is shown behind it: the page is kept in the address (`PagedTable.paged_address`)
    assert page.url.endswith(f"{path}?page=2") and page.get_by_test_id(f"edit-{name}").count() == 1

    # Deleted by someone else before the next reload: said, and the draft dropped.
    api(server, "DELETE", f"{path}/{made['id']}", tokens["admin"])
    page.get_by_test_id(field).fill("Typed for a deleted row")
    reload_keeping(page, f"{kind}:{made['id']}", "Typed for a deleted row")
    page.locator(".q-notification").get_by_text(
        f"The {kind} you were editing before the reload was deleted"
    ).wait_for()
    assert page.get_by_test_id(field).count() == 0
    page.wait_for_function(f"() => sessionStorage.getItem('oc-draft:{kind}:{made['id']}') === null")
