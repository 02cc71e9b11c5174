"""The users page as an admin uses it: the table in alphabetical order ignoring case, a refused
change of the Active switch said under the switch (it was a toast), and an unchanged form's Save
closing it (it answered in the API's words)."""

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


def test_the_table_is_alphabetical_and_the_edit_form_answers_in_place(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    for name in ("Zed", "alice", "Bob"):
        body = {"username": name, "email": f"{name}@example.com", "password": PASSWORD}
        r = httpx.post(f"{server.url}/api/v1/users", json=body, headers=tokens["admin"], timeout=60)
        assert r.status_code == 201, r.text
    log_in(page, server, "admin", then="/users")
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
    # Switching it back clears the message. Saved as it loaded, the form closes: nothing changed
    # (it said the API's "nothing to change: send at least one of email, full_name, ...").
    page.get_by_test_id("edit-active").click()
    expect(page.get_by_test_id("edit-active-error")).to_have_text("")
    page.get_by_test_id("edit-submit").click()
    expect(page.get_by_test_id("edit-submit")).to_have_count(0)
    expect(page.locator(".q-notification").filter(has_text="Nothing changed")).to_have_count(1)
    assert page.locator(".q-notification").filter(has_text="send at least one").count() == 0
    me = httpx.get(f"{server.url}/api/v1/auth/me", headers=tokens["admin"], timeout=60).json()
    assert me["is_active"] is True
