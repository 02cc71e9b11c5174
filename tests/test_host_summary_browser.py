"""A finished Ansible run's per-host table on its page (a real `opscraft serve`, real
`ansible-playbook` on the local runner, Chromium): its rows and totals, its fit on a 375 px
phone, axe-core, and the note of a run stopped before its PLAY RECAP."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer
from tests.executions.test_ansible_host_summary import INVENTORY, PLAYBOOK
from tests.ui_journey import (
    API_TIMEOUT,
    check_accessibility,
    create_script,
    journey_server,
    journey_tokens,
    screenshot,
    signed_in,
    wait_connected,
    wait_for_output,
    wait_run,
)

pytestmark = pytest.mark.browser

server = journey_server("host-summary-ui")
tokens = journey_tokens()
# A script and its finished run (the API's JSON of each): `failed_run`.
FailedRun = tuple[dict[str, Any], dict[str, Any]]


def _start(server: LiveServer, headers: dict[str, str], script_id: int, **options: Any) -> int:
    body = {"script_id": script_id, "parameters": {}, "runner": "local", **options}
    r = httpx.post(f"{server.url}/api/v1/executions", json=body, headers=headers, timeout=API_TIMEOUT)
    assert r.status_code == 202, r.text
    return int(r.json()["id"])


@pytest.fixture(scope="module")
def failed_run(server: LiveServer, tokens: dict[str, dict[str, str]]) -> FailedRun:
    """The Ansible script "hosts-history" (PLAYBOOK on INVENTORY) and its finished run, failed on
    数据库-1: the module's first run of it (tests add runs of their own after it). One
    `ansible-playbook` run for the tests that read a failed run's hosts (seconds of CPU each)."""
    admin = tokens["admin"]
    script = create_script(
        server, admin, "hosts-history", PLAYBOOK, script_type="ansible", inventory=INVENTORY, status="active"
    )
    run = wait_run(server, admin, _start(server, admin, script["id"]))
    assert run["status"] == "failed" and run["host_summary"]["host_count"] == 3, run
    return script, run


def test_the_hosts_table_lists_each_host_and_fits_a_phone(
    server: LiveServer, failed_run: FailedRun, page: Any
) -> None:
    _, run = failed_run
    page.set_viewport_size({"width": 375, "height": 812})
    signed_in(page, server, "viewer", then=f"/executions/{run['id']}")
    table = page.get_by_test_id("host-summary-table")
    table.wait_for()
    rows = table.locator("tbody tr")
    assert rows.count() == 3
    # The failed host first, its failed count bold; names as the inventory wrote them.
    assert rows.nth(0).locator("th").inner_text() == "数据库-1"
    assert rows.nth(0).locator("td b").inner_text() == "1"
    assert [rows.nth(i).locator("th").inner_text() for i in (1, 2)] == ["fe80::10", "web-01"]
    headers = table.locator("thead th").all_inner_texts()
    assert headers == ["host", "ok", "changed", "unreachable", "failed", "skipped", "rescued", "ignored"]
    totals = page.get_by_test_id("host-summary-totals").inner_text()
    assert totals == "3 hosts: 6 ok, 3 changed, 0 unreachable, 1 failed, 4 skipped, 0 rescued, 0 ignored"
    assert table.locator("caption").inner_text() == "Task counts per host"  # for screen readers
    # The page does not scroll sideways; the table's own region does, and takes the keyboard's focus.
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
    box = table.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 375, box
    assert table.get_attribute("tabindex") == "0" and table.get_attribute("role") == "region"
    check_accessibility(page, "host-summary-phone")
    screenshot(page, "host-summary-phone")


def test_a_run_stopped_before_its_recap_says_there_is_no_summary(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    admin = tokens["admin"]
    slow = PLAYBOOK.replace(
        "    - name: greet\n",
        "    - name: wait\n      ansible.builtin.command: sleep 60\n    - name: greet\n",
        1,
    )
    script = create_script(
        server, admin, "hosts-stopped", slow, script_type="ansible", inventory=INVENTORY, status="active"
    )
    execution_id = _start(server, admin, script["id"])
    signed_in(page, server, "admin", then=f"/executions/{execution_id}")
    wait_for_output(page, r"TASK \[wait\]", timeout=60)
    r = httpx.post(
        f"{server.url}/api/v1/executions/{execution_id}/cancel", headers=admin, timeout=API_TIMEOUT
    )
    assert r.status_code == 200, r.text
    note = page.get_by_test_id("host-summary-note")
    note.wait_for()
    assert "No per-host summary: no PLAY RECAP: the run was stopped" in note.inner_text()
    assert page.get_by_test_id("host-summary-table").count() == 0


def _run_ids(page: Any) -> list[int]:
    """The run ids the history's table lists, top to bottom."""
    links = page.get_by_test_id("runs-table").locator("[data-testid^='run-link-']")
    return [int(str(t).rsplit("-", 1)[1]) for t in links.evaluate_all("ls => ls.map(l => l.dataset.testid)")]


def _wait_for_runs(page: Any, ids: list[int]) -> None:
    if not ids:
        page.get_by_test_id("no-runs").wait_for()
        return
    page.get_by_test_id(f"run-link-{ids[0]}").wait_for()
    page.wait_for_function(
        "n => document.querySelectorAll('[data-testid=runs-table] [data-testid^=run-link-]').length === n",
        arg=len(ids),
    )
    assert _run_ids(page) == ids


def test_a_host_s_name_links_to_its_runs_and_the_history_filters_by_host(
    server: LiveServer,
    tokens: dict[str, dict[str, str]],
    failed_run: FailedRun,
    page: Any,
) -> None:
    """On a phone, the failed host's name on the run's page opens the history of the runs it
    failed in (the filter in the address and in its fields); on a desktop the Host field and its
    status filter, kept in the address, and a status without a host said under its field."""
    admin = tokens["admin"]
    script, failed = failed_run
    quiet = wait_run(server, admin, _start(server, admin, script["id"], run_options={"tags": ["greet"]}))
    assert (failed["status"], quiet["status"]) == ("failed", "success"), (failed, quiet)

    page.set_viewport_size({"width": 375, "height": 812})
    signed_in(page, server, "viewer", then=f"/executions/{quiet['id']}")
    link = page.get_by_test_id("host-summary-table").get_by_role("link", name="数据库-1")
    assert link.get_attribute("href") == "/executions?host=%E6%95%B0%E6%8D%AE%E5%BA%93-1"  # ok here
    page.goto(f"{server.url}/executions/{failed['id']}")
    wait_connected(page)
    page.get_by_test_id("host-summary-table").get_by_role("link", name="数据库-1").click()
    page.wait_for_url("**/executions?host=*")
    assert "host_status=failed" in page.url
    wait_connected(page)
    # Any other run of the module that failed on it is listed too: the API lists the same.
    params = {"host": "数据库-1", "host_status": "failed"}
    listed = httpx.get(f"{server.url}/api/v1/executions", params=params, headers=admin, timeout=API_TIMEOUT)
    expected = [item["id"] for item in listed.json()["items"]]
    assert expected[0] == failed["id"] and quiet["id"] not in expected, expected
    _wait_for_runs(page, expected)
    assert page.get_by_test_id("filter-host").input_value() == "数据库-1"
    assert page.get_by_test_id("filter-host-status").input_value() == "Failed there"
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
    check_accessibility(page, "history-host-filter-phone")
    screenshot(page, "history-host-filter-phone")

    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{server.url}/executions?script_id={script['id']}")
    wait_connected(page)
    _wait_for_runs(page, [quiet["id"], failed["id"]])
    page.get_by_test_id("filter-host").fill("web-01")
    page.wait_for_function("location.href.includes('host=web-01')")
    _wait_for_runs(page, [quiet["id"], failed["id"]])
    page.get_by_test_id("filter-host-status").click()
    page.get_by_role("option", name="Changed something").click()
    page.wait_for_function("location.href.includes('host_status=changed')")
    _wait_for_runs(page, [failed["id"]])  # the tagged run changed nothing
    assert f"script_id={script['id']}" in page.url  # combined with the other filters
    page.reload()
    wait_connected(page)
    _wait_for_runs(page, [failed["id"]])
    assert page.get_by_test_id("filter-host").input_value() == "web-01"

    page.get_by_test_id("filter-host").fill("")
    field = page.locator(".q-field", has=page.get_by_test_id("filter-host-status"))
    field.get_by_text("needs a host").wait_for()
    page.get_by_test_id("no-runs").get_by_text("correct the filter above").wait_for()
    assert page.locator(".q-notification").count() == 0  # said at the field, not in a toast
    page.get_by_test_id("filter-host").fill("nohost")
    field.get_by_text("needs a host").wait_for(state="detached")
    _wait_for_runs(page, [])
