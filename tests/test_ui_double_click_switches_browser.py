"""A person's double-click on a button that switches something and is redrawn by it (a channel's
or a rule's Enable/Disable, a schedule's or a webhook's Pause/Resume) or that sends something (a
channel's Test) does it once (`widgets.once_per_double_click`): the second click, a few hundred ms
later, reached the redrawn button and undid the change, or sent a second test message. The
second click here comes once the first one's outcome shows, as a person's slow double-click
(the browser's click count 2), then a later single press (Enter) is the barrier: its outcome shows
after every earlier click was handled."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.conftest import LiveServer
from tests.ui_journey import RUN_ENV, api, create_script, journey_server, journey_tokens, signed_in
from tests.waiting import wait_until

pytestmark = pytest.mark.browser

# Test messages go to a receiver of this test on the loopback address.
server = journey_server(
    "double-click-switches-ui", env={**RUN_ENV, "OPSCRAFT_NOTIFY_NETWORKS": "private,loopback"}
)
tokens = journey_tokens()


@pytest.fixture(scope="module")
def received() -> Iterator[tuple[str, list[str]]]:
    """A webhook receiver on 127.0.0.1: (its URL, the bodies it took, in order)."""
    bodies: list[str] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            bodies.append(self.rfile.read(int(self.headers.get("content-length", 0))).decode())
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            """Quiet."""

    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{receiver.server_port}/hook", bodies
    receiver.shutdown()


def _double_click(page: Any, button: Any, first_done: Callable[[], None]) -> None:
    """A person's double-click on `button`: the first click, its outcome shown (`first_done`),
    then the second click (click count 2) at the same place, on the button as redrawn."""
    box = button.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down(click_count=1)
    page.mouse.up(click_count=1)
    first_done()
    page.mouse.down(click_count=2)
    page.mouse.up(click_count=2)


def _shown(page: Any, text: str, count: int) -> Callable[[], None]:
    """Until `count` notifications saying `text` were shown (they stay a few seconds)."""
    return lambda: expect(page.locator(".q-notification", has_text=text)).to_have_count(count)


def test_a_double_click_on_a_channels_test_or_switch_or_a_rules_switch_does_it_once(
    server: LiveServer, tokens: dict[str, dict[str, str]], received: tuple[str, list[str]], page: Any
) -> None:
    admin = tokens["admin"]
    url, bodies = received
    body = {"name": "dbl-hook", "kind": "webhook", "config": {"url": url}}
    channel = api(server, "POST", "/notifications/channels", admin, json=body)
    rule_body = {"channel_id": channel["id"], "events": ["failure"]}
    rule = api(server, "POST", "/notifications/rules", admin, json=rule_body)
    signed_in(page, server, "admin", "/notifications")
    test_button = page.get_by_test_id("channel-test-dbl-hook")
    _double_click(page, test_button, _shown(page, "Test message sent", 1))
    switch = page.get_by_test_id("channel-turn-dbl-hook")
    _double_click(page, switch, lambda: expect(switch).to_have_text("Enable"))
    rule_switch = page.get_by_test_id(f"rule-turn-{rule['id']}")
    _double_click(page, rule_switch, lambda: expect(rule_switch).to_have_text("Enable"))
    # The barrier: a test message from the channel under a new name, sent after every click above.
    api(server, "PUT", f"/notifications/channels/{channel['id']}", admin, json={"name": "dbl-renamed"})
    page.get_by_test_id("channel-test-dbl-hook").press("Enter")
    wait_until(lambda: any("dbl-renamed" in b for b in bodies), "the test message after the rename", 30)
    assert sum("dbl-hook" in b for b in bodies) == 1, bodies
    assert api(server, "GET", f"/notifications/channels/{channel['id']}", admin)["enabled"] is False
    rules = api(server, "GET", "/notifications/rules", admin)["items"]
    assert [r["enabled"] for r in rules if r["id"] == rule["id"]] == [False]


def test_a_double_click_on_a_schedules_or_a_webhooks_pause_pauses_it(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    admin = tokens["admin"]
    script = create_script(server, admin, "dbl-switches", "#!/bin/bash\necho hi\n", status="active")
    path = f"/scripts/{script['id']}"
    schedule = api(server, "POST", f"{path}/schedules", admin, json={"name": "n", "cron": "@daily"})
    hook = api(server, "POST", f"{path}/webhooks", admin, json={"name": "h"})
    signed_in(page, server, "operator", f"{path}?tab=webhooks")
    pause = page.get_by_test_id(f"webhook-toggle-{hook['id']}")
    _double_click(page, pause, lambda: expect(pause).to_have_text("Resume"))
    page.goto(f"{server.url}{path}?tab=schedules")
    pause = page.get_by_test_id(f"schedule-toggle-{schedule['id']}")
    _double_click(page, pause, lambda: expect(pause).to_have_text("Resume"))
    # The barrier: Resume pressed once, after the double-click.
    pause.press("Enter")
    wait_until(
        lambda: api(server, "GET", f"{path}/schedules/{schedule['id']}", admin)["enabled"],
        "the schedule resumed",
        30,
    )
    expect(pause).to_have_text("Pause")
    assert api(server, "GET", f"{path}/webhooks", admin)["items"][0]["enabled"] is False
