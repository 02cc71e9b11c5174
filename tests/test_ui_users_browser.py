"""The users page as an admin uses it: the table in alphabetical order ignoring case, and a refused
change of the Active switch said under the switch (it was a toast), with nothing changed."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.conftest import PASSWORD, LiveServer
from tests.ui_journey import journey_server, journey_tokens, log_in

pytestmark = pytest.mark.browser

server = journey_server("users-ui")
tokens = journey_tokens()


def test_the_table_is_alphabetical_and_a_refused_deactivation_is_said_under_the_switch(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    for name in ("Zed", "alice", "Bob"):
        body = {"username": name, "email": f"{name}@example.com", "password": PASSWORD}
        r = httpx.post(f"{server.url}/api/v1/users", json=body, headers=tokens["admin"], timeout=60)
        assert r.status_code == 201, r.text
    log_in(page, server, "admin")
    page.goto(f"{server.url}/users")
    first_cells = page.get_by_test_id("users-table").locator("tbody tr td:first-child")
    expect(first_cells).to_have_text(["admin", "alice", "Bob", "operator", "viewer", "Zed"])

    # An admin cannot deactivate themself: the reason stands under the switch, the dialog stays.
    page.get_by_test_id("edit-admin").click()
    page.get_by_test_id("edit-active").click()
    page.get_by_test_id("edit-submit").click()
    expect(page.get_by_test_id("edit-active-error")).to_have_text(
        "You cannot deactivate yourself: another admin can"
    )
    assert page.locator(".q-notification").count() == 0, "said under the switch, not in a toast"
    # Switching it back clears the message; Cancel leaves the account as it was.
    page.get_by_test_id("edit-active").click()
    expect(page.get_by_test_id("edit-active-error")).to_have_text("")
    me = httpx.get(f"{server.url}/api/v1/auth/me", headers=tokens["admin"], timeout=60).json()
    assert me["is_active"] is True
