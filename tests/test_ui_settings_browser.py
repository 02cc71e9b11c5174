"""Every admin setting is on the Settings page, not only in the API: `api_tokens_require_expiry`
was missing, so an admin working in the browser could not require tokens to expire."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from opscraft.services import app_settings
from opscraft.ui import settings_page
from tests.conftest import LiveServer
from tests.ui_journey import API_TIMEOUT, log_in, make_users

pytestmark = pytest.mark.browser


def test_every_setting_has_a_field() -> None:
    shown = {*settings_page.SWITCHES, *settings_page.RETENTION_NUMBERS, settings_page.RETENTION_SWITCH[0]}
    shown |= {"local_runner_role", "warm_pool_size"}
    assert shown == set(app_settings.KNOWN)


def test_an_admin_requires_token_expiry_in_the_browser(live_server: LiveServer, page: Any) -> None:
    tokens = make_users(live_server)
    log_in(page, live_server, "admin")
    page.goto(f"{live_server.url}/settings")
    page.get_by_test_id("setting-api_tokens_require_expiry").click()
    page.get_by_test_id("settings-save").click()
    page.get_by_text("Settings saved").wait_for()

    saved = httpx.get(f"{live_server.url}/api/v1/settings", headers=tokens["viewer"], timeout=API_TIMEOUT)
    assert saved.json()["api_tokens_require_expiry"] is True
    audit = f"{live_server.url}/api/v1/audit?action=setting.update"
    events = httpx.get(audit, headers=tokens["admin"], timeout=API_TIMEOUT).json()["total"]
    page.get_by_test_id("settings-save").click()  # no edit since: the API's {} is a 422, not sent
    page.get_by_text("Nothing changed").wait_for()
    assert httpx.get(audit, headers=tokens["admin"], timeout=API_TIMEOUT).json()["total"] == events
    r = httpx.post(
        f"{live_server.url}/api/v1/tokens", json={"name": "ci"}, headers=tokens["viewer"], timeout=API_TIMEOUT
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "expires_at", r.text
