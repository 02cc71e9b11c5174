"""Browser journey of plan -> review -> apply against a real `opscraft serve` process and real
Terraform (local runner, state kept by the server): an operator plans, sees the summary, a second
user approves, the operator applies exactly that plan, and the state version appears.

The script requires one approval, so both the plan run and the apply run wait for the second
user (every run of such a script does, see docs/executions.md).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer, free_port, require_service
from tests.executions.conftest import require_docker
from tests.executions.test_terraform_errored_state import LIMIT, MANY_TF
from tests.ui_journey import (
    RUN_ENV,
    check_accessibility,
    screenshot,
    serving,
    signed_in,
    token,
    wait_run,
)
from tests.waiting import wait_until

pytestmark = pytest.mark.browser

MAIN_TF = """variable "greeting" {
  type    = string
  default = "hello"
}

output "message" {
  value = "${var.greeting} from opscraft"
}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    require_service(shutil.which("terraform") is not None, "a real terraform binary on PATH")
    port = free_port()
    # States are a few hundred bytes here, but for the one that is to be refused as too large.
    env = {
        **RUN_ENV,
        "OPSCRAFT_STATE_BACKEND_URL": f"http://127.0.0.1:{port}",
        "OPSCRAFT_MAX_STATE_BYTES": str(LIMIT),
    }
    users = (("admin", "admin"), ("planner", "operator"), ("reviewer", "operator"))
    with serving(tmp_path_factory, "tf-plans-ui", env, users=users, port=port, through_api=True) as live:
        yield live


@pytest.fixture
def reviewer(browser: Any) -> Iterator[Any]:
    """The second user's page: a browser context of its own beside the planner's `page`, as two
    people approve on two machines (signing out and in again in one page was 3 page loads and an
    argon2 hash at the server's cost more per approval)."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(30_000)  # as the `page` fixture's: CI machines may be busy
    try:
        yield context.new_page()
    finally:
        context.close()


def _approve_as_reviewer(reviewer: Any, server: LiveServer, run_id: int) -> None:
    """The reviewer approves run `run_id` from the Approvals page the menu opens."""
    signed_in(reviewer, server, "reviewer")
    reviewer.get_by_test_id("nav-approvals").click()
    reviewer.get_by_test_id(f"pending-{run_id}").wait_for()
    reviewer.get_by_test_id(f"approve-{run_id}").click()
    reviewer.get_by_test_id("approvals-empty").wait_for()


def _run_id(page: Any, server: LiveServer, other_than: int = 0) -> int:
    page.wait_for_url(lambda url: "/executions/" in url and not url.endswith(f"/executions/{other_than}"))
    return int(page.url.rstrip("/").rsplit("/", 1)[1])


def _open_run_dialog(page: Any, server: LiveServer, admin: dict[str, str], name: str) -> int:
    """A new active Terraform script `name` (MAIN_TF), its run dialog opened by the planner; its id."""
    body = {"name": name, "script_type": "terraform", "status": "active", "content": MAIN_TF}
    r = httpx.post(f"{server.url}/api/v1/scripts", json=body, headers=admin)
    assert r.status_code == 201, r.text
    script_id = int(r.json()["id"])
    signed_in(page, server, "planner", then=f"/scripts/{script_id}")
    page.get_by_test_id("execute-button").click()
    return script_id


def test_plan_review_approve_apply_and_see_the_state_version(
    page: Any, reviewer: Any, server: LiveServer
) -> None:
    admin = token(server, "admin")
    body = {
        "name": "network",
        "script_type": "terraform",
        "status": "active",
        "content": MAIN_TF,
        "parameters": [{"name": "greeting", "type": "string", "default": "hello"}],
    }
    r = httpx.post(f"{server.url}/api/v1/scripts", json=body, headers=admin)
    assert r.status_code == 201, r.text
    script_id = r.json()["id"]
    r = httpx.put(f"{server.url}/api/v1/scripts/{script_id}/approval", json={"required": 1}, headers=admin)
    assert r.status_code == 200, r.text

    # The planner plans (the default action) with the local runner.
    signed_in(page, server, "planner", then=f"/scripts/{script_id}")
    page.get_by_test_id("execute-button").click()
    page.get_by_test_id("param-greeting").fill("hi")
    choice = page.get_by_test_id("runner-choice")
    if choice.count():
        choice.get_by_text("Local process").click()
    page.get_by_test_id("execute-submit").click()
    plan_id = _run_id(page, server)
    _approve_as_reviewer(reviewer, server, plan_id)
    assert wait_run(server, admin, plan_id, timeout=180)["status"] == "success"

    # The summary and the plan output are on the plan run's page.
    page.goto(f"{server.url}/executions/{plan_id}")
    page.get_by_test_id("plan-summary").get_by_text("Plan: 0 to add, 0 to change, 0 to destroy.").wait_for()
    page.get_by_test_id("plan-change").get_by_text("output.message").wait_for()
    page.get_by_test_id("state-panel").get_by_text("No state stored yet").wait_for()
    check_accessibility(page, "terraform-plan")
    screenshot(page, "terraform-plan")

    # Apply this plan: held until the reviewer approves, then applied; the state version appears.
    page.get_by_test_id("apply-plan").click()
    page.get_by_test_id("apply-plan-confirm").click()
    apply_id = _run_id(page, server, other_than=plan_id)
    assert apply_id != plan_id
    _approve_as_reviewer(reviewer, server, apply_id)
    final = wait_run(server, admin, apply_id, timeout=180)
    assert final["status"] == "success" and 'message = "hi from opscraft"' in final["output"], final
    page.goto(f"{server.url}/executions/{apply_id}")
    page.get_by_test_id("state-panel").get_by_text("written by this run").wait_for()
    page.get_by_test_id("state-version-1").wait_for()
    # The only version is the current one: badged, and no rollback is offered to it.
    page.get_by_test_id("state-current-1").wait_for()
    assert page.get_by_test_id("state-rollback-1").count() == 0
    assert page.get_by_test_id("run-again").count() == 0  # an apply of a plan starts from its plan

    # The plan's page now links to its apply and offers no second apply.
    page.goto(f"{server.url}/executions/{plan_id}")
    page.get_by_test_id("plan-applied").get_by_text(f"execution #{apply_id}").wait_for()
    assert page.get_by_test_id("apply-plan").count() == 0
    # the state moved on: stale now
    wait_until(lambda: page.get_by_test_id("plan-stale").count() == 1, "the plan said stale", timeout=5)


def test_the_run_dialog_says_a_docker_run_cannot_reach_the_state_with_the_network_off(
    page: Any, server: LiveServer
) -> None:
    """The server keeps the state (OPSCRAFT_STATE_BACKEND_URL) and the script's network is off:
    the dialog says so under the runner, and a Docker run asked for anyway is refused with what
    to change (it used to start and fail at `terraform init`: network is unreachable)."""
    require_docker()
    admin = token(server, "admin")
    script_id = _open_run_dialog(page, server, admin, "offline")
    notice = page.get_by_test_id("terraform-network-notice")
    notice.get_by_text("enable Network in the script's run settings, or choose the local runner").wait_for()
    page.get_by_test_id("runner-choice").get_by_text("Docker container").click()
    page.get_by_test_id("execute-submit").click()
    page.get_by_text("the script's network is off").last.wait_for()
    assert page.url.rstrip("/").endswith(f"/scripts/{script_id}"), page.url  # no run started
    runs = httpx.get(f"{server.url}/api/v1/executions", params={"script_id": script_id}, headers=admin)
    assert runs.status_code == 200 and runs.json()["items"] == [], runs.text


def test_a_run_in_a_named_workspace_from_the_dialog_keeps_that_workspace_state(
    page: Any, server: LiveServer
) -> None:
    """The run dialog's Terraform workspace field: a bad name is refused under the field (no run
    starts), a good one runs there, and the run page names it with that workspace's state."""
    admin = token(server, "admin")
    script_id = _open_run_dialog(page, server, admin, "environments")
    workspace = page.get_by_test_id("terraform-workspace-input")
    assert workspace.input_value() == "default"
    workspace.fill("prod/eu")
    page.get_by_test_id("terraform-action").get_by_text("Apply").click()
    choice = page.get_by_test_id("runner-choice")
    if choice.count():
        choice.get_by_text("Local process").click()
    page.get_by_test_id("execute-submit").click()
    dialog = page.get_by_test_id("execute-dialog")
    refusal = "1-64 ASCII letters, digits, '_', '.' or '-', starting with a letter or digit"
    dialog.get_by_text(refusal).wait_for()
    runs = httpx.get(f"{server.url}/api/v1/executions", params={"script_id": script_id}, headers=admin)
    assert runs.json()["items"] == [], runs.text
    workspace.fill("prod-eu")
    page.get_by_test_id("execute-submit").click()
    run_id = _run_id(page, server)
    final = wait_run(server, admin, run_id, timeout=180)
    assert final["status"] == "success" and final["terraform_workspace"] == "prod-eu", final
    page.goto(f"{server.url}/executions/{run_id}")
    page.get_by_test_id("terraform-workspace").get_by_text("prod-eu").wait_for()
    panel = page.get_by_test_id("state-panel")
    panel.get_by_text("Terraform state (workspace prod-eu)").wait_for()
    panel.get_by_text("written by this run").wait_for()
    r = httpx.get(f"{server.url}/api/v1/scripts/{script_id}/terraform/states/default/versions", headers=admin)
    assert r.status_code == 404 or r.json()["versions"] == [], r.text


def test_a_state_terraform_could_not_store_is_the_runs_version_on_its_page(
    page: Any, server: LiveServer
) -> None:
    """A state over OPSCRAFT_MAX_STATE_BYTES is kept from the run's errored.tfstate: the run page's
    state panel lists it as written by the run, with its note, current, and the error says so."""
    admin = token(server, "admin")
    body = {"name": "too-big", "script_type": "terraform", "status": "active", "content": MANY_TF}
    r = httpx.post(f"{server.url}/api/v1/scripts", json={**body, "parameters": {"n": 400}}, headers=admin)
    assert r.status_code == 201, r.text
    run = {"script_id": r.json()["id"], "runner": "local", "terraform_action": "apply", "parameters": {}}
    r = httpx.post(f"{server.url}/api/v1/executions", json=run, headers=admin)
    assert r.status_code == 202, r.text
    run_id = int(r.json()["id"])
    final = wait_run(server, admin, run_id, timeout=180)
    assert final["status"] == "failed" and "now the current state" in final["error_message"], final
    signed_in(page, server, "planner", then=f"/executions/{run_id}")
    written = page.get_by_test_id("state-written-1")
    written.get_by_text(f"written by this run · errored.tfstate of execution {run_id}").wait_for()
    page.get_by_test_id("state-current-1").wait_for()
    page.get_by_text("OpsCraft kept the state it wrote to errored.tfstate as version 1").first.wait_for()
