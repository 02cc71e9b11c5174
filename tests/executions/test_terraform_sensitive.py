"""Terraform variables marked `sensitive = true`, with real Terraform (local runner) and OpsCraft's
state backend: their value comes from a `TF_VAR_<name>` secret and never shows (output, saved
plan summary, stored plan); a run parameter, stored with each run in clear, may not feed one
(docs/executions.md, *Secrets and providers*)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from opscraft import runtime
from opscraft.services import terraform_plans, terraform_variables
from tests.conftest import LoggedIn
from tests.executions import test_terraform_state as state_tests
from tests.executions.conftest import make_script, output, start, wait_for

PORT = state_tests.PORT
served = state_tests.served
terraform_on_path = state_tests.terraform_on_path
backend = state_tests.backend
WITH_RESOURCE = state_tests.terraform_version() >= (1, 4)
SENSITIVE_TF = state_tests.SENSITIVE_TF + (state_tests.SENSITIVE_RESOURCE_TF if WITH_RESOURCE else "")
VALUE = "s3cr3t-db-pw-7d1e"


@pytest.fixture
def engine_settings() -> dict[str, Any]:
    return {"OPSCRAFT_STATE_BACKEND_URL": f"http://127.0.0.1:{PORT}"}


async def _finished(client: httpx.AsyncClient, who: LoggedIn, execution_id: int) -> tuple[dict, str]:
    final = await wait_for(client, who, execution_id, timeout=180)
    return final, await output(client, who, execution_id)


async def test_a_secret_feeds_a_sensitive_variable_and_its_value_shows_nowhere(
    client: httpx.AsyncClient, operator: LoggedIn, served: None
) -> None:
    script_id = await make_script(client, operator, SENSITIVE_TF, script_type="terraform")
    r = await client.post(
        "/api/v1/secrets", json={"name": "TF_VAR_db_password", "value": VALUE}, headers=operator.headers
    )
    assert r.status_code == 201, r.text
    r = await client.post(f"/api/v1/scripts/{script_id}/secrets/{r.json()['id']}", headers=operator.headers)
    assert r.status_code == 201, r.text

    started = await start(client, operator, script_id, "local", terraform_action="plan", parameters={})
    final, text = await _finished(client, operator, started["id"])
    assert final["status"] == "success", text
    assert "(sensitive value)" in text and VALUE not in text, text
    r = await client.get(f"/api/v1/executions/{started['id']}/terraform/plan", headers=operator.headers)
    assert r.status_code == 200, r.text
    assert r.json()["outputs"] == [{"name": "db", "actions": ["create"]}]
    assert VALUE not in r.text and VALUE not in json.dumps(final)
    async with runtime.current().db.session() as session:  # the stored plan is encrypted
        row = await terraform_plans._plan_of(session, started["id"])
        assert VALUE.encode() not in row.ciphertext

    r = await client.post(
        f"/api/v1/executions/{started['id']}/terraform/plan/apply", headers=operator.headers
    )
    assert r.status_code == 202, r.text
    final, text = await _finished(client, operator, r.json()["id"])
    assert final["status"] == "success", text
    assert "db = <sensitive>" in text and VALUE not in text, text
    # Terraform keeps the value in its state, which OpsCraft stores encrypted and gives to
    # operators who download it: the state is where it lives.
    r = await client.get(
        f"/api/v1/scripts/{script_id}/terraform/states/default/versions/1", headers=operator.headers
    )
    assert r.status_code == 200 and r.json()["outputs"]["db"]["sensitive"] is True, r.text


async def test_a_parameter_may_not_feed_a_sensitive_variable(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    """A parameter `db_password` reached Terraform as `TF_VAR_db_password`: Terraform hid it in
    the plan, but OpsCraft stored the value with the run, shown to every viewer of runs (and kept
    by schedules and webhooks). Refused when saved, created or changed, and for a test run,
    naming the parameter and the secret to attach instead; other parameters are fine."""
    declared = {"db_password": "typed-in-clear", "greeting": "hello"}
    said = (
        "the variable db_password is marked sensitive = true, and a parameter's value is stored "
        "with each run in clear and shown to everyone who may view runs: remove the parameter and "
        "attach a secret named TF_VAR_db_password to the script instead"
    )
    body = {
        "name": "sensitive-params",
        "script_type": "terraform",
        "content": SENSITIVE_TF,
        "parameters": declared,
        "status": "active",
    }
    r = await client.post("/api/v1/scripts", json=body, headers=operator.headers)
    assert r.status_code == 422, r.text
    assert r.json()["errors"] == [{"field": "parameters.db_password", "message": said}], r.text

    plain = SENSITIVE_TF.replace("  sensitive = true\n}\n\noutput", "}\n\noutput", 1).replace(
        "  value     = var.db_password\n  sensitive = true\n", "  value     = var.db_password\n", 1
    )
    assert "sensitive" not in plain
    script_id = await make_script(client, operator, plain, script_type="terraform", parameters=declared)
    r = await client.put(
        f"/api/v1/scripts/{script_id}", json={"content": SENSITIVE_TF}, headers=operator.headers
    )
    assert r.status_code == 422 and said in r.text, r.text
    r = await client.post(
        f"/api/v1/scripts/{script_id}/test-runs",
        json={"content": SENSITIVE_TF, "runner": "local", "terraform_action": "plan"},
        headers=operator.headers,
    )
    assert r.status_code == 422 and said in r.text, r.text
    r = await client.put(
        f"/api/v1/scripts/{script_id}",
        json={"content": SENSITIVE_TF, "parameters": {"greeting": "hello"}},
        headers=operator.headers,
    )
    assert r.status_code == 200, r.text


def test_the_sensitive_variables_are_read_from_the_configuration() -> None:
    """`sensitive = true` (or `"true"`, which Terraform converts), beside other arguments and a
    nested `validation` block; `false` and an absent one are not; text that is not HCL has none
    (its syntax error is the syntax check's)."""
    content = """variable "a" {
  type      = string
  sensitive = true
  validation {
    condition     = length(var.a) > 0
    error_message = "a is { empty }"
  }
}
variable "b" { sensitive = "true" }
variable "c" { sensitive = false }
variable "d" {}
"""
    assert terraform_variables.sensitive_variables(content) == {"a", "b"}
    assert terraform_variables.sensitive_variables('variable "a" { sensitive = true') == set()
    assert terraform_variables.errors(content, []) == []
    assert [e["field"] for e in terraform_variables.errors(content, ["b", "c", "d"])] == ["parameters.b"]


# `sensitive` spelled as Terraform takes it: a literal, a string it converts ("1", "0") or a
# constant expression it evaluates. Terraform refuses "TRUE", `null` and a number.
SENSITIVE_SPELLINGS = [
    "true",
    '"true"',
    '"1"',
    "!false",
    "(true)",
    "1 == 1",
    "true ? true : false",
    '"${true}"',
]
PLAIN_SPELLINGS = ["false", '"false"', '"0"']


@pytest.mark.parametrize("spelling", SENSITIVE_SPELLINGS + PLAIN_SPELLINGS)
def test_sensitive_is_read_as_terraform_reads_it(
    terraform_on_path: None, tmp_path: Path, spelling: str
) -> None:
    """Terraform marks a variable sensitive for any `sensitive` it reads as true: `"1"` (cty's
    string-to-bool conversion) or a constant expression (`!false`, `1 == 1`); OpsCraft read only
    `true` and `"true"`, so a parameter could feed such a variable, its value stored with each run
    in clear. Terraform's own verdict (`terraform validate` refuses an output that is not marked
    sensitive but shows a sensitive variable) is the rule: OpsCraft may take an expression Terraform
    reads as false for true (it refuses a parameter that would be harmless), never the reverse."""
    content = f'variable "x" {{\n  sensitive = {spelling}\n}}\noutput "o" {{\n  value = var.x\n}}\n'
    (tmp_path / "main.tf").write_text(content)
    said = subprocess.run(
        ["terraform", "validate", "-no-color"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    verdict = said.stdout + said.stderr
    terraform_sensitive = "Output refers to sensitive values" in verdict
    assert terraform_sensitive or "Success" in verdict, verdict
    assert terraform_sensitive == (spelling in SENSITIVE_SPELLINGS), verdict
    assert (terraform_variables.sensitive_variables(content) == {"x"}) == terraform_sensitive
    assert bool(terraform_variables.errors(content, ["x"])) == terraform_sensitive


@pytest.mark.parametrize(
    "default",
    [
        '"Hunter2-secret"',
        "<<EOT\nHunter2-secret\nEOT",
        '{ user = "app", password = "Hunter2-secret" }',
        "1234",
    ],
)
async def test_a_default_written_out_for_a_sensitive_variable_is_refused(
    client: httpx.AsyncClient, operator: LoggedIn, default: str
) -> None:
    """The configuration is stored and shown as written to every role, so a sensitive variable's
    default would be its secret in clear: refused at create (naming `content` and the secret to
    attach, never the value), on change and for a test run; `null`, `""` and no default pass."""
    variable = 'variable "db_password" {\n  type      = any\n  sensitive = true\n  default   = %s\n}\n'
    said = (
        "the variable db_password is marked sensitive = true and has a default written out, and the "
        "configuration is stored and shown as written to everyone who may see the script: remove "
        "the default and attach a secret named TF_VAR_db_password to the script instead"
    )
    body = {"name": "sensitive-default", "script_type": "terraform", "content": variable % default}
    r = await client.post("/api/v1/scripts", json=body, headers=operator.headers)
    assert r.status_code == 422, r.text
    assert r.json()["errors"] == [{"field": "content", "message": said}], r.text
    assert "Hunter2" not in r.text and "1234" not in r.text, r.text
    script_id = await make_script(client, operator, variable % "null", script_type="terraform")
    for content in (variable % '""', SENSITIVE_TF):
        r = await client.put(
            f"/api/v1/scripts/{script_id}", json={"content": content}, headers=operator.headers
        )
        assert r.status_code == 200, r.text
    r = await client.put(
        f"/api/v1/scripts/{script_id}", json={"content": variable % default}, headers=operator.headers
    )
    assert r.status_code == 422 and said in r.text, r.text
    r = await client.post(
        f"/api/v1/scripts/{script_id}/test-runs",
        json={"content": variable % default, "runner": "local", "terraform_action": "plan"},
        headers=operator.headers,
    )
    assert r.status_code == 422 and said in r.text, r.text
