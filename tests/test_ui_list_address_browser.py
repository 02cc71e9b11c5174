"""The audit log, users and secrets lists keep their filters in the address: a reload, Back from
another page or a shared link shows the same rows (the filters were lost: every row was listed
again); an empty table says whether the filters match nothing or there is nothing yet. The
scripts, users, secrets, audit log and API tokens lists and a script's versions keep their page
there too, with their filters (Back from a script on page 2 showed page 1)."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from opscraft.ui import audit, script_page, scripts, secrets, tokens, users
from tests.conftest import LiveServer
from tests.ui_journey import (
    API_TIMEOUT,
    api_user,
    create_script,
    journey_server,
    make_users,
    signed_in,
    wait_connected,
)

pytestmark = pytest.mark.browser

server = journey_server("list-address-ui", env={})  # the default settings, as `live_server`


@pytest.fixture(scope="module")
def admin(server: LiveServer) -> dict[str, str]:
    """The admin's bearer headers, once the module's server has its people (`make_users`: the
    admin, then user.create of the operator and the viewer, user 3) and one secret, DB_PASS,
    that the searches find."""
    made = make_users(server)["admin"]
    body = {"name": "DB_PASS", "value": "x"}
    created = httpx.post(f"{server.url}/api/v1/secrets", json=body, headers=made, timeout=API_TIMEOUT)
    assert created.status_code == 201, created.text
    return made


@pytest.fixture(scope="module")
def site(server: LiveServer, admin: dict[str, str]) -> LiveServer:
    """The module's server with its people and DB_PASS (`admin`)."""
    return server


def _summary(page: Any, text: str) -> None:
    page.get_by_test_id("audit-summary").filter(has_text=re.compile(rf"^{text}$")).wait_for()


def test_filters_survive_a_reload_back_and_a_shared_link(site: LiveServer, page: Any) -> None:
    signed_in(page, site, "admin", then="/audit")

    page.get_by_test_id("audit-action").click()
    page.get_by_role("option", name="user.create", exact=True).click()
    page.get_by_test_id("audit-target-id").fill("3")
    page.get_by_test_id("audit-apply").click()
    page.wait_for_url(re.compile(r".*/audit\?action=user\.create&target_id=3$"))
    _summary(page, "1 event")

    page.reload()
    wait_connected(page)
    _summary(page, "1 event")
    assert page.get_by_test_id("audit-target-id").input_value() == "3"
    assert "user.create" in page.get_by_test_id("audit-action").inner_text()

    page.get_by_test_id("nav-settings").click()
    page.wait_for_url(f"{site.url}/settings")
    page.go_back()
    wait_connected(page)
    _summary(page, "1 event")

    # A shared link: the actor and a day range apply; an action no event has is named and left out.
    page.goto(f"{site.url}/audit?actor_name=ADMIN&action=nothing.done&since=2000-01-01&until=2999-12-31")
    wait_connected(page)
    page.locator(".q-notification", has_text="action 'nothing.done' is not one of this page's").wait_for()
    assert page.get_by_test_id("audit-actor").input_value() == "ADMIN"
    assert "2000-01-01" in page.get_by_test_id("audit-dates").input_value()
    page.get_by_test_id("audit-table").filter(has_text="auth.login").wait_for()
    page.goto(f"{site.url}/audit?since=2026-12-05&until=2026-12-01")
    page.locator(".q-field", has=page.get_by_test_id("audit-dates")).filter(
        has_text="must not be later than until"
    ).wait_for()
    page.goto(f"{site.url}/audit?since=someday")
    page.get_by_test_id("bad-address-problem").filter(has_text="since").wait_for()

    # Clearing the filters clears the address.
    page.goto(f"{site.url}/audit?target_id=3")
    wait_connected(page)
    assert page.get_by_test_id("audit-target-id").input_value() == "3"
    page.get_by_role("button", name="Clear the filters").click()
    page.wait_for_url(f"{site.url}/audit")
    page.goto(f"{site.url}/audit?target_id=nothing")
    page.get_by_test_id("audit-table").filter(has_text="No events match these filters").wait_for()


@pytest.mark.parametrize(("path", "noun"), [("/users", "user"), ("/secrets", "secret")])
def test_the_search_survives_a_reload_and_a_shared_link(
    site: LiveServer, page: Any, path: str, noun: str
) -> None:
    signed_in(page, site, "admin", then=path)
    search = page.get_by_test_id(f"{noun}-search")
    term = {"user": "viewer", "secret": "db_pass"}[noun]
    search.fill(term)
    page.wait_for_url(f"{site.url}{path}?search={term}")
    page.get_by_test_id(f"{noun}s-summary").filter(has_text=f"1 {noun} matching").wait_for()
    page.reload()
    wait_connected(page)
    assert search.input_value() == term
    page.get_by_test_id(f"{noun}s-summary").filter(has_text=f"1 {noun} matching").wait_for()

    page.goto(f"{site.url}{path}?search=nobody%20has%20this")
    wait_connected(page)
    page.get_by_test_id(f"{noun}s-table").filter(has_text=f"No {noun}s match the search").wait_for()
    search.fill("")
    page.wait_for_url(f"{site.url}{path}")


def test_every_list_page_reads_emptied_filters_as_no_filters(site: LiveServer, page: Any) -> None:
    """An emptied filter in the address is no filter, as in the API (`GET
    /api/v1/scripts?status=`): `/scripts?status=&tag=...` was a server error (500: the text
    filters reached the page as empty text, not as absent)."""
    signed_in(page, site, "admin", then="/profile")
    pages = {
        "/scripts": "status=&script_type=&tag=&search=&sort=",
        "/executions": "status=&trigger=&script_id=&user_id=&since=&until=&cursor=",
        "/audit": "action=&target_type=&actor_name=&target_id=&since=&until=",
        "/users": "search=",
        "/secrets": "search=",
    }
    for path, emptied in pages.items():
        response = page.goto(f"{site.url}{path}?{emptied}")
        assert response is not None and response.status == 200, path
        wait_connected(page)
        assert page.get_by_test_id("bad-address").count() == 0, path
        assert page.locator(".q-notification").count() == 0, path
    # The emptied filters list what no filters list.
    page.goto(f"{site.url}/audit")
    wait_connected(page)
    summary = page.get_by_test_id("audit-summary")
    summary.filter(has_text=re.compile(r"^\d+ events?$")).wait_for()
    unfiltered = summary.inner_text()
    page.goto(f"{site.url}/audit?{pages['/audit']}")
    wait_connected(page)
    _summary(page, unfiltered)


# The text of the first row the selector finds (a table's first cell, a token's card).
FIRST_ROW = "document.querySelector(sel)?.innerText"


def _fill_two_pages(server: LiveServer, admin: dict[str, str], listed: str) -> str:
    """Rows enough for two pages of the list `listed` (a page's path, but `versions`), with the
    module's own (the three users and DB_PASS); the list's address, its filters in it."""

    def send(method: str, path: str, body: dict[str, Any], status: int) -> dict[str, Any]:
        sent = httpx.request(
            method, f"{server.url}/api/v1{path}", json=body, headers=admin, timeout=API_TIMEOUT
        )
        assert sent.status_code == status, sent.text
        return dict(sent.json())

    if listed == "/scripts":
        for i in range(scripts.PAGE_SIZE + 1):
            create_script(server, admin, f"paged-{i:02d}", "echo hi\n")
    elif listed == "/users":
        for i in range(users.PAGE_SIZE - 2):
            api_user(server, admin, f"paged-{i:02d}", "viewer")
    elif listed == "/secrets":
        for i in range(secrets.PAGE_SIZE):
            send("POST", "/secrets", {"name": f"PAGED_{i:02d}", "value": "paged-value-1"}, 201)
    elif listed == "/audit":  # the viewer (user 3) renamed: the only user.update events
        for i in range(audit.PAGE_SIZE + 1):
            send("PUT", "/users/3", {"full_name": f"Paged {i:02d}"}, 200)
        return "/audit?action=user.update"
    elif listed == "/tokens":  # the admin's own: every user's listed (the admin's switch) too
        for i in range(tokens.PAGE_SIZE + 1):
            send("POST", "/tokens", {"name": f"paged-{i:02d}"}, 201)
        return "/tokens?all=true"
    else:  # a script's versions: the first, and one per change of its content
        script = create_script(server, admin, "versioned", "echo 0\n")
        for i in range(1, script_page.VERSIONS_PAGE + 1):
            send("PUT", f"/scripts/{script['id']}", {"content": f"echo {i}\n"}, 200)
        return f"/scripts/{script['id']}?tab=versions"
    return listed


LISTS = [
    ("/scripts", "[data-testid=scripts-table] tbody tr td"),
    ("/users", "[data-testid=users-table] tbody tr td"),
    ("/secrets", "[data-testid=secrets-table] tbody tr td"),
    ("/audit", "[data-testid=audit-table] tbody tr"),
    ("/tokens", ".q-card[data-testid^=token-]"),
    ("versions", "[data-testid=versions-table] tbody tr td"),
]


@pytest.mark.parametrize(("listed", "first_row"), LISTS)
def test_the_page_survives_back_a_reload_and_a_shared_link(
    site: LiveServer, admin: dict[str, str], page: Any, listed: str, first_row: str
) -> None:
    """Page 2 of a list stays page 2 after Back from another page and a reload, `?page=2` opens it
    (with the list's filters: `/tokens?all=true&page=2`), and a page past the last
    (`?page=99`, rows deleted since the link was shared) shows the last."""
    path = _fill_two_pages(site, admin, listed)
    second_page = f"{site.url}{path}{'&' if '?' in path else '?'}page=2"
    signed_in(page, site, "admin", then=path)
    page.locator(".q-pagination").get_by_role("button", name="1").wait_for()
    first = page.evaluate(f"sel => {FIRST_ROW}", first_row)
    page.locator(".q-pagination").get_by_role("button", name="2").click()
    page.wait_for_url(second_page)
    page.wait_for_function(f"([sel, first]) => {FIRST_ROW} !== first", arg=[first_row, first])
    second = page.evaluate(f"sel => {FIRST_ROW}", first_row)

    def shows_page_2() -> None:
        wait_connected(page)
        page.wait_for_function(f"([sel, second]) => {FIRST_ROW} === second", arg=[first_row, second])
        current = page.locator(".q-pagination .q-btn[aria-current=true]")
        assert current.inner_text() == "2"

    page.get_by_test_id("nav-settings").click()
    page.wait_for_url(f"{site.url}/settings")
    page.go_back()
    shows_page_2()
    page.reload()
    shows_page_2()
    for past in ("99", "1" + "0" * 23):  # the second: past any integer the database takes
        page.goto(second_page.replace("page=2", f"page={past}"))
        shows_page_2()
        page.wait_for_url(second_page)
    page.locator(".q-pagination").get_by_role("button", name="1").click()
    page.wait_for_url(f"{site.url}{path}")


def test_the_script_page_keeps_the_tab_opened(site: LiveServer, admin: dict[str, str], page: Any) -> None:
    """The tab opened is put in the address (a reload showed the tab the page was opened on, and
    a Versions page kept there outlived a switch to another tab)."""
    script = create_script(site, admin, "tabbed", "echo hi\n")
    opened = f"{site.url}/scripts/{script['id']}"
    signed_in(page, site, "admin", then=f"/scripts/{script['id']}")
    page.get_by_test_id("tab-content").click()
    page.wait_for_url(f"{opened}?tab=content")
    page.reload()
    wait_connected(page)
    assert "q-tab--active" in (page.get_by_test_id("tab-content").get_attribute("class") or "")
    page.get_by_test_id("tab-versions").click()
    page.wait_for_url(f"{opened}?tab=versions")
    page.get_by_test_id("tab-overview").click()
    page.wait_for_url(opened)


def test_a_scripts_executions_tab_keeps_its_filters_in_the_address(
    site: LiveServer, admin: dict[str, str], page: Any
) -> None:
    """The tab's filters were lost on a reload, Back or a shared link (the full history at
    /executions kept them): they are kept as `/scripts/N?tab=executions&status=...`, also when
    another tab was opened in between; given with another tab open, they are named as ignored."""
    script = create_script(site, admin, "filtered-runs", "echo hi\n")
    opened = f"{site.url}/scripts/{script['id']}"
    signed_in(page, site, "admin", then=f"/scripts/{script['id']}?tab=executions")
    page.get_by_test_id("no-runs").get_by_text("Nothing has run yet.").wait_for()
    page.get_by_test_id("filter-status").click()
    page.get_by_role("option", name="failed", exact=True).click()
    page.wait_for_url(f"{opened}?tab=executions&status=failed")
    filtered = page.get_by_test_id("no-runs").get_by_text("No executions match these filters.")
    filtered.wait_for()
    full = page.get_by_test_id("runs-full-history")
    assert full.get_attribute("href") == f"/executions?script_id={script['id']}&status=failed"

    page.reload()
    wait_connected(page)
    filtered.wait_for()
    assert page.get_by_test_id("filter-status").inner_text().endswith("failed")
    page.get_by_test_id("tab-overview").click()
    page.wait_for_url(opened)
    page.get_by_test_id("tab-executions").click()
    page.wait_for_url(f"{opened}?tab=executions&status=failed")
    page.goto(f"{opened}?status=failed")
    page.locator(".q-notification", has_text="status is the Executions tab's (tab=executions)").wait_for()
