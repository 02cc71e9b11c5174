"""Matrix cases for executions: everyone with a role runs and views; cancel is the starter's,
an operator's or an admin's. The WebSocket route has its own test (tests/test_executions_ws.py).
"""

from __future__ import annotations

import secrets
from typing import Any

import httpx

from opscraft import runtime
from opscraft.db.models import Execution
from tests.rbac_cases import LOCAL_FOR_ALL, Case, allow, public


async def _script(c: httpx.AsyncClient, u: dict[str, Any]) -> int:
    body = {
        "name": f"x-{secrets.token_hex(4)}",
        "script_type": "bash",
        "content": "true\n",
        "status": "active",
    }
    r = await c.post("/api/v1/scripts", json=body, headers=u["admin"].headers)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def _queued(c: httpx.AsyncClient, u: dict[str, Any]) -> int:
    """A queued execution started by the admin, written directly so no worker picks it up."""
    script_id = await _script(c, u)
    async with runtime.current().db.session() as session:
        row = Execution(
            script_id=script_id,
            script_version=1,
            script_name="x",
            script_type="bash",
            triggered_by=u["admin"].id,
            runner="local",
        )
        session.add(row)
        await session.commit()
        assert row.id is not None
        return row.id


async def run_body(c: httpx.AsyncClient, u: dict[str, Any]) -> dict[str, Any]:
    r = await c.put("/api/v1/settings", json=LOCAL_FOR_ALL, headers=u["admin"].headers)
    assert r.status_code == 200, r.text
    return {"json": {"script_id": await _script(c, u), "parameters": {}, "runner": "local"}}


async def closed_options_body(c: httpx.AsyncClient, u: dict[str, Any]) -> dict[str, Any]:
    """A run with Ansible run options of a script whose viewers may not choose them
    (services/run_option_rights.py), held for an approval so that no playbook runs."""
    body = {
        "name": f"p-{secrets.token_hex(4)}",
        "script_type": "ansible",
        "content": "- hosts: all\n  tasks: []\n",
        "status": "active",
        "viewers_choose_run_options": False,
    }
    r = await c.post("/api/v1/scripts", json=body, headers=u["admin"].headers)
    assert r.status_code == 201, r.text
    script_id = int(r.json()["id"])
    policy = {"required": 1, "expires_after_hours": 1}
    r = await c.put(f"/api/v1/scripts/{script_id}/approval", json=policy, headers=u["admin"].headers)
    assert r.is_success, r.text
    return {"json": {"script_id": script_id, "run_options": {"tags": ["never"]}}}


async def execution_path(c: httpx.AsyncClient, u: dict[str, Any]) -> dict[str, Any]:
    return {"path": {"execution_id": await _queued(c, u)}}


async def rerun_path(c: httpx.AsyncClient, u: dict[str, Any]) -> dict[str, Any]:
    r = await c.put("/api/v1/settings", json=LOCAL_FOR_ALL, headers=u["admin"].headers)
    assert r.status_code == 200, r.text
    return await execution_path(c, u)


async def draft_run_body(c: httpx.AsyncClient, u: dict[str, Any]) -> dict[str, Any]:
    body = await run_body(c, u)
    script_id = body["json"]["script_id"]
    return {"path": {"script_id": script_id}, "json": {"content": "echo test\n", "runner": "local"}}


CASES = [
    Case("POST", "/api/v1/executions", allow("viewer", 202), run_body),
    Case(
        "POST",
        "/api/v1/executions",
        allow("operator", 202),
        closed_options_body,
        note="run options of a script whose viewers may not choose them (viewers_choose_run_options)",
    ),
    Case(
        "POST",
        "/api/v1/executions/stream",
        allow("viewer"),
        run_body,
        note="read to the run's end (tests/executions/test_executions_stream.py)",
    ),
    Case(
        "GET",
        "/api/v1/executions/stream",
        public(405),
        note="POST only (GET /{execution_id} would take it): 405 for everyone, before authentication",
    ),
    Case("GET", "/api/v1/executions", allow("viewer")),
    Case("GET", "/api/v1/executions/{execution_id}", allow("viewer"), execution_path),
    Case("GET", "/api/v1/executions/{execution_id}/logs", allow("viewer"), execution_path),
    Case("GET", "/api/v1/executions/{execution_id}/output.log", allow("viewer"), execution_path),
    Case("GET", "/api/v1/executions/{execution_id}/content", allow("viewer"), execution_path),
    Case(
        "POST",
        "/api/v1/scripts/{script_id}/test-runs",
        allow("operator", 202),
        draft_run_body,
        note="test runs of unsaved content: roles that may edit scripts (they could save it anyway)",
    ),
    Case(
        "POST",
        "/api/v1/executions/{execution_id}/cancel",
        allow("operator"),
        execution_path,
        note="a viewer may cancel only their own runs (tests/test_executions_api.py)",
    ),
    Case("POST", "/api/v1/executions/{execution_id}/rerun", allow("viewer", 202), rerun_path),
    Case("WS", "/ws/executions/{execution_id}", allow("viewer"), execution_path),
]
