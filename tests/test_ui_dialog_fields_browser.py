"""Dialog forms as a new team meets them: a problem inside a JSON box (a webhook's mapping) is
said under that box, a
typo in a number is refused rather than replaced, every select shows its whole label, and help
texts show code as code (not raw Markdown backticks)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from opscraft.ui import labels
from tests.conftest import LiveServer, free_port
from tests.ui_journey import (
    check_accessibility,
    create_script,
    journey_server,
    journey_tokens,
    signed_in,
    wait_connected,
)

pytestmark = pytest.mark.browser

server = journey_server("dialog-fields-ui")
tokens = journey_tokens()


def _field(page: Any, testid: str) -> Any:
    return page.locator(".q-field", has=page.get_by_test_id(testid))


def _pick(page: Any, testid: str, option: str) -> None:
    page.get_by_test_id(testid).click()
    page.get_by_role("option", name=option, exact=True).click()


def _add_webhook(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any, name: str, mapping: str
) -> Any:
    """A script `name` taking NAME, and its webhook dialog submitted by an operator with `mapping`
    typed in the Mapping box (a JSON object; a schedule's parameters are fields, one each).
    Returns the script."""
    script = create_script(
        server, tokens["admin"], name, "#!/bin/bash\necho $NAME\n", parameters={"NAME": "x"}
    )
    signed_in(page, server, "operator", f"/scripts/{script['id']}?tab=webhooks")
    page.get_by_test_id("webhook-add").click()
    page.get_by_test_id("webhook-name").fill("on-push")
    page.get_by_test_id("webhook-mapping").fill(mapping)
    page.get_by_test_id("webhook-submit").click()
    return script


def _webhooks(server: LiveServer, tokens: dict[str, dict[str, str]], script: Any) -> list[Any]:
    listed = httpx.get(f"{server.url}/api/v1/scripts/{script['id']}/webhooks", headers=tokens["admin"])
    return list(listed.json()["items"])


def test_a_bad_key_in_a_json_box_is_said_under_the_box(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """`mapping.NOPE` from the service goes under the Mapping box of the webhook dialog (it used
    to be a toast with the raw path), named, and nothing is saved."""
    script = _add_webhook(server, tokens, page, "greet", '{"NOPE": "/a"}')
    messages = _field(page, "webhook-mapping").locator(".q-field__messages")
    messages.get_by_text("NOPE: unknown parameter").wait_for()
    page.get_by_test_id("webhook-mapping").fill('{"NAME": {"deep": 1}}')
    page.get_by_test_id("webhook-submit").click()
    messages.get_by_text("NAME: must be text, a JSON string").wait_for()
    assert page.locator(".q-notification").count() == 0
    assert _webhooks(server, tokens, script) == []
    # Fixed, the webhook is added and the error goes.
    page.get_by_test_id("webhook-mapping").fill('{"NAME": "/name"}')
    page.get_by_test_id("webhook-submit").click()
    page.get_by_test_id("webhook-url").wait_for()
    assert [h["mapping"] for h in _webhooks(server, tokens, script)] == [{"NAME": "/name"}]


# What the API refuses in a body, typed in a JSON box, and what is said under the box.
REFUSED_BOXES = [
    ('{"NAME": "/first", "NAME": "/second"}', "NAME: written more than once in one object"),
    ('{"NAME": NaN}', "NaN"),
    ('{"NAME": ' + "[" * 5000 + "]" * 5000 + "}", "nested deeper than can be read"),
]


def test_a_json_box_is_read_as_the_api_reads_a_body(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """What the API refuses in a body is refused in the box, under it: a repeated key was saved
    as its last value ("first" typed and lost), `NaN` read as a number, and a deep paste raised
    RecursionError in the handler (the dialog said nothing, the server logged a traceback). One
    dialog takes each in turn (this test absorbed its parametrized cases, one page each)."""
    (first, said), *others = REFUSED_BOXES
    script = _add_webhook(server, tokens, page, "box-rules", first)
    messages = _field(page, "webhook-mapping").locator(".q-field__messages")
    messages.get_by_text(said).wait_for()
    for typed, said in others:
        page.get_by_test_id("webhook-mapping").fill(typed)
        page.get_by_test_id("webhook-submit").click()
        messages.get_by_text(said).wait_for()
    assert _webhooks(server, tokens, script) == [], "nothing is saved"


def test_a_mistyped_smtp_port_is_refused_under_the_port_not_replaced(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """A port that is not a number used to be dropped silently: the channel was saved with the
    default port (25) and mail went nowhere the admin had typed."""
    signed_in(page, server, "admin", "/notifications")
    page.get_by_test_id("channel-add").click()
    page.get_by_test_id("channel-name").fill("mail")
    # Only the chosen kind's fields are shown (Slack: none but the vault secret).
    page.get_by_test_id("channel-secret").wait_for()
    assert (
        not page.get_by_test_id("channel-url").is_visible()
        and not page.get_by_test_id("channel-host").is_visible()
    )
    page.get_by_test_id("channel-kind").click()
    shown = page.get_by_role("option")
    shown.first.wait_for()
    assert shown.all_inner_texts() == list(labels.CHANNEL_KIND.values()), "words, not stored values"
    page.get_by_role("option", name=labels.CHANNEL_KIND["email"], exact=True).click()
    page.get_by_test_id("channel-host").wait_for()
    page.get_by_test_id("channel-url").wait_for(state="hidden")
    # A receiver's name (a loopback address is refused at save by default: OPSCRAFT_NOTIFY_NETWORKS).
    page.get_by_test_id("channel-host").fill("mail.example.com")
    page.get_by_test_id("channel-port").fill("86 25")
    page.get_by_test_id("channel-from").fill("opscraft@example.com")
    page.get_by_test_id("channel-to").fill("ops@example.com")
    page.get_by_test_id("channel-submit").click()
    _field(page, "channel-port").get_by_text("must be a port number").wait_for()
    channels = httpx.get(f"{server.url}/api/v1/notifications/channels", headers=tokens["admin"])
    assert channels.json()["items"] == []
    # Digits int() cannot read (past 4,300 of them: the handler failed) or that are not ASCII
    # ("\u0668\u0666\u0662\u0665", Arabic-Indic 8625, was read as 8625): refused under the port.
    for typed in ("9" * 5000, "\u0668\u0666\u0662\u0665"):
        page.get_by_test_id("channel-port").fill("1")
        page.get_by_test_id("channel-port").fill(typed)
        page.get_by_test_id("channel-submit").click()
        _field(page, "channel-port").get_by_text("must be a port number").wait_for()
    assert (
        httpx.get(f"{server.url}/api/v1/notifications/channels", headers=tokens["admin"]).json()["items"]
        == []
    )
    page.get_by_test_id("channel-port").fill("8625")
    page.get_by_test_id("channel-submit").click()
    page.locator(".q-notification", has_text="Channel added").wait_for()
    channels = httpx.get(f"{server.url}/api/v1/notifications/channels", headers=tokens["admin"]).json()[
        "items"
    ]
    assert [c["config"]["port"] for c in channels] == [8625]


def test_selects_in_dialogs_show_their_whole_label(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """A select in a dialog was as narrow as its value: "SMTP s...", "After dow...", and the vault
    secret select of a channel showed no label at all. Each is as wide as the dialog's inputs."""
    signed_in(page, server, "admin", "/notifications")
    page.get_by_test_id("channel-add").click()
    # the SMTP security select is an email channel's
    _pick(page, "channel-kind", labels.CHANNEL_KIND["email"])
    page.get_by_test_id("channel-security").wait_for()
    # Widths measured together: the dialog scales in, so two moments would compare two scales.
    widths = page.evaluate(
        """ids => ids.map(id => document.querySelector(`[data-testid="${id}"]`)
            .closest(".q-field").getBoundingClientRect().width)""",
        ["channel-name", "channel-kind", "channel-security", "channel-secret"],
    )
    assert widths[1:] == [pytest.approx(widths[0], abs=2)] * 3, widths
    page.locator(".q-dialog__inner--minimized").evaluate(
        "e => Promise.all(e.getAnimations().map(a => a.finished))"
    )
    for testid in ("channel-kind", "channel-security", "channel-secret"):
        _assert_label_whole(page, testid)
    # The same on the Settings page: "Who may run scripts on the ..." was cut.
    page.goto(f"{server.url}/settings")
    _assert_label_whole(page, "setting-local_runner_role")


def _assert_label_whole(page: Any, testid: str) -> None:
    label = _field(page, testid).locator(".q-field__label")
    clipped = label.evaluate("e => e.scrollWidth > e.clientWidth + 1")
    assert not clipped, f"{testid}: label {label.inner_text()!r} is cut"


def test_a_new_user_form_restored_after_a_reload_keeps_the_chosen_role(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """The draft of the New user dialog brought back the names but not the role: after a reload
    the form said "Restored unsaved changes" and quietly offered `viewer` again."""
    signed_in(page, server, "admin", "/users")
    page.get_by_test_id("new-user").click()
    page.get_by_test_id("create-username").fill("olga")
    shown = labels.ROLE["operator"]  # the tab keeps the label; the restore maps it back to `operator`
    _pick(page, "create-role", shown)
    page.wait_for_function(
        "(shown) => (sessionStorage.getItem('oc-draft:user:new') || '').includes(shown)", arg=shown
    )
    page.reload()
    page.get_by_test_id("draft-restored").wait_for()
    assert page.get_by_test_id("create-username").input_value() == "olga"
    _field(page, "create-role").get_by_text(shown, exact=True).wait_for()
    page.get_by_test_id("create-email").fill("olga@example.com")
    page.get_by_test_id("create-password").fill("Long-Enough-Pass-1")
    page.get_by_test_id("create-submit").click()
    page.locator(".q-notification", has_text="User created").wait_for()
    listed = httpx.get(f"{server.url}/api/v1/users", headers=tokens["admin"]).json()["items"]
    assert {u["username"]: u["role"] for u in listed}["olga"] == "operator"


def test_help_texts_show_code_as_code(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    for path, code in (("/tokens", "Authorization: Bearer <token>"), ("/workers", "not answering")):
        signed_in(page, server, "admin", path)
        page.locator("main code", has_text=code).first.wait_for()
        assert "`" not in page.locator("main").inner_text(), path


def test_an_error_notification_can_be_read_and_closed(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """Its Close button was primary blue on the red notification (contrast 1.1:1)."""
    # a Slack URL in the vault at a loopback address: refused when sent (OPSCRAFT_NOTIFY_NETWORKS)
    secret = {"name": "SLACK_HOOK", "value": f"http://127.0.0.1:{free_port()}/x"}
    response = httpx.post(f"{server.url}/api/v1/secrets", json=secret, headers=tokens["admin"])
    assert response.status_code == 201, response.text
    body = {"name": "unreachable", "kind": "slack", "secret_id": response.json()["id"]}
    response = httpx.post(f"{server.url}/api/v1/notifications/channels", json=body, headers=tokens["admin"])
    assert response.status_code == 201, response.text
    signed_in(page, server, "admin", "/notifications")
    toast = page.locator(".q-notification", has_text="not delivered")
    # The notification goes after Quasar's 5 s; a scan slower than that at load judged a page
    # without it: the scan counts only if the notification was still shown when it ended.
    for _attempt in range(3):
        page.get_by_test_id("channel-test-unreachable").click()
        toast.wait_for()
        check_accessibility(page, "error-notification")
        if toast.count():
            break
        toast.wait_for(state="detached")
    else:
        raise AssertionError("the error notification went before each of 3 scans ended")
    toast.get_by_role("button", name="Close").click()
    toast.wait_for(state="detached")


def test_free_text_names_stay_text_in_attributes(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """A channel name went into a props string (`data-testid="channel-{name}"`), whose parser read
    `" onmouseover="...` in it as an attribute of its own: script ran in the next admin's page.
    Names of channels, schedules and webhooks are free text; each delete button is named by it."""
    odd = 'x" onmouseover="document.title=1337'
    admin = tokens["admin"]
    body = {"name": odd, "kind": "webhook", "config": {"url": "https://hooks.example.com/opscraft"}}
    response = httpx.post(f"{server.url}/api/v1/notifications/channels", json=body, headers=admin)
    assert response.status_code == 201, response.text
    channel = response.json()
    rule = {"channel_id": channel["id"], "events": ["failure"]}
    assert httpx.post(f"{server.url}/api/v1/notifications/rules", json=rule, headers=admin).status_code == 201
    script = create_script(server, admin, "named-things", "#!/bin/bash\necho hi\n")
    base = f"{server.url}/api/v1/scripts/{script['id']}"
    schedule = {"name": odd, "cron": "0 3 * * *", "timezone": "UTC"}
    assert httpx.post(f"{base}/schedules", json=schedule, headers=admin).status_code == 201
    assert httpx.post(f"{base}/webhooks", json={"name": odd}, headers=admin).status_code == 201

    signed_in(page, server, "admin", "/notifications")
    page.get_by_test_id(f"channel-{odd}").wait_for()
    page.get_by_role("button", name=f"Delete channel {odd}").wait_for()
    page.get_by_role("button", name="Delete rule").wait_for()
    assert page.locator("[onmouseover]").count() == 0
    page.get_by_test_id(f"channel-test-{odd}").hover()
    check_accessibility(page, "notifications-odd-names")
    page.goto(f"{server.url}/scripts/{script['id']}?tab=schedules")
    page.get_by_role("button", name=f"Delete schedule {odd}").wait_for()
    page.goto(f"{server.url}/scripts/{script['id']}?tab=webhooks")
    page.get_by_role("button", name=f"Delete webhook {odd}").wait_for()
    assert page.locator("[onmouseover]").count() == 0
    assert page.title() != "1337"


def test_users_edit_their_own_email_and_full_name_on_the_profile_page(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """A viewer who typed a wrong email could not fix it: the profile showed it read-only."""
    signed_in(page, server, "viewer", "/profile")
    wait_connected(page)  # typed before the socket is up, a value is replaced by the server's
    page.get_by_test_id("profile-full-name").fill("Vera Viewer")
    page.get_by_test_id("profile-email").fill("ADMIN@example.com")  # the admin's, in other letters
    page.get_by_test_id("profile-save").click()
    _field(page, "profile-email").get_by_text("already exists").wait_for()
    page.get_by_test_id("profile-email").fill("vera@example.com")
    page.get_by_test_id("profile-save").click()
    page.locator(".q-notification", has_text="Profile saved").wait_for()
    me = httpx.get(f"{server.url}/api/v1/auth/me", headers=tokens["viewer"]).json()
    assert (me["full_name"], me["email"], me["role"]) == ("Vera Viewer", "vera@example.com", "viewer")
    page.reload()
    assert page.get_by_test_id("profile-email").input_value() == "vera@example.com"
    page.get_by_test_id("whoami").get_by_text("Vera Viewer").wait_for()


def test_enter_in_a_profile_field_submits_its_form(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """Enter saved nothing in the email and full name fields, nor in the current and new password
    fields (only in the last, repeat one), as it does in every form dialog."""
    signed_in(page, server, "operator", "/profile")
    wait_connected(page)
    page.get_by_test_id("profile-full-name").fill("Otto Operator")
    page.get_by_test_id("profile-full-name").press("Enter")
    page.locator(".q-notification", has_text="Profile saved").wait_for()
    me = httpx.get(f"{server.url}/api/v1/auth/me", headers=tokens["operator"]).json()
    assert me["full_name"] == "Otto Operator"
    for testid in ("current-password", "new-password"):
        page.get_by_test_id("current-password").fill(f"not-the-password-{testid}")
        page.get_by_test_id(testid).press("Enter")
        _field(page, "current-password").get_by_text("Incorrect").wait_for()
        page.get_by_test_id("current-password").fill("")  # typing clears the message
        _field(page, "current-password").get_by_text("Incorrect").wait_for(state="detached")
    assert page.url == f"{server.url}/profile"


def test_a_viewer_is_not_offered_terraform_destroy(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """Destroy needs an operator or admin (the service refuses a viewer's): the run dialog offered
    it to viewers anyway, asked them to confirm, then refused."""
    content = 'output "greeting" { value = "hi" }\n'
    script = create_script(
        server, tokens["admin"], "tf-net", content, script_type="terraform", status="active"
    )
    for username, offered in (("viewer", False), ("operator", True)):
        signed_in(page, server, username, f"/scripts/{script['id']}")
        page.get_by_test_id("execute-button").click()
        actions = page.get_by_test_id("terraform-action")
        actions.get_by_text("Plan (no changes)").wait_for()
        assert (actions.get_by_text("Destroy", exact=True).count() == 1) is offered, username
        assert (page.get_by_test_id("destroy-not-allowed").count() == 0) is offered, username
        page.context.clear_cookies()


def test_deleting_a_schedule_webhook_link_channel_or_inventory_asks_first(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """One click on a bin icon deleted at once, with no way back: a webhook's URL (wired into a CI
    pipeline) died with it. Each now asks; Cancel keeps the thing, Delete removes it."""
    admin = tokens["admin"]
    script = create_script(server, admin, "kept-things", "#!/bin/bash\necho hi\n")
    target = create_script(server, admin, "kept-target", "#!/bin/bash\necho next\n")
    base = f"{server.url}/api/v1/scripts/{script['id']}"
    api = f"{server.url}/api/v1"
    made = {
        "schedule": httpx.post(
            f"{base}/schedules",
            json={"name": "nightly", "cron": "0 3 * * *", "timezone": "UTC"},
            headers=admin,
        ),
        "webhook": httpx.post(f"{base}/webhooks", json={"name": "ci"}, headers=admin),
        "chain": httpx.post(f"{base}/chains", json={"target_script_id": target["id"]}, headers=admin),
        "inventory": httpx.post(
            f"{api}/inventories", json={"name": "web", "content": "[web]\nweb1\n"}, headers=admin
        ),
        "channel": httpx.post(
            f"{api}/notifications/channels",
            json={"name": "hook", "kind": "webhook", "config": {"url": "https://hooks.example.com/x"}},
            headers=admin,
        ),
    }
    assert all(r.status_code == 201 for r in made.values()), {k: r.text for k, r in made.items()}
    ids = {kind: r.json()["id"] for kind, r in made.items()}
    cases = [
        ("schedule", f"/scripts/{script['id']}?tab=schedules", f"{base}/schedules"),
        ("webhook", f"/scripts/{script['id']}?tab=webhooks", f"{base}/webhooks"),
        ("chain", f"/scripts/{script['id']}?tab=chains", f"{base}/chains"),
        ("inventory", "/inventories", f"{api}/inventories"),
        ("channel", "/notifications", f"{api}/notifications/channels"),
    ]
    testids = {"channel": "channel-delete-hook", "inventory": None}
    for kind, path, listing in cases:
        signed_in(page, server, "admin", path)
        testid = testids.get(kind, f"{kind}-delete-{ids[kind]}")
        button = page.get_by_test_id(testid) if testid else page.get_by_role("button", name="Delete")
        button.click()
        page.get_by_role("button", name="Cancel").click()
        page.get_by_test_id("confirm-delete").wait_for(state="detached")
        assert ids[kind] in _listed_ids(listing, admin), path
        button.click()
        page.get_by_test_id("confirm-delete").click()
        page.locator(".q-notification", has_text="deleted").first.wait_for()
        assert ids[kind] not in _listed_ids(listing, admin), path


def _listed_ids(url: str, headers: dict[str, str]) -> list[int]:
    return [item["id"] for item in httpx.get(url, headers=headers).json()["items"]]
