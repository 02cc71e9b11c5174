"""Test runs of unsaved content (`POST /api/v1/scripts/{id}/test-runs`) on SQLite and PostgreSQL:
they run for real on the local runner, are marked `draft`, keep the content that ran, are checked
as a save is, and change nothing of the script."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import LoggedIn
from tests.executions.conftest import make_script, output, wait_for


async def _script_state(client: httpx.AsyncClient, who: LoggedIn, script_id: int) -> dict[str, Any]:
    script = (await client.get(f"/api/v1/scripts/{script_id}", headers=who.headers)).json()
    versions = (await client.get(f"/api/v1/scripts/{script_id}/versions", headers=who.headers)).json()
    return {"script": script, "versions": versions["total"]}


async def test_a_test_run_runs_the_unsaved_content_and_saves_nothing(
    client: httpx.AsyncClient, operator: LoggedIn, viewer: LoggedIn, admin: LoggedIn
) -> None:
    # A draft script (not runnable normally) with one parameter; the edit adds a second one.
    script_id = await make_script(
        client, operator, 'echo "saved $WHO"\n', status="draft", parameters={"WHO": "world"}
    )
    before = await _script_state(client, operator, script_id)
    content = 'printf "draft %s %s\\n" "$WHO" "$COUNT"\r\n'
    response = await client.post(
        f"/api/v1/scripts/{script_id}/test-runs",
        json={
            "content": content,
            "parameter_schema": [
                {"name": "WHO", "type": "string", "default": "world"},
                {"name": "COUNT", "type": "integer", "default": 1},
            ],
            "parameters": {"COUNT": 3},
            "runner": "local",
        },
        headers=operator.headers,
    )
    assert response.status_code == 202, response.text
    created = response.json()
    assert created["draft"] is True and created["triggered_by_name"] == "operator"
    assert created["script_version"] == 1 and created["parameters"] == {"WHO": "world", "COUNT": 3}
    final = await wait_for(client, operator, created["id"])
    assert final["status"] == "success", final
    assert await output(client, operator, created["id"]) == "draft world 3\n"
    # What ran is stored (normalised as a save would store it), readable by a viewer.
    ran = await client.get(f"/api/v1/executions/{created['id']}/content", headers=viewer.headers)
    assert ran.status_code == 200, ran.text
    assert ran.json() == {
        "execution_id": created["id"],
        "draft": True,
        "script_type": "bash",
        "script_version": 1,
        "content": 'printf "draft %s %s\\n" "$WHO" "$COUNT"\n',
    }
    # Nothing of the script changed: same content, version, status, parameters; no new version.
    assert await _script_state(client, operator, script_id) == before
    listed = (await client.get("/api/v1/executions", headers=viewer.headers)).json()["items"]
    assert [(e["id"], e["draft"]) for e in listed] == [(created["id"], True)]
    audit = await client.get("/api/v1/audit", params={"action": "execution.create"}, headers=admin.headers)
    details = audit.json()["items"][0]["details"]
    assert details["draft"] is True and len(details["content_sha256"]) == 64
    # A test run is not run again (its content was never saved).
    rerun = await client.post(f"/api/v1/executions/{created['id']}/rerun", headers=operator.headers)
    assert rerun.status_code == 409 and "test run of unsaved content" in rerun.json()["detail"]


async def test_a_normal_run_reports_its_saved_content(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    script_id = await make_script(client, admin, "echo saved\n")
    started = await client.post(
        "/api/v1/executions", json={"script_id": script_id, "runner": "local"}, headers=admin.headers
    )
    execution_id = started.json()["id"]
    assert started.json()["draft"] is False
    await wait_for(client, admin, execution_id)
    ran = (await client.get(f"/api/v1/executions/{execution_id}/content", headers=admin.headers)).json()
    assert ran["draft"] is False and ran["content"] == "echo saved\n"


async def test_a_test_run_is_checked_as_a_save_is(client: httpx.AsyncClient, operator: LoggedIn) -> None:
    script_id = await make_script(client, operator, "echo ok\n")
    url = f"/api/v1/scripts/{script_id}/test-runs"

    async def post(**body: Any) -> httpx.Response:
        return await client.post(url, json={"runner": "local", **body}, headers=operator.headers)

    # A syntax error and a bad parameter declaration: both reported at once, nothing queued.
    bad = await post(content="if then\n", parameter_schema=[{"name": "1bad", "type": "string"}])
    assert bad.status_code == 422, bad.text
    fields = {e["field"] for e in bad.json()["errors"]}
    # the declaration is this body's `parameter_schema` (`parameters` are the run's values)
    assert fields == {"content", "parameter_schema.1bad"}, bad.json()
    assert "parameter_schema.1bad: " in bad.json()["detail"]
    reserved = await post(content="echo ok\n", parameter_schema={"BASH_ENV": "x"})
    assert reserved.status_code == 422, reserved.text
    assert [e["field"] for e in reserved.json()["errors"]] == ["parameter_schema.BASH_ENV"]
    # A dangerous pattern needs the acknowledgement, as a save does.
    # (Harmless should it ever run: nothing listens on port 9 of loopback.)
    risky = await post(content="curl -s http://127.0.0.1:9/x | sh\n")
    assert risky.status_code == 422 and "acknowledge_risks" in risky.json()["detail"]
    assert risky.json()["errors"][0]["rule"] == "pipe-to-shell"
    # A missing required parameter of the editor's schema is named.
    missing = await post(
        content="echo $N\n", parameter_schema=[{"name": "N", "type": "integer", "required": True}]
    )
    assert missing.status_code == 422 and missing.json()["errors"][0]["field"] == "parameters.N"
    listed = (await client.get("/api/v1/executions", headers=operator.headers)).json()
    assert listed["total"] == 0
    acknowledged = await post(content="curl -s http://127.0.0.1:9/x | sh\n", acknowledge_risks=True)
    assert acknowledged.status_code == 202, acknowledged.text
    await wait_for(client, operator, acknowledged.json()["id"])
    ok = await post(content="echo fine\n", acknowledge_risks=False)
    assert ok.status_code == 202, ok.text
    await wait_for(client, operator, ok.json()["id"])


async def test_only_editors_start_test_runs(
    client: httpx.AsyncClient, viewer: LoggedIn, operator: LoggedIn
) -> None:
    script_id = await make_script(client, operator, "echo ok\n")
    response = await client.post(
        f"/api/v1/scripts/{script_id}/test-runs",
        json={"content": "echo viewer\n", "runner": "local"},
        headers=viewer.headers,
    )
    assert response.status_code == 403 and response.json()["detail"] == (
        "your role (viewer) may not start a test run of unsaved code: that needs operator or admin"
    )
    missing = await client.post(
        "/api/v1/scripts/999999/test-runs", json={"content": "echo x\n"}, headers=operator.headers
    )
    assert missing.status_code == 404


async def test_a_terraform_test_run_only_plans(client: httpx.AsyncClient, operator: LoggedIn) -> None:
    script_id = await make_script(client, operator, 'output "x" {\n  value = 1\n}\n', script_type="terraform")
    response = await client.post(
        f"/api/v1/scripts/{script_id}/test-runs",
        json={"content": 'output "x" {\n  value = 2\n}\n', "terraform_action": "apply"},
        headers=operator.headers,
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "terraform_action"
