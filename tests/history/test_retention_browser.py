"""Output retention in the browser, against a real `opscraft serve`: the admin's settings form
(a wrong value is shown under its field), and the execution page of a run whose output retention
removed."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from opscraft.db.engine import Database
from opscraft.db.types import utcnow
from opscraft.services import retention
from tests.conftest import LiveServer, start_server, stop_server
from tests.ui_journey import RUN_ENV, create_script, log_in, make_users, start_run, wait_run

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server(Path(tmp_path_factory.mktemp("retention-ui")) / "server", RUN_ENV)
    try:
        yield live
    finally:
        stop_server(live)


def _apply_retention(server: LiveServer) -> retention.RetentionRound:
    """One retention round on the server's database from this process, as a second server would."""

    async def once() -> retention.RetentionRound:
        db = Database(f"sqlite+aiosqlite:///{server.data_dir / 'opscraft.db'}")
        try:
            return await retention.run_once(db)
        finally:
            await db.dispose()

    with ThreadPoolExecutor(1) as pool:  # Playwright's sync API holds an event loop in this thread
        return pool.submit(asyncio.run, once()).result()


def test_settings_form_and_removed_output_on_the_execution_page(server: LiveServer, page: Any) -> None:
    tokens = make_users(server)
    script = create_script(server, tokens["admin"], "chatty", "echo kept-for-a-while\n", status="active")
    execution_id = start_run(server, tokens["admin"], script["id"])
    assert "kept-for-a-while" in wait_run(server, tokens["admin"], execution_id)["output"]
    old = (utcnow() - timedelta(days=45)).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
    with sqlite3.connect(server.data_dir / "opscraft.db") as conn:  # the run finished 45 days ago
        conn.execute("UPDATE executions SET finished_at = ? WHERE id = ?", (old, execution_id))

    log_in(page, server, "admin")
    page.goto(f"{server.url}/settings")
    days = page.get_by_test_id("setting-output_retention_days")
    days.fill("-3")
    page.get_by_test_id("settings-save").click()
    page.get_by_text("must be between 0 and 36500").wait_for()
    settings = httpx.get(f"{server.url}/api/v1/settings", headers=tokens["admin"]).json()
    assert settings["output_retention_days"] == 0, "nothing saved"
    days.fill("2.5")  # not rounded in the browser: refused under the field
    page.get_by_test_id("settings-save").click()
    page.get_by_text("must be a whole number").wait_for()
    assert (
        httpx.get(f"{server.url}/api/v1/settings", headers=tokens["admin"]).json()["output_retention_days"]
        == 0
    )
    days.fill("0")
    switch = page.get_by_test_id("setting-retention_delete_executions")
    switch.click()  # deleting runs with no retention period: refused under the switch
    page.get_by_test_id("settings-save").click()
    switch_error = page.get_by_test_id("setting-retention_delete_executions-error")
    switch_error.get_by_text("needs a retention period: set output_retention_days above 0").wait_for()
    settings = httpx.get(f"{server.url}/api/v1/settings", headers=tokens["admin"]).json()
    assert settings["retention_delete_executions"] is False
    switch.click()
    days.fill("30")
    page.get_by_test_id("settings-save").click()
    page.get_by_text("Settings saved").wait_for()
    assert switch_error.inner_text() == ""
    settings = httpx.get(f"{server.url}/api/v1/settings", headers=tokens["admin"]).json()
    assert settings["output_retention_days"] == 30
    for unread in ("1e400", ""):  # no finite number in the input: refused, not saved as 0 (off)
        days.fill("31")  # a change of value takes the last message away
        page.get_by_text("must be a whole number").wait_for(state="detached")
        days.fill(unread)
        page.get_by_test_id("settings-save").click()
        page.get_by_text("must be a whole number").wait_for()
        settings = httpx.get(f"{server.url}/api/v1/settings", headers=tokens["admin"]).json()
        assert settings["output_retention_days"] == 30, unread
    days.fill("30")

    assert _apply_retention(server).outputs_removed == 1
    page.goto(f"{server.url}/executions/{execution_id}")
    note = page.get_by_test_id("output-removed")
    note.wait_for()
    assert "Output removed by retention on" in note.inner_text()
    assert "removed by retention" in page.get_by_test_id("size").inner_text()
    shown = httpx.get(f"{server.url}/api/v1/executions/{execution_id}", headers=tokens["viewer"]).json()
    assert shown["output_removed_at"] is not None
