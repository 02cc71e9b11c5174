"""Pages that never finish loading: quick successive navigations each reach `load` promptly."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import ARTIFACTS, PASSWORD, LiveServer
from tests.ui_journey import create_script, make_users, timed_goto

pytestmark = pytest.mark.browser

# The bar is 2 s; on a busy 2-core CI machine every page gets a margin on top (the fault
# under test hung pages for 15-40 s). The measured figures are kept in tests/artifacts/.
LOAD_LIMIT_SECONDS = 2.0
MARGIN_SECONDS = 6.0
PAGES = ["/scripts", "/executions", "/secrets", "/users", "/audit", "/settings", "/profile", "/"]


def test_quick_navigations_all_load(live_server: LiveServer, page: Any) -> None:
    tokens = make_users(live_server)
    script = create_script(live_server, tokens["admin"], "nav-check", "echo hi\n")
    timings: list[tuple[str, float]] = []

    # Log in and leave while the dashboard redirect is still loading.
    page.goto(f"{live_server.url}/login")
    page.get_by_test_id("login-username").fill("admin")
    page.get_by_test_id("login-password").fill(PASSWORD)
    page.get_by_test_id("login-submit").click()
    page.wait_for_url(f"{live_server.url}/", wait_until="commit")
    for round_ in range(2):
        for path in [*PAGES, f"/scripts/{script['id']}", f"/scripts/{script['id']}/edit"]:
            timings.append((path, timed_goto(page, live_server.url + path)))
            if round_ == 1:
                # The second round does not even wait for `load`: the next navigation starts at once.
                page.goto(live_server.url + path, wait_until="commit")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "navigation-timings.txt").write_text("\n".join(f"{p}\t{t:.3f}" for p, t in timings))
    slow = [(p, round(t, 2)) for p, t in timings if t > LOAD_LIMIT_SECONDS + MARGIN_SECONDS]
    assert not slow, f"pages slower than {LOAD_LIMIT_SECONDS} s (+{MARGIN_SECONDS} s margin): {slow}"

    # The dashboard with no runs says what to do, and its tiles work from the keyboard.
    page.goto(live_server.url + "/")
    page.get_by_test_id("no-runs-yet").get_by_test_id("dashboard-create-script").wait_for()
    page.get_by_test_id("counts-period").get_by_text("All runs so far").wait_for()
    page.get_by_test_id("count-failed").focus()
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/executions?status=failed")
