"""Browser journeys of the script library against a real `opscraft serve` process and Chromium."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from opscraft.ui import labels
from tests.conftest import LiveServer
from tests.ui_journey import check_accessibility, database_locked, log_in, make_users, type_code

pytestmark = pytest.mark.browser

FIRST = '#!/bin/bash\necho "Hello $WHO x $COUNT"\n'
NOTIFY_ERROR = ".q-notification.bg-negative"


def _code(page: Any, testid: str) -> str:
    return str(page.locator(f'[data-testid="{testid}"] .cm-content').inner_text())


def _add_parameter(page: Any, index: int, name: str, kind: str, default: str) -> None:
    page.get_by_test_id("add-parameter").click()
    page.get_by_test_id(f"param-name-{index}").fill(name)
    if kind != "string":
        page.get_by_test_id(f"param-type-{index}").click()
        page.get_by_role("option", name=labels.PARAM_TYPE[kind], exact=True).click()
    page.get_by_test_id(f"param-default-{index}").fill(default)


def _save_and_wait(page: Any, server: LiveServer) -> int:
    page.get_by_test_id("save-script").click()
    page.wait_for_url(re.compile(rf"{re.escape(server.url)}/scripts/\d+$"))
    return int(page.url.rsplit("/", 1)[1])


def test_operator_creates_edits_compares_and_rolls_back(live_server: LiveServer, page: Any) -> None:
    tokens = make_users(live_server)
    log_in(page, live_server, "operator")
    page.get_by_test_id("nav-scripts").click()
    page.get_by_test_id("empty-state").wait_for()
    page.get_by_test_id("create-first").click()
    page.wait_for_url(f"{live_server.url}/scripts/new")

    page.get_by_test_id("script-name").fill("hello-ops")
    page.get_by_test_id("script-description").fill("Greets someone, a few times")
    type_code(page, FIRST)
    _add_parameter(page, 0, "WHO", "string", "World")
    _add_parameter(page, 1, "COUNT", "integer", "3")
    page.get_by_test_id("script-tags").fill("demo")
    page.keyboard.press("Enter")
    page.get_by_test_id("checks-ok").wait_for()
    script_id = _save_and_wait(page, live_server)

    overview = page.get_by_test_id("parameters-table")
    assert "WHO" in overview.inner_text() and "integer" in overview.inner_text()
    assert "version 1" in page.get_by_test_id("script-version").inner_text()

    # Edit: a byte order mark (pasted from a Windows editor) is announced, linters report on
    # their lines; then a syntax error is refused with a red notification and the line marked.
    page.get_by_test_id("edit-script").click()
    page.wait_for_url(f"{live_server.url}/scripts/{script_id}/edit")
    type_code(page, "\ufeff" + FIRST + "echo $1\n")
    page.get_by_test_id("notice-byte-order-mark").wait_for()
    assert "Line 3:6" in page.get_by_test_id("lint-SC2086").inner_text()
    type_code(page, FIRST + "if true; then\n  echo unfinished\n")
    page.get_by_test_id("save-script").click()
    # The refusal is shown on the line, under the editor (not as a toast).
    page.get_by_test_id("syntax-error").filter(has_text="Line 5").first.wait_for()
    assert page.url.endswith("/edit")

    # A dangerous pattern needs an explicit acknowledgement.
    type_code(page, FIRST + "curl -fsSL https://example.invalid/setup.sh | sh\necho bye\n")
    page.get_by_test_id("change-note").fill("install step")
    page.get_by_test_id("save-script").click()
    dialog = page.get_by_test_id("risk-dialog")
    assert "pipe-to-shell" in dialog.inner_text() and "Line 3" in dialog.inner_text()
    # The save outlives the dialog (as on a busy machine): another writer holds the database
    # until the dialog is gone; the save then finishes, notifies and navigates all the same.
    with database_locked(live_server):
        page.get_by_test_id("risk-confirm").click()
        dialog.wait_for(state="detached")
    page.wait_for_url(f"{live_server.url}/scripts/{script_id}")
    assert "version 2" in page.get_by_test_id("script-version").inner_text()

    # Versions: the diff of 1 -> 2 is shown, then roll back to 1.
    page.get_by_test_id("tab-versions").click()
    page.get_by_test_id("versions-table").filter(has_text="install step").wait_for()
    diff = _code(page, "diff-view")
    assert "+echo bye" in diff and "+curl -fsSL" in diff
    # Side by side: a table wider than a narrow window scrolls, and a keyboard reaches it.
    page.get_by_role("button", name="Side by side").click()
    page.get_by_test_id("diff-split").locator("td.diff_add").first.wait_for()
    check_accessibility(page, "script-versions-side-by-side")
    page.get_by_test_id("rollback-1").click()
    assert "adds version 3" in page.get_by_test_id("rollback-dialog").inner_text()
    # The rollback opens the page again on the Versions tab (the tab's: kept). The address was
    # that already (the tab was opened above): waiting for it waited for nothing, and the clicks
    # below could reach the page being left while the new one loaded (a busy server).
    kept = f"{live_server.url}/scripts/{script_id}?tab=versions"
    page.evaluate("window.leftByRollback = true")  # gone with this page
    with page.expect_navigation(url=kept, wait_until="load"):
        with database_locked(live_server):
            page.get_by_test_id("rollback-confirm").click()
            page.get_by_test_id("rollback-dialog").wait_for(state="detached")
    assert page.evaluate("window.leftByRollback") is None  # a new page, not the address replaced
    page.get_by_test_id("script-version").filter(has_text="version 3").wait_for()
    page.get_by_test_id("tab-content").click()
    assert "echo bye" not in _code(page, "script-content")
    assert 'echo "Hello $WHO x $COUNT"' in _code(page, "script-content")
    # Version 1 is now the same as the current one: rolling back to it again says so, adds nothing.
    page.get_by_test_id("tab-versions").click()
    page.get_by_test_id("rollback-1").click()
    page.get_by_test_id("rollback-confirm").click()
    page.locator(".q-notification").filter(has_text="is the same as the current version 3").wait_for()
    assert "version 3" in page.get_by_test_id("script-version").inner_text()

    headers = tokens["operator"]
    versions = httpx.get(f"{live_server.url}/api/v1/scripts/{script_id}/versions", headers=headers).json()
    assert [v["number"] for v in versions["items"]] == [3, 2, 1]
    assert versions["items"][0]["author_name"] == "operator"
    script = httpx.get(f"{live_server.url}/api/v1/scripts/{script_id}", headers=headers).json()
    assert script["parameter_defaults"] == {"WHO": "World", "COUNT": 3}
    assert script["tags"] == ["demo"]

    # The list finds it; leaving an edited form asks first.
    page.get_by_test_id("nav-scripts").click()
    page.get_by_test_id("script-search").fill("greets")
    page.get_by_test_id("script-link-hello-ops").wait_for()
    page.goto(f"{live_server.url}/scripts/{script_id}/edit")
    type_code(page, FIRST + "echo unsaved\n")
    page.wait_for_function("window.ocDirty === true")  # the page knows of the edit
    asked: list[str] = []

    def dismiss(dialog: Any) -> None:
        asked.append(dialog.type)
        dialog.dismiss()

    page.on("dialog", dismiss)
    with page.expect_event("dialog"):
        page.get_by_test_id("nav-scripts").click()
    assert asked == ["beforeunload"]
    assert page.url.endswith("/edit")

    # The page is left (its unsaved edit dropped) for the viewer's part on the same server.
    page.remove_listener("dialog", dismiss)
    page.on("dialog", lambda dialog: dialog.accept())
    page.context.clear_cookies()
    _viewer_reads_without_edit_controls(live_server, page, tokens)


def _viewer_reads_without_edit_controls(
    live_server: LiveServer, page: Any, tokens: dict[str, dict[str, str]]
) -> None:
    """A viewer reads a script and its versions with no edit control; the API refuses its edits.
    (Once a test of its own with a server of its own: a server's start is about 5 s of CPU, and
    the journey above needs a server without scripts.)"""
    body = {
        "name": "nightly-report",
        "script_type": "python",
        "content": "print('report')\n",
        "tags": ["ops"],
    }
    created = httpx.post(f"{live_server.url}/api/v1/scripts", json=body, headers=tokens["operator"])
    assert created.status_code == 201, created.text
    script_id = created.json()["id"]
    httpx.put(
        f"{live_server.url}/api/v1/scripts/{script_id}",
        json={"content": "print('report v2')\n"},
        headers=tokens["operator"],
    )

    log_in(page, live_server, "viewer", then="/scripts")  # straight to the list: no dashboard built
    page.get_by_test_id("script-link-nightly-report").wait_for()
    assert page.get_by_test_id("new-script").count() == 0
    page.get_by_test_id("script-link-nightly-report").click()
    page.wait_for_url(f"{live_server.url}/scripts/{script_id}")
    assert page.get_by_test_id("edit-script").count() == 0
    assert page.get_by_test_id("delete-script").count() == 0

    page.get_by_test_id("tab-content").click()
    content = page.locator('[data-testid="script-content"] .cm-content')
    assert "report v2" in content.inner_text()
    assert content.get_attribute("contenteditable") == "false"
    page.get_by_test_id("tab-versions").click()
    page.get_by_test_id("versions-table").wait_for()
    assert page.locator('[data-testid^="rollback-"]').count() == 0
    assert "+print('report v2')" in _code(page, "diff-view")

    for path in ("/scripts/new", f"/scripts/{script_id}/edit"):
        page.goto(f"{live_server.url}{path}")
        page.get_by_test_id("forbidden").wait_for()

    viewer = tokens["viewer"]
    response = httpx.put(
        f"{live_server.url}/api/v1/scripts/{script_id}", json={"description": "mine now"}, headers=viewer
    )
    assert response.status_code == 403
    assert "viewer" in response.json()["detail"]
    response = httpx.post(f"{live_server.url}/api/v1/scripts/{script_id}/rollback/1", headers=viewer)
    assert response.status_code == 403
