"""The Settings page shows each live worker's warm containers (admins only reach the page) and
sets how many a worker keeps per profile (refused under the field when out of range, with every
other bad field of the same save)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer
from tests.ui_journey import log_in, make_users

pytestmark = pytest.mark.browser


def test_settings_page_shows_and_sets_the_warm_pool(live_server: LiveServer, page: Any) -> None:
    tokens = make_users(live_server)
    log_in(page, live_server, "admin")
    page.goto(f"{live_server.url}/settings")
    line = page.get_by_test_id("warm-pool")
    line.wait_for(timeout=60_000)
    text = line.inner_text()
    assert " warm (2 per profile in use, up to 4 under demand), " in text, text
    assert " warm start" in text and " cold start" in text

    size = page.get_by_test_id("setting-warm_pool_size")
    size.fill("17")
    days = page.get_by_test_id("setting-output_retention_days")
    days.fill("-3")
    days.press("Tab")  # leaving the field kept -3 (not turned into 0 in the browser)
    page.get_by_test_id("settings-save").click()
    # Every bad field of one save has its message under it, not only the first.
    page.get_by_text("must be between 0 and 16").wait_for()
    page.get_by_text("must be between 0 and 36500").wait_for()
    assert days.input_value() == "-3"
    settings = httpx.get(f"{live_server.url}/api/v1/settings", headers=tokens["admin"]).json()
    assert settings["warm_pool_size"] == 2 and settings["output_retention_days"] == 0, "nothing saved"
    days.fill("0")
    size.fill("0")
    page.get_by_test_id("settings-save").click()
    page.get_by_text("Settings saved").wait_for()
    settings = httpx.get(f"{live_server.url}/api/v1/settings", headers=tokens["admin"]).json()
    assert settings["warm_pool_size"] == 0
    deadline = time.monotonic() + 60  # the worker applies it at its next heartbeat
    while True:
        pools = httpx.get(f"{live_server.url}/api/v1/warm-pools", headers=tokens["admin"]).json()["items"]
        if pools and pools[0]["size"] == 0:
            break
        assert time.monotonic() < deadline, pools
        time.sleep(0.2)
    page.reload()
    assert " warm (0 per profile in use), " in page.get_by_test_id("warm-pool").inner_text()
