"""Forms say every field's problem at once, each under its field: the first-run setup form and
the schedule dialog used to show one problem, then the next after it was fixed."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from opscraft.db.text import NUL_MESSAGE
from tests.conftest import PASSWORD, LiveServer
from tests.ui_journey import (
    API_TIMEOUT,
    api_user,
    create_script,
    field_error,
    journey_server,
    make_users,
    signed_in,
    token,
    wait_connected,
)

pytestmark = pytest.mark.browser

server = journey_server("all-field-errors-ui")


@pytest.fixture(scope="module")
def tokens(server: LiveServer) -> dict[str, dict[str, str]]:
    """The bearer headers of an admin, an operator and a viewer (user names those of the roles,
    password `PASSWORD`) on the module's `server`. The setup form's test, the module's first,
    makes the admin through /setup on the server while it has no user (one server start fewer
    than a server of its own); the operator and viewer are added here. Without it (a test run
    alone), `make_users` registers all three."""
    # /setup is a page while the server has no user, a redirect to /login (303) from the first.
    if httpx.get(f"{server.url}/setup", timeout=API_TIMEOUT).status_code == 200:
        return make_users(server)
    admin = token(server, "admin")
    for role in ("operator", "viewer"):
        api_user(server, admin, role, role)
    return {name: token(server, name) for name in ("admin", "operator", "viewer")}


def test_the_setup_form_shows_every_problem_at_once(server: LiveServer, page: Any) -> None:
    """On the module's server before any user (the module's first test, before `tokens`)."""
    page.goto(f"{server.url}/setup")
    wait_connected(page)
    page.get_by_test_id("setup-username").fill("a")
    page.get_by_test_id("setup-email").fill("not-an-email")
    page.get_by_test_id("setup-password").fill("short")
    page.get_by_test_id("setup-repeat").fill("other")
    page.get_by_test_id("setup-submit").click()
    expected = {
        "setup-username": "at least 3 characters",
        "setup-email": "email address",
        "setup-password": "at least 8 characters",
        "setup-repeat": "Differs from the password",
    }
    for testid, text in expected.items():
        field_error(page, testid).get_by_text(text).wait_for()
    assert page.locator(".q-notification").count() == 0
    assert page.url == f"{server.url}/setup"
    # Fixed, the administrator is created and the dashboard opens.
    page.get_by_test_id("setup-username").fill("admin")
    page.get_by_test_id("setup-email").fill("admin@example.com")
    page.get_by_test_id("setup-password").fill(PASSWORD)
    page.get_by_test_id("setup-repeat").fill(PASSWORD)
    # Enter in the last field presses the button (`one_click`: once, however often it is pressed).
    page.get_by_test_id("setup-repeat").press("Enter")
    page.get_by_test_id("setup-repeat").press("Enter")
    page.wait_for_url(f"{server.url}/")
    page.get_by_test_id("whoami").wait_for()
    assert page.locator(".q-notification.bg-negative").count() == 0


def test_the_schedule_dialog_shows_every_problem_at_once(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    script = create_script(
        server,
        tokens["admin"],
        "nightly-job",
        "#!/bin/bash\necho $N\n",
        parameters=[{"name": "N", "type": "integer"}],
    )
    signed_in(page, server, "operator", then=f"/scripts/{script['id']}?tab=schedules")
    wait_connected(page)
    page.get_by_test_id("schedule-add").click()
    page.get_by_test_id("schedule-name").fill("")
    page.get_by_test_id("schedule-cron").fill("61 * * * *")
    page.get_by_test_id("schedule-tz").fill("Mars/Olympus_Mons")
    page.get_by_test_id("param-N").fill("many")
    page.get_by_test_id("schedule-submit").click()
    expected = {
        "schedule-name": "must not be empty or only spaces",
        "schedule-cron": "minute field '61': 61 is out of range, use 0-59",
        "schedule-tz": "unknown time zone",
        "param-N": "must be an integer",
    }
    for testid, text in expected.items():
        field_error(page, testid).get_by_text(text).wait_for()
    assert page.locator(".q-notification").count() == 0
    listed = httpx.get(f"{server.url}/api/v1/scripts/{script['id']}/schedules", headers=tokens["admin"])
    assert listed.json()["items"] == []
    # A zero-width space pasted with a value is named under its field, as the API names it.
    page.get_by_test_id("param-N").fill("1\u200b")
    page.get_by_test_id("schedule-submit").click()
    field_error(page, "param-N").get_by_text("U+200B").wait_for()
    # Fixed, the schedule is added; the time zone's box blanked is UTC, as its label says
    # ("empty: UTC"): spaces left in it were refused as an unknown zone.
    page.get_by_test_id("schedule-name").fill("nightly")
    page.get_by_test_id("schedule-cron").fill("0 3 * * *")
    page.get_by_test_id("schedule-tz").fill("   ")
    page.get_by_test_id("param-N").fill("1")
    page.get_by_test_id("schedule-submit").click()
    page.locator(".q-notification", has_text="Schedule added").wait_for()
    listed = httpx.get(f"{server.url}/api/v1/scripts/{script['id']}/schedules", headers=tokens["admin"])
    assert [(s["name"], s["timezone"], s["parameters"]) for s in listed.json()["items"]] == [
        ("nightly", "UTC", {"N": 1})
    ]


def test_the_api_names_every_schedule_field_at_once(
    server: LiveServer, tokens: dict[str, dict[str, str]]
) -> None:
    """The API gets the same rules in one 422 (cron and time zone are checked by `ScheduleIn`)."""
    script = create_script(server, tokens["admin"], "api-job", "#!/bin/bash\necho hi\n")
    body = {"name": "", "cron": "* * *", "timezone": "Nowhere/Else"}
    r = httpx.post(
        f"{server.url}/api/v1/scripts/{script['id']}/schedules", json=body, headers=tokens["admin"]
    )
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["errors"]] == ["name", "cron", "timezone"], r.text


def test_the_script_editor_shows_name_memory_and_parameter_errors_together(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """The body's field errors and the parameter declaration's come back in one refusal (the
    parameter's used to appear only once the name and memory were fixed)."""
    parameters = [{"name": "TARGET", "type": "string", "default": "web"}]
    script = create_script(
        server, tokens["admin"], "two-rounds", "#!/bin/bash\necho $TARGET\n", parameters=parameters
    )
    signed_in(page, server, "operator", then=f"/scripts/{script['id']}/edit")
    wait_connected(page)
    page.get_by_test_id("script-name").fill("")
    page.get_by_test_id("memory").fill("-5")
    page.get_by_test_id("param-name-0").fill("9bad name")
    page.get_by_test_id("save-script").click()
    expected = {
        "script-name": "must be 1-128 characters",
        "memory": "must be at least 16",
        "param-name-0": "name must be an environment variable identifier",
    }
    for testid, text in expected.items():
        field_error(page, testid).get_by_text(text).wait_for()
    assert page.url == f"{server.url}/scripts/{script['id']}/edit"
    stored = httpx.get(f"{server.url}/api/v1/scripts/{script['id']}", headers=tokens["admin"]).json()
    assert (stored["name"], stored["current_version"]) == ("two-rounds", 1)


def test_a_default_on_a_required_parameter_is_said_under_the_default(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """The refusal of a default on a required parameter showed under the parameter's Name, where
    there is nothing to fix."""
    parameters = [{"name": "COUNT", "type": "integer", "default": 5}]
    content = "echo $COUNT\n"
    script = create_script(server, tokens["admin"], "required-default", content, parameters=parameters)
    signed_in(page, server, "operator", then=f"/scripts/{script['id']}/edit")
    wait_connected(page)
    page.get_by_test_id("param-required-0").click()
    page.get_by_test_id("save-script").click()
    field_error(page, "param-default-0").get_by_text("default not allowed on a required parameter").wait_for()
    assert page.locator(".q-field--error", has=page.get_by_test_id("param-name-0")).count() == 0


@pytest.mark.parametrize("part", ["default", "description"])
def test_text_no_database_stores_in_a_parameter_is_said_under_its_field(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any, part: str
) -> None:
    """A NUL character in a parameter's description passed the declaration check and was refused
    by the write as `parameters.0.description`, which the editor placed under no row (a toast
    naming a field nobody sees); a default's and a description's now both show under their
    field, and the editor places a refusal named by its place in the list under its row."""
    parameters = [{"name": "TARGET", "type": "string", "default": "web"}]
    script = create_script(server, tokens["admin"], f"nul-{part}", "echo $TARGET\n", parameters=parameters)
    signed_in(page, server, "operator", then=f"/scripts/{script['id']}/edit")
    wait_connected(page)
    field = page.get_by_test_id(f"param-{part}-0")
    field.fill("a\x00b")
    field.press("Control+s")  # saves from any field of the form
    field_error(page, f"param-{part}-0").get_by_text(f"{part} must not contain NUL characters").wait_for()
    assert page.locator(".q-field--error", has=page.get_by_test_id("param-name-0")).count() == 0
    stored = httpx.get(f"{server.url}/api/v1/scripts/{script['id']}", headers=tokens["admin"]).json()
    assert stored["current_version"] == 1


def test_the_change_password_form_shows_every_problem_at_once(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """A wrong current password, a too-short new one and a repeat that differs: all three said
    at once under their fields (services/users.change_password); the session goes on."""
    signed_in(page, server, "viewer", then="/profile")
    wait_connected(page)
    page.get_by_test_id("current-password").fill("not-my-password")
    page.get_by_test_id("new-password").fill("short")
    page.get_by_test_id("repeat-password").fill("other")
    page.get_by_test_id("change-password").click()
    expected = {
        "current-password": "Incorrect",
        "new-password": "Must be at least 8 characters, not 5",
        "repeat-password": "Differs from the new password",
    }
    for testid, text in expected.items():
        field_error(page, testid).get_by_text(text).wait_for()
    assert page.url == f"{server.url}/profile"


def test_a_paste_longer_than_the_connection_carries_is_refused_under_its_field(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """Field report (a parameter value; the same held for every other text field): a paste over
    1 MB never reached the server (NiceGUI's browser side drops such a message), so Save kept
    the field's previous value with no word. Every text field now holds at most what the
    connection carries (`widgets.bound_text_fields`), and the too-long value is refused under
    its field: a script's description, a profile's full name, a secret's description."""
    pasted = "x" * 1_100_000
    script = create_script(server, tokens["admin"], "long-paste", "echo 1\n", description="kept")
    signed_in(page, server, "operator", then=f"/scripts/{script['id']}/edit")
    wait_connected(page)
    page.get_by_test_id("script-description").fill(pasted)
    page.get_by_test_id("save-script").click()
    field_error(page, "script-description").get_by_text("at most 2000 characters").wait_for()
    stored = httpx.get(f"{server.url}/api/v1/scripts/{script['id']}", headers=tokens["admin"]).json()
    assert (stored["description"], stored["current_version"]) == ("kept", 1)

    page.goto(f"{server.url}/profile")
    wait_connected(page)
    page.get_by_test_id("profile-full-name").fill(pasted)
    page.get_by_test_id("profile-save").click()
    field_error(page, "profile-full-name").get_by_text("at most 200 characters").wait_for()

    page.goto(f"{server.url}/secrets")
    wait_connected(page)
    page.get_by_test_id("new-secret").click()
    page.get_by_test_id("create-name").fill("LONG_PASTE")
    page.get_by_test_id("create-value").fill("v")
    page.get_by_test_id("create-description").fill(pasted)
    page.get_by_test_id("create-submit").click()
    field_error(page, "create-description").get_by_text("at most 1000 characters").wait_for()
    secrets = httpx.get(f"{server.url}/api/v1/secrets", headers=tokens["admin"]).json()
    assert "LONG_PASTE" not in str(secrets)


def test_a_token_name_with_a_nul_is_refused_in_the_apis_words_and_an_nfc_name_fits(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """The API's door said "must not contain NUL characters (U+0000): remove them" and the
    token dialog "must not contain control characters (U+0000) such as a newline or a tab"; both
    say the door's words now. A name of 40 accented letters typed decomposed (80 code points)
    is 40 characters: it is created, stored in NFC."""
    r = httpx.post(f"{server.url}/api/v1/tokens", json={"name": "a\x00b"}, headers=tokens["admin"])
    assert r.status_code == 422, r.text
    said = r.json()["errors"][0]["message"]
    assert said == NUL_MESSAGE
    signed_in(page, server, "operator", then="/tokens")
    wait_connected(page)
    page.get_by_test_id("token-add").click()
    page.get_by_test_id("token-name").fill("a\x00b")
    page.get_by_test_id("token-submit").click()
    # The same words, in the sentence case every field message has.
    field_error(page, "token-name").get_by_text(said[0].upper() + said[1:], exact=True).wait_for()
    page.get_by_test_id("token-name").fill("e\u0301" * 40)
    page.get_by_test_id("token-submit").click()
    page.get_by_text("\u00e9" * 40, exact=True).wait_for()
    listed = httpx.get(f"{server.url}/api/v1/tokens", headers=tokens["operator"]).json()["items"]
    assert [t["name"] for t in listed] == ["\u00e9" * 40]


def test_empty_and_too_long_say_the_api_words_under_the_field(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """An empty channel name said pydantic's "String should have at least 1 character" and a
    10,000-character inventory description "String should have at most 2000 characters", where
    tokens and webhooks said "Must not be empty or only spaces": the same words as the API now
    (`services.input_words`), the limit with the length sent."""
    signed_in(page, server, "admin", then="/notifications")
    wait_connected(page)
    page.get_by_test_id("channel-add").click()
    page.get_by_test_id("channel-submit").click()
    field_error(page, "channel-name").get_by_text("Must not be empty or only spaces").wait_for()
    assert "String should" not in page.content()
    page.goto(f"{server.url}/inventories")
    wait_connected(page)
    page.get_by_test_id("inventory-new").click()
    page.get_by_test_id("inventory-name").fill("web")
    page.get_by_test_id("inventory-description").fill("d" * 10_000)
    page.get_by_test_id("inventory-content").fill("[web]\nweb1\n")
    page.get_by_test_id("inventory-save").click()
    said = "Must be at most 2000 characters, not 10000"
    field_error(page, "inventory-description").get_by_text(said).wait_for()
    assert page.get_by_test_id("inventory-description").input_value() == "d" * 10_000  # nothing lost
    api = httpx.post(
        f"{server.url}/api/v1/inventories",
        json={"name": "web", "content": "[web]\nweb1\n", "description": "d" * 10_000},
        headers=tokens["admin"],
        timeout=60,
    )
    assert {"field": "description", "message": said[0].lower() + said[1:]} in api.json()["errors"]
    # Hosts left empty, or only blanks, each said as such under the box in the API's words
    # (`input_words.blank_problem`; "" was pydantic's "must not be empty or only spaces").
    page.get_by_test_id("inventory-description").fill("d")
    for content, said in (
        ("", "Must not be empty: write the hosts"),
        (" \n", "Must not be blank (only spaces, tabs and line breaks): write the hosts"),
    ):
        page.get_by_test_id("inventory-content").fill(content)
        page.get_by_test_id("inventory-save").click()
        field_error(page, "inventory-content").get_by_text(said).wait_for()
