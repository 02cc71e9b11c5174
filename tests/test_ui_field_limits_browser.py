"""A text field whose service limits its length says the limit while one types (`widgets.
says_limit`: "At most 1000 characters"), and a long value does not grow its
dialog off the screen (`widgets.PROSE_HEIGHT`). Field report (h3's brief): the new secret's
Description grew without bound, the Create button below the window, and its limit was said only
by the refusal after Create. Each field's limit is its service's (`widgets.longest`)."""

from __future__ import annotations

from typing import Any

import pytest

from opscraft.services import (
    api_tokens,
    email_addresses,
    notification_senders,
    notifications,
    scripts,
    secrets,
    shared_inventories,
    users,
    webhooks,
)
from opscraft.services.schedules import ScheduleIn
from opscraft.ui import labels
from opscraft.ui.widgets import longest
from tests.conftest import LiveServer
from tests.ui_journey import (
    create_script,
    field_messages,
    journey_server,
    journey_tokens,
    signed_in,
    wait_connected,
)

pytestmark = pytest.mark.browser

server = journey_server("field-limits-ui")
tokens = journey_tokens()

# (page, the button opening the dialog (None: a page's field), the field, its service's limit,
# the dialog's submit button)
FIELDS: list[tuple[str, str | None, str, int, str | None]] = [
    (
        "/secrets",
        "new-secret",
        "create-description",
        longest(secrets.SecretCreate, "description"),
        "create-submit",
    ),
    ("/secrets", "new-secret", "create-name", longest(secrets.SecretCreate, "name"), "create-submit"),
    ("/users", "new-user", "create-fullname", longest(users.Registration, "full_name"), "create-submit"),
    ("/users", "new-user", "create-username", longest(users.Registration, "username"), "create-submit"),
    ("/tokens", "token-add", "token-name", api_tokens.NAME_MAX, "token-submit"),
    (
        "/inventories",
        "inventory-new",
        "inventory-description",
        longest(shared_inventories.InventoryIn, "description"),
        "inventory-save",
    ),
    (
        "/notifications",
        "channel-add",
        "channel-name",
        longest(notifications.ChannelIn, "name"),
        "channel-submit",
    ),
    (
        "{script}?tab=schedules",
        "schedule-add",
        "schedule-name",
        longest(ScheduleIn, "name"),
        "schedule-submit",
    ),
    (
        "{script}?tab=schedules",
        "schedule-add",
        "schedule-cron",
        longest(ScheduleIn, "cron"),
        "schedule-submit",
    ),
    ("/scripts/new", None, "script-description", longest(scripts.ScriptCreate, "description"), None),
    ("/scripts/new", None, "change-note", longest(scripts.ScriptCreate, "change_note"), None),
    (
        "{script}?tab=webhooks",
        "webhook-add",
        "webhook-name",
        longest(webhooks.WebhookIn, "name"),
        "webhook-submit",
    ),
    # Said by no field before (session 57): names, labels, addresses, zones.
    ("/scripts/new", None, "script-name", scripts.MAX_NAME, None),
    ("/scripts/new", None, "script-version", scripts.MAX_VERSION_LABEL, None),
    ("/profile", None, "profile-email", email_addresses.MAX_LENGTH, None),
    ("/users", "new-user", "create-email", email_addresses.MAX_LENGTH, "create-submit"),
    (
        "{script}?tab=schedules",
        "schedule-add",
        "schedule-tz",
        longest(ScheduleIn, "timezone"),
        "schedule-submit",
    ),
    ("/inventories", "inventory-new", "inventory-name", scripts.MAX_NAME, "inventory-save"),
]


@pytest.fixture(scope="module")
def script_path(server: LiveServer, tokens: dict[str, dict[str, str]]) -> str:
    script = create_script(server, tokens["admin"], "limits", "#!/bin/bash\necho hi\n", status="active")
    return f"/scripts/{script['id']}"


@pytest.mark.parametrize(("path", "opener", "testid", "limit", "submit"), FIELDS, ids=[f[2] for f in FIELDS])
def test_a_limited_field_says_its_limit_while_typing_and_a_long_value_keeps_the_dialog_on_screen(
    server: LiveServer,
    script_path: str,
    page: Any,
    path: str,
    opener: str,
    testid: str,
    limit: int,
    submit: str,
) -> None:
    from playwright.sync_api import expect

    signed_in(page, server, "admin", path.format(script=script_path))
    wait_connected(page)
    if opener is not None:
        page.get_by_test_id(opener).click()
    field = page.get_by_test_id(testid)
    field.fill("abc")
    hint = page.locator(".q-field", has=field).locator(".q-field__messages").last
    expect(hint).to_have_text(f"At most {limit} characters")
    long = ("word " * (limit * 2))[: limit + 40]
    field.fill(long)
    expect(hint).to_have_text(f"At most {limit} characters")
    if submit is None:
        return
    box = page.get_by_test_id(submit).bounding_box()
    height = page.viewport_size["height"]
    assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= height, (box, height)


def test_the_tag_box_says_how_many_tags_of_how_many_characters(
    server: LiveServer, script_path: str, page: Any
) -> None:
    """The script's Tags said neither limit: each was said only by the refusal after Save."""
    from playwright.sync_api import expect

    signed_in(page, server, "admin", script_path + "/edit")
    wait_connected(page)
    hint = field_messages(page, "script-tags")
    expect(hint).to_have_text(f"At most {scripts.MAX_TAGS} tags of at most {scripts.MAX_TAG} characters each")


def test_an_email_channels_fields_say_their_limits(server: LiveServer, page: Any) -> None:
    """An e-mail channel's From, SMTP host and SMTP username said no limit (shown once the kind
    is chosen)."""
    from playwright.sync_api import expect

    signed_in(page, server, "admin", "/notifications")
    wait_connected(page)
    page.get_by_test_id("channel-add").click()
    page.get_by_test_id("channel-kind").click()
    page.get_by_role("option", name=labels.CHANNEL_KIND["email"]).click()
    for testid, limit in (
        ("channel-from", email_addresses.MAX_LENGTH),
        ("channel-host", notification_senders.MAX_HOST_NAME_CHARS),
        ("channel-username", notifications.MAX_SMTP_USERNAME),
    ):
        page.get_by_test_id(testid).fill("abc")
        expect(field_messages(page, testid)).to_have_text(f"At most {limit} characters")
