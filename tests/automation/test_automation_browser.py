"""Browser journeys of automation against a real `opscraft serve` process: a schedule created in
the UI fires; personal tokens are created (shown once) and revoked."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer, start_server, stop_server
from tests.test_executions_browser import SERVER_ENV, _cli_user, _token

pytestmark = pytest.mark.browser


@dataclass
class Env:
    server: LiveServer
    admin: dict[str, str]

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, f"{self.server.url}{path}", headers=self.admin, timeout=30, **kwargs)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    server = start_server(Path(tmp_path_factory.mktemp("automation-ui")) / "server", SERVER_ENV)
    try:
        _cli_user(server, "admin", "admin")
        _cli_user(server, "second", "operator")
        yield Env(server, _token(server, "admin"))
    finally:
        stop_server(server)


def log_in(page: Any, env: Env, username: str = "admin") -> None:
    from tests.conftest import PASSWORD

    page.goto(f"{env.server.url}/login")
    page.get_by_test_id("login-username").fill(username)
    page.get_by_test_id("login-password").fill(PASSWORD)
    page.get_by_test_id("login-submit").click()
    page.wait_for_url(f"{env.server.url}/")


def bring_forward(env: Env, schedule_id: int) -> None:
    """Move the schedule's next fire time to the minute that just began, as if the clock had
    reached it (the live server's SQLite file; the scheduler re-reads it within seconds)."""
    due = datetime.now(UTC).replace(second=0, microsecond=0).replace(tzinfo=None)
    with sqlite3.connect(env.server.data_dir / "opscraft.db", timeout=30) as db:
        db.execute(
            "UPDATE schedules SET next_fire_at = ? WHERE id = ?",
            (due.strftime("%Y-%m-%d %H:%M:%S.%f"), schedule_id),
        )


def test_create_a_schedule_and_see_it_fire(page: Any, env: Env) -> None:
    body = {"name": "tick", "script_type": "python", "status": "active", "content": "print('tick')\n"}
    r = env.api("POST", "/api/v1/scripts", json=body)
    assert r.status_code == 201, r.text
    script_id = r.json()["id"]
    log_in(page, env)
    page.goto(f"{env.server.url}/scripts/{script_id}")
    page.get_by_test_id("tab-schedules").click()
    page.get_by_test_id("schedule-add").click()
    page.get_by_test_id("schedule-name").fill("every minute")
    page.get_by_test_id("schedule-cron").fill("* * * * *")
    page.get_by_test_id("schedule-submit").click()
    page.get_by_text("every minute").wait_for()
    (schedule,) = env.api("GET", f"/api/v1/scripts/{script_id}/schedules").json()
    assert len(schedule["next_fire_times"]) == 5
    next_shown = page.get_by_test_id(f"schedule-next-{schedule['id']}").inner_text()
    assert next_shown.startswith("Next:") and next_shown.count(",") == 4, next_shown

    bring_forward(env, schedule["id"])
    page.goto(f"{env.server.url}/schedules")
    last = page.get_by_test_id(f"schedule-last-{schedule['id']}")
    deadline = time.monotonic() + 60
    while "run #" not in (last.inner_text() if last.count() else ""):
        assert time.monotonic() < deadline, "the schedule did not fire"
        time.sleep(0.5)
        page.reload()
        last = page.get_by_test_id(f"schedule-last-{schedule['id']}")
    last.click()
    page.wait_for_url(f"{env.server.url}/executions/*")
    runs = env.api("GET", f"/api/v1/executions?script_id={script_id}").json()
    assert runs["total"] == 1


def test_personal_token_shown_once_then_revoked(page: Any, env: Env) -> None:
    log_in(page, env)
    page.goto(f"{env.server.url}/tokens")
    page.get_by_test_id("token-add").click()
    page.get_by_test_id("token-name").fill("ci")
    page.get_by_test_id("token-submit").click()
    value = page.get_by_test_id("token-value").input_value()
    assert value.startswith("ocp_")
    me = httpx.get(f"{env.server.url}/api/v1/auth/me", headers={"Authorization": f"Bearer {value}"})
    assert me.status_code == 200 and me.json()["username"] == "admin"
    page.get_by_test_id("token-done").click()
    assert value not in page.content()
    token_id = env.api("GET", "/api/v1/tokens").json()[0]["id"]
    page.get_by_test_id(f"token-revoke-{token_id}").click()
    page.get_by_text("revoked").wait_for()
    me = httpx.get(f"{env.server.url}/api/v1/auth/me", headers={"Authorization": f"Bearer {value}"})
    assert me.status_code == 401
