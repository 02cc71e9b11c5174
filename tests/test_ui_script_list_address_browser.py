"""The scripts list keeps its search and filters in the address: Back from a script, a reload or a
shared link shows the same list (they were lost: Back showed every script again)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.conftest import LiveServer
from tests.ui_journey import create_script, log_in, make_users, wait_connected

pytestmark = pytest.mark.browser


def _listed(page: Any, *names: str) -> list[str]:
    """The scripts listed, once `names` are (the table is filled after the page is connected)."""
    for name in names:
        page.get_by_test_id(f"script-link-{name}").wait_for()
    links = page.get_by_test_id("scripts-table").locator("[data-testid^=script-link-]")
    return sorted(links.all_inner_texts())


def test_search_and_filters_survive_back_reload_and_a_shared_link(live_server: LiveServer, page: Any) -> None:
    tokens = make_users(live_server)
    for name, tags in (("web-deploy", ["prod"]), ("web-backup", ["ops"]), ("db-backup", ["prod"])):
        create_script(live_server, tokens["operator"], name, "echo hi\n", tags=tags)
    log_in(page, live_server, "viewer")
    page.goto(f"{live_server.url}/scripts")
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
    page.goto(f"{live_server.url}/scripts?search=backup&tag=gone&sort=size")
    wait_connected(page)
    page.locator(".q-notification", has_text="tag 'gone' is not one of this page's").wait_for()
    assert _listed(page, "db-backup", "web-backup") == ["db-backup", "web-backup"]
    page.goto(f"{live_server.url}/scripts?script_type=cobol")
    page.get_by_test_id("bad-address-problem").filter(has_text="script_type").wait_for()
