"""The Settings page shows each live worker's warm containers (admins only reach the page)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import LiveServer
from tests.ui_journey import log_in, make_users

pytestmark = pytest.mark.browser


def test_settings_page_shows_the_warm_pool(live_server: LiveServer, page: Any) -> None:
    make_users(live_server)
    log_in(page, live_server, "admin")
    page.goto(f"{live_server.url}/settings")
    line = page.get_by_test_id("warm-pool")
    line.wait_for(timeout=60_000)
    text = line.inner_text()
    assert " warm (2 per profile in use), " in text and "warm starts" in text and "cold starts" in text
