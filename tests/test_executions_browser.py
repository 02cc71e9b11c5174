"""Browser journeys of the executions UI against a real `opscraft serve` process.

Runs go to Docker with the locally built test image when the engine is reachable, otherwise to
the local runner (enabled here); the scripts are Python, which both have.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer
from tests.ui_journey import (
    pick_utc_today,
    serving,
    signed_in,
    terminal_text,
    token,
    wait_for_output,
    wait_run,
)

pytestmark = pytest.mark.browser

GREET = """\
import os, sys, time
count = int(os.environ["COUNT"])
tail = f"env={os.environ['ENV']} loud={os.environ['LOUD']}"
for i in range(1, count + 1):
    print(f"\\033[32mhello\\033[0m {os.environ['WHO']} #{i} {tail}", flush=True)
    time.sleep(0.6)
print("done", file=sys.stderr, flush=True)
"""
TICKER = """\
import time
for i in range(1, 1201):
    print(f"line {i}", flush=True)
    time.sleep(0.05)
"""
# Over 128 Ki characters at once, nine of every ten in escape sequences: the output pipeline cuts
# such a burst into chunks every 128 Ki characters, so sequences are cut between two chunks. Then a
# truecolour sequence written with colons and a private one (parameter bytes < = > ?).
COLOURS = """\
import sys
sys.stdout.write("\\033[31mX\\033[0m" * 150000 + "\\033[38:2:1:2:3mY\\033[>4;2mZ\\033[0m\\n")
"""
GREET_PARAMETERS = [
    {"name": "WHO", "type": "string", "required": True, "description": "Who to greet"},
    {"name": "COUNT", "type": "integer", "default": 3},
    {"name": "ENV", "type": "choice", "options": ["dev", "staging", "prod"], "default": "dev"},
    {"name": "LOUD", "type": "boolean", "default": False},
]


@dataclass
class Env:
    server: LiveServer
    admin: dict[str, str]
    viewer: dict[str, str]
    greet_id: int
    ticker_id: int

    def start(
        self, script_id: int, headers: dict[str, str], runner: str | None = None, **parameters: Any
    ) -> int:
        response = httpx.post(
            f"{self.server.url}/api/v1/executions",
            json={"script_id": script_id, "parameters": parameters, "runner": runner},
            headers=headers,
        )
        assert response.status_code == 202, response.text
        return int(response.json()["id"])

    def cancel(self, execution_id: int) -> None:
        httpx.post(f"{self.server.url}/api/v1/executions/{execution_id}/cancel", headers=self.admin)


def _script(server: LiveServer, admin: dict[str, str], name: str, content: str, **extra: Any) -> int:
    body = {"name": name, "script_type": "python", "status": "active", "content": content, **extra}
    response = httpx.post(f"{server.url}/api/v1/scripts", json=body, headers=admin)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    users = (("admin", "admin"), ("viewer", "viewer"))
    with serving(tmp_path_factory, "executions-ui", users=users, through_api=True) as server:
        admin = token(server, "admin")
        greet_id = _script(server, admin, "greet", GREET, parameters=GREET_PARAMETERS)
        ticker_id = _script(server, admin, "ticker", TICKER)
        yield Env(server, admin, token(server, "viewer"), greet_id, ticker_id)


def ticker_lines(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"^line (\d+)$", text, re.M)]


def test_viewer_runs_a_script_with_parameters_and_finds_it_in_history(page: Any, env: Env) -> None:
    signed_in(page, env.server, "viewer")
    page.goto(f"{env.server.url}/scripts/{env.greet_id}")
    page.get_by_test_id("execute-button").click()
    dialog = page.get_by_test_id("execute-dialog")
    dialog.wait_for()
    assert page.get_by_test_id("param-COUNT").input_value() == "3"

    # A required parameter left empty: red notification, inline error, no run.
    page.get_by_test_id("execute-submit").click()
    page.locator(".q-notification.bg-negative").filter(has_text="WHO").wait_for()
    assert dialog.get_by_text("Required").is_visible()

    page.get_by_test_id("param-WHO").fill("world")
    page.get_by_test_id("param-COUNT").fill("8")
    page.get_by_test_id("param-ENV").click()
    page.get_by_role("option", name="staging").click()
    page.get_by_test_id("param-LOUD").click()
    page.get_by_test_id("execute-submit").click()

    page.wait_for_url(re.compile(r".*/executions/\d+$"))
    execution_id = int(page.url.rsplit("/", 1)[1])
    text = wait_for_output(page, r"hello world #1 env=staging loud=true")
    assert "#8" not in text, "the output should arrive live, line by line"
    page.get_by_test_id("status-running").wait_for()
    wait_for_output(page, r"hello world #8")
    page.get_by_test_id("status-success").wait_for(timeout=20_000)
    assert page.get_by_test_id("exit-code").inner_text() == "0"
    assert page.get_by_test_id("triggered-by").inner_text() == "viewer"
    assert page.get_by_test_id("trigger").inner_text() == "web UI"
    assert page.get_by_test_id("cancelled-by").count() == 0
    assert page.get_by_test_id("param-value-WHO").inner_text() == "world"
    assert page.get_by_test_id("param-value-COUNT").inner_text() == "8"
    assert page.get_by_test_id("cancel-button").count() == 0

    log = page.request.get(f"{env.server.url}/executions/{execution_id}/output.log")
    assert log.ok
    assert "hello world #8 env=staging loud=true" in log.text()
    assert "\x1b[" not in log.text()

    page.goto(f"{env.server.url}/executions")
    page.get_by_test_id(f"run-link-{execution_id}").wait_for()
    page.get_by_test_id("filter-status").click()
    page.get_by_role("option", name="failed").click()
    page.get_by_test_id("no-runs").wait_for()
    assert "status=failed" in page.evaluate("location.href")
    page.get_by_test_id("filter-status").click()
    page.get_by_role("option", name="success").click()
    page.get_by_test_id(f"run-link-{execution_id}").wait_for()
    today = pick_utc_today(page, "filter-dates")
    page.wait_for_function(f"location.href.includes('since={today}&until={today}')")
    # Who ran it, how it started and where: columns of the history; how it started, a filter.
    row = page.get_by_test_id("runs-table").locator("tr", has=page.get_by_test_id(f"run-link-{execution_id}"))
    ran = httpx.get(f"{env.server.url}/api/v1/executions/{execution_id}", headers=env.viewer).json()
    for text in ("viewer", "web UI", ran["runner"]):
        row.get_by_text(text, exact=True).wait_for()
    page.get_by_test_id("filter-trigger").click()
    page.get_by_role("option", name="API", exact=True).click()
    page.wait_for_function("location.href.includes('trigger=api')")
    page.get_by_test_id(f"run-link-{execution_id}").wait_for(state="detached")
    page.get_by_test_id("filter-trigger").click()
    page.get_by_role("option", name="web UI").click()
    page.wait_for_function("location.href.includes('trigger=ui')")
    page.get_by_test_id(f"run-link-{execution_id}").click()
    page.wait_for_url(f"{env.server.url}/executions/{execution_id}")

    page.goto(f"{env.server.url}/")
    assert int(page.get_by_test_id("count-success").get_by_test_id("count-value").inner_text()) >= 1
    page.get_by_test_id("success-chart").wait_for()
    # Its days are UTC days (as every time on the pages): a browser elsewhere reads the labels so.
    assert "last 7 days (UTC days)" in page.get_by_test_id("success-chart").inner_text()


def test_the_downloaded_log_has_no_escape_sequence_left(page: Any, env: Env) -> None:
    """Field report: the download ("colours removed") kept every colour sequence the output
    pipeline had cut between two stored chunks (each chunk was cleaned alone), and sequences
    with parameter bytes other than digits, `;` and `?` (`ESC[38:2:1:2:3m`, `ESC[>4;2m`)."""
    script_id = _script(env.server, env.admin, "colours", COLOURS)
    execution_id = env.start(script_id, env.viewer)
    run = wait_run(env.server, env.viewer, execution_id)
    assert run["status"] == "success", run
    logs = httpx.get(f"{env.server.url}/api/v1/executions/{execution_id}/logs", headers=env.viewer).json()[
        "items"
    ]
    cut = [chunk["content"][-4:] for chunk in logs if re.search(r"\x1b[^m]*\Z", chunk["content"])]
    assert cut, "the test needs a sequence cut between two stored chunks"
    signed_in(page, env.server, "viewer")
    log = page.request.get(f"{env.server.url}/executions/{execution_id}/output.log")
    assert log.ok
    assert log.text() == "X" * 150000 + "YZ\n"


def test_script_page_tab_lists_the_scripts_runs(page: Any, env: Env) -> None:
    execution_id = env.start(env.greet_id, env.viewer, WHO="tab", COUNT=1)
    signed_in(page, env.server, "viewer")
    page.goto(f"{env.server.url}/scripts/{env.greet_id}")
    page.get_by_role("tab", name="Executions").click()
    page.get_by_test_id(f"run-link-{execution_id}").wait_for()


def test_cancel_a_running_execution_from_its_page(page: Any, env: Env) -> None:
    own = env.start(env.ticker_id, env.viewer)
    others = env.start(env.ticker_id, env.admin)
    try:
        signed_in(page, env.server, "viewer")
        page.goto(f"{env.server.url}/executions/{others}")
        wait_for_output(page, r"^line 3$")
        assert page.get_by_test_id("cancel-button").count() == 0, "a viewer may not cancel another's run"

        page.goto(f"{env.server.url}/executions/{own}")
        wait_for_output(page, r"^line 3$")
        page.get_by_test_id("cancel-button").click()
        page.get_by_test_id("cancel-confirm").click()
        page.get_by_test_id("status-cancelled").wait_for(timeout=10_000)
        assert page.get_by_test_id("cancel-button").count() == 0
        # Who cancelled it is on the run, not only in the audit trail (admins only).
        page.get_by_test_id("cancelled-by").get_by_text("viewer", exact=True).wait_for()
        page.get_by_test_id("error-message").get_by_text("cancelled by viewer").wait_for()
        last = max(ticker_lines(terminal_text(page)))
        time.sleep(1)  # the ticker prints every 0.05 s: a run still going would have printed by now
        assert max(ticker_lines(terminal_text(page))) == last, "no output after the cancel"
    finally:
        env.cancel(others)
    # The cancel is asked for; the list shows the run once it has ended (the page loads once).
    assert wait_run(env.server, env.admin, others)["status"] == "cancelled"
    page.goto(f"{env.server.url}/executions?status=cancelled")
    page.get_by_test_id(f"row-cancelled-by-{own}").get_by_text("by viewer").wait_for()
    page.get_by_test_id(f"row-cancelled-by-{others}").get_by_text("by admin").wait_for()


def test_reload_mid_run_replays_the_output_and_continues_live(page: Any, env: Env) -> None:
    execution_id = env.start(env.ticker_id, env.viewer)
    try:
        signed_in(page, env.server, "viewer")
        page.goto(f"{env.server.url}/executions/{execution_id}")
        wait_for_output(page, r"^line 20$")
        page.reload()
        text = wait_for_output(page, r"^line 1$")
        seen = max(ticker_lines(text))
        text = wait_for_output(page, rf"^line {seen + 40}$")
        lines = ticker_lines(text)
        assert lines == list(range(1, len(lines) + 1)), "every line exactly once, in order"
        page.get_by_test_id("status-running").wait_for()
    finally:
        env.cancel(execution_id)


def test_a_local_runner_run_is_flagged_not_isolated(page: Any, env: Env) -> None:
    execution_id = env.start(env.greet_id, env.viewer, runner="local", WHO="host", COUNT=1)
    signed_in(page, env.server, "viewer")
    page.goto(f"{env.server.url}/executions/{execution_id}")
    page.get_by_test_id("not-isolated").wait_for()
    assert page.get_by_test_id("runner").inner_text() == "local"
    wait_for_output(page, r"hello host #1")
    page.get_by_test_id("status-success").wait_for()
