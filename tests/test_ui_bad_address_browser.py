"""A page address edited by hand (a malformed filter, cursor or id) shows a page saying what is
wrong, never FastAPI's raw 422 JSON or a server error page."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from opscraft.db.text import NOT_UTF8_MESSAGE
from opscraft.services.instants import OUT_OF_RANGE
from tests.conftest import LiveServer
from tests.ui_journey import API_TIMEOUT, journey_server, journey_tokens, signed_in

pytestmark = pytest.mark.browser

# One server (the defaults, as `live_server`) for both tests: they only read, each page a fresh
# context signed in with the kept session (`signed_in`).
server = journey_server("bad-address-ui", env={})
tokens = journey_tokens()

# address -> (status, the message shown, where the page's link leads)
BAD_ADDRESSES = {
    "/executions?script_id=abc": (
        400,
        "script_id must be a whole number (it is text).",
        "/executions?script_id=abc",
    ),
    "/executions?script_id=1&user_id=1.5": (
        400,
        "user_id must be a whole number (it is a number with a decimal point).",
        None,
    ),
    "/executions?since=garbage": (400, "since must be a date written YYYY-MM-DD.", None),
    "/executions?until=0": (400, "until must be a date written YYYY-MM-DD.", None),
    # year 0: the API's words for a time outside the calendar (`instants.OUT_OF_RANGE`)
    "/executions?since=0000-01-01": (400, f"since {OUT_OF_RANGE}.", None),
    "/audit?until=0000-12-31": (400, f"until {OUT_OF_RANGE}.", None),
    # a five-digit or signed year: the same words (it was "must be a date written YYYY-MM-DD")
    "/audit?since=10000-01-01": (400, f"since {OUT_OF_RANGE}.", None),
    "/executions?until=%2B2026-12-31": (400, f"until {OUT_OF_RANGE}.", None),
    "/executions/abc": (400, "execution_id must be a whole number (it is text).", "/executions"),
    "/scripts/abc": (400, "script_id must be a whole number (it is text).", "/scripts"),
    "/scripts/1.5/edit": (
        400,
        "script_id must be a whole number (it is a number with a decimal point).",
        "/scripts",
    ),
    "/scripts/1.0/edit": (
        400,
        "script_id must be a whole number (it is a number with a decimal point).",
        "/scripts",
    ),
    "/executions?script_id=1.0": (
        400,
        "script_id must be a whole number (it is a number with a decimal point).",
        None,
    ),
    # a percent-encoded byte that is no UTF-8 (it was searched for as U+FFFD: an empty list)
    "/scripts?search=%FF": (400, f"search {NOT_UTF8_MESSAGE}.", "/scripts?search=%FF"),
    "/users?search=caf%E9": (400, f"search {NOT_UTF8_MESSAGE}.", None),
}
# Addresses that convert but that the history's service refuses: the results say why.
REFUSED_FILTERS = {
    "/executions?status=zzz": "not valid: status: must be one of:",
    "/executions?user_id=-5": "not valid: user_id: must be between 1 and 2147483647",
    "/executions?cursor=abc": "not valid: cursor: not a cursor from this API",
}


def test_malformed_addresses_show_a_page_saying_what_is_wrong(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    signed_in(page, server, "admin")
    for path, (status, message, link) in BAD_ADDRESSES.items():
        response = page.goto(server.url + path)
        assert response.status == status, path
        assert "application/json" not in response.headers["content-type"], path
        problem = page.get_by_test_id("bad-address-problem")
        problem.wait_for()
        assert problem.inner_text() == message, path
        page.get_by_test_id("whoami").wait_for()  # inside the usual frame
        if link is not None:
            page.get_by_test_id("bad-address-reset").click()
            page.wait_for_url(server.url + link.split("?")[0])
    for path, message in REFUSED_FILTERS.items():
        response = page.goto(server.url + path)
        assert response.status == 200, path
        page.get_by_test_id("no-runs").get_by_text(message).wait_for()
    # A well-formed day still filters.
    page.goto(server.url + "/executions?since=2026-11-30")
    page.get_by_test_id("run-filters").wait_for()
    assert page.get_by_test_id("bad-address").count() == 0


# Day filters outside years 1-9999, on the pages and on the API routes they read.
OUT_OF_CALENDAR = {
    "/audit?since=10000-01-01": "/api/v1/audit?since=10000-01-01",
    "/audit?until=0000-12-31": "/api/v1/audit?until=0000-12-31",
    "/executions?since=99999-01-01": "/api/v1/executions?since=99999-01-01",
    "/executions?until=%2B2026-12-31": "/api/v1/executions?until=%2B2026-12-31",
}


def test_a_day_outside_the_calendar_is_named_as_the_api_names_it(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """The history and audit pages say of a year outside 1-9999 what the API says of the same
    filter (`instants.OUT_OF_RANGE`, one source): `?since=10000-01-01` was "must be a date
    written YYYY-MM-DD" on the page and the year range on the API."""
    admin = tokens["admin"]
    signed_in(page, server, "admin")
    for path, api_path in OUT_OF_CALENDAR.items():
        field = path.split("?")[1].split("=")[0]
        answer = httpx.get(server.url + api_path, headers=admin, timeout=API_TIMEOUT)
        assert answer.status_code == 422, answer.text
        said = [e["message"] for e in answer.json()["errors"] if e["field"] == field]
        assert said == [OUT_OF_RANGE], answer.text
        assert page.goto(server.url + path).status == 400, path
        problem = page.get_by_test_id("bad-address-problem")
        problem.wait_for()
        assert problem.inner_text() == f"{field} {said[0]}.", path
