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
    """A server whose sign-ins last `MAX_AGE_SECONDS` (the setting takes fractions of a day)."""
    server = start_server(
        tmp_path / "server", {"OPSCRAFT_SESSION_MAX_AGE_DAYS": str(MAX_AGE_SECONDS / 86_400)}
    )
    try:
        yield server
    finally:
        stop_server(server)


def _until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.monotonic()))


def test_an_active_session_ends_at_its_maximum_age(short_sessions: LiveServer, page: Any) -> None:
    server = short_sessions
    make_users(server)
    before = time.monotonic()  # the session's sign-in time is at least this
    log_in(page, server, "admin")
    signed_in = time.monotonic()  # and at most this
    # Active all along: a page every 2 s kept the session alive for good.
    while time.monotonic() < signed_in + MAX_AGE_SECONDS - 8:
        page.goto(f"{server.url}/tokens")
        page.get_by_test_id("token-add").wait_for()
        time.sleep(2)
    # The open page goes to the login page on its own (its frame re-checks the session every few
    # seconds), saying why.
    page.wait_for_url(f"{server.url}/login**", timeout=(MAX_AGE_SECONDS + 15) * 1000)
    assert time.monotonic() >= before + MAX_AGE_SECONDS, "not before its age"
    page.get_by_test_id("login-notice").get_by_text(NOTICE, exact=True).wait_for()

    # Signing in again starts a new session. Opened past its age (no page of it open meanwhile),
    # a page goes to the login page too, which returns to it after signing in.
    log_in(page, server, "admin")
    again = time.monotonic()
    page.goto(f"{server.url}/tokens")
    page.get_by_test_id("token-add").wait_for()
    page.goto("about:blank")
    _until(again + MAX_AGE_SECONDS + 1)
    page.goto(f"{server.url}/scripts")
    page.wait_for_url(f"{server.url}/login**", timeout=15_000)
    assert page.url == f"{server.url}/login?next=%2Fscripts&notice=expired"
    page.get_by_test_id("login-notice").get_by_text(NOTICE, exact=True).wait_for()
