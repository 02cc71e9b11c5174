"""The scripts list keeps its search and filters in the address: Back from a script, a reload or a
shared link shows the same list (they were lost: Back showed every script again)."""

from __future__ import annotations

import contextlib
import re
from typing import Any

import httpx
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.conftest import LiveServer
from tests.ui_journey import create_script, journey_server, journey_tokens, log_in, wait_connected

pytestmark = pytest.mark.browser

# One server for the module (the defaults, as `live_server`); each test's scripts have names and
# tags of their own.
server = journey_server("script-list-address-ui", env={})
tokens = journey_tokens()


def _listed(page: Any, *names: str) -> list[str]:
    """The scripts listed, once exactly `names` are or after 10 s (the table is filled after the
    page is connected, and refreshed a moment after a filter changes the address)."""
    selector = "[data-testid=scripts-table] [data-testid^=script-link-]"
    with contextlib.suppress(PlaywrightTimeout):
        page.wait_for_function(
            """([selector, names]) => {
                const shown = Array.from(document.querySelectorAll(selector), (a) => a.innerText).sort();
                return JSON.stringify(shown) === JSON.stringify(names);
            }""",
            arg=[selector, sorted(names)],
            timeout=10_000,
        )
    return sorted(page.locator(selector).all_inner_texts())


def test_search_and_filters_survive_back_reload_and_a_shared_link(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    for name, tags in (("web-deploy", ["prod"]), ("web-backup", ["ops"]), ("db-backup", ["prod"])):
        create_script(server, tokens["operator"], name, "echo hi\n", tags=tags)
    log_in(page, server, "viewer")
    page.goto(f"{server.url}/scripts")
    wait_connected(page)

    page.get_by_test_id("script-search").fill("web")
    page.wait_for_url(re.compile(r".*/scripts\?search=web$"))
    page.get_by_test_id("filter-tag").click()
    page.get_by_role("option", name="prod", exact=True).click()
    page.wait_for_url(re.compile(r".*/scripts\?search=web&tag=prod$"))
    assert _listed(page, "web-deploy") == ["web-deploy"]

    page.get_by_role("link", name="web-deploy").click()
    page.wait_for_url(re.compile(r".*/scripts/\d+$"))
    page.go_back()
    wait_connected(page)
    assert page.get_by_test_id("script-search").input_value() == "web"
    assert _listed(page, "web-deploy") == ["web-deploy"]
    page.reload()
    wait_connected(page)
    assert _listed(page, "web-deploy") == ["web-deploy"]

    # A link naming a tag no script has, or an unknown sort: the rest applies, those are named.
    page.goto(f"{server.url}/scripts?search=backup&tag=gone&sort=size")
    wait_connected(page)
    page.locator(".q-notification", has_text="tag 'gone' is not one of this page's").wait_for()
    assert _listed(page, "db-backup", "web-backup") == ["db-backup", "web-backup"]
    # Emptied filters are no filters, as `GET /api/v1/scripts?status=&script_type=` (was a 422):
    # every script of the server (this test's three and any other test's of the module).
    every = httpx.get(f"{server.url}/api/v1/scripts", headers=tokens["viewer"], timeout=30).json()
    everything = sorted(s["name"] for s in every["items"])
    assert {"db-backup", "web-backup", "web-deploy"} <= set(everything) and len(everything) == every["total"]
    page.goto(f"{server.url}/scripts?status=&script_type=&search=&tag=")
    wait_connected(page)
    assert _listed(page, *everything) == everything
    assert page.get_by_test_id("bad-address").count() == 0
    r = httpx.get(
        f"{server.url}/api/v1/scripts?status=&script_type=&search=&tag=",
        headers=tokens["viewer"],
        timeout=30,
    )
    assert r.status_code == 200 and sorted(s["name"] for s in r.json()["items"]) == everything, r.text
    page.goto(f"{server.url}/scripts?script_type=cobol")
    page.get_by_test_id("bad-address-problem").filter(has_text="script_type").wait_for()


def test_a_tag_in_the_address_matches_whatever_its_case(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    # Tags are one tag whatever their case (as `GET /api/v1/scripts?tag=`): `?tag=прод` was
    # "not one of this page's" when the scripts say `ПРОД`, and the list showed every script.
    create_script(server, tokens["operator"], "ru-deploy", "echo hi\n", tags=["ПРОД"])
    create_script(server, tokens["operator"], "other", "echo hi\n", tags=["ops"])
    log_in(page, server, "viewer")
    page.goto(f"{server.url}/scripts?tag=%D0%BF%D1%80%D0%BE%D0%B4")
    wait_connected(page)
    assert _listed(page, "ru-deploy") == ["ru-deploy"]
    assert "ПРОД" in page.get_by_test_id("filter-tag").inner_text()
    assert page.locator(".q-notification").count() == 0


def test_the_tag_filter_offers_a_tag_added_since_the_page_loaded(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """A tester's pass: the Tag filter read its choices once, at load: a tag added since (another
    tab, another user, the API) was offered only after a reload, while the list itself is live.
    Its choices are read again when it opens; the chosen tag stays offered."""
    create_script(server, tokens["operator"], "tag-early", "echo hi\n", tags=["early-tag"])
    log_in(page, server, "viewer")
    page.goto(f"{server.url}/scripts?tag=early-tag")
    wait_connected(page)
    assert _listed(page, "tag-early") == ["tag-early"]
    create_script(server, tokens["operator"], "tag-late", "echo hi\n", tags=["late-tag"])  # another tab
    page.get_by_test_id("filter-tag").click()
    page.get_by_role("option", name="early-tag", exact=True).wait_for()
    page.get_by_role("option", name="late-tag", exact=True).click()
    page.wait_for_url(re.compile(r".*/scripts\?tag=late-tag$"))
    assert _listed(page, "tag-late") == ["tag-late"]
