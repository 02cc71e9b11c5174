"""Schedules and webhooks are edited in the UI, not only through the API: the dialog opens with
the stored settings, a problem is said under its field with nothing saved, and Save sends only
what was changed there (a change made meanwhile elsewhere is kept). Webhooks pause and resume."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import LiveServer
from tests.ui_journey import api, create_script, journey_server, journey_tokens, signed_in

pytestmark = pytest.mark.browser

server = journey_server("automation-edit-ui")
tokens = journey_tokens()


def _field(page: Any, testid: str) -> Any:
    return page.locator(".q-field", has=page.get_by_test_id(testid))


def test_a_schedule_is_edited_in_its_dialog_keeping_what_changed_elsewhere(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    admin = tokens["admin"]
    script = create_script(
        server, admin, "report", "#!/bin/bash\necho $WHO\n", parameters={"WHO": "x"}, status="active"
    )
    path = f"/scripts/{script['id']}/schedules"
    made = api(
        server,
        "POST",
        path,
        admin,
        json={
            "name": "nightly",
            "cron": "0 3 * * *",
            "timezone": "Europe/Paris",
            "parameters": {"WHO": "ops"},
        },
    )
    signed_in(page, server, "operator")
    page.goto(f"{server.url}/scripts/{script['id']}?tab=schedules")
    page.get_by_test_id(f"schedule-edit-{made['id']}").click()
    # The dialog holds the stored settings.
    assert page.get_by_test_id("schedule-name").input_value() == "nightly"
    assert page.get_by_test_id("schedule-cron").input_value() == "0 3 * * *"
    assert page.get_by_test_id("schedule-tz").input_value() == "Europe/Paris"
    assert page.get_by_test_id("param-WHO").input_value() == "ops"
    # A bad cron expression is said under the Cron field; nothing is saved.
    page.get_by_test_id("schedule-cron").fill("61 * * * *")
    page.get_by_test_id("schedule-submit").click()
    _field(page, "schedule-cron").locator(".q-field__messages").get_by_text("minute").wait_for()
    assert api(server, "GET", f"{path}/{made['id']}", admin)["cron"] == "0 3 * * *"
    # Meanwhile someone changes the parameters through the API; this dialog changes the cron only.
    api(server, "PUT", f"{path}/{made['id']}", admin, json={"parameters": {"WHO": "night shift"}})
    page.get_by_test_id("schedule-cron").fill("*/15 * * * *")
    page.get_by_test_id("schedule-submit").click()
    page.locator(".q-notification", has_text="Schedule saved").wait_for()
    page.get_by_test_id("schedule-submit").wait_for(state="detached")
    stored = api(server, "GET", f"{path}/{made['id']}", admin)
    assert (stored["cron"], stored["timezone"], stored["parameters"]) == (
        "*/15 * * * *",
        "Europe/Paris",
        {"WHO": "night shift"},
    )
    assert stored["name"] == "nightly"
    page.get_by_test_id(f"schedule-{made['id']}").get_by_text("*/15 * * * * (Europe/Paris)").wait_for()


def test_a_webhook_is_edited_paused_and_resumed_in_the_ui(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    admin = tokens["admin"]
    script = create_script(
        server, admin, "deploy", "#!/bin/bash\necho $REF\n", parameters={"REF": "main"}, status="active"
    )
    key = api(server, "POST", "/secrets", admin, json={"name": "HOOK_KEY", "value": "k" * 32})
    path = f"/scripts/{script['id']}/webhooks"
    made = api(
        server,
        "POST",
        path,
        admin,
        json={"name": "on-push", "mapping": {"REF": "/ref"}, "secret_id": key["id"]},
    )
    signed_in(page, server, "operator")
    page.goto(f"{server.url}/scripts/{script['id']}?tab=webhooks")
    page.get_by_test_id(f"webhook-edit-{made['id']}").click()
    assert page.get_by_test_id("webhook-name").input_value() == "on-push"
    assert page.get_by_test_id("webhook-mapping").input_value() == '{"REF": "/ref"}'
    assert page.get_by_test_id("webhook-secret").input_value() == "HOOK_KEY", "shown selected"
    # A pointer that is not one is said under the Mapping box; nothing is saved.
    page.get_by_test_id("webhook-mapping").fill('{"REF": "ref"}')
    page.get_by_test_id("webhook-submit").click()
    _field(page, "webhook-mapping").locator(".q-field__messages").get_by_text("REF").wait_for()
    assert api(server, "GET", f"{path}/{made['id']}", admin)["mapping"] == {"REF": "/ref"}
    page.get_by_test_id("webhook-mapping").fill('{"REF": "/head/ref"}')
    page.get_by_test_id("webhook-name").fill("on-tag")
    page.get_by_test_id("webhook-submit").click()
    page.locator(".q-notification", has_text="Webhook saved").wait_for()
    page.get_by_test_id("webhook-submit").wait_for(state="detached")
    stored = api(server, "GET", f"{path}/{made['id']}", admin)
    assert (stored["name"], stored["mapping"], stored["secret_id"]) == (
        "on-tag",
        {"REF": "/head/ref"},
        key["id"],
    )
    assert page.get_by_test_id("webhook-url").count() == 0, "an edit keeps the URL: none is shown"
    # Pause: the hook is disabled; Resume enables it again.
    page.get_by_test_id(f"webhook-toggle-{made['id']}").click()
    page.get_by_test_id(f"webhook-toggle-{made['id']}").get_by_text("Resume").wait_for()
    assert api(server, "GET", f"{path}/{made['id']}", admin)["enabled"] is False
    page.get_by_test_id(f"webhook-toggle-{made['id']}").click()
    page.get_by_test_id(f"webhook-toggle-{made['id']}").get_by_text("Pause").wait_for()
    assert api(server, "GET", f"{path}/{made['id']}", admin)["enabled"] is True


def test_a_viewer_sees_no_edit_or_pause_buttons(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    admin = tokens["admin"]
    script = create_script(server, admin, "viewed", "#!/bin/bash\necho hi\n", status="active")
    schedule = api(
        server, "POST", f"/scripts/{script['id']}/schedules", admin, json={"name": "n", "cron": "0 3 * * *"}
    )
    hook = api(server, "POST", f"/scripts/{script['id']}/webhooks", admin, json={"name": "h"})
    signed_in(page, server, "viewer")
    page.goto(f"{server.url}/scripts/{script['id']}?tab=schedules")
    page.get_by_test_id(f"schedule-{schedule['id']}").wait_for()
    assert page.get_by_test_id(f"schedule-edit-{schedule['id']}").count() == 0
    page.goto(f"{server.url}/scripts/{script['id']}?tab=webhooks")
    page.get_by_test_id(f"webhook-{hook['id']}").wait_for()
    assert page.get_by_test_id(f"webhook-edit-{hook['id']}").count() == 0
    assert page.get_by_test_id(f"webhook-toggle-{hook['id']}").count() == 0


def _refused_under(page: Any, form: str, testid: str, words: str) -> None:
    """Submit the `form` dialog; its refusal is said under the field `testid` (the error, not the
    field's hint, which may say the same words and fades out while the error appears)."""
    page.get_by_test_id(f"{form}-submit").click()
    _field(page, testid).locator(".q-field__messages").get_by_role("alert").filter(has_text=words).wait_for()


def test_terraform_action_and_workspace_are_chosen_in_each_automation_form(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """A Terraform script's schedule and webhook forms, and the "then run" form, have the action
    and workspace of the runs they start: a refused workspace is said under its field (this
    server keeps no Terraform state: only `default`), nothing saved; a chosen apply is stored."""
    admin = tokens["admin"]
    tf = 'output "x" {\n  value = 1\n}\n'
    script = create_script(server, admin, "infra", tf, script_type="terraform", status="active")
    create_script(server, admin, "build", "#!/bin/bash\necho built\n", status="active")
    signed_in(page, server, "operator")

    page.goto(f"{server.url}/scripts/{script['id']}?tab=schedules")
    page.get_by_test_id("schedule-add").click()
    page.get_by_test_id("schedule-name").fill("nightly-apply")
    assert page.get_by_test_id("schedule-terraform-workspace").input_value() == "default"
    page.get_by_test_id("schedule-terraform-workspace").fill("../prod")
    _refused_under(page, "schedule", "schedule-terraform-workspace", "1-64 ASCII letters")
    page.get_by_test_id("schedule-terraform-workspace").fill("prod")
    _refused_under(page, "schedule", "schedule-terraform-workspace", "needs OpsCraft's state backend")
    assert api(server, "GET", f"/scripts/{script['id']}/schedules", admin)["items"] == []
    page.get_by_test_id("schedule-terraform-workspace").fill("default")
    page.get_by_test_id("schedule-terraform-action").click()
    page.get_by_role("option", name="Apply (-auto-approve)").click()
    page.get_by_test_id("schedule-submit").click()
    page.locator(".q-notification", has_text="Schedule added").wait_for()
    (stored,) = api(server, "GET", f"/scripts/{script['id']}/schedules", admin)["items"]
    assert (stored["terraform_action"], stored["terraform_workspace"]) == ("apply", "default")
    page.get_by_test_id(f"schedule-terraform-{stored['id']}").get_by_text(
        "Terraform: apply in default"
    ).wait_for()

    page.goto(f"{server.url}/scripts/{script['id']}?tab=webhooks")
    page.get_by_test_id("webhook-add").click()
    page.get_by_test_id("webhook-name").fill("on-merge")
    page.get_by_test_id("webhook-terraform-workspace").fill("stag ing")
    _refused_under(page, "webhook", "webhook-terraform-workspace", "1-64 ASCII letters")
    assert api(server, "GET", f"/scripts/{script['id']}/webhooks", admin)["items"] == []
    page.get_by_role("button", name="Cancel").click()  # else the page opens it again, as typed

    # A link's target may be of any type: an apply for a bash target is said under the action.
    page.goto(f"{server.url}/scripts/{script['id']}?tab=chains")
    page.get_by_test_id("chain-add").click()
    page.get_by_test_id("chain-target").click()
    page.get_by_role("option", name="build").click()
    page.get_by_test_id("chain-terraform-action").click()
    page.get_by_role("option", name="Apply (-auto-approve)").click()
    _refused_under(page, "chain", "chain-terraform-action", "only for terraform scripts")
    assert api(server, "GET", f"/scripts/{script['id']}/chains", admin)["items"] == []


def test_a_then_run_link_is_edited_in_its_dialog_keeping_what_changed_elsewhere(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """A link could only be added and deleted in the UI (changing its mapping meant deleting it
    and adding it again); its dialog now opens with the stored settings, says a problem under
    its field with nothing saved, and sends only what was changed there."""
    admin = tokens["admin"]
    source = create_script(server, admin, "package", "#!/bin/bash\necho packaged\n", status="active")
    target = create_script(
        server,
        admin,
        "announce",
        "#!/bin/bash\necho $WHO $NOTE\n",
        parameters={"WHO": "x", "NOTE": "n"},
        status="active",
    )
    path = f"/scripts/{source['id']}/chains"
    made = api(
        server, "POST", path, admin, json={"target_script_id": target["id"], "mapping": {"WHO": "/run/id"}}
    )
    signed_in(page, server, "operator")
    page.goto(f"{server.url}/scripts/{source['id']}?tab=chains")
    page.get_by_test_id(f"chain-edit-{made['id']}").click()
    assert page.get_by_test_id("chain-target").input_value() == "announce", "shown selected"
    assert page.get_by_test_id("chain-mapping").input_value() == '{"WHO": "/run/id"}'
    # A pointer into no fact a run has is said under the Mapping box; nothing is saved.
    page.get_by_test_id("chain-mapping").fill('{"WHO": "/nowhere"}')
    page.get_by_test_id("chain-submit").click()
    _field(page, "chain-mapping").locator(".q-field__messages").get_by_text("WHO").wait_for()
    assert api(server, "GET", f"{path}/{made['id']}", admin)["mapping"] == {"WHO": "/run/id"}
    # Meanwhile someone sets a fixed value through the API; this dialog changes the mapping, the
    # outcome and switches the link off.
    api(server, "PUT", f"{path}/{made['id']}", admin, json={"parameters": {"NOTE": "from the API"}})
    page.get_by_test_id("chain-mapping").fill('{"WHO": "/run/status"}')
    page.get_by_test_id("chain-outcome").click()
    page.get_by_role("option", name="when a run ends (success or failure)").click()
    page.get_by_test_id("chain-enabled").click()
    page.get_by_test_id("chain-submit").click()
    page.locator(".q-notification", has_text="Link saved").wait_for()
    page.get_by_test_id("chain-submit").wait_for(state="detached")
    stored = api(server, "GET", f"{path}/{made['id']}", admin)
    assert (stored["mapping"], stored["outcome"], stored["enabled"], stored["parameters"]) == (
        {"WHO": "/run/status"},
        "any",
        False,
        {"NOTE": "from the API"},
    )
    page.get_by_test_id(f"chain-{made['id']}").get_by_text("disabled").wait_for()


def test_ansible_options_are_set_on_a_schedule_form_of_an_ansible_script_only(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """An Ansible script's schedule form has the run dialog's option fields: a refused limit is
    said under it, nothing saved; the options set are stored normalized, shown on the row and
    filled in again when the schedule is edited. A bash script's form has none; a "then run"
    link's form has them once its chosen target is an Ansible script."""
    admin = tokens["admin"]
    playbook = "- hosts: web\n  gather_facts: false\n  tasks:\n    - debug:\n        msg: hi\n"
    script = create_script(server, admin, "site", playbook, script_type="ansible", status="active")
    bash = create_script(server, admin, "plain", "#!/bin/bash\necho hi\n", status="active")
    signed_in(page, server, "operator")

    page.goto(f"{server.url}/scripts/{bash['id']}?tab=schedules")
    page.get_by_test_id("schedule-add").click()
    page.get_by_test_id("schedule-name").wait_for()
    assert page.get_by_test_id("schedule-ansible-limit").count() == 0

    page.goto(f"{server.url}/scripts/{script['id']}?tab=schedules")
    page.get_by_test_id("schedule-add").click()
    page.get_by_test_id("schedule-name").fill("nightly-web")
    page.get_by_test_id("schedule-ansible-limit").fill("-i evil")
    _refused_under(page, "schedule", "schedule-ansible-limit", "must not start with '-' or '@'")
    assert api(server, "GET", f"/scripts/{script['id']}/schedules", admin)["items"] == []
    page.get_by_test_id("schedule-ansible-limit").fill("web1")
    page.get_by_test_id("schedule-ansible-tags").fill("deploy, db")
    page.get_by_test_id("schedule-ansible-check").click()
    page.get_by_test_id("schedule-submit").click()
    page.locator(".q-notification", has_text="Schedule added").wait_for()
    (stored,) = api(server, "GET", f"/scripts/{script['id']}/schedules", admin)["items"]
    assert stored["run_options"] == {"limit": "web1", "tags": ["deploy", "db"], "check": True}
    page.get_by_test_id(f"schedule-ansible-{stored['id']}").get_by_text(
        "Ansible: --limit=web1 --tags=deploy,db --check"
    ).wait_for()

    page.get_by_test_id(f"schedule-edit-{stored['id']}").click()
    assert page.get_by_test_id("schedule-ansible-limit").input_value() == "web1"
    assert page.get_by_test_id("schedule-ansible-tags").input_value() == "deploy, db"
    assert page.get_by_test_id("schedule-ansible-check").is_checked()

    # A link's form has the fields while its chosen target is an Ansible script.
    page.keyboard.press("Escape")
    page.goto(f"{server.url}/scripts/{bash['id']}?tab=chains")
    page.get_by_test_id("chain-add").click()
    page.get_by_test_id("chain-target").wait_for()
    assert not page.get_by_test_id("chain-ansible-limit").is_visible()
    page.get_by_test_id("chain-target").click()
    page.get_by_role("option", name="site").click()
    page.get_by_test_id("chain-ansible-limit").fill("web2")
    page.get_by_test_id("chain-submit").click()
    page.locator(".q-notification", has_text="Link added").wait_for()
    (link,) = api(server, "GET", f"/scripts/{bash['id']}/chains", admin)["items"]
    assert link["run_options"] == {"limit": "web2"}
    page.get_by_test_id(f"chain-ansible-{link['id']}").get_by_text("Ansible: --limit=web2").wait_for()
