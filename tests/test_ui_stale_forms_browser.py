"""A form saved from a page opened before another tab (or the API) changed the same row sends
only the fields edited on it (`services.partial.edited`): the settings page, a user's edit
dialog and the Profile page used to send their old copy of every other field back and undo that
change."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from opscraft.services.errors import GONE_WHY
from tests.conftest import LiveServer
from tests.ui_journey import (
    create_script,
    database_locked,
    journey_server,
    journey_tokens,
    log_in,
    signed_in,
    wait_connected,
)

pytestmark = pytest.mark.browser

server = journey_server("stale-forms-ui")
tokens = journey_tokens()


def _api(server: LiveServer, admin: dict[str, str], method: str, path: str, **kwargs: Any) -> Any:
    r = httpx.request(method, f"{server.url}/api/v1{path}", headers=admin, timeout=60, **kwargs)
    assert r.status_code == 200, r.text
    return r.json()


def _on_versions_tab(server: LiveServer, admin: dict[str, str], page: Any, name: str, **extra: Any) -> str:
    """A script `name` (`extra`: more fields, such as its status) saved twice, at version 2, its
    page open on the Versions tab as the operator; its API path."""
    script = create_script(server, admin, name, "#!/bin/bash\necho one\n", **extra)
    path = f"/scripts/{script['id']}"
    _api(server, admin, "PUT", path, json={"content": "#!/bin/bash\necho two\n"})
    signed_in(page, server, "operator", then=f"{path}?tab=versions")
    return path


def test_a_settings_save_keeps_a_setting_changed_since_the_page_opened(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    admin = tokens["admin"]
    _api(server, admin, "PUT", "/settings", json={"registration_open": False, "output_retention_days": 0})
    signed_in(page, server, "admin", then="/settings")
    days = page.get_by_test_id("setting-output_retention_days")
    days.wait_for()
    _api(server, admin, "PUT", "/settings", json={"registration_open": True})  # another tab
    days.fill("30")
    page.get_by_test_id("settings-save").click()
    page.locator(".q-notification", has_text="Settings saved").wait_for()
    stored = _api(server, admin, "GET", "/settings")
    assert (stored["output_retention_days"], stored["registration_open"]) == (30, True)


def test_a_setting_typed_while_the_settings_save_is_kept(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """Once saved, the settings page put every stored setting back into its field: a number typed
    while the save was on its way (a busy database) was replaced by the stored one."""
    admin = tokens["admin"]
    _api(server, admin, "PUT", "/settings", json={"output_retention_days": 0, "warm_pool_size": 0})
    signed_in(page, server, "admin", then="/settings")
    pool = page.get_by_test_id("setting-warm_pool_size")
    page.get_by_test_id("setting-output_retention_days").fill("30")
    with database_locked(server):  # the save waits
        page.get_by_test_id("settings-save").click()
        page.wait_for_function("() => document.querySelector('[data-testid=\"settings-save\"]').disabled")
        pool.fill("3")
    page.locator(".q-notification", has_text="Settings saved").wait_for()
    assert _api(server, admin, "GET", "/settings")["output_retention_days"] == 30
    assert pool.input_value() == "3"
    # The tab's draft, cleared after the save, lost the 3 typed meanwhile at the next reload.
    _reload_after_save(page, "settings", "output_retention_days", "30")
    assert pool.input_value() == "3"
    assert page.get_by_test_id("setting-output_retention_days").input_value() == "30"


def test_a_user_edit_keeps_a_role_changed_since_the_page_opened(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    admin = tokens["admin"]
    (viewer,) = _api(server, admin, "GET", "/users", params={"search": "viewer@"})["items"]
    signed_in(page, server, "admin", then="/users")
    page.get_by_test_id("edit-viewer").click()
    page.get_by_test_id("edit-fullname").wait_for()
    _api(server, admin, "PUT", f"/users/{viewer['id']}", json={"role": "operator"})  # another tab
    page.get_by_test_id("edit-fullname").fill("Vera Viewer")
    page.get_by_test_id("edit-submit").click()
    page.locator(".q-notification", has_text="User updated").wait_for()
    stored = _api(server, admin, "GET", f"/users/{viewer['id']}")
    assert (stored["full_name"], stored["role"], stored["email"]) == (
        "Vera Viewer",
        "operator",
        viewer["email"],
    )


def _open_inventories(server: LiveServer, operator: dict[str, str], page: Any, name: str, text: str) -> int:
    """A new inventory (its id), and the Inventories page open as the operator."""
    r = httpx.post(
        f"{server.url}/api/v1/inventories",
        json={"name": name, "content": text},
        headers=operator,
        timeout=60,
    )
    assert r.status_code == 201, r.text
    signed_in(page, server, "operator", then="/inventories")
    return int(r.json()["id"])


def test_an_inventory_edit_keeps_content_changed_since_the_page_opened(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    operator = tokens["operator"]
    inventory_id = _open_inventories(server, operator, page, "web", "[web]\nold.example\n")
    page.get_by_test_id("inventory-edit-web").click()
    page.get_by_test_id("inventory-description").wait_for()
    newer = "[web]\nnew.example\n"
    _api(server, operator, "PUT", f"/inventories/{inventory_id}", json={"content": newer})  # another tab
    page.get_by_test_id("inventory-description").fill("the web tier")
    page.get_by_test_id("inventory-save").click()
    page.locator(".q-notification", has_text="Inventory saved").wait_for()
    stored = _api(server, operator, "GET", f"/inventories/{inventory_id}")
    assert (stored["description"], stored["content"]) == ("the web tier", newer)


def test_a_user_deleted_since_the_page_opened_leaves_the_list_when_its_dialog_saves(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """The dialog said "user N not found" (an id the admin never saw) and the table went on
    listing the deleted user: it says that this user was not found."""
    admin = tokens["admin"]
    account = {"username": "leaving", "email": "leaving@example.com", "password": "Leaving-Horse-9"}
    r = httpx.post(f"{server.url}/api/v1/users", json=account | {"role": "viewer"}, headers=admin, timeout=60)
    assert r.status_code == 201, r.text
    signed_in(page, server, "admin", then="/users")
    page.get_by_test_id("edit-leaving").click()
    page.get_by_test_id("edit-fullname").wait_for()
    r = httpx.delete(f"{server.url}/api/v1/users/{r.json()['id']}", headers=admin, timeout=60)  # another tab
    assert r.status_code == 204, r.text
    page.get_by_test_id("edit-fullname").fill("Lee Ving")
    page.get_by_test_id("edit-submit").click()
    page.locator(".q-notification", has_text=f"this user was not found: {GONE_WHY}").wait_for()
    page.get_by_test_id("edit-leaving").wait_for(state="detached")
    assert page.get_by_test_id("edit-admin").is_visible()


def test_a_profile_save_keeps_an_email_changed_since_the_page_opened(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """The Profile page sent its old copy of the email with an edited full name, undoing an
    email an admin (or another tab) had set meanwhile."""
    admin = tokens["admin"]
    (operator,) = _api(server, admin, "GET", "/users", params={"search": "operator@"})["items"]
    log_in(page, server, "operator", then="/profile")
    page.get_by_test_id("profile-full-name").wait_for()
    _api(server, admin, "PUT", f"/users/{operator['id']}", json={"email": "ops-team@example.com"})
    page.get_by_test_id("profile-full-name").fill("Olga Operator")
    page.get_by_test_id("profile-save").click()
    page.locator(".q-notification", has_text="Profile saved").wait_for()
    stored = _api(server, admin, "GET", f"/users/{operator['id']}")
    assert (stored["full_name"], stored["email"]) == ("Olga Operator", "ops-team@example.com")
    assert page.get_by_test_id("profile-email").input_value() == "ops-team@example.com", "the page shows it"
    page.get_by_test_id("profile-save").click()
    page.locator(".q-notification", has_text="Nothing changed").wait_for()


def test_a_name_retyped_while_the_profile_saves_is_kept(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """Once saved, the Profile page put the saved email and name back into the fields on the
    server: a name retyped while the save was on its way (a busy database) was replaced by the
    saved one. A field typed into since the click keeps what was typed."""
    signed_in(page, server, "admin", then="/profile")
    name, save = page.get_by_test_id("profile-full-name"), page.get_by_test_id("profile-save")
    name.fill("Ada, first typed")
    with database_locked(server):  # the save waits
        save.click()
        page.wait_for_function("() => document.querySelector('[data-testid=\"profile-save\"]').disabled")
        name.fill("Ada, typed while saving")
    page.locator(".q-notification", has_text="Profile saved").wait_for()
    assert _api(server, tokens["admin"], "GET", "/auth/me")["full_name"] == "Ada, first typed"
    assert name.input_value() == "Ada, typed while saving"
    # The tab's draft, cleared after the save, lost the name typed meanwhile at the next reload.
    _reload_after_save(page, "profile:", "full_name", "Ada, first typed")
    assert name.input_value() == "Ada, typed while saving"
    save.click()
    page.locator(".q-notification", has_text="Profile saved").wait_for()
    assert _api(server, tokens["admin"], "GET", "/auth/me")["full_name"] == "Ada, typed while saving"


def _reload_after_save(page: Any, key: str, name: str, saved: str) -> None:
    """Once the tab's draft of the form whose key starts with `key` (`ui.drafts`) has begun again
    from what was saved (its origin's `name` shows `saved`), reload the page and wait for the
    draft's restore (what was typed while saving comes back)."""
    page.wait_for_function(
        """([key, name, saved]) => Object.keys(sessionStorage).some((k) => {
            if (!k.startsWith("oc-draft:" + key)) return false;
            const origin = (JSON.parse(sessionStorage.getItem(k)) || {}).__origin || {};
            return String(origin[name]) === saved;
        })""",
        arg=[key, name, saved],
    )
    page.reload()
    wait_connected(page)
    page.get_by_test_id("draft-restored").wait_for()


def test_a_profile_edit_survives_a_reload(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """What is typed on the Profile page is kept in the tab (drafts.py) until saved: a session
    that ended meanwhile (the page goes to the login page) lost it."""
    signed_in(page, server, "viewer", then="/profile")
    page.get_by_test_id("profile-full-name").fill("Vera Viewer, typed")
    page.reload()
    page.get_by_test_id("draft-restored").wait_for()
    assert page.get_by_test_id("profile-full-name").input_value() == "Vera Viewer, typed"
    page.get_by_test_id("profile-save").click()
    page.locator(".q-notification", has_text="Profile saved").wait_for()
    page.reload()
    page.get_by_test_id("profile-full-name").wait_for()
    wait_connected(page)
    page.get_by_test_id("draft-restored").wait_for(state="hidden")  # saved: no draft left
    assert page.get_by_test_id("profile-full-name").input_value() == "Vera Viewer, typed"


def test_two_edits_of_an_inventorys_hosts_do_not_undo_each_other(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """Both change the content: the page's save used to replace the host the other tab had added
    since. It is refused under the field now; opening the inventory again shows both hosts' text."""
    operator = tokens["operator"]
    inventory_id = _open_inventories(server, operator, page, "db", "[db]\ndb1.example\n")
    page.get_by_test_id("inventory-edit-db").click()
    content = page.get_by_test_id("inventory-content")
    content.wait_for()
    other = "[db]\ndb1.example\ndb2.example\n"
    _api(server, operator, "PUT", f"/inventories/{inventory_id}", json={"content": other})  # another tab
    content.fill("[db]\ndb1.example\ndb3.example\n")
    page.get_by_test_id("inventory-save").click()
    field = page.locator(".q-field--error", has=content)
    # The other "tab" is the operator's own: said so (it said "changed by someone else").
    field.filter(has_text="was changed by you in another tab, window or API client").wait_for()
    assert _api(server, operator, "GET", f"/inventories/{inventory_id}")["content"] == other
    # Closed with Escape and opened again, the dialog has the typing back (its draft) and the
    # base it started from: it says the content was saved meanwhile, and Save stays refused.
    page.keyboard.press("Escape")
    page.get_by_test_id("inventory-edit-db").click()
    said = "content was saved by you in another tab, window or API client:"
    page.get_by_test_id("draft-stale").get_by_text(said).wait_for()
    assert content.input_value() == "[db]\ndb1.example\ndb3.example\n"
    # Discarded, the form opened again has the stored text (not the page's older list): it saves.
    page.get_by_test_id("draft-stale-discard").click()
    page.get_by_test_id("inventory-content").wait_for(state="detached")
    wait_connected(page)
    page.get_by_test_id("inventory-edit-db").click()
    page.wait_for_function(
        "document.querySelector('[data-testid=inventory-content]')?.value?.includes('db2.example')"
    )
    content.fill(other + "db3.example\n")
    page.get_by_test_id("inventory-save").click()
    page.locator(".q-notification", has_text="Inventory saved").wait_for()
    assert _api(server, operator, "GET", f"/inventories/{inventory_id}")["content"] == other + "db3.example\n"


def test_a_secret_description_saved_in_another_tab_is_not_undone(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """Two tabs edit one secret's description: the later Save replaced the other's without a word.
    It is refused under the field now, and nothing is written."""
    operator = tokens["operator"]
    body = {"name": "STALE_TOKEN", "value": "stale-token-value", "description": "first"}
    r = httpx.post(f"{server.url}/api/v1/secrets", json=body, headers=operator, timeout=60)
    assert r.status_code == 201, r.text
    url = f"/secrets/{r.json()['id']}"
    signed_in(page, server, "operator", then="/secrets")
    page.get_by_test_id("edit-STALE_TOKEN").click()
    field = page.get_by_test_id("edit-description")
    field.wait_for()
    _api(server, operator, "PUT", url, json={"description": "from the other tab"})
    field.fill("from this tab")
    page.get_by_test_id("edit-submit").click()
    said = "changed by you in another tab, window or API client"  # the operator's own other tab
    page.locator(".q-field--error", has=field).filter(has_text=said).wait_for()
    assert _api(server, operator, "GET", url)["description"] == "from the other tab"


def test_a_role_another_admin_changed_since_the_dialog_opened_is_not_undone(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """Both admins change the same user's role: the dialog opened first put its role back over
    the other admin's. It is refused under Role now."""
    admin = tokens["admin"]
    account = {"username": "promoted", "email": "promoted@example.com", "password": "Promoted-Horse-9"}
    r = httpx.post(f"{server.url}/api/v1/users", json=account | {"role": "viewer"}, headers=admin, timeout=60)
    assert r.status_code == 201, r.text
    url = f"/users/{r.json()['id']}"
    signed_in(page, server, "admin", then="/users")
    page.get_by_test_id("edit-promoted").click()
    page.get_by_test_id("edit-fullname").wait_for()
    _api(server, admin, "PUT", url, json={"role": "admin"})  # another admin's tab
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Role").click()
    page.get_by_role("option", name="Operator").click()
    page.get_by_test_id("edit-submit").click()
    dialog.locator(".q-field--error").filter(has_text="changed by someone else").wait_for()
    assert _api(server, admin, "GET", url)["role"] == "admin"


def test_the_versions_tab_counts_a_version_saved_since_the_page_opened(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """Field report (a new user's pass): the Versions tab, opened at version 2 before another tab
    saved version 3, asked "adds version 3" for a rollback (it added version 4) and offered no
    version 3 to compare."""
    admin = tokens["admin"]
    path = _on_versions_tab(server, admin, page, "stale-versions", status="active")
    page.get_by_test_id("rollback-1").wait_for()
    _api(server, admin, "PUT", path, json={"content": "#!/bin/bash\necho three\n"})  # another tab
    page.get_by_test_id("rollback-1").click()
    dialog = page.get_by_test_id("rollback-dialog")
    dialog.get_by_text("This adds version 4 ").wait_for()
    page.get_by_test_id("rollback-2").wait_for()  # version 2 is no longer the current one
    page.get_by_role("button", name="Cancel").click()
    dialog.wait_for(state="detached")
    page.get_by_test_id("diff-to").click()
    page.get_by_role("option", name="3", exact=True).wait_for()
    page.keyboard.press("Escape")
    page.get_by_test_id("rollback-1").click()
    page.get_by_test_id("rollback-confirm").click()
    page.locator(".q-notification", has_text="Rolled back to version 1: now version 4").wait_for()
    assert _api(server, admin, "GET", path)["current_version"] == 4


def test_a_rollback_asked_before_another_save_does_not_replace_it(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """A team's pass: the rollback question said "adds version 3"; another user saved version 3
    (a fix) before the answer, and the rollback went ahead as version 4 ("Rolled back"), replacing
    the fix unseen. The version the question was asked at now refuses it, said in a notification,
    and the new version is listed."""
    admin = tokens["admin"]
    path = _on_versions_tab(server, admin, page, "rollback-race")
    page.get_by_test_id("rollback-1").click()
    page.get_by_test_id("rollback-dialog").get_by_text("This adds version 3 ").wait_for()
    _api(server, admin, "PUT", path, json={"content": "#!/bin/bash\necho fix\n"})  # another user
    page.get_by_test_id("rollback-confirm").click()
    # The page is an operator's: the admin's save is said as someone else's (partial.saved_by).
    said = r"The script is at version 3 \(saved by someone else at \d\d:\d\d UTC\), the rollback was asked"
    page.locator(".q-notification", has_text=re.compile(said)).wait_for()
    page.get_by_test_id("rollback-2").wait_for()  # version 3 listed, the current one
    # the rest of the page follows the re-read, not only the table: header, tab count, content
    page.get_by_test_id("script-version").filter(has_text="version 3").wait_for()
    page.get_by_test_id("tab-versions").filter(has_text="Versions (3)").wait_for()
    page.get_by_test_id("tab-content").click()
    page.get_by_test_id("script-content").get_by_text("echo fix").wait_for()
    stored = _api(server, admin, "GET", path)
    assert (stored["current_version"], stored["content"]) == (3, "#!/bin/bash\necho fix\n")


def test_the_execute_button_follows_a_status_change_the_versions_tab_finds(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """A tester's pass: another user activated a draft script; the Versions tab's re-read (the
    rollback question reads the script again) showed "active" in the header, while Execute stayed
    disabled beside "This script is draft" until a reload."""
    admin = tokens["admin"]
    path = _on_versions_tab(server, admin, page, "status-follow", status="draft")
    page.get_by_test_id("not-runnable").wait_for()
    _api(server, admin, "PUT", path, json={"status": "active"})  # another user
    page.get_by_test_id("rollback-1").click()
    page.get_by_test_id("rollback-dialog").wait_for()
    page.get_by_role("button", name="Cancel").click()
    page.get_by_test_id("rollback-dialog").wait_for(state="detached")
    page.get_by_test_id("status-badge").filter(has_text="active").wait_for()  # the header followed
    page.locator('[data-testid="execute-button"]:not([disabled])').wait_for()
    page.get_by_test_id("not-runnable").wait_for(state="detached")
