"""The dashboard as an open page sees it: runs started elsewhere (by another user, through the API)
change its figures without a reload, and the first steps of an empty installation go away once
something has run."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.conftest import LiveServer
from tests.ui_journey import (
    LIVE_ENV,
    OPERATOR_AND_VIEWER,
    api,
    create_script,
    journey_server,
    journey_tokens,
    log_in,
    start_run,
    token,
    wait_run,
)

pytestmark = pytest.mark.browser

# The page refreshes every second (`LIVE_ENV`); a busy CI machine also waits for the runs themselves.
LIVE_TIMEOUT_MS = 90_000

server = journey_server("dashboard-ui", env=LIVE_ENV)
tokens = journey_tokens()
# No Docker engine (a socket that is not there), the local runner as the stored settings say (no
# `OPSCRAFT_LOCAL_RUNNER`): each test sets what it needs through the API, as an admin would under
# Settings; one server for both (a start is 2.4-2.8 s of CPU), its users made through the API.
no_docker = journey_server(
    "dashboard-no-docker",
    env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"},
    users=(("boss", "admin"), *OPERATOR_AND_VIEWER),
    through_api=True,
)


def _local_runner(live: LiveServer, enabled: bool) -> None:
    """The local runner on (for operators and admins, the default role) or off, as the admin
    `boss` sets it under Settings."""
    settings = {"local_runner_enabled": enabled, "local_runner_role": "operator"}
    api(live, "PUT", "/settings", token(live, "boss"), json=settings)


def _count(page: Any, status: str) -> Any:
    return page.get_by_test_id(f"count-{status}").get_by_test_id("count-value")


def test_an_open_dashboard_follows_runs_started_elsewhere(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    log_in(page, server, "viewer")
    page.get_by_test_id("no-runs-yet").get_by_test_id("dashboard-browse-scripts").wait_for()
    expect(_count(page, "success")).to_have_text("0")
    expect(page.get_by_test_id("success-summary")).to_have_text("No finished runs in the last 7 days.")

    admin = tokens["admin"]
    ok = create_script(server, admin, "dash-ok", "#!/bin/bash\necho fine\n", status="active")
    bad = create_script(server, admin, "dash-bad", "#!/bin/bash\nexit 3\n", status="active")
    runs = [start_run(server, admin, ok["id"]), start_run(server, admin, bad["id"])]
    assert [wait_run(server, admin, run)["status"] for run in runs] == ["success", "failed"]

    # The figures change on the open page; the first steps, drawn while nothing had run, go too.
    expect(_count(page, "success")).to_have_text("1", timeout=LIVE_TIMEOUT_MS)
    expect(_count(page, "failed")).to_have_text("1", timeout=LIVE_TIMEOUT_MS)
    expect(page.get_by_test_id("no-runs-yet")).to_have_count(0, timeout=LIVE_TIMEOUT_MS)
    expect(page.get_by_test_id("success-summary")).to_have_text(
        "50% of 2 finished runs succeeded in the last 7 days.", timeout=LIVE_TIMEOUT_MS
    )
    # The admin's runs are in the viewer's recent runs, each linking to its page.
    for run in runs:
        link = page.get_by_test_id(f"run-link-{run}")
        expect(link).to_have_attribute("href", f"/executions/{run}", timeout=LIVE_TIMEOUT_MS)
    assert page.get_by_test_id("no-runner").count() == 0


def test_a_viewer_without_docker_is_told_the_local_runner_is_not_for_their_role(
    no_docker: LiveServer, page: Any
) -> None:
    """No Docker, the local runner enabled for operators (the default role): the viewer's
    dashboard said "have an admin enable the local runner under Settings", a setting already on."""
    live = no_docker
    _local_runner(live, True)
    log_in(page, live, "viewer")
    note = page.get_by_test_id("no-runner")
    expect(note).to_contain_text("No runner is available to you: Docker is not reachable")
    expect(note).to_contain_text("only operators and admins may run scripts on the local runner")
    expect(note).not_to_contain_text("have an admin enable the local runner")
    page.context.clear_cookies()
    log_in(page, live, "operator")
    page.get_by_test_id("not-isolated").wait_for()
    assert page.get_by_test_id("no-runner").count() == 0


def test_an_admin_without_docker_is_told_to_enable_the_local_runner_themselves(
    no_docker: LiveServer, page: Any
) -> None:
    """No Docker and the local runner off, as on a laptop's first desktop window: the admin (the
    window's only account) was told to "have an admin enable the local runner", and so was the
    API's answer to their run. Now both say to enable it under Settings, the page with a link."""
    live = no_docker
    _local_runner(live, False)
    admin = token(live, "boss")
    script = create_script(live, admin, "no-runner", "#!/bin/bash\necho hi\n", status="active")
    refused = httpx.post(
        f"{live.url}/api/v1/executions", json={"script_id": script["id"]}, headers=admin, timeout=60
    )
    assert refused.status_code == 409, refused.text
    assert refused.json()["detail"] == (
        "no runner is available: start the Docker engine, or enable the local runner under Settings "
        "(it runs scripts as plain processes of this server's user, not isolated)"
    )
    refused = httpx.post(
        f"{live.url}/api/v1/executions",
        json={"script_id": script["id"]},
        headers=token(live, "viewer"),
        timeout=60,
    )
    assert refused.status_code == 409, refused.text
    assert "have an admin enable the local runner" in refused.json()["detail"]
    log_in(page, live, "boss")
    note = page.get_by_test_id("no-runner")
    expect(note).to_contain_text("or enable the local runner under Settings")
    expect(note).not_to_contain_text("have an admin")
    note.get_by_test_id("no-runner-settings").click()
    page.wait_for_url(f"{live.url}/settings")
    page.goto(f"{live.url}/scripts/{script['id']}")  # the run dialog says the same
    page.get_by_test_id("execute-button").click()
    expect(page.get_by_role("dialog")).to_contain_text("or enable the local runner under Settings")
    page.context.clear_cookies()
    log_in(page, live, "viewer")
    expect(page.get_by_test_id("no-runner")).to_contain_text("have an admin enable the local runner")
    assert page.get_by_test_id("no-runner-settings").count() == 0
