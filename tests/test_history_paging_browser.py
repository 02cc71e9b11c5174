"""Browser journey of the executions history's keyset paging (issue 15) against a real
`opscraft serve`: with a filter on, more runs than one page holds, Older to the end ("no older
runs"), Newer back to the newest page, the cursor and the filters kept in the address (a reload
shows the same page), a filter change back to the newest page, and the script tab paging the
same way. The runs are real local-runner runs of a bash script submitted through the API.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from opscraft.ui.executions import PAGE_SIZE
from tests.conftest import LiveServer
from tests.ui_journey import API_TIMEOUT, RUN_ENV, api_user, log_in, serving, token
from tests.waiting import wait_until

pytestmark = pytest.mark.browser

FAILED_RUNS = PAGE_SIZE + 5  # two pages with the failed filter on
SUCCESSFUL_RUNS = 4  # in the script's history, not in the filtered one
FINAL = {"success", "failed", "error", "cancelled", "timed_out", "rejected"}


@dataclass
class History:
    server: LiveServer
    script_id: int
    failed: list[int]  # newest first
    everything: list[int]  # newest first


def _submit(server: LiveServer, headers: dict[str, str], script_id: int, fail: bool) -> int:
    body = {"script_id": script_id, "runner": "local", "parameters": {"FAIL": fail}}
    response = httpx.post(f"{server.url}/api/v1/executions", json=body, headers=headers, timeout=API_TIMEOUT)
    assert response.status_code == 202, response.text
    return int(response.json()["id"])


def _wait_until_final(server: LiveServer, headers: dict[str, str], ids: list[int]) -> None:
    def final() -> bool:
        page = httpx.get(
            f"{server.url}/api/v1/executions", params={"limit": 200}, headers=headers, timeout=API_TIMEOUT
        ).json()
        return all(e["status"] in FINAL for e in page["items"] if e["id"] in ids)

    wait_until(final, "the runs to finish", timeout=120, every=0.2)


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[History]:
    env = {**RUN_ENV, "OPSCRAFT_RATE_LIMIT_API": "10000"}  # dozens of submissions in a few seconds
    with serving(
        tmp_path_factory, "history-paging", env, users=(("admin", "admin"),), through_api=True
    ) as server:
        admin = token(server, "admin")
        script = {
            "name": "flaky",
            "script_type": "bash",
            "status": "active",
            "content": 'if [ "$FAIL" = true ]; then exit 1; fi\n',
            "parameters": [{"name": "FAIL", "type": "boolean", "default": False}],
        }
        created = httpx.post(f"{server.url}/api/v1/scripts", json=script, headers=admin, timeout=API_TIMEOUT)
        assert created.status_code == 201, created.text
        script_id = int(created.json()["id"])
        everything = []
        for i in range(FAILED_RUNS + SUCCESSFUL_RUNS):
            fail = i % 8 != 3  # a success now and then, between failures
            everything.append((_submit(server, admin, script_id, fail), fail))
        _wait_until_final(server, admin, [i for i, _ in everything])
        ids = [i for i, _ in reversed(everything)]
        failed = [i for i, fail in reversed(everything) if fail]
        assert len(failed) == FAILED_RUNS
        yield History(server, script_id, failed, ids)


def _shown(page: Any) -> list[int]:
    """The run ids in the table, top to bottom, once the table shows them."""
    links = page.locator('[data-testid="runs-table"] [data-testid^="run-link-"]')
    links.first.wait_for()
    return [int(t.removeprefix("#")) for t in links.all_inner_texts()]


def _wait_for_rows(page: Any, expected: list[int]) -> None:
    """Wait until the table shows exactly `expected` (the page is redrawn in place)."""
    page.get_by_test_id(f"run-link-{expected[0]}").wait_for()
    page.get_by_test_id(f"run-link-{expected[-1]}").wait_for()
    assert _shown(page) == expected


def test_history_pages_older_and_newer_with_a_filter(page: Any, history: History) -> None:
    server, first, second = history.server, history.failed[:PAGE_SIZE], history.failed[PAGE_SIZE:]
    log_in(page, server, "admin")
    page.goto(f"{server.url}/executions?script_id={history.script_id}&status=failed")
    _wait_for_rows(page, first)
    count = page.get_by_test_id("runs-count").inner_text()
    assert count == f"{PAGE_SIZE} newest of {FAILED_RUNS} runs", count
    assert page.get_by_test_id("runs-newer").is_disabled()
    assert page.get_by_test_id("runs-newest").is_disabled()
    assert page.get_by_test_id("runs-end").count() == 0

    page.get_by_test_id("runs-older").click()
    _wait_for_rows(page, second)
    page.get_by_test_id("runs-end").wait_for()  # "no older runs"
    assert page.get_by_test_id("runs-older").is_disabled()
    url = page.evaluate("location.href")
    assert f"script_id={history.script_id}" in url and "status=failed" in url and "cursor=" in url

    page.reload()  # the address holds the page: filters and cursor
    _wait_for_rows(page, second)
    assert page.get_by_test_id("filter-status").input_value() == "failed"

    page.get_by_test_id("runs-newer").click()
    _wait_for_rows(page, first)
    page.wait_for_function("location.href.includes('status=failed')")
    assert page.get_by_test_id("runs-newer").is_disabled(), "back on the newest page"
    assert page.get_by_test_id("runs-older").is_enabled()

    page.get_by_test_id("runs-older").click()
    _wait_for_rows(page, second)
    page.get_by_test_id("filter-status").click()  # a filter change starts from the newest runs
    page.get_by_role("option", name="success").click()
    page.wait_for_function("!location.href.includes('cursor=') && location.href.includes('status=success')")
    successes = [i for i in history.everything if i not in history.failed]
    _wait_for_rows(page, successes)
    page.get_by_test_id("runs-end").wait_for()


def test_a_stale_or_forged_cursor_says_so(page: Any, history: History) -> None:
    log_in(page, history.server, "admin")
    page.goto(f"{history.server.url}/executions?status=failed&cursor=bm90LWEtY3Vyc29y")
    # Said where the runs would be (not in a toast that fades): what is wrong, and the way out.
    page.get_by_test_id("no-runs").get_by_text("cursor: not a cursor from this API").wait_for()
    page.get_by_test_id("runs-back-to-newest").click()
    _wait_for_rows(page, history.failed[:PAGE_SIZE])
    assert re.search(r"cursor=", page.evaluate("location.href")) is None


def test_script_tab_pages_the_scripts_runs(page: Any, history: History) -> None:
    log_in(page, history.server, "admin")
    page.goto(f"{history.server.url}/scripts/{history.script_id}")
    page.get_by_role("tab", name="Executions").click()
    _wait_for_rows(page, history.everything[:PAGE_SIZE])
    page.get_by_test_id("runs-older").click()
    _wait_for_rows(page, history.everything[PAGE_SIZE:])
    page.get_by_test_id("runs-end").wait_for()
    page.get_by_test_id("runs-newest").click()
    _wait_for_rows(page, history.everything[:PAGE_SIZE])


def test_a_filter_on_a_script_or_user_not_offered_is_still_shown(page: Any, history: History) -> None:
    """Field report: `/executions?script_id=N` of a deleted script (or of one past the first 500
    the Script box offers) listed only that script's runs while the Script box stood empty, as
    if nothing were filtered; the same for a user who never started a run. The box now names
    the filter applied."""
    server = history.server
    admin = token(server, "admin")
    body = {
        "name": "gone",
        "script_type": "bash",
        "status": "active",
        "content": "true\n",
        "parameters": [{"name": "FAIL", "type": "boolean", "default": False}],
    }
    script_id = httpx.post(f"{server.url}/api/v1/scripts", json=body, headers=admin).json()["id"]
    run_id = _submit(server, admin, script_id, fail=False)
    _wait_until_final(server, admin, [run_id])
    assert httpx.delete(f"{server.url}/api/v1/scripts/{script_id}", headers=admin).status_code == 204
    log_in(page, server, "admin")
    page.goto(f"{server.url}/executions?script_id={script_id}")
    _wait_for_rows(page, [run_id])
    assert page.get_by_test_id("filter-script").input_value() == "gone (deleted)"
    page.goto(f"{server.url}/executions?user_id=987")
    page.get_by_test_id("no-runs").wait_for()
    assert page.get_by_test_id("filter-user").input_value() == "user #987"


def test_the_script_and_user_filters_offer_what_was_added_since_the_page_loaded(
    page: Any, history: History
) -> None:
    """A tester's pass: the Script and Triggered by boxes read their choices once, at load: a
    script created since (another tab, the API), or a user's first run since, could not be
    chosen until a reload. They are read again when the box opens."""
    server = history.server
    admin = token(server, "admin")
    log_in(page, server, "admin")
    page.goto(f"{server.url}/executions")
    page.get_by_test_id("filter-script").wait_for()
    body = {"name": "arrived-late", "script_type": "bash", "status": "active", "content": "true\n"}
    response = httpx.post(f"{server.url}/api/v1/scripts", json=body, headers=admin)
    assert response.status_code == 201, response.text
    page.get_by_test_id("filter-script").click()
    page.get_by_role("option", name="arrived-late", exact=True).click()
    page.wait_for_url(re.compile(rf".*/executions\?script_id={response.json()['id']}$"))

    # A user who had started no run when the page loaded, and then started one.
    api_user(server, admin, "late-runner", "viewer")
    body = {"script_id": response.json()["id"], "runner": "local"}
    started = httpx.post(
        f"{server.url}/api/v1/executions",
        json=body,
        headers=token(server, "late-runner"),
        timeout=API_TIMEOUT,
    )
    assert started.status_code == 202, started.text
    page.get_by_test_id("filter-user").click()
    page.get_by_role("option", name="late-runner", exact=True).click()
    page.wait_for_url(re.compile(r".*/executions\?script_id=\d+&user_id=\d+$"))
    page.get_by_test_id(f"run-link-{started.json()['id']}").wait_for()
