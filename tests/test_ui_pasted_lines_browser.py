"""A text pasted with line breaks: refused next to a one-line field (its API refuses a line break
there too), kept by a field whose API keeps it (a description, a JSON box). Chromium turned each
pasted line break of a one-line field into a space, and nothing said so (`ui.one_line`)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from opscraft.ui.one_line import PASTED_LINES
from tests.conftest import LiveServer
from tests.ui_journey import (
    API_TIMEOUT,
    create_script,
    journey_server,
    journey_tokens,
    log_in,
    wait_connected,
)

pytestmark = pytest.mark.browser

server = journey_server("pasted-lines-ui")
tokens = journey_tokens()


def _paste(page: Any, field: Any, text: str) -> None:
    """`text` through the system clipboard and Ctrl+V into `field`, as a person pastes."""
    page.evaluate("text => navigator.clipboard.writeText(text)", text)
    field.click()
    page.keyboard.press("Control+V")


def test_a_pasted_line_break_is_refused_in_a_name_and_kept_in_a_json_box(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    script = create_script(server, tokens["admin"], "pasted-job", "#!/bin/bash\necho hi\n")
    schedules = f"{server.url}/api/v1/scripts/{script['id']}/schedules"
    # The API: a line break in a name is refused, in the parameters' JSON it is kept as JSON reads it.
    body = {"name": "night\nly", "cron": "0 3 * * *"}
    r = httpx.post(schedules, json=body, headers=tokens["admin"], timeout=API_TIMEOUT)
    assert r.status_code == 422 and [e["field"] for e in r.json()["errors"]] == ["name"], r.text
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    log_in(page, server, "operator", then=f"/scripts/{script['id']}?tab=schedules")
    wait_connected(page)
    page.get_by_test_id("schedule-add").click()
    name = page.get_by_test_id("schedule-name")
    _paste(page, name, "night\nly")
    expect(page.get_by_test_id("pasted-lines")).to_have_text(PASTED_LINES)
    expect(name).to_have_value("")  # not "night ly"
    _paste(page, name, "nightly")  # one line: pasted, and the note goes
    expect(name).to_have_value("nightly")
    expect(page.get_by_test_id("pasted-lines")).to_have_count(0)
    page.get_by_test_id("schedule-cron").fill("0 3 * * *")
    page.get_by_test_id("schedule-submit").click()
    page.locator(".q-notification", has_text="Schedule added").wait_for()
    listed = httpx.get(schedules, headers=tokens["admin"], timeout=API_TIMEOUT).json()["items"]
    assert [(s["name"], s["parameters"]) for s in listed] == [("nightly", {})]
    # A JSON box (a webhook's mapping; a schedule's parameters are fields) keeps a pasted line break.
    page.goto(f"{server.url}/scripts/{script['id']}?tab=webhooks")
    page.get_by_test_id("webhook-add").click()
    page.get_by_test_id("webhook-name").fill("on-push")
    mapping = page.get_by_test_id("webhook-mapping")
    mapping.fill("")
    _paste(page, mapping, "{\n}")
    expect(mapping).to_have_value("{\n}")
    expect(page.get_by_test_id("pasted-lines")).to_have_count(0)
    page.get_by_test_id("webhook-submit").click()
    page.get_by_test_id("webhook-url").wait_for()
    webhooks = schedules.replace("schedules", "webhooks")
    hooks = httpx.get(webhooks, headers=tokens["admin"], timeout=API_TIMEOUT)
    assert [(h["name"], h["mapping"]) for h in hooks.json()["items"]] == [("on-push", {})]


def test_a_secret_description_keeps_its_pasted_lines_as_the_api_does(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    log_in(page, server, "operator", then="/secrets")
    wait_connected(page)
    page.get_by_test_id("new-secret").click()
    _paste(page, page.get_by_test_id("create-name"), "PASTED_LINES\n")
    expect(page.get_by_test_id("pasted-lines")).to_have_text(PASTED_LINES)
    page.get_by_test_id("create-name").fill("PASTED_LINES")
    _paste(page, page.get_by_test_id("create-description"), "first line\nsecond line\n")
    expect(page.get_by_test_id("create-description")).to_have_value("first line\nsecond line\n")
    page.get_by_test_id("create-value").fill("v")
    page.get_by_test_id("create-submit").click()
    page.get_by_test_id("create-submit").wait_for(state="detached")
    listed = httpx.get(f"{server.url}/api/v1/secrets", headers=tokens["admin"], timeout=API_TIMEOUT)
    [secret] = [s for s in listed.json()["items"] if s["name"] == "PASTED_LINES"]
    assert secret["description"] == "first line\nsecond line\n"  # as pasted: nothing trimmed
