"""An object another user deleted, on SQLite and PostgreSQL: every request naming it is a `404` whose
detail says what kind of thing it was and that it was not found, without its id (the UI showed
"user 8 not found", an id the user never saw) and alike for a row the caller may not see (nothing
told about it). The UI shows the same message (`services.errors.NotFound.gone`)."""

from __future__ import annotations

from typing import Any

import httpx

from opscraft.services.errors import GONE_WHY
from tests.conftest import LoggedIn


def gone(kind: str) -> str:
    """The detail of a `404` for a `kind` that was not found."""
    return f"this {kind} was not found: {GONE_WHY}"


async def _made(client: httpx.AsyncClient, who: LoggedIn, path: str, body: dict[str, Any]) -> int:
    r = await client.post(f"/api/v1{path}", json=body, headers=who.headers)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def _said_gone(response: httpx.Response, kind: str, row_id: int) -> None:
    assert response.status_code == 404, response.text
    detail = response.json()["detail"]
    assert detail == gone(kind) and str(row_id) not in detail


async def test_a_deleted_object_is_named_by_its_kind_as_gone(
    client: httpx.AsyncClient, admin: LoggedIn, operator: LoggedIn
) -> None:
    script = {"script_type": "bash", "content": "echo hi\n"}
    script_id = await _made(client, admin, "/scripts", {"name": "kept", **script})
    target_id = await _made(client, admin, "/scripts", {"name": "target", **script})
    user = {"username": "carol", "email": "carol@example.com", "password": "Carol-Pass-123", "role": "viewer"}
    channel = {"name": "hook", "kind": "webhook", "config": {"url": "http://10.0.0.9/hook"}}
    channel_id = await _made(client, admin, "/notifications/channels", channel)
    on_script = f"/scripts/{script_id}"
    # kind -> (where it is created, its body); its address is there, then its id
    kinds: dict[str, tuple[str, dict[str, Any]]] = {
        "user": ("/users", user),
        "script": ("/scripts", {"name": "doomed", **script}),
        "secret": ("/secrets", {"name": "DB_PASSWORD", "value": "s3cret-value"}),
        "inventory": ("/inventories", {"name": "inv", "content": "[web]\nw1\n"}),
        "schedule": (f"{on_script}/schedules", {"name": "nightly", "cron": "0 3 * * *"}),
        "webhook": (f"{on_script}/webhooks", {"name": "on-push"}),
        '"then run" link': (f"{on_script}/chains", {"target_script_id": target_id}),
        "notification channel": ("/notifications/channels", {**channel, "name": "other"}),
        "notification rule": (
            "/notifications/rules",
            {"channel_id": channel_id, "script_id": script_id, "events": ["failure"]},
        ),
    }
    for kind, (where, body) in kinds.items():
        row_id = await _made(client, admin, where, body)
        path = f"/api/v1{where}/{row_id}"
        assert (await client.delete(path, headers=admin.headers)).status_code == 204, kind
        _said_gone(await client.delete(path, headers=admin.headers), kind, row_id)
        read = await client.get(path, headers=admin.headers)
        if read.status_code != 405:  # a list's rows (notification rules) have no GET of their own
            _said_gone(read, kind, row_id)


APPROVAL_NONE = "no approval request: the execution does not exist or never waited for approval"


async def test_what_the_caller_may_not_see_reads_as_gone(
    client: httpx.AsyncClient, admin: LoggedIn, operator: LoggedIn
) -> None:
    token_id = await _made(client, admin, "/tokens", {"name": "ci"})
    # the admin's token, revoked by the operator: told nothing about it
    revoked = await client.delete(f"/api/v1/tokens/{token_id}", headers=operator.headers)
    _said_gone(revoked, "API token", token_id)
    for path, kind in {
        "/executions/987654": "execution",
        "/executions/987654/approvals": "execution",
    }.items():
        _said_gone(await client.get(f"/api/v1{path}", headers=operator.headers), kind, 987654)
    # a run that does not exist has no approval request: said as such, without its id
    r = await client.get("/api/v1/executions/987654/approval", headers=operator.headers)
    assert r.status_code == 404 and "987654" not in r.text
    assert r.json()["detail"] == APPROVAL_NONE
