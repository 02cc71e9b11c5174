"""A browser session ends `OPSCRAFT_SESSION_MAX_AGE_DAYS` after the password was typed, however
active the user is: it slid forever (every page view kept it alive). An open page, or the next
page opened, goes to the login page saying why; signing in again starts a new session."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import LiveServer, start_server, stop_server
from tests.ui_journey import log_in, make_users

pytestmark = pytest.mark.browser

MAX_AGE_SECONDS = 20
NOTICE = "Your session has reached its maximum age: log in again."


@pytest.fixture
def short_sessions(tmp_path: Path) -> Iterator[LiveServer]:
    """A server whose sign-ins last `MAX_AGE_SECONDS` (the setting takes fractions of a day) and
    whose open pages re-check the session every second or two (`OPSCRAFT_LIVE_SECONDS`)."""
    env = {"OPSCRAFT_SESSION_MAX_AGE_DAYS": str(MAX_AGE_SECONDS / 86_400), "OPSCRAFT_LIVE_SECONDS": "1"}
    server = start_server(tmp_path / "server", env)
    try:
        yield server
    finally:
        stop_server(server)


def _until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.monotonic()))


def test_an_active_session_ends_at_its_maximum_age(short_sessions: LiveServer, page: Any) -> None:
    server = short_sessions
    make_users(server)
    # A first sign-in (another browser) whose age passes with no page of it open: it runs out
    # alongside the active one below instead of after it.
    idle = page.context.browser.new_context()
    try:
        idle.set_default_timeout(30_000)
        late = idle.new_page()
        log_in(late, server, "admin", then="/tokens")
        late_signed_in = time.monotonic()  # the sign-in time is at most this
        late.get_by_test_id("token-add").wait_for()
        late.goto("about:blank")

        before = time.monotonic()  # the session's sign-in time is at least this
        log_in(page, server, "admin")
        signed_in = time.monotonic()  # and at most this
        # Active all along: a page every 2 s kept the session alive for good.
        while time.monotonic() < signed_in + MAX_AGE_SECONDS - 8:
            page.goto(f"{server.url}/tokens")
            page.get_by_test_id("token-add").wait_for()
            time.sleep(2)
        # The open page goes to the login page on its own (its frame re-checks the session every
        # few seconds), saying why.
        page.wait_for_url(f"{server.url}/login**", timeout=(MAX_AGE_SECONDS + 15) * 1000)
        assert time.monotonic() >= before + MAX_AGE_SECONDS, "not before its age"
        page.get_by_test_id("login-notice").get_by_text(NOTICE, exact=True).wait_for()

        # Signing in again starts a new session.
        log_in(page, server, "admin", then="/tokens")
        page.get_by_test_id("token-add").wait_for()

        # Opened past its age (no page of it open meanwhile), a page goes to the login page too,
        # which returns to it after signing in.
        _until(late_signed_in + MAX_AGE_SECONDS + 1)
        late.goto(f"{server.url}/scripts")
        late.wait_for_url(f"{server.url}/login**", timeout=15_000)
        assert late.url == f"{server.url}/login?next=%2Fscripts&notice=expired"
        late.get_by_test_id("login-notice").get_by_text(NOTICE, exact=True).wait_for()
    finally:
        idle.close()
