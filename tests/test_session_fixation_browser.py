"""Browser sessions and other sites.

A session cookie someone else knows never becomes a signed-in session (session fixation, OWASP
ASVS 3.2.1): a sign-in on the login and setup pages is stored under a new session id that the
browser takes from the answer to its own POST of a one-time ticket (`session.hand_over`), an id
only that browser holds. The attacker takes a session
cookie of their own (any visit gives one) and plants it in the victim's browser (a sibling
subdomain's cookie, an unencrypted hop): before the fix, the victim's sign-in was written to the
storage of that id, and the attacker's copy of the cookie opened the victim's pages.

And loading `/logout` (a link or a redirect from another site: a top-level navigation carries
the `SameSite=Lax` cookie) no longer ends the session by itself: the page asks, a click logs out."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from tests.conftest import CONNECTED_JS, PASSWORD, LiveServer
from tests.ui_journey import API_TIMEOUT, journey_server, journey_tokens, log_in

pytestmark = pytest.mark.browser

# One server (the defaults, as `live_server`) with its users for the tests that sign in; the first
# administrator's set-up needs a server of its own (`live_server`).
server = journey_server("session-fixation-ui", env={})
tokens = journey_tokens()

COOKIE = "session"  # Starlette's SessionMiddleware cookie, which carries NiceGUI's storage id


def _planted(server: LiveServer, page: Any, path: str) -> httpx.Client:
    """An attacker's client holding a session cookie it got from `path`, the same cookie planted
    in `page`'s browser."""
    attacker = httpx.Client(base_url=server.url, timeout=API_TIMEOUT)
    attacker.get(path)
    value = attacker.cookies.get(COOKIE)
    assert value, "the page gave no session cookie"
    host = urlsplit(server.url).hostname
    page.context.add_cookies([{"name": COOKIE, "value": value, "domain": host, "path": "/"}])
    return attacker


def _signed_in(client: httpx.Client) -> bool:
    """Whether `client`'s cookie opens a page that needs a sign-in (else: the login page)."""
    response = client.get("/profile")
    return response.status_code == 200 and "/login" not in str(response.url)


def test_a_planted_cookie_does_not_carry_the_victims_sign_in(
    server: LiveServer, tokens: Any, page: Any
) -> None:
    attacker = _planted(server, page, "/login")
    assert not _signed_in(attacker)
    page.goto(f"{server.url}/login")
    page.get_by_test_id("login-username").fill("operator")
    page.get_by_test_id("login-password").fill(PASSWORD)
    page.get_by_test_id("login-submit").click()
    page.wait_for_url(f"{server.url}/")
    page.goto(f"{server.url}/profile")
    assert page.url == f"{server.url}/profile"  # the victim is signed in
    assert not _signed_in(attacker)


def test_a_planted_cookie_does_not_carry_the_first_administrator(live_server: LiveServer, page: Any) -> None:
    """Nor does another tab's load of the set-up page meanwhile take the sign-in away (as for the
    login page: `test_a_sign_in_completes_after_another_tab_loaded_the_login_page`)."""
    attacker = _planted(live_server, page, "/setup")
    page.goto(f"{live_server.url}/setup")
    page.get_by_test_id("setup-username").wait_for()
    other = page.context.new_page()
    other.goto(f"{live_server.url}/setup")
    other.get_by_test_id("setup-username").wait_for()
    page.get_by_test_id("setup-username").fill("admin")
    page.get_by_test_id("setup-email").fill("admin@example.com")
    page.get_by_test_id("setup-password").fill(PASSWORD)
    page.get_by_test_id("setup-repeat").fill(PASSWORD)
    page.get_by_test_id("setup-submit").click()
    page.wait_for_url(f"{live_server.url}/")
    page.goto(f"{live_server.url}/profile")
    assert page.url == f"{live_server.url}/profile", "the new administrator is not signed in"
    assert not _signed_in(attacker)


def test_loading_the_logout_address_ends_no_session(server: LiveServer, tokens: Any, page: Any) -> None:
    page.goto(f"{server.url}/login")
    page.get_by_test_id("login-username").fill("viewer")
    page.get_by_test_id("login-password").fill(PASSWORD)
    page.get_by_test_id("login-submit").click()
    page.wait_for_url(f"{server.url}/")
    cookie = next(c["value"] for c in page.context.cookies() if c["name"] == COOKIE)
    browser = httpx.Client(base_url=server.url, timeout=API_TIMEOUT, cookies={COOKIE: cookie})
    assert _signed_in(browser)
    browser.get("/logout", headers={"Referer": "https://evil.example/", "Sec-Fetch-Site": "cross-site"})
    assert _signed_in(browser), "a navigation to /logout ended the session"
    page.goto(f"{server.url}/logout")  # a person who means it clicks
    page.get_by_test_id("logout-confirm").click()
    page.wait_for_url(f"{server.url}/login?notice=logout")
    assert not _signed_in(browser)
    page.goto(f"{server.url}/")  # and the account menu's item logs out at once
    page.get_by_test_id("login-username").fill("viewer")
    page.get_by_test_id("login-password").fill(PASSWORD)
    page.get_by_test_id("login-submit").click()
    page.wait_for_url(f"{server.url}/")
    page.get_by_test_id("user-menu").click()
    page.get_by_test_id("logout").click()
    page.wait_for_url(f"{server.url}/login?notice=logout")
    page.goto(f"{server.url}/profile")
    page.wait_for_url(f"{server.url}/login**")


# What a script injected into a page could still send elsewhere: the Content Security Policy's
# `connect-src` allowed a WebSocket to any host (`ws: wss:`); only this origin now (CSP Level 3's
# 'self' covers its ws:/wss:, the page's own socket keeps working).
CONNECT_ELSEWHERE_JS = """async (target) => {
    const blocked = [];
    document.addEventListener('securitypolicyviolation', e => blocked.push(e.violatedDirective));
    try { new WebSocket('ws://' + target + '/'); } catch (e) { blocked.push('thrown ' + e.name); }
    try { await fetch('http://' + target + '/'); } catch (e) {}
    await new Promise(r => setTimeout(r, 0));
    return blocked;
}"""


def test_a_page_connects_to_its_own_origin_only(server: LiveServer, tokens: Any, page: Any) -> None:
    log_in(page, server, "viewer")
    blocked = page.evaluate(CONNECT_ELSEWHERE_JS, "127.0.0.1:65530")
    assert blocked.count("connect-src") == 2, blocked
    page.wait_for_function(CONNECTED_JS)  # the page's own socket.io WebSocket, same origin
    assert page.evaluate("window.socket.io.engine.transport.name") == "websocket"


def test_a_sign_in_completes_after_another_tab_loaded_the_login_page(
    server: LiveServer, tokens: Any, page: Any
) -> None:
    """Two tabs on the login page (both sent there when the session ended): the one signed in
    first went to the login page again, without a word. Each load of /login gave the browser a
    new session id, so the other tab's load replaced the id this tab's sign-in was stored under
    (a whole CI run failed on it: tests/test_ui_first_hour_browser.py's logout in another tab)."""
    page.goto(f"{server.url}/login?next=%2Fprofile")
    page.get_by_test_id("login-username").wait_for()
    other = page.context.new_page()
    other.goto(f"{server.url}/login")
    other.get_by_test_id("login-username").wait_for()
    page.get_by_test_id("login-username").fill("operator")
    page.get_by_test_id("login-password").fill(PASSWORD)
    page.get_by_test_id("login-submit").click()
    page.wait_for_url(f"{server.url}/profile")
    page.get_by_test_id("user-menu").wait_for()
    other.reload()  # the other tab is signed in too: the browser holds one session
    other.wait_for_url(f"{server.url}/")


def _held_ticket(page: Any, server: LiveServer, username: str) -> dict[str, str]:
    """The fields the login page posts to hand its sign-in to the browser (`session.hand_over`),
    held back: the browser's POST is aborted, so the ticket is still unspent."""
    page.route(f"{server.url}/login/session", lambda route: route.abort())
    page.goto(f"{server.url}/login?next=%2Fprofile")
    page.get_by_test_id("login-username").fill(username)
    page.get_by_test_id("login-password").fill(PASSWORD)
    with page.expect_request(f"{server.url}/login/session") as posted:
        page.get_by_test_id("login-submit").click()
    return dict(parse_qsl(posted.value.post_data or ""))


def test_a_sign_in_hand_over_is_spent_once_and_never_from_another_site(
    server: LiveServer, tokens: Any, page: Any
) -> None:
    """A page elsewhere could post a ticket of its author's own account to sign a visitor in as
    them (login CSRF): refused. A ticket signs one browser in, once; one never given, none."""
    fields = _held_ticket(page, server, "viewer")
    assert fields["next"] == "/profile"
    client = httpx.Client(base_url=server.url, timeout=API_TIMEOUT)
    elsewhere = client.post("/login/session", data=fields, headers={"Origin": "https://evil.example"})
    assert elsewhere.status_code == 403 and "another site" in elsewhere.text
    assert client.post("/login/session", data=fields, headers={"Origin": "null"}).status_code == 403
    assert not _signed_in(client)

    origin = {"Origin": server.url}
    taken = client.post("/login/session", data=fields, headers=origin)
    assert taken.status_code == 303 and taken.headers["location"] == "/profile"
    assert "no-store" in taken.headers["cache-control"]
    assert _signed_in(client)

    again = httpx.Client(base_url=server.url, timeout=API_TIMEOUT)
    spent = again.post("/login/session", data=fields, headers=origin)
    assert (spent.status_code, spent.headers["location"]) == (303, "/login?next=%2Fprofile&notice=incomplete")
    assert not _signed_in(again)
    never_given = {"ticket": "x" * 43, "next": "//evil.example"}
    unknown = again.post("/login/session", data=never_given, headers=origin)
    assert unknown.headers["location"] == "/login?notice=incomplete"
    page.unroute(f"{server.url}/login/session")
    page.goto(f"{server.url}{spent.headers['location']}")
    page.get_by_test_id("login-notice").get_by_text("The sign-in did not complete: log in again.").wait_for()
