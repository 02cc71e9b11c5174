"""The audit log keeps its filters in the address: a reload, Back from another page or a shared
link shows the same events (the filters were lost: every event was listed again)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.conftest import LiveServer
from tests.ui_journey import log_in, make_users, wait_connected

pytestmark = pytest.mark.browser


def _summary(page: Any, text: str) -> None:
    page.get_by_test_id("audit-summary").filter(has_text=re.compile(rf"^{text}$")).wait_for()


def test_filters_survive_a_reload_back_and_a_shared_link(live_server: LiveServer, page: Any) -> None:
    make_users(live_server)  # admin, then user.create of operator and viewer
    log_in(page, live_server, "admin")
    page.goto(f"{live_server.url}/audit")
    wait_connected(page)

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
    page.wait_for_url(f"{live_server.url}/settings")
    page.go_back()
    wait_connected(page)
    _summary(page, "1 event")

    # A shared link: the actor and a day range apply; an action no event has is named and left out.
    page.goto(
        f"{live_server.url}/audit?actor_name=ADMIN&action=nothing.done&since=2000-01-01&until=2999-12-31"
    )
    wait_connected(page)
    page.locator(".q-notification", has_text="action 'nothing.done' is not one of this page's").wait_for()
    assert page.get_by_test_id("audit-actor").input_value() == "ADMIN"
    assert "2000-01-01" in page.get_by_test_id("audit-dates").input_value()
    page.get_by_test_id("audit-table").filter(has_text="auth.login").wait_for()
    page.goto(f"{live_server.url}/audit?since=someday")
    page.get_by_test_id("bad-address-problem").filter(has_text="since").wait_for()

    # Clearing the filters clears the address.
    page.goto(f"{live_server.url}/audit?target_id=3")
    wait_connected(page)
    assert page.get_by_test_id("audit-target-id").input_value() == "3"
    page.get_by_role("button", name="Clear the filters").click()
    page.wait_for_url(f"{live_server.url}/audit")
