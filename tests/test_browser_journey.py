"""Browser journeys: Playwright drives Debian's Chromium against a real `opscraft serve` process."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import ARTIFACTS, LiveServer
from tests.ui_journey import API_TIMEOUT, held_reloads, serving

pytestmark = pytest.mark.browser

ADMIN = ("admin", "Admin-Pass-123")
OPERATOR = ("oscar", "Oscar-Pass-123")
# The operator of the redirects test (its own name: the first test's operator is on the same server).
TRAVELLER = ("otto", "Otto-Pass-123")


class Journey:
    """A page plus numbered screenshots and a watch on the browser console."""

    def __init__(self, page: Any, server: LiveServer, name: str) -> None:
        self.page = page
        self.url = server.url
        self.name = name
        self.step = 0
        self.console_errors: list[str] = []
        page.on("console", lambda m: m.type == "error" and self.console_errors.append(m.text))
        page.on("pageerror", lambda e: self.console_errors.append(str(e)))

    def shot(self, label: str) -> None:
        self.step += 1
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{self.name}-{self.step:02d}-{label}.png"), full_page=True)

    def goto(self, path: str) -> None:
        self.page.goto(self.url + path)

    def wait_path(self, path: str) -> None:
        self.page.wait_for_url(lambda url: url.split(self.url, 1)[-1].split("?")[0] == path)

    def login(self, username: str, password: str) -> None:
        self.page.get_by_test_id("login-username").fill(username)
        self.page.get_by_test_id("login-password").fill(password)
        self.page.get_by_test_id("login-submit").click()

    def logout(self) -> None:
        self.page.get_by_test_id("user-menu").click()
        self.page.get_by_test_id("logout").click()
        self.wait_path("/login")
        self.page.get_by_test_id("login-notice").wait_for()

    def expect_text(self, testid: str, text: str) -> None:
        locator = self.page.get_by_test_id(testid)
        locator.wait_for()
        self.page.wait_for_function(
            "([id, text]) => document.querySelector(`[data-testid='${id}']`)?.innerText.includes(text)",
            arg=[testid, text],
        )

    def notification(self, text: str) -> None:
        self.page.locator(".q-notification", has_text=text).first.wait_for()

    def assert_no_csp_violation(self) -> None:
        assert not [m for m in self.console_errors if "Content Security Policy" in m], self.console_errors


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The module's one server (the defaults, as `live_server`), fresh for the first test, which
    sets it up through the set-up page; the later tests use it through `server`, with users of
    their own names. A server's start is about 2.5 s of CPU (docs/benchmarks.md, session 48)."""
    with serving(tmp_path_factory, "journey", {}) as live:
        yield live


def test_first_admin_operator_and_password_change(page: Any, fresh: LiveServer) -> None:
    j = Journey(page, fresh, "journey")
    # A fresh server sends the first visitor to the set-up page.
    j.goto("/")
    j.wait_path("/setup")
    j.shot("setup")
    page.get_by_test_id("setup-username").fill(ADMIN[0])
    page.get_by_test_id("setup-email").fill("admin@example.com")
    page.get_by_test_id("setup-fullname").fill("Ada Admin")
    page.get_by_test_id("setup-password").fill(ADMIN[1])
    page.get_by_test_id("setup-repeat").fill(ADMIN[1])
    page.get_by_test_id("setup-submit").click()
    j.wait_path("/")
    j.expect_text("whoami", "Ada Admin · admin")
    j.logout()

    # Log in as the admin, create an operator on the users page.
    j.login(*ADMIN)
    j.wait_path("/")
    j.expect_text("whoami", "admin")
    page.get_by_test_id("nav-users").click()
    j.wait_path("/users")
    page.get_by_test_id("new-user").click()
    page.get_by_test_id("create-username").fill(OPERATOR[0])
    page.get_by_test_id("create-email").fill("oscar@example.com")
    page.get_by_test_id("create-fullname").fill("Oscar Operator")
    page.get_by_test_id("create-role").click()
    page.get_by_role("option", name="operator").click()
    page.get_by_test_id("create-password").fill(OPERATOR[1])
    j.shot("create-operator")
    page.get_by_test_id("create-submit").click()
    j.notification("User created")
    j.expect_text("users-table", "oscar@example.com")
    j.shot("users")
    j.logout()

    # The operator sees no admin navigation and is refused the users page.
    j.login(*OPERATOR)
    j.wait_path("/")
    j.expect_text("whoami", "Oscar Operator · operator")
    assert page.get_by_test_id("nav-scripts").count() == 1
    for admin_only in ("nav-users", "nav-audit", "nav-settings"):
        assert page.get_by_test_id(admin_only).count() == 0, admin_only
    response = page.goto(f"{fresh.url}/users")
    assert response is not None and response.status == 403
    j.expect_text("forbidden", "may not open this page")
    assert page.get_by_test_id("users-table").count() == 0
    j.shot("users-refused")

    # Change the password: a wrong current password is refused, then the session ends.
    j.goto("/profile")
    page.get_by_test_id("current-password").fill("not-my-password")
    page.get_by_test_id("new-password").fill("Oscar-New-456")
    page.get_by_test_id("repeat-password").fill("Oscar-New-456")
    page.get_by_test_id("change-password").click()
    # the refusal is shown under the field it is about
    page.locator(".q-field--error").filter(has_text="ncorrect").first.wait_for()
    page.get_by_test_id("current-password").fill(OPERATOR[1])
    page.get_by_test_id("change-password").click()
    j.wait_path("/login")
    j.expect_text("login-notice", "Password changed")
    j.shot("password-changed")

    # The old password no longer works; the new one does.
    j.login(*OPERATOR)
    j.expect_text("login-error", "Incorrect username or password")
    j.shot("old-password-refused")
    j.login(OPERATOR[0], "Oscar-New-456")
    j.wait_path("/")
    j.expect_text("whoami", "operator")
    j.shot("logged-in-with-new-password")
    j.assert_no_csp_violation()

    # The admin pages, on the two users above (the admin and the operator): once a test of its own
    # with a server of its own (a server's start is about 5 s of CPU).
    j.logout()
    j = Journey(page, fresh, "admin")
    j.goto("/login?next=/users")
    j.login(*ADMIN)
    j.wait_path("/users")
    j.expect_text("users-summary", "2 users")
    page.get_by_test_id("user-search").fill("osc")
    j.expect_text("users-summary", "1 user matching")

    # Edit: make the operator a viewer and deactivate them.
    page.get_by_test_id("edit-oscar").click()
    page.get_by_test_id("edit-role").click()
    page.get_by_role("option", name="viewer").click()
    page.get_by_test_id("edit-active").click()
    j.shot("edit")
    page.get_by_test_id("edit-submit").click()
    j.notification("User updated")
    j.expect_text("users-table", "inactive")
    j.expect_text("users-table", "viewer")

    # Reset: a too-short password is explained, a good one accepted.
    page.get_by_test_id("reset-oscar").click()
    page.get_by_test_id("reset-password").fill("short")
    page.get_by_test_id("reset-submit").click()
    page.locator(".q-field--error").filter(has_text="at least 8 characters").first.wait_for()
    page.get_by_test_id("reset-password").fill("Fresh-Pass-789")
    page.get_by_test_id("reset-submit").click()
    j.notification("Password reset")

    # Deleting yourself is not offered; deleting the operator needs a confirmation.
    page.get_by_test_id("user-search").fill("")
    j.expect_text("users-summary", "2 users")
    assert page.get_by_test_id("delete-admin").is_disabled()
    page.get_by_test_id("delete-oscar").click()
    j.shot("delete-confirmation")
    page.get_by_test_id("delete-confirm").click()
    j.notification("User deleted")
    j.expect_text("users-summary", "1 user")

    # The audit log shows what happened, filterable by action.
    page.get_by_test_id("nav-audit").click()
    j.wait_path("/audit")
    j.expect_text("audit-table", "user.delete")
    page.get_by_test_id("audit-action").click()
    page.get_by_role("option", name="user.reset_password").click()
    page.get_by_test_id("audit-apply").click()
    j.expect_text("audit-summary", "1 event")
    j.shot("audit")

    # Settings: open self-registration, and the API sees it.
    page.get_by_test_id("nav-settings").click()
    j.wait_path("/settings")
    page.get_by_test_id("setting-registration_open").click()
    page.get_by_test_id("settings-save").click()
    j.notification("Settings saved")
    j.shot("settings")
    body = {"username": "selfie", "email": "s@example.com", "password": "Selfie-Pass-1", "full_name": ""}
    assert httpx.post(f"{fresh.url}/api/v1/auth/register", json=body).status_code == 201

    # Dark mode is a per-user preference that survives a reload.
    page.get_by_test_id("dark-toggle").click()
    page.locator("body.body--dark").wait_for()
    page.reload()
    page.locator("body.body--dark").wait_for()
    j.shot("dark")
    j.assert_no_csp_violation()


@pytest.fixture(scope="module")
def server(fresh: LiveServer) -> LiveServer:
    """The module's server with its first admin (`ADMIN`): the one the first test set up through
    the set-up page, or, while none is (the test was left out or failed before), registered
    through the API. The server still sends a visitor to /setup (303) while it has no user."""
    setup = httpx.get(f"{fresh.url}/login", timeout=API_TIMEOUT)
    if setup.status_code == 303 and setup.headers["location"] == "/setup":
        body = {"username": ADMIN[0], "email": "a@example.com", "password": ADMIN[1], "full_name": "Ada"}
        response = httpx.post(f"{fresh.url}/api/v1/auth/register", json=body, timeout=API_TIMEOUT)
        assert response.status_code == 201, response.text
    return fresh


def _admin(server: LiveServer) -> dict[str, str]:
    """The auth header of the first admin (the `server` fixture's)."""
    token = httpx.post(f"{server.url}/api/v1/auth/login", json={"username": ADMIN[0], "password": ADMIN[1]})
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


def _api_users(server: LiveServer) -> dict[str, str]:
    """An operator through the API; returns the first admin's auth header."""
    api = f"{server.url}/api/v1"
    headers = _admin(server)
    operator = {
        "username": TRAVELLER[0],
        "email": "otto@example.com",
        "password": TRAVELLER[1],
        "role": "operator",
    }
    assert httpx.post(f"{api}/users", json=operator, headers=headers).status_code == 201
    return headers


def test_login_redirects_only_to_local_paths_and_sessions_end(page: Any, server: LiveServer) -> None:
    headers = _api_users(server)
    j = Journey(page, server, "redirects")
    j.goto("/profile")
    j.wait_path("/login")
    j.login(*TRAVELLER)
    j.wait_path("/profile")
    j.logout()
    for hostile in ("//evil.example/x", "https://evil.example/", "/\\evil.example", "/%09/evil.example"):
        j.goto(f"/login?next={hostile}")
        j.login(*TRAVELLER)
        j.wait_path("/")
        assert page.url.startswith(server.url), hostile
        j.logout()
    j.login(*TRAVELLER)
    j.wait_path("/")

    # An admin deactivates the operator: the browser's session ends on its next request. No page
    # of it is open meanwhile: an open page's own periodic re-check (its end said there too:
    # test_ui_admin_sessions_browser) could end the session first, and the request then found
    # it ended already and said nothing.
    page.goto("about:blank")
    users = httpx.get(f"{server.url}/api/v1/users", params={"search": TRAVELLER[0]}, headers=headers).json()
    user_id = users["items"][0]["id"]
    r = httpx.put(f"{server.url}/api/v1/users/{user_id}", json={"is_active": False}, headers=headers)
    assert r.status_code == 200
    j.goto("/profile")
    j.wait_path("/login")
    j.expect_text("login-notice", "Your session has ended")
    j.login(*TRAVELLER)
    j.expect_text("login-error", "deactivated")
    j.shot("deactivated")
    j.assert_no_csp_violation()


def test_event_handlers_recheck_the_role(page: Any, server: LiveServer) -> None:
    headers = _admin(server)
    api = f"{server.url}/api/v1"
    second = {"username": "root2", "email": "r2@example.com", "password": "Root2-Pass-123", "role": "admin"}
    created = httpx.post(f"{api}/users", json=second, headers=headers)
    assert created.status_code == 201
    held_reloads(page)  # the click's handler refuses, not the page's periodic re-check
    j = Journey(page, server, "recheck")
    j.goto("/login?next=/users")
    j.login("root2", "Root2-Pass-123")
    j.wait_path("/users")
    page.get_by_test_id("new-user").click()
    page.get_by_test_id("create-username").fill("sneaky")
    page.get_by_test_id("create-email").fill("sneaky@example.com")
    page.get_by_test_id("create-password").fill("Sneaky-Pass-1")

    # While the dialog is open, another admin makes root2 an operator: the click is refused.
    demoted = httpx.put(f"{api}/users/{created.json()['id']}", json={"role": "operator"}, headers=headers)
    assert demoted.status_code == 200
    page.get_by_test_id("create-submit").click()
    j.notification("your role (operator) may not do this")
    j.shot("refused")
    found = httpx.get(f"{api}/users", params={"search": "sneaky"}, headers=headers).json()
    assert found["total"] == 0
