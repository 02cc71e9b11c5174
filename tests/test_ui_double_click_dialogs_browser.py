"""A double-click on a button that opens a dialog opens one dialog (`widgets.opens_dialog`): the
second click reached the server before the first click's dialog showed, and a second copy opened
over it and stayed, empty or asking again, once the first was answered or closed."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.conftest import LiveServer
from tests.ui_journey import journey_server, journey_tokens, log_in

pytestmark = pytest.mark.browser

server = journey_server("double-click-dialogs-ui")
tokens = journey_tokens()

OPEN_DIALOGS = "[role=dialog]:visible"


def test_a_double_clicked_delete_asks_once(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    body = {"name": "twice_clicked", "script_type": "bash", "content": "echo hi\n"}
    r = httpx.post(f"{server.url}/api/v1/scripts", json=body, headers=tokens["operator"], timeout=60)
    assert r.status_code == 201, r.text
    log_in(page, server, "operator", then=f"/scripts/{r.json()['id']}")
    page.get_by_role("button", name="Delete").dblclick()
    page.get_by_test_id("delete-dialog").first.wait_for()
    page.keyboard.press("Escape")
    expect(page.locator(OPEN_DIALOGS)).to_have_count(0)
    page.get_by_role("button", name="Delete").click()  # nothing left in front of the page
    expect(page.locator(OPEN_DIALOGS)).to_have_count(1)


def test_a_double_clicked_new_secret_opens_one_form(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    log_in(page, server, "operator", then="/secrets")
    page.get_by_role("button", name="New secret").dblclick()
    dialog = page.locator(OPEN_DIALOGS)
    dialog.get_by_label("Name (environment variable, e.g. DATABASE_PASSWORD)").first.fill("TWICE_OPENED")
    dialog.get_by_label("Value (several lines are kept as they are)").first.fill("twice-opened-value")
    dialog.get_by_role("button", name="Create").first.click()
    page.locator(".q-notification", has_text="Secret created").wait_for()
    expect(page.locator(OPEN_DIALOGS)).to_have_count(0)
    listed = httpx.get(f"{server.url}/api/v1/secrets", headers=tokens["operator"], timeout=60).json()
    assert [s["name"] for s in listed["items"]] == ["TWICE_OPENED"]
