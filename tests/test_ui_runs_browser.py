"""Run-centred pages: a draft says why it cannot run and activates in one click; Run from the
scripts list with the last run shown; Run again with the same parameters."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from opscraft.services.parameters import MAX_VALUE_BYTES
from tests.conftest import LiveServer
from tests.ui_journey import (
    create_script,
    journey_server,
    journey_tokens,
    signed_in,
    wait_connected,
    wait_run,
)

pytestmark = pytest.mark.browser

GREET = '#!/bin/bash\necho "hello $WHO"\n'
PARAMS = [{"name": "WHO", "type": "string", "required": True}]


server = journey_server("runs-ui")
tokens = journey_tokens()


def _execution_id(page: Any) -> int:
    page.wait_for_url(re.compile(r".*/executions/\d+$"))
    return int(page.url.rsplit("/", 1)[1])


def test_draft_activate_run_from_list_and_run_again(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    script = create_script(server, tokens["admin"], "greet", GREET, parameters=PARAMS)
    assert script["status"] == "draft"

    # The draft's page says why Execute is refused, and Activate is one click away.
    signed_in(page, server, "operator", f"/scripts/{script['id']}")
    page.get_by_test_id("not-runnable").get_by_text("only active scripts can run").wait_for()
    assert page.get_by_test_id("execute-button").is_disabled()
    page.get_by_test_id("activate-button").click()
    page.locator('[data-testid="execute-button"]:not([disabled])').wait_for()
    assert page.get_by_test_id("not-runnable").count() == 0

    # The scripts list: never run yet; Run opens the run form right there.
    page.goto(f"{server.url}/scripts")
    page.get_by_test_id("scripts-table").get_by_text("never run").wait_for()
    page.get_by_test_id("run-greet").click()
    page.get_by_test_id("param-WHO").fill("first-hour")
    page.get_by_test_id("execute-submit").click()
    first = _execution_id(page)
    assert "hello first-hour" in wait_run(server, tokens["admin"], first)["output"]

    # Run again: a new run with the same parameters.
    page.reload()
    wait_connected(page)
    page.get_by_test_id("run-again").click()
    page.wait_for_url(lambda url: url.endswith("/executions/" + str(first + 1)))
    second = wait_run(server, tokens["admin"], first + 1)
    assert second["parameters"] == {"WHO": "first-hour"} and "hello first-hour" in second["output"]
    # It says which run it repeats, with a link there (a fresh run says nothing of the kind).
    assert second["rerun_of"] == first
    repeated = page.get_by_test_id("rerun-of")
    assert (repeated.inner_text(), repeated.get_attribute("href")) == (f"#{first}", f"/executions/{first}")
    repeated.click()
    page.wait_for_url(lambda url: url.endswith(f"/executions/{first}"))
    page.get_by_test_id("exit-code").wait_for()
    assert page.get_by_test_id("rerun-of").count() == 0

    # The list shows the last run's status and time.
    page.goto(f"{server.url}/scripts")
    last = page.get_by_test_id("last-run-greet")
    last.get_by_text("success").wait_for()
    assert last.get_attribute("href") == f"/executions/{first + 1}"


def test_the_scripts_list_offers_activation_only_to_those_who_may_activate(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """A draft's row told a viewer "draft: activate to run", an action their role does not have
    (the script's page says "An operator or an admin can activate it"); an operator is still
    told to activate it. Deprecated scripts alike."""
    scripts = (("list-draft", "draft"), ("list-deprecated", "deprecated"))
    for name, status in scripts:
        create_script(server, tokens["admin"], name, GREET, status=status)
    told = {"viewer": "an operator or an admin can activate it", "operator": "activate to run"}
    for role, words in told.items():
        page.context.clear_cookies()  # another person
        signed_in(page, server, role, "/scripts?search=list-")
        for name, status in scripts:
            row = page.get_by_test_id(f"activate-{name}")
            row.wait_for()
            assert row.inner_text().strip() == f"{status}: {words}", (role, row.inner_text())


def test_rerun_api_keeps_parameters_and_follows_the_rules(
    server: LiveServer, tokens: dict[str, dict[str, str]]
) -> None:
    headers = tokens["admin"]
    script = create_script(server, headers, "echo-rerun", GREET, parameters=PARAMS, status="active")
    body = {"script_id": script["id"], "parameters": {"WHO": "api"}}
    first = httpx.post(f"{server.url}/api/v1/executions", json=body, headers=headers).json()
    again = httpx.post(f"{server.url}/api/v1/executions/{first['id']}/rerun", headers=headers)
    assert again.status_code == 202, again.text
    assert again.json()["parameters"] == {"WHO": "api"} and again.json()["id"] != first["id"]
    assert (first["rerun_of"], again.json()["rerun_of"]) == (None, first["id"])
    audit = httpx.get(f"{server.url}/api/v1/audit", params={"action": "execution.create"}, headers=headers)
    details = {event["target_id"]: event["details"] for event in audit.json()["items"]}
    assert details[str(again.json()["id"])]["rerun_of"] == first["id"]
    assert "rerun_of" not in details[str(first["id"])]
    # The rules of a new run apply: a script set back to draft does not run again.
    httpx.put(f"{server.url}/api/v1/scripts/{script['id']}", json={"status": "draft"}, headers=headers)
    refused = httpx.post(f"{server.url}/api/v1/executions/{first['id']}/rerun", headers=headers)
    assert refused.status_code == 409 and "activate it first" in refused.json()["detail"]
    missing = httpx.post(f"{server.url}/api/v1/executions/999999/rerun", headers=headers)
    assert missing.status_code == 404


BIG = "9007199254740993"  # 2**53 + 1: a JavaScript double rounds it to ...992
COUNT = '#!/bin/bash\necho "n=$N x=$X"\n'
COUNT_PARAMS = [
    {"name": "N", "type": "integer", "default": int(BIG)},
    {"name": "X", "type": "number"},
]


def test_run_dialog_sends_integers_exactly_as_typed(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """Field report: an integer parameter typed as 9007199254740993 ran with ...992. Numbers are
    sent as typed (beyond 2**53 too) or refused under the field; never rounded."""
    headers = tokens["admin"]
    script = create_script(server, headers, "count", COUNT, parameters=COUNT_PARAMS, status="active")
    signed_in(page, server, "operator", f"/scripts/{script['id']}")
    page.locator('[data-testid="execute-button"]:not([disabled])').click()
    field = page.get_by_test_id("param-N")
    assert field.input_value() == BIG, "the default is shown exactly"

    # Beyond 64 bits: refused under the field, nothing runs.
    field.fill(str(2**63))
    page.get_by_test_id("execute-submit").click()
    page.get_by_text("must be a 64-bit integer").wait_for()
    runs = httpx.get(f"{server.url}/api/v1/executions", params={"script_id": script["id"]}, headers=headers)
    assert runs.json()["total"] == 0

    field.fill("-9223372036854775807")
    page.get_by_test_id("param-X").fill(BIG)
    page.get_by_test_id("execute-submit").click()
    run = wait_run(server, headers, _execution_id(page))
    assert run["parameters"] == {"N": -9223372036854775807, "X": int(BIG)}
    assert f"n=-9223372036854775807 x={BIG}" in run["output"]


def _runs_of(server: LiveServer, headers: dict[str, str], script_id: int) -> list[int]:
    listed = httpx.get(
        f"{server.url}/api/v1/executions", params={"script_id": script_id}, headers=headers, timeout=60
    )
    assert listed.status_code == 200, listed.text
    return sorted(run["id"] for run in listed.json()["items"])


def test_a_double_click_starts_one_run(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """NiceGUI handles each click in its own task: the second click of a double-click on Run (or
    Run again) used to start a second run while the first was being started, and one on Execute
    opened a second run form over the first."""
    admin = tokens["admin"]
    script = create_script(server, admin, "once", '#!/bin/bash\necho "once"\n', status="active")
    signed_in(page, server, "operator", f"/scripts/{script['id']}")
    page.get_by_test_id("execute-button").dblclick()  # one run form (two used to be stacked)
    page.get_by_test_id("execute-submit").dblclick()  # strict: fails if there are two forms
    first = _execution_id(page)
    wait_run(server, admin, first)  # a second run, had one started, would be listed by now
    assert _runs_of(server, admin, script["id"]) == [first]

    page.get_by_test_id("run-again").dblclick()
    page.wait_for_url(lambda url: not url.endswith(f"/executions/{first}"))
    again = _execution_id(page)
    wait_run(server, admin, again)
    assert _runs_of(server, admin, script["id"]) == [first, again]


def test_a_value_too_long_for_the_page_connection_is_refused_not_replaced(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """Field report: a 3 MB value pasted into a parameter never reached the server (NiceGUI's
    browser side drops a message over 1 MB, with a 5-second popup), so Run started the script
    with the value the field had before (here "typed"), not the one on the screen. The field now
    holds at most what the connection carries (twice the longest valid value, in UTF-16 units),
    so an over-long value reaches the server and is refused under its field."""
    headers = tokens["admin"]
    params = [{"name": "P", "type": "string"}, {"name": "N", "type": "integer"}]
    script = create_script(server, headers, "paste", 'echo "${#P} $N"\n', parameters=params, status="active")
    signed_in(page, server, "viewer", f"/scripts/{script['id']}")
    page.locator('[data-testid="execute-button"]:not([disabled])').click()
    for name in ("P", "N"):
        field = page.get_by_test_id(f"param-{name}")
        field.fill("7")
        field.fill("7" * 1_100_000)
    page.get_by_test_id("execute-submit").click()
    value = page.locator(".q-field--error", has=page.get_by_test_id("param-P"))
    value.filter(has_text="must be at most 32768 characters").wait_for()
    page.locator(".q-field--error", has=page.get_by_test_id("param-N")).wait_for()
    assert page.get_by_test_id("execute-dialog").is_visible()
    runs = httpx.get(f"{server.url}/api/v1/executions", params={"script_id": script["id"]}, headers=headers)
    assert runs.json()["total"] == 0, runs.json()["items"][0]["parameters"]

    # A valid value as long as it may be in characters beyond the Basic Multilingual Plane (two
    # UTF-16 units each, four bytes) is never cut by the field.
    longest = MAX_VALUE_BYTES // 4
    page.get_by_test_id("param-P").fill("😀" * longest)
    page.get_by_test_id("param-N").fill("5")
    page.get_by_test_id("execute-submit").click()
    run = wait_run(server, headers, _execution_id(page))
    assert run["output"] == f"{longest} 5\n"


def test_a_click_outside_the_run_form_keeps_it_open(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """A click outside a form dialog (a stray one, or the second click of a double-click on
    Execute once the form is up: seen on a busy CI machine) used to close the form and drop what
    was typed; Escape still closes it."""
    script = create_script(
        server,
        tokens["admin"],
        "stay",
        '#!/bin/bash\necho "$WHO"\n',
        parameters={"WHO": "x"},
        status="active",
    )
    signed_in(page, server, "operator", f"/scripts/{script['id']}")
    page.get_by_test_id("execute-button").click()
    form = page.get_by_test_id("execute-dialog")
    form.wait_for()
    page.mouse.click(5, 5)  # on the backdrop, far from the form
    with pytest.raises(PlaywrightTimeoutError):  # Quasar hides a dismissed dialog at once
        form.wait_for(state="hidden", timeout=2_000)
    page.keyboard.press("Escape")
    form.wait_for(state="hidden")


PLAYBOOK = "- hosts: all\n  gather_facts: false\n  tasks:\n    - debug: msg=hi\n"


def test_a_refused_ansible_option_is_said_under_its_field(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """A limit or tags the service refuses is said under that field (not only in a toast), and
    the message goes once the value is fixed."""
    headers = tokens["admin"]
    script = create_script(
        server,
        headers,
        "play",
        PLAYBOOK,
        script_type="ansible",
        status="active",
        inventory="[web]\nweb1 ansible_connection=local\n",
    )
    signed_in(page, server, "viewer", f"/scripts/{script['id']}")
    page.locator('[data-testid="execute-button"]:not([disabled])').click()
    page.get_by_test_id("ansible-limit").fill("web1 web2")
    page.get_by_test_id("execute-submit").click()
    limit = page.locator(".q-field--error", has=page.get_by_test_id("ansible-limit"))
    limit.filter(has_text="must be an Ansible host pattern").wait_for()

    page.get_by_test_id("ansible-limit").fill("web1")
    page.get_by_test_id("ansible-tags").fill("deploy, {{ x }}")
    page.get_by_test_id("execute-submit").click()
    tags = page.locator(".q-field--error", has=page.get_by_test_id("ansible-tags"))
    tags.filter(has_text="each tag must be").wait_for()
    assert limit.count() == 0  # the limit is fine now
    runs = httpx.get(f"{server.url}/api/v1/executions", params={"script_id": script["id"]}, headers=headers)
    assert runs.json()["total"] == 0


def test_the_run_form_takes_every_ansible_option_and_the_run_page_shows_them(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """Field report: the run form had no Skip tags (the API's `skip_tags`, listed among the form's
    options by docs/executions.md), and a run's page did not show its options at all, so a
    `--check` run (a dry run that changes nothing) looked like a real one."""
    headers = tokens["admin"]
    script = create_script(
        server,
        headers,
        "play-options",
        PLAYBOOK,
        script_type="ansible",
        status="active",
        inventory="[web]\nweb1 ansible_connection=local\n",
    )
    signed_in(page, server, "viewer", f"/scripts/{script['id']}")
    page.locator('[data-testid="execute-button"]:not([disabled])').click()
    page.get_by_test_id("ansible-limit").fill("web1")
    page.get_by_test_id("ansible-tags").fill("deploy")
    page.get_by_test_id("ansible-skip-tags").fill("slow, {{ x }}")
    page.get_by_test_id("execute-submit").click()
    skip = page.locator(".q-field--error", has=page.get_by_test_id("ansible-skip-tags"))
    skip.filter(has_text="each tag must be").wait_for()

    page.get_by_test_id("ansible-skip-tags").fill("slow, never")
    page.get_by_test_id("ansible-check").click()
    page.get_by_test_id("execute-submit").click()
    execution_id = _execution_id(page)
    run = wait_run(server, headers, execution_id)
    options = {"limit": "web1", "tags": ["deploy"], "skip_tags": ["slow", "never"], "check": True}
    assert run["run_options"] == options
    shown = page.get_by_test_id("run-options")
    shown.wait_for()
    assert shown.inner_text() == "--limit=web1 --tags=deploy --skip-tags=slow,never --check"

    # Run again is the same run: limited and dry again (the options were dropped: every host of
    # the inventory, for real), and recorded as started from the UI (it said `api`).
    page.reload()
    wait_connected(page)
    page.get_by_test_id("run-again").click()
    page.wait_for_url(lambda url: not url.endswith(f"/executions/{execution_id}"))
    again = wait_run(server, headers, _execution_id(page))
    assert (again["run_options"], again["trigger"]) == (options, "ui")
    by_api = httpx.post(f"{server.url}/api/v1/executions/{execution_id}/rerun", headers=headers)
    assert by_api.status_code == 202, by_api.text
    assert (by_api.json()["run_options"], by_api.json()["trigger"]) == (options, "api")
    wait_run(server, headers, by_api.json()["id"])


def test_a_viewer_is_offered_run_options_only_when_the_script_allows_it(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """With `viewers_choose_run_options` off the viewer's run form has no Ansible options and says
    why in one line (the run starts without them); the Overview says who chooses them; an
    operator switches it on in the editor and the viewer's form offers them again."""
    headers = tokens["admin"]
    script = create_script(
        server,
        headers,
        "play-closed",
        PLAYBOOK,
        script_type="ansible",
        status="active",
        inventory="[web]\nweb1 ansible_connection=local\n",
        viewers_choose_run_options=False,
    )
    signed_in(page, server, "viewer", f"/scripts/{script['id']}")
    rights = page.get_by_test_id("run-options-rights")
    rights.wait_for()
    assert rights.inner_text() == "chosen by operators and admins only"
    page.locator('[data-testid="execute-button"]:not([disabled])').click()
    said = page.get_by_test_id("run-options-not-allowed")
    said.wait_for()
    assert said.inner_text() == (
        "Run options (limit, tags, check, diff) are not offered: only those who may edit this script "
        "(operators and admins) may choose its run options (viewers_choose_run_options is off)."
    )
    assert page.get_by_test_id("ansible-limit").count() == 0
    assert page.get_by_test_id("ansible-check").count() == 0
    page.get_by_test_id("execute-submit").click()
    assert wait_run(server, headers, _execution_id(page))["run_options"] is None

    page.context.clear_cookies()  # another person
    signed_in(page, server, "operator", f"/scripts/{script['id']}/edit")
    switch = page.get_by_test_id("viewers-choose-run-options")
    assert switch.get_attribute("aria-checked") == "false"
    switch.click()
    page.get_by_test_id("save-script").click()
    page.wait_for_url(lambda url: not url.endswith("/edit"))
    stored = httpx.get(f"{server.url}/api/v1/scripts/{script['id']}", headers=headers).json()
    assert (stored["viewers_choose_run_options"], stored["current_version"]) == (True, 2), stored

    page.context.clear_cookies()
    signed_in(page, server, "viewer", f"/scripts/{script['id']}")
    assert page.get_by_test_id("run-options-rights").inner_text() == "viewers may choose them"
    page.locator('[data-testid="execute-button"]:not([disabled])').click()
    page.get_by_test_id("ansible-limit").wait_for()
    assert page.get_by_test_id("run-options-not-allowed").count() == 0


def test_diff_is_not_offered_to_a_viewer_on_a_script_with_secrets(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """With a secret attached, Ansible's Diff (which prints files before and after, beyond what
    masking knows) is the editors' to choose: the viewer's run form shows it disabled, saying
    why under it; the other options stay offered (services/run_option_rights.py)."""
    headers = tokens["admin"]
    script = create_script(
        server,
        headers,
        "play-with-vault",
        PLAYBOOK,
        script_type="ansible",
        status="active",
        inventory="[web]\nweb1 ansible_connection=local\n",
    )
    secret = httpx.post(
        f"{server.url}/api/v1/secrets", json={"name": "PLAY_VAULT", "value": "vault-pass-1"}, headers=headers
    )
    assert secret.status_code == 201, secret.text
    attached = httpx.post(
        f"{server.url}/api/v1/scripts/{script['id']}/secrets/{secret.json()['id']}", headers=headers
    )
    assert attached.is_success, attached.text
    signed_in(page, server, "viewer", f"/scripts/{script['id']}")
    page.locator('[data-testid="execute-button"]:not([disabled])').click()
    said = page.get_by_test_id("ansible-diff-refused")
    said.wait_for()
    assert said.inner_text().startswith("Diff is not offered: diff is chosen only by those who may edit")
    assert page.get_by_test_id("ansible-diff").get_attribute("aria-disabled") == "true"
    assert page.get_by_test_id("ansible-limit").is_enabled()
    assert page.get_by_test_id("ansible-check").get_attribute("aria-disabled") != "true"


def test_the_network_notice_is_only_for_hosts_reached_over_the_network(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """With the script's network off, the run form warns that the playbook cannot reach its
    inventory's hosts; hosts that all use `ansible_connection=local` (set on a group here, and
    in a shared inventory) run in the run itself, so there is nothing to warn about."""
    headers = tokens["admin"]
    shared = httpx.post(
        f"{server.url}/api/v1/inventories",
        json={
            "name": "local-boxes",
            "content": "[boxes]\nbox1\nbox2\n\n[boxes:vars]\nansible_connection=local\n",
        },
        headers=headers,
    )
    assert shared.status_code == 201, shared.text
    cases = {
        "play-local-own": ({"inventory": "[web]\nweb1\n\n[web:vars]\nansible_connection=local\n"}, False),
        "play-local-shared": ({"inventory_id": shared.json()["id"]}, False),
        "play-remote": ({"inventory": "[web]\nweb1 ansible_host=192.0.2.10\n"}, True),
    }
    for name, (inventory, warned) in cases.items():
        fields = {"script_type": "ansible", "status": "active", **inventory}
        script = create_script(server, headers, name, PLAYBOOK, **fields)
        signed_in(page, server, "viewer", f"/scripts/{script['id']}")
        page.locator('[data-testid="execute-button"]:not([disabled])').click()
        page.get_by_test_id("ansible-limit").wait_for()  # the form is built, notice or not
        assert page.get_by_test_id("ansible-network-notice").count() == int(warned), name


def test_a_required_boolean_is_chosen_in_the_run_form_not_sent_false_untouched(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """A team's pass: a required boolean (no default: every run must say it) was a switch, off,
    and Run sent `false` nobody chose, where the API says "is required". It is a true/false
    choice, empty until chosen, refused under the field like the API."""
    headers = tokens["admin"]
    params = [{"name": "CONFIRM", "type": "boolean", "required": True}]
    body = '#!/bin/bash\necho "confirm=$CONFIRM"\n'
    script = create_script(server, headers, "confirm", body, parameters=params, status="active")
    signed_in(page, server, "viewer", f"/scripts/{script['id']}")
    page.locator('[data-testid="execute-button"]:not([disabled])').click()
    page.get_by_test_id("execute-submit").click()
    page.get_by_test_id("execute-dialog").locator(".q-field--error", has_text="Required").wait_for()
    assert _runs_of(server, headers, script["id"]) == []
    page.get_by_test_id("param-CONFIRM").click()
    page.get_by_role("option", name="false", exact=True).click()
    page.get_by_test_id("execute-submit").click()
    run = wait_run(server, headers, _execution_id(page))
    assert run["parameters"] == {"CONFIRM": False} and "confirm=false" in run["output"]


def test_optional_choices_in_the_run_form_can_be_cleared_back_to_no_value(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """A tester's pass: an optional choice, once picked, could not be cleared back to "no value"
    (the API leaves it out), and an optional boolean without a default was a switch that sent
    `false` nobody chose. Both are selects that start empty and clear back to empty."""
    headers = tokens["admin"]
    params = [
        {"name": "LEVEL", "type": "choice", "options": ["low", "high"]},
        {"name": "FORCE", "type": "boolean"},
    ]
    body = '#!/bin/bash\necho "level=${LEVEL-unset} force=${FORCE-unset}"\n'
    script = create_script(server, headers, "clearable", body, parameters=params, status="active")
    signed_in(page, server, "viewer", f"/scripts/{script['id']}")
    page.locator('[data-testid="execute-button"]:not([disabled])').click()
    for name, option in (("LEVEL", "high"), ("FORCE", "true")):
        field = page.get_by_test_id(f"param-{name}")
        field.click()
        page.get_by_role("option", name=option, exact=True).click()
        page.get_by_test_id("execute-dialog").locator(".q-field", has=field).get_by_text(option).wait_for()
        page.get_by_test_id("execute-dialog").locator(".q-field", has=field).get_by_role(
            "button", name="Clear"
        ).click()
        page.get_by_test_id("execute-dialog").locator(".q-field", has=field).get_by_text(option).wait_for(
            state="detached"
        )
    page.get_by_test_id("execute-submit").click()
    run = wait_run(server, headers, _execution_id(page))
    assert run["parameters"] == {} and "level=unset force=unset" in run["output"]
