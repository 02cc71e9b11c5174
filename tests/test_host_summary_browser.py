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
    log_in,
    screenshot,
    wait_connected,
    wait_for_output,
    wait_run,
)

pytestmark = pytest.mark.browser

server = journey_server("host-summary-ui")
tokens = journey_tokens()


def _start(server: LiveServer, headers: dict[str, str], script_id: int) -> int:
    body = {"script_id": script_id, "parameters": {}, "runner": "local"}
    r = httpx.post(f"{server.url}/api/v1/executions", json=body, headers=headers, timeout=API_TIMEOUT)
    assert r.status_code == 202, r.text
    return int(r.json()["id"])


def test_the_hosts_table_lists_each_host_and_fits_a_phone(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    admin = tokens["admin"]
    script = create_script(
        server, admin, "hosts-table", PLAYBOOK, script_type="ansible", inventory=INVENTORY, status="active"
    )
    run = wait_run(server, admin, _start(server, admin, script["id"]))
    assert run["status"] == "failed" and run["host_summary"]["host_count"] == 3, run

    page.set_viewport_size({"width": 375, "height": 812})
    log_in(page, server, "viewer")
    page.goto(f"{server.url}/executions/{run['id']}")
    wait_connected(page)
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
    log_in(page, server, "admin")
    page.goto(f"{server.url}/executions/{execution_id}")
    wait_connected(page)
    wait_for_output(page, r"TASK \[wait\]", timeout=60)
    r = httpx.post(
        f"{server.url}/api/v1/executions/{execution_id}/cancel", headers=admin, timeout=API_TIMEOUT
    )
    assert r.status_code == 200, r.text
    note = page.get_by_test_id("host-summary-note")
    note.wait_for()
    assert "No per-host summary: no PLAY RECAP: the run was stopped" in note.inner_text()
    assert page.get_by_test_id("host-summary-table").count() == 0
