"""A notification channel and a rule are edited in the UI (their row's Edit opens the dialog
filled with the stored settings), and two people editing one of them do not overwrite each other
without a word: the dialog's Save sends what it was opened from as the `base` (`partial.three_way`),
so a field changed meanwhile through the API is refused naming it (under its field, or in a
notice), nothing is written and what was typed stays in the open dialog; a Save after no
concurrent change is saved, keeping what was changed elsewhere."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from opscraft.ui import labels
from tests.conftest import LiveServer
from tests.ui_journey import api, field_error, journey_server, journey_tokens, signed_in

pytestmark = pytest.mark.browser

server = journey_server("notification-edit-ui")
tokens = journey_tokens()

# A channel or rule records no saver: both possibilities (partial.saved_by; it said "someone else"
# though the admin who changed it was the page's own).
STALE = "changed by someone else, or by you in another tab, window or API client since your edit started"
MAIL = {"host": "smtp.example.com", "from": "ops@example.com", "to": ["oncall@example.com"]}


def _mail_channel(server: LiveServer, admin: dict[str, str], name: str) -> dict[str, Any]:
    """A new email channel `name` (`MAIL`), as the API answers it."""
    body = {"name": name, "kind": "email", "config": MAIL}
    return dict(api(server, "POST", "/notifications/channels", admin, json=body))


def _cancel(page: Any) -> None:
    page.locator(".q-dialog").get_by_role("button", name="Cancel").click()
    page.locator(".q-dialog").wait_for(state="detached")


def _events(server: LiveServer, admin: dict[str, str], rule_id: int) -> list[str]:
    """Rule `rule_id`'s events as stored (the API lists rules; it has no GET of one)."""
    rules = api(server, "GET", "/notifications/rules", admin)["items"]
    return next(rule["events"] for rule in rules if rule["id"] == rule_id)


def _add_success(page: Any) -> None:
    """Add the Success event in the open rule dialog, and close the list of events."""
    page.locator(".q-field", has=page.get_by_test_id("rule-events")).locator(
        ".q-select__dropdown-icon"
    ).click()
    page.get_by_role("option", name="Success", exact=True).click()
    page.locator(".q-dialog").get_by_text("Edit the rule").click()  # the menu closes


def test_a_channel_changed_meanwhile_is_not_overwritten_by_its_edit_dialog(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    admin = tokens["admin"]
    channel = _mail_channel(server, admin, "mail-ops")
    path = f"/notifications/channels/{channel['id']}"
    signed_in(page, server, "admin", "/notifications")
    page.get_by_test_id("channel-edit-mail-ops").click()
    assert page.get_by_test_id("channel-name").input_value() == "mail-ops"
    assert page.get_by_test_id("channel-host").input_value() == "smtp.example.com"
    assert page.get_by_test_id("channel-to").input_value() == "oncall@example.com"
    # Meanwhile someone renames it and moves it to another SMTP server through the API.
    moved = {**MAIL, "host": "smtp2.example.com"}
    api(server, "PUT", path, admin, json={"name": "mail-api", "config": moved})
    page.get_by_test_id("channel-name").fill("mail-dialog")
    page.get_by_test_id("channel-to").fill("team@example.com")
    page.get_by_test_id("channel-submit").click()
    # Refused naming both: the name under its field, the whole lot in a notice.
    notice = page.locator(".q-notification", has_text=STALE)
    expect(notice).to_contain_text("Name, config of the channel")
    expect(field_error(page, "channel-name")).to_contain_text(STALE, ignore_case=True)
    stored = api(server, "GET", path, admin)
    assert (stored["name"], stored["config"]["host"], stored["config"]["to"]) == (
        "mail-api",
        "smtp2.example.com",
        ["oncall@example.com"],
    )
    # The dialog stays open with what was typed.
    assert page.get_by_test_id("channel-name").input_value() == "mail-dialog"
    assert page.get_by_test_id("channel-to").input_value() == "team@example.com"
    _cancel(page)
    # Opened again (it shows the API's change), a change with none made meanwhile is saved.
    page.get_by_test_id("channel-edit-mail-api").click()
    assert page.get_by_test_id("channel-host").input_value() == "smtp2.example.com"
    page.get_by_test_id("channel-to").fill("team@example.com")
    page.get_by_test_id("channel-submit").click()
    page.locator(".q-notification", has_text="Channel saved").wait_for()
    page.get_by_test_id("channel-submit").wait_for(state="detached")
    stored = api(server, "GET", path, admin)
    assert (stored["name"], stored["config"]["host"], stored["config"]["to"]) == (
        "mail-api",
        "smtp2.example.com",
        ["team@example.com"],
    )


def test_a_webhook_url_changed_meanwhile_on_the_same_host_is_not_overwritten(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """The URL shows masked (`https://hooks.example/…`), the same for every URL of that host: the
    dialog's base holds the sealed URL's fingerprint, so a URL saved meanwhile is still caught.
    The dialog names the channel's kind as the kind list does, and only so."""
    admin = tokens["admin"]
    body = {"name": "hook-ops", "kind": "webhook", "config": {"url": "https://hooks.example/t/one"}}
    channel = api(server, "POST", "/notifications/channels", admin, json=body)
    path = f"/notifications/channels/{channel['id']}"
    signed_in(page, server, "admin", "/notifications")
    page.get_by_test_id("channel-edit-hook-ops").click()
    assert page.get_by_test_id("channel-url").input_value() == "https://hooks.example/…"
    # The kind has one name (the URL's label called it "generic webhook", the kind list another).
    dialog = page.locator(".q-dialog")
    kind = labels.CHANNEL_KIND["webhook"]
    expect(dialog.locator(".q-field", has=page.get_by_test_id("channel-kind"))).to_contain_text(kind)
    assert "generic" not in dialog.inner_text().lower()
    moved = api(server, "PUT", path, admin, json={"config": {"url": "https://hooks.example/t/two"}})
    page.get_by_test_id("channel-url").fill("https://hooks.example/t/three")
    page.get_by_test_id("channel-submit").click()
    expect(field_error(page, "channel-url")).to_contain_text(STALE, ignore_case=True)
    assert api(server, "GET", path, admin)["url_fingerprint"] == moved["url_fingerprint"]
    assert page.get_by_test_id("channel-url").input_value() == "https://hooks.example/t/three"


def test_a_rule_changed_meanwhile_is_not_overwritten_by_its_edit_dialog(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    admin = tokens["admin"]
    channel = _mail_channel(server, admin, "mail-rules")
    rule = api(
        server,
        "POST",
        "/notifications/rules",
        admin,
        json={"channel_id": channel["id"], "events": ["failure"]},
    )
    path = f"/notifications/rules/{rule['id']}"
    signed_in(page, server, "admin", "/notifications")
    page.get_by_test_id(f"rule-edit-{rule['id']}").click()
    events = page.get_by_test_id("rule-events")
    expect(events.locator("xpath=ancestor::label")).to_contain_text("Failure")
    # Meanwhile someone adds the recovery event through the API; the dialog adds success.
    api(server, "PUT", path, admin, json={"events": ["failure", "recovery"]})
    _add_success(page)
    page.get_by_test_id("rule-submit").click()
    expect(field_error(page, "rule-events")).to_contain_text(STALE, ignore_case=True)
    assert _events(server, admin, rule["id"]) == ["failure", "recovery"]
    # The dialog stays open with what was chosen.
    expect(events.locator("xpath=ancestor::label")).to_contain_text("Success")
    _cancel(page)
    # Opened again (it shows the API's change), a change with none made meanwhile is saved.
    page.get_by_test_id(f"rule-edit-{rule['id']}").click()
    events = page.get_by_test_id("rule-events")
    expect(events.locator("xpath=ancestor::label")).to_contain_text("Recovery")
    _add_success(page)
    page.get_by_test_id("rule-submit").click()
    page.locator(".q-notification", has_text="Rule saved").wait_for()
    page.get_by_test_id("rule-submit").wait_for(state="detached")
    assert _events(server, admin, rule["id"]) == ["failure", "success", "recovery"]
