"""An admin's open admin pages end with the admin's powers: demoted, the page that refreshes on
its own says the role may not open it (it stayed as it was, with a red notice every few
seconds); deactivated, it goes to the login page (the Notifications page went on refreshing its
delivery log as the admin who opened it); and what an open page lists on request is read as the
user is now (the API tokens page listed everyone's tokens for a demoted admin).

One server for the module (a start is about 5 s of CPU, most of a test here); each test demotes
or deactivates people of its own, made by the module's admin."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import PASSWORD, LiveServer
from tests.ui_journey import (
    API_TIMEOUT,
    SocketHold,
    database_locked,
    held_reloads,
    journey_server,
    log_in,
    make_users,
    token,
    wait_connected,
)

pytestmark = pytest.mark.browser


# The default settings, as `live_server`, but open pages re-read their lists every second and
# re-check the session (the navigation badge) every 2 s (5 and 10 s by default).
server = journey_server("admin-sessions-ui", env={"OPSCRAFT_LIVE_SECONDS": "1"})


@pytest.fixture(scope="module")
def admin(server: LiveServer) -> dict[str, str]:
    """The bearer header of the module's first admin (`make_users`: with an operator and a viewer)."""
    return make_users(server)["admin"]


def _person(server: LiveServer, admin: dict[str, str], username: str, role: str) -> int:
    """A user `username` of `role` made by the admin, for one test alone; returns its id."""
    body = {"username": username, "email": f"{username}@example.com", "password": PASSWORD, "role": role}
    created = httpx.post(f"{server.url}/api/v1/users", json=body, headers=admin, timeout=API_TIMEOUT)
    assert created.status_code == 201, created.text
    return int(created.json()["id"])


def _change(server: LiveServer, admin: dict[str, str], user_id: int, **changes: Any) -> None:
    r = httpx.put(f"{server.url}/api/v1/users/{user_id}", json=changes, headers=admin, timeout=API_TIMEOUT)
    assert r.status_code == 200, r.text


def test_a_demoted_admins_workers_page_says_the_role_may_not_open_it(
    server: LiveServer, admin: dict[str, str], page: Any
) -> None:
    boss = _person(server, admin, "boss-workers", "admin")
    log_in(page, server, "boss-workers", then="/workers")
    page.get_by_test_id("workers-table").wait_for()

    _change(server, admin, boss, role="operator")
    forbidden = page.get_by_test_id("forbidden")
    forbidden.wait_for(timeout=15_000)  # within a refresh (3 s) and a page load
    assert "operator" in forbidden.inner_text()
    assert page.get_by_test_id("workers-table").count() == 0
    assert page.get_by_text("may not do this").count() == 0, "no red notice at every refresh"


def test_a_deactivated_admins_notifications_page_goes_to_the_login(
    server: LiveServer, admin: dict[str, str], page: Any
) -> None:
    boss = _person(server, admin, "boss-notifications", "admin")
    log_in(page, server, "boss-notifications", then="/notifications")
    page.get_by_test_id("deliveries").wait_for()

    _change(server, admin, boss, is_active=False)
    page.wait_for_url(f"{server.url}/login**", timeout=15_000)  # within a refresh (1 s)
    page.get_by_test_id("login-notice").get_by_text("Your session has ended").wait_for()


def test_a_demoted_admin_cannot_list_everyones_tokens_from_an_open_page(
    server: LiveServer, admin: dict[str, str], page: Any
) -> None:
    """The switch "Show every user's tokens" listed them as the admin who opened the page."""
    _person(server, admin, "viewer-with-token", "viewer")
    made = httpx.post(
        f"{server.url}/api/v1/tokens",
        json={"name": "viewers-ci"},
        headers=token(server, "viewer-with-token"),
        timeout=API_TIMEOUT,
    )
    assert made.status_code == 201, made.text
    boss = _person(server, admin, "boss-tokens", "admin")
    held_reloads(page)  # the switch's handler refuses, not the page's periodic re-check (1 s here)
    log_in(page, server, "boss-tokens", then="/tokens")
    page.get_by_test_id("tokens-empty").wait_for()

    _change(server, admin, boss, role="viewer")
    page.get_by_test_id("tokens-all").click()
    page.get_by_text("your role (viewer) may not list other users' tokens").wait_for()
    assert page.get_by_text("viewers-ci").count() == 0


def test_any_open_page_of_a_deactivated_user_goes_to_the_login(
    server: LiveServer, admin: dict[str, str], page: Any
) -> None:
    """Even a page that refreshes nothing of its own (the profile): the navigation's badge
    re-checks the session. It stayed until the next click, counting approvals as the user."""
    viewer = _person(server, admin, "viewer-deactivated", "viewer")
    log_in(page, server, "viewer-deactivated", then="/profile")
    page.get_by_test_id("profile-save").wait_for()

    _change(server, admin, viewer, is_active=False)
    page.wait_for_url(f"{server.url}/login**", timeout=25_000)  # within a badge refresh (2 s)
    page.get_by_test_id("login-notice").get_by_text("Your session has ended").wait_for()


def test_every_tab_of_an_ended_session_says_why_on_the_login_page(
    server: LiveServer, admin: dict[str, str], page: Any
) -> None:
    """The reason a check found the session over was said once: the first tab there took it, a
    second tab (its own check later) said "You are logged out.", and a page opened afterwards said
    nothing. Each says why, until the next sign-in; a logout is said the same way."""
    user = _person(server, admin, "viewer-two-tabs", "viewer")
    log_in(page, server, "viewer-two-tabs", then="/profile")
    other = page.context.new_page()
    other.goto(f"{server.url}/scripts")
    wait_connected(other)

    _change(server, admin, user, is_active=False)
    for tab in (page, other):
        tab.wait_for_url(f"{server.url}/login**", timeout=25_000)  # within a badge refresh (2 s)
        tab.get_by_test_id("login-notice").get_by_text("Your session has ended").wait_for()
    other.goto(f"{server.url}/executions")
    other.get_by_test_id("login-notice").get_by_text("Your session has ended").wait_for()

    _change(server, admin, user, is_active=True)
    log_in(page, server, "viewer-two-tabs", then="/profile")
    other.goto(f"{server.url}/scripts")
    wait_connected(other)
    page.goto(f"{server.url}/logout")
    page.get_by_test_id("logout-confirm").click()
    other.wait_for_url(f"{server.url}/login**", timeout=25_000)
    other.get_by_test_id("login-notice").get_by_text("You are logged out.").wait_for()
    other.goto(f"{server.url}/executions")
    other.get_by_test_id("login-notice").get_by_text("You are logged out.").wait_for()


def test_an_open_page_follows_a_role_change_both_ways(
    server: LiveServer, admin: dict[str, str], page: Any
) -> None:
    """A page the user's role may still open was left as drawn for the old role: a promoted
    viewer's scripts page said "viewer" in its header and offered no New script, a demoted
    operator's offered New script and the Secrets entry, refused only once clicked. Any open page
    is drawn again for the new role within a badge refresh (2 s here), with no click."""
    person = _person(server, admin, "promoted-person", "viewer")
    log_in(page, server, "promoted-person", then="/scripts")
    page.get_by_test_id("whoami").get_by_text("promoted-person · viewer", exact=True).wait_for()
    assert page.get_by_test_id("new-script").count() == 0

    _change(server, admin, person, role="operator")
    page.get_by_test_id("new-script").wait_for(timeout=15_000)
    page.get_by_test_id("whoami").get_by_text("promoted-person · operator", exact=True).wait_for()
    assert page.get_by_test_id("nav-secrets").count() == 1
    assert page.url == f"{server.url}/scripts"

    _change(server, admin, person, role="viewer")
    page.get_by_test_id("whoami").get_by_text("promoted-person · viewer", exact=True).wait_for(timeout=15_000)
    assert page.get_by_test_id("new-script").count() == 0
    assert page.get_by_test_id("nav-secrets").count() == 0
    assert page.get_by_text("may not do this").count() == 0, "no red notice at every refresh"


def _audited(server: LiveServer, admin: dict[str, str], action: str, username: str) -> int:
    params = {"action": action, "actor_name": username}
    r = httpx.get(f"{server.url}/api/v1/audit", params=params, headers=admin, timeout=API_TIMEOUT)
    assert r.status_code == 200, r.text
    return int(r.json()["total"])


def test_a_double_enter_on_the_login_page_is_one_sign_in_attempt(
    server: LiveServer, admin: dict[str, str], page: Any
) -> None:
    """Each Enter in the password field (and each click) was an attempt of its own, even while the
    first was being checked: a double Enter audited two failed logins and counted twice against
    the rate limit (5 a minute by default), so two mistyped passwords locked a person out."""
    _person(server, admin, "viewer-double-enter", "viewer")
    page.goto(f"{server.url}/login")
    page.get_by_test_id("login-username").fill("viewer-double-enter")
    page.get_by_test_id("login-password").fill("not-the-password")
    for _ in range(3):
        page.get_by_test_id("login-password").press("Enter")
    page.get_by_test_id("login-error").get_by_text("Incorrect username or password").wait_for()
    page.wait_for_timeout(1500)  # any later attempt would have been audited by now
    assert _audited(server, admin, "auth.login_failed", "viewer-double-enter") == 1

    logins = _audited(server, admin, "auth.login", "viewer-double-enter")
    page.get_by_test_id("login-password").fill(PASSWORD)
    page.get_by_test_id("login-submit").dblclick()
    page.wait_for_url(f"{server.url}/")
    page.wait_for_timeout(1500)  # a second sign-in (the double click) would have been audited by now
    assert _audited(server, admin, "auth.login", "viewer-double-enter") == logins + 1
    assert _audited(server, admin, "auth.login_failed", "viewer-double-enter") == 1


def test_a_password_typed_right_after_enter_in_the_username_goes_into_the_password_field(
    server: LiveServer, admin: dict[str, str], page: Any
) -> None:
    """Enter in the username field moved the focus to the password field by a round trip to the
    server: on a busy server the first keys of a password typed right after Enter went into the
    username field, shown in clear and sent as the username (audited with the failed login). The
    browser moves the focus itself; here the server hears of nothing until the password is in."""
    _person(server, admin, "viewer-fast-typist", "viewer")
    socket = SocketHold(page)
    page.goto(f"{server.url}/login")
    wait_connected(page)
    socket.hold('["event"')  # every event of the page (typing, Enter) waits: a busy server
    page.get_by_test_id("login-username").fill("viewer-fast-typist")
    page.get_by_test_id("login-username").press("Enter")
    page.keyboard.type(PASSWORD)
    assert page.get_by_test_id("login-username").input_value() == "viewer-fast-typist"
    assert page.get_by_test_id("login-password").input_value() == PASSWORD
    socket.release()
    page.keyboard.press("Enter")
    page.wait_for_url(f"{server.url}/")


def test_a_password_retyped_while_a_failed_sign_in_is_checked_is_kept(
    server: LiveServer, admin: dict[str, str], page: Any
) -> None:
    """A failed sign-in emptied the password field on the server once checked: a password retyped
    meanwhile (a busy database) still showed its dots, but the next click said "Enter your
    username and password". Only the password that failed is emptied."""
    _person(server, admin, "viewer-retyper", "viewer")
    page.goto(f"{server.url}/login")
    wait_connected(page)
    page.get_by_test_id("login-username").fill("viewer-retyper")
    password, submit = page.get_by_test_id("login-password"), page.get_by_test_id("login-submit")
    password.fill("not-the-password")
    submit.click()
    page.get_by_test_id("login-error").get_by_text("Incorrect username or password").wait_for()
    page.wait_for_function(
        "() => document.querySelector('[data-testid=\"login-password\"]').value === ''"
    )  # the password that failed is emptied

    password.fill("not-it-either")
    with database_locked(server):  # the failed attempt's audit waits
        submit.click()
        page.wait_for_function("() => document.querySelector('[data-testid=\"login-submit\"]').disabled")
        password.fill(PASSWORD)
    page.get_by_test_id("login-error").get_by_text("Incorrect username or password").wait_for()
    assert password.input_value() == PASSWORD
    submit.click()
    page.wait_for_url(f"{server.url}/")
