"""The run page's live output under load and through a dropped network: a run printing faster than
the browser draws gets to the page at the page's pace (the page stays connected, the server holds
a bounded part of the output), and a page whose network drops mid-run says it is reconnecting,
then shows every line once and the end."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer
from tests.ui_journey import RUN_ENV, log_in, serving, token, wait_connected, wait_for_output, wait_run

pytestmark = pytest.mark.browser

# 64 MiB printed as fast as Python writes it (80-character lines, narrower than the terminal),
# then the end: far faster than a browser's terminal draws.
LOUD = """\
import sys
line = "x" * 79 + "\\n"
for block in range(64):
    sys.stdout.write(f"block {block}\\n" + line * 13107)
print("all printed", flush=True)
"""
TICKER = """\
import time
for i in range(1, 301):
    print(f"line {i}", flush=True)
    time.sleep(0.03)
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    env = {**RUN_ENV, "OPSCRAFT_MAX_OUTPUT_BYTES": str(100 * 1024 * 1024)}
    with serving(tmp_path_factory, "live-output", env, users=(("admin", "admin"),), through_api=True) as live:
        yield live


def start(server: LiveServer, content: str) -> int:
    admin = token(server, "admin")
    body = {
        "name": f"s-{time.monotonic_ns()}",
        "script_type": "python",
        "status": "active",
        "content": content,
    }
    script = httpx.post(f"{server.url}/api/v1/scripts", json=body, headers=admin, timeout=60)
    assert script.status_code == 201, script.text
    body = {"script_id": script.json()["id"], "runner": "local"}
    run = httpx.post(f"{server.url}/api/v1/executions", json=body, headers=admin, timeout=60)
    assert run.status_code == 202, run.text
    return int(run.json()["id"])


def stored(server: LiveServer, execution_id: int) -> str:
    url = f"{server.url}/api/v1/executions/{execution_id}/output.log"
    return httpx.get(url, headers=token(server, "admin"), timeout=60).text


def test_a_loud_run_comes_at_the_pace_of_the_page_which_stays_connected(
    server: LiveServer, page: Any
) -> None:
    log_in(page, server, "admin")
    execution_id = start(server, LOUD)
    page.goto(f"{server.url}/executions/{execution_id}")
    wait_connected(page)
    page.evaluate("window.__socket_id = window.socket.id")  # gone on a reload, changed on a reconnect
    # The server sends the output as fast as the terminal writes it, so socket.io's pings (and
    # any answer to a click) never wait behind megabytes: the connection stays up all along.
    page.get_by_test_id("status-success").wait_for(timeout=240_000)
    assert page.evaluate("window.__socket_id === window.socket.id"), "the page reconnected or reloaded"
    text = wait_for_output(page, r"^all printed$")
    # The terminal keeps its last 100,000 lines: they are the end of the stored output.
    shown = terminal_lines(text)
    assert len(shown) > 90_000
    assert shown == terminal_lines(stored(server, execution_id))[-len(shown) :]


def terminal_lines(text: str) -> list[str]:
    """The lines of output, without the blank ones (the terminal's screen pads its end)."""
    return [line for line in text.splitlines() if line.strip()]


def test_a_dropped_network_says_so_then_shows_every_line_once_and_the_end(
    server: LiveServer, page: Any
) -> None:
    execution_id = start(server, TICKER)
    log_in(page, server, "admin", then=f"/executions/{execution_id}")
    wait_connected(page)
    wait_for_output(page, r"^line 20$")
    page.context.set_offline(True)
    page.locator("#popup").get_by_text("Trying to reconnect").wait_for()
    # The run ends meanwhile (read over the API, not the page): the outage itself is under test.
    wait_run(server, token(server, "admin"), execution_id)
    page.context.set_offline(False)
    wait_connected(page)
    page.get_by_test_id("status-success").wait_for(timeout=60_000)
    page.locator("#popup").get_by_text("Trying to reconnect").wait_for(state="hidden")
    text = wait_for_output(page, r"^line 300$")
    assert re.findall(r"^line (\d+)$", text, re.M) == [str(n) for n in range(1, 301)]
    assert terminal_lines(text) == terminal_lines(stored(server, execution_id))
