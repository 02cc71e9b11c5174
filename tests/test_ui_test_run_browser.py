"""Test run from the editor: the unsaved content runs as a draft run, marked as such on its page
and in the lists, in the operator's name; nothing is saved and the edit stays in the editor."""

from __future__ import annotations

import textwrap
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer
from tests.ui_journey import (
    code,
    create_script,
    journey_server,
    journey_tokens,
    log_in,
    type_code,
    wait_connected,
    wait_run,
)

pytestmark = pytest.mark.browser

SAVED = '#!/bin/bash\necho "saved $WHO"\n'
EDITED = '#!/bin/bash\necho "unsaved edit says $WHO"\n'
PARAMS = [{"name": "WHO", "type": "string", "required": True}]


server = journey_server("test-run-ui")
tokens = journey_tokens()


def test_test_run_of_unsaved_edit(server: LiveServer, tokens: dict[str, dict[str, str]], page: Any) -> None:
    admin = tokens["admin"]
    script = create_script(server, admin, "try-me", SAVED, parameters=PARAMS)
    assert script["status"] == "draft"  # a draft cannot run normally; a test run can

    log_in(page, server, "operator", then=f"/scripts/{script['id']}/edit")
    wait_connected(page)
    type_code(page, EDITED)
    page.get_by_test_id("test-run").click()
    dialog = page.get_by_test_id("execute-dialog")
    dialog.get_by_test_id("test-run-notice").get_by_text("Nothing is saved").wait_for()
    dialog.get_by_test_id("param-WHO").fill("the editor")
    dialog.get_by_test_id("execute-submit").click()

    # The editor stays, with the unsaved edit, and links to the run's output in a new tab.
    link = page.get_by_test_id("test-run-link")
    link.wait_for()
    execution_id = int(str(link.get_attribute("href")).rsplit("/", 1)[1])
    assert code(page) == EDITED
    run = wait_run(server, admin, execution_id)
    assert run["status"] == "success" and run["output"] == "unsaved edit says the editor\n"
    assert run["draft"] is True and run["triggered_by_name"] == "operator"

    with page.context.expect_page() as opened:
        link.click()
    output_page = opened.value
    output_page.get_by_test_id("draft-badge").wait_for()
    output_page.get_by_test_id("draft-notice").get_by_text("started by operator").wait_for()
    assert output_page.get_by_test_id("run-again").count() == 0  # its content was never saved
    output_page.get_by_test_id("draft-content").click()
    output_page.get_by_text('echo "unsaved edit says $WHO"').wait_for()

    # The executions list marks it too.
    output_page.goto(f"{server.url}/executions")
    output_page.get_by_test_id("runs-table").get_by_text("try-me · test run (unsaved, from v1)").wait_for()
    output_page.close()

    # Nothing was saved: same content, status and version; one version in the history.
    saved = httpx.get(f"{server.url}/api/v1/scripts/{script['id']}", headers=admin).json()
    assert (saved["content"], saved["status"], saved["current_version"]) == (SAVED, "draft", 1)
    versions = httpx.get(f"{server.url}/api/v1/scripts/{script['id']}/versions", headers=admin).json()
    assert versions["total"] == 1


def test_a_new_script_is_saved_before_a_test_run(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    log_in(page, server, "admin", then="/scripts/new")
    wait_connected(page)
    assert page.get_by_test_id("test-run").is_disabled()


def test_a_bad_parameter_declaration_is_shown_under_its_row(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """A declaration the save refuses (here a name Ansible reserves, `hostvars`) is shown under the
    parameter row's field, for Test run and for Save alike, and no run starts."""
    admin = tokens["admin"]
    playbook = "- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.debug: {msg: hi}\n"
    script = create_script(server, admin, "declared", playbook, script_type="ansible")
    log_in(page, server, "operator", then=f"/scripts/{script['id']}/edit")
    wait_connected(page)
    page.get_by_test_id("add-parameter").click()
    page.get_by_test_id("param-name-0").fill("hostvars")
    page.get_by_test_id("param-default-0").fill("ok")
    page.get_by_test_id("add-parameter").click()
    page.get_by_test_id("param-name-1").fill("REGION")
    page.get_by_test_id("param-default-1").fill("eu\u202ewest")
    row = page.get_by_test_id("param-row-0")
    other = page.get_by_test_id("param-row-1")

    page.get_by_test_id("test-run").click()
    row.get_by_text("Name hostvars is reserved").wait_for()
    other.get_by_text("Default must not contain bidirectional control characters").wait_for()
    assert page.get_by_test_id("execute-dialog").count() == 0, "no run form for a refused declaration"
    runs = httpx.get(
        f"{server.url}/api/v1/executions", params={"script_id": script["id"]}, headers=admin
    ).json()
    assert runs["total"] == 0

    page.get_by_test_id("param-name-0").fill("groups")
    page.get_by_test_id("param-default-1").fill("eu-west")
    page.get_by_test_id("save-script").click()
    row.get_by_text("Name groups is reserved").wait_for()
    saved = httpx.get(f"{server.url}/api/v1/scripts/{script['id']}", headers=admin).json()
    assert saved["parameters"] == {} and saved["current_version"] == 1


# A line of ``` closed the block's Markdown fence: what followed was drawn as Markdown (a heading,
# an image, a link), not as the text that ran, on the page where an approver reviews it. Every
# line indented: the block shows the indentation too (NiceGUI's `ui.code` removes what all lines
# share).
BREAKOUT = textwrap.indent(
    ": <<'EOF'\n```\n# Looks like a heading\n<img src=x alt=pic>\n"
    "[Your session expired: log in again](https://evil.example/login)\n````\nEOF\necho done\n",
    "  ",
)


def test_the_content_that_ran_is_shown_as_text_whatever_it_holds(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    script = create_script(server, tokens["admin"], "fenced", SAVED, parameters=PARAMS)
    body = {"content": BREAKOUT, "parameters": {"WHO": "x"}}
    url = f"{server.url}/api/v1/scripts/{script['id']}/test-runs"
    r = httpx.post(url, json=body, headers=tokens["operator"])
    assert r.status_code == 202, r.text
    log_in(page, server, "admin", then=f"/executions/{r.json()['id']}")
    page.get_by_test_id("draft-content").click()
    block = page.get_by_test_id("draft-content").locator(".nicegui-code .nicegui-markdown")
    block.get_by_text("echo done").wait_for()
    assert block.locator("h1, img, a").count() == 0, block.inner_html()
    assert block.inner_text().replace("\u00a0", " ").rstrip() == BREAKOUT.rstrip()
