"""Approvals: runs wait as awaiting_approval until N others approve; no self-approval (also not
through the requester's API token); rejection and expiry end them `rejected`."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlmodel import col, select, update

from opscraft import runtime
from opscraft.db.models import (
    ApprovalDecision,
    ApprovalRequest,
    AuditEvent,
    Execution,
    NotificationDelivery,
    User,
)
from opscraft.db.types import utcnow
from opscraft.services import approvals
from opscraft.services.actor import Actor
from opscraft.services.errors import Conflict, Invalid
from tests.conftest import LoggedIn, make_user
from tests.executions.conftest import make_script, wait_for


async def held_run(
    client: httpx.AsyncClient, requester: LoggedIn, admin: LoggedIn, required: int = 1
) -> tuple[int, int]:
    script_id = await author_since_demoted(client, admin, "echo approved-run\n")
    r = await client.put(
        f"/api/v1/scripts/{script_id}/approval", json={"required": required}, headers=admin.headers
    )
    assert r.status_code == 200, r.text
    r = await client.post(
        "/api/v1/executions", json={"script_id": script_id, "runner": "local"}, headers=requester.headers
    )
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "awaiting_approval"
    return script_id, int(r.json()["id"])


async def author_since_demoted(client: httpx.AsyncClient, admin: LoggedIn, content: str) -> int:
    """A script written by an operator since demoted to viewer: the tests' approvers are free to
    approve its runs (the author of the version a run executes may not), and the approvers the
    team counts (`reach_warning`, `_out_of_reach`) are the test's own. Returns the script's id."""
    author = await make_user(client, "operator")
    script_id = await make_script(client, author, content)
    r = await client.put(f"/api/v1/users/{author.id}", json={"role": "viewer"}, headers=admin.headers)
    assert r.status_code == 200, r.text
    return script_id


async def decide(
    client: httpx.AsyncClient, who: dict[str, str] | LoggedIn, execution_id: int, verb: str, comment: str = ""
) -> httpx.Response:
    headers = who.headers if isinstance(who, LoggedIn) else who
    return await client.post(
        f"/api/v1/executions/{execution_id}/{verb}", json={"comment": comment}, headers=headers
    )


async def status_of(client: httpx.AsyncClient, who: LoggedIn, execution_id: int) -> str:
    return str((await client.get(f"/api/v1/executions/{execution_id}", headers=who.headers)).json()["status"])


async def test_two_approvals_then_it_runs(
    client: httpx.AsyncClient, admin: LoggedIn, operator: LoggedIn, viewer: LoggedIn
) -> None:
    second = await make_user(client, "operator", "second-operator")
    _, run_id = await held_run(client, operator, admin, required=2)
    pending = (await client.get("/api/v1/approvals", headers=viewer.headers)).json()["items"]
    assert [p["execution"]["id"] for p in pending] == [run_id] and pending[0]["required"] == 2
    assert (await decide(client, viewer, run_id, "approve")).status_code == 403, "viewers do not approve"
    r = await decide(client, operator, run_id, "approve")
    assert r.status_code == 403 and "someone else" in r.json()["detail"]
    token = (await client.post("/api/v1/tokens", json={"name": "ci"}, headers=operator.headers)).json()[
        "token"
    ]
    r = await decide(client, {"Authorization": f"Bearer {token}"}, run_id, "approve")
    assert r.status_code == 403, "the requester's token is the requester"
    r = await decide(client, second, run_id, "approve", "looks fine")
    assert r.status_code == 200 and r.json()["status"] == "awaiting_approval", "one of two"
    assert (await decide(client, second, run_id, "approve")).status_code == 409, "once per person"
    r = await decide(client, admin, run_id, "approve")
    assert r.status_code == 200 and r.json()["status"] in ("queued", "running", "success")
    final = await wait_for(client, admin, run_id)
    assert final["status"] == "success"
    trail = (await client.get(f"/api/v1/executions/{run_id}/approvals", headers=viewer.headers)).json()[
        "items"
    ]
    assert [(d["username"], d["decision"], d["comment"]) for d in trail] == [
        ("second-operator", "approve", "looks fine"),
        ("admin", "approve", ""),
    ]
    assert (await decide(client, second, run_id, "reject")).status_code == 409, "no longer waiting"


async def test_reject_ends_the_run(client: httpx.AsyncClient, admin: LoggedIn, viewer: LoggedIn) -> None:
    _, run_id = await held_run(client, viewer, admin)
    r = await decide(client, admin, run_id, "reject", "not today")
    assert r.status_code == 200 and r.json()["status"] == "rejected"
    assert "not today" in r.json()["error_message"]
    assert r.json()["finished_at"] is not None
    # the run event of the final state reaches the audit subscriber
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        async with runtime.current().db.session() as session:
            found = (
                await session.exec(
                    select(AuditEvent).where(
                        col(AuditEvent.action) == "execution.finished",
                        col(AuditEvent.target_id) == str(run_id),
                    )
                )
            ).first()
        if found is not None:
            assert found.details["status"] == "rejected"
            break
        assert asyncio.get_running_loop().time() < deadline, "no run event for the rejection"
        await asyncio.sleep(0.2)


async def test_a_long_comment_is_refused_under_its_field_with_the_limit(
    client: httpx.AsyncClient, admin: LoggedIn, viewer: LoggedIn
) -> None:
    """The run page's comment box shows the service's refusal under it: it said only "too long"."""
    _, run_id = await held_run(client, viewer, admin)
    async with runtime.current().db.session() as session:
        user = await session.get(User, admin.id)
        with pytest.raises(Invalid) as refused:
            await approvals.approve(session, Actor(user), run_id, "x" * (approvals.COMMENT_MAX + 1))
    limit = f"must be at most {approvals.COMMENT_MAX} characters, not {approvals.COMMENT_MAX + 1}"
    assert refused.value.details == [{"field": "comment", "message": limit}]
    assert await status_of(client, admin, run_id) == "awaiting_approval"


async def test_expiry_rejects(client: httpx.AsyncClient, admin: LoggedIn, viewer: LoggedIn) -> None:
    _, run_id = await held_run(client, viewer, admin)
    await expire_requests()
    assert await approvals.expire_due(runtime.current().db) == 1
    assert await status_of(client, admin, run_id) == "rejected"
    assert (await decide(client, admin, run_id, "approve")).status_code == 409


async def expire_requests() -> None:
    """Every request past its expiry, as the clock would leave it (the sweep not run yet)."""
    async with runtime.current().db.session() as session:
        await session.exec(update(ApprovalRequest).values(expires_at=utcnow() - timedelta(seconds=1)))
        await session.commit()


@pytest.mark.parametrize("verb", ["approve", "reject"])
async def test_a_decision_after_the_expiry_is_refused_and_ends_the_request(
    client: httpx.AsyncClient, admin: LoggedIn, viewer: LoggedIn, no_automation_loops: None, verb: str
) -> None:
    """The expiry was the scheduler loop's alone (`expire_due`, once a round): an approval that
    arrived after `expires_at` and before the loop's next round (or while its rounds failed)
    queued the run, which then ran. A decision after the expiry is refused (409 saying when it
    expired) and ends the request as the loop would: `rejected`, outcome `expired`."""
    _, run_id = await held_run(client, viewer, admin)
    await expire_requests()
    r = await decide(client, admin, run_id, verb)
    assert r.status_code == 409, r.text
    assert "its approval request expired at " in r.json()["detail"], r.text
    assert await status_of(client, admin, run_id) == "rejected"
    state = (await client.get(f"/api/v1/executions/{run_id}/approval", headers=admin.headers)).json()
    assert (state["outcome"], state["approvals"]) == ("expired", 0), state
    trail = (await client.get(f"/api/v1/executions/{run_id}/approvals", headers=admin.headers)).json()
    assert trail["items"] == [], "no decision is kept"
    async with runtime.current().db.session() as session:
        query = select(AuditEvent).where(col(AuditEvent.action) == "execution.approval_expired")
        assert [e.target_id for e in (await session.exec(query)).all()] == [str(run_id)]
    assert await approvals.expire_due(runtime.current().db) == 0, "ended once"


async def test_an_expired_request_is_not_queued_when_an_approval_counts_again(
    client: httpx.AsyncClient, admin: LoggedIn, operator: LoggedIn, no_automation_loops: None
) -> None:
    """An approver restored after the expiry (and before the loop's round): their approval
    counting again queued the expired run (`count_again`). It is left to the expiry."""
    first = await make_user(client, "operator", "restored-late")
    _, run_id = await held_run(client, operator, admin, required=2)
    assert (await decide(client, first, run_id, "approve")).status_code == 200
    r = await client.put(f"/api/v1/users/{first.id}", json={"role": "viewer"}, headers=admin.headers)
    assert r.status_code == 200, r.text
    assert (await decide(client, admin, run_id, "approve")).status_code == 200
    await expire_requests()
    r = await client.put(f"/api/v1/users/{first.id}", json={"role": "operator"}, headers=admin.headers)
    assert r.status_code == 200, r.text
    assert await status_of(client, admin, run_id) == "awaiting_approval"
    assert await approvals.expire_due(runtime.current().db) == 1
    state = (await client.get(f"/api/v1/executions/{run_id}/approval", headers=admin.headers)).json()
    assert (state["outcome"], await status_of(client, admin, run_id)) == ("expired", "rejected"), state


async def test_cancel_while_waiting_and_pending_notification(
    client: httpx.AsyncClient, admin: LoggedIn, viewer: LoggedIn
) -> None:
    r = await client.post(
        "/api/v1/notifications/channels",
        json={"name": "hook", "kind": "webhook", "config": {"url": "http://127.0.0.1:9/"}},
        headers=admin.headers,
    )
    channel_id = r.json()["id"]
    r = await client.post(
        "/api/v1/notifications/rules",
        json={"channel_id": channel_id, "events": ["approval_pending"]},
        headers=admin.headers,
    )
    assert r.status_code == 201
    _, run_id = await held_run(client, viewer, admin)
    async with runtime.current().db.session() as session:
        rows = (await session.exec(select(NotificationDelivery))).all()
    assert [(d.event, d.execution_id) for d in rows] == [("approval_pending", run_id)]
    r = await client.post(f"/api/v1/executions/{run_id}/cancel", headers=viewer.headers)
    assert r.status_code == 200 and r.json()["status"] == "cancelled"


async def test_a_run_cancelled_while_waiting_closes_its_request_as_cancelled(
    client: httpx.AsyncClient, admin: LoggedIn, operator: LoggedIn, viewer: LoggedIn
) -> None:
    """The request of a run cancelled while it waited kept no outcome: the Approvals page showed
    nothing of it. It now ends `cancelled`, with who and when, in the run's request and in the
    list of ended requests; approving or rejecting it afterwards is a 409 saying it was cancelled."""
    _, run_id = await held_run(client, viewer, admin)
    r = await client.get(f"/api/v1/executions/{run_id}/approval", headers=viewer.headers)
    assert r.status_code == 200 and r.json()["outcome"] is None and r.json()["required"] == 1
    r = await client.post(f"/api/v1/executions/{run_id}/cancel", headers=operator.headers)
    assert r.status_code == 200 and r.json()["cancelled_by_name"] == "operator", r.text
    finished_at = r.json()["finished_at"]
    r = await client.get(f"/api/v1/executions/{run_id}/approval", headers=viewer.headers)
    state = r.json()
    assert (state["outcome"], state["decided_by"]) == ("cancelled", "operator")
    assert state["decided_at"] == finished_at
    ended = (await client.get("/api/v1/approvals", params={"ended": "true"}, headers=viewer.headers)).json()[
        "items"
    ]
    assert [(p["execution"]["id"], p["outcome"]) for p in ended] == [(run_id, "cancelled")]
    assert (await client.get("/api/v1/approvals", headers=viewer.headers)).json()["items"] == []
    for verb in ("approve", "reject"):
        r = await decide(client, admin, run_id, verb)
        assert r.status_code == 409 and "not awaiting approval (cancelled)" in r.json()["detail"], r.text
    r = await client.get(f"/api/v1/executions/{run_id}/approval", headers=viewer.headers)
    assert r.json()["outcome"] == "cancelled", "a refused decision changes nothing"
    script_id = await make_script(client, admin, "true\n")
    r = await client.post(
        "/api/v1/executions", json={"script_id": script_id, "runner": "local"}, headers=viewer.headers
    )
    r = await client.get(f"/api/v1/executions/{r.json()['id']}/approval", headers=viewer.headers)
    assert r.status_code == 404
    assert (
        r.json()["detail"] == "no approval request: the execution does not exist or never waited for approval"
    )


async def test_policy_validation(client: httpx.AsyncClient, admin: LoggedIn, viewer: LoggedIn) -> None:
    script_id = await make_script(client, admin, "true\n")
    url = f"/api/v1/scripts/{script_id}/approval"
    assert (await client.get(url, headers=viewer.headers)).json() is None
    for body in ({"required": 0}, {"required": 6}, {"expires_after_hours": 0}):
        r = await client.put(url, json=body, headers=admin.headers)
        assert r.status_code == 422, body
    assert (await client.put(url, json={"required": 1}, headers=viewer.headers)).status_code == 403
    assert (await client.put(url, json={"required": 1}, headers=admin.headers)).status_code == 200
    assert (await client.delete(url, headers=admin.headers)).status_code == 204
    body: dict[str, Any] = {"script_id": script_id, "runner": "local"}
    r = await client.post("/api/v1/executions", json=body, headers=viewer.headers)
    assert r.json()["status"] != "awaiting_approval"


async def test_only_an_admin_lowers_or_removes_a_requirement_and_waiting_runs_keep_theirs(
    client: httpx.AsyncClient, admin: LoggedIn, operator: LoggedIn
) -> None:
    """The requester of a held run cannot switch the rule off and run again: an operator may add
    or raise a requirement, never lower or remove it (403 saying so); an admin may, and the run
    already waiting still needs its approval."""
    script_id, run_id = await held_run(client, operator, admin, required=2)
    url = f"/api/v1/scripts/{script_id}/approval"
    r = await client.delete(url, headers=operator.headers)
    assert r.status_code == 403 and r.json()["detail"].endswith("that needs admin"), r.text
    r = await client.put(url, json={"required": 1}, headers=operator.headers)
    assert r.status_code == 403 and "only an admin may lower" in r.json()["detail"], r.text
    r = await client.put(url, json={"required": 3, "expires_after_hours": 2}, headers=operator.headers)
    assert r.status_code == 200 and r.json()["required"] == 3, "raising is allowed"
    r = await client.put(url, json={"required": 3, "expires_after_hours": 48}, headers=operator.headers)
    assert r.status_code == 200, "the same requirement with another expiry is not a lowering"
    body: dict[str, Any] = {"script_id": script_id, "runner": "local"}
    r = await client.post("/api/v1/executions", json=body, headers=operator.headers)
    assert r.status_code == 202 and r.json()["status"] == "awaiting_approval", r.text

    assert (await client.put(url, json={"required": 1}, headers=admin.headers)).status_code == 200
    assert (await client.delete(url, headers=admin.headers)).status_code == 204
    pending = {
        p["execution"]["id"]: p["required"]
        for p in (await client.get("/api/v1/approvals", headers=admin.headers)).json()["items"]
    }
    assert pending[run_id] == 2, "a waiting run keeps the requirement it was held with"
    assert await status_of(client, operator, run_id) == "awaiting_approval"
    r = await client.post("/api/v1/executions", json=body, headers=operator.headers)
    assert r.status_code == 202 and r.json()["status"] != "awaiting_approval", r.text


@pytest.mark.parametrize(("verb", "required"), [("approve", 1), ("approve", 2), ("reject", 1)])
async def test_a_decision_on_a_run_cancelled_as_it_arrives_is_a_conflict(
    client: httpx.AsyncClient, admin: LoggedIn, viewer: LoggedIn, verb: str, required: int
) -> None:
    """The decider's session read the run waiting; the requester cancels it before the decision is
    written: 409 naming how it ended, and neither the decision nor its audit event is kept (an
    approval used to be recorded, and a rejection audited, on the cancelled run)."""
    _, run_id = await held_run(client, viewer, admin, required=required)
    async with runtime.current().db.session() as session:
        decider = await session.get(User, admin.id)
        read_waiting = await session.get(Execution, run_id)  # held: the session's map is weak
        assert decider is not None and read_waiting is not None
        r = await client.post(f"/api/v1/executions/{run_id}/cancel", headers=viewer.headers)
        assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text
        with pytest.raises(Conflict, match=r"not awaiting approval \(cancelled\)"):
            await getattr(approvals, verb)(session, Actor(decider), run_id, "ok")
    async with runtime.current().db.session() as session:
        assert (await session.exec(select(ApprovalDecision))).all() == []
        decided = await session.exec(
            select(AuditEvent.action).where(
                col(AuditEvent.action).in_(["execution.approve", "execution.reject"])
            )
        )
        assert decided.all() == []
    assert await status_of(client, admin, run_id) == "cancelled"


@pytest.mark.parametrize("verb", ["approve", "reject"])
async def test_the_same_persons_two_decisions_at_once_are_one_decision_and_a_conflict(
    client: httpx.AsyncClient,
    admin: LoggedIn,
    viewer: LoggedIn,
    monkeypatch: pytest.MonkeyPatch,
    verb: str,
) -> None:
    """Two clicks at once: both pass the "decided before?" check, then the other one's decision
    commits first. The late one is a 409 saying so (it was a 500 from the unique key)."""
    _, run_id = await held_run(client, viewer, admin, required=2)
    checked = approvals._decidable

    async def other_click_lands_first(
        session: Any, actor: Actor, execution_id: int, comment: str
    ) -> Execution:
        execution = await checked(session, actor, execution_id, comment)
        async with runtime.current().db.session() as other:
            other.add(
                ApprovalDecision(execution_id=execution_id, user_id=admin.id, username="admin", decision=verb)
            )
            await other.commit()
        return execution

    monkeypatch.setattr(approvals, "_decidable", other_click_lands_first)
    r = await decide(client, admin, run_id, verb)
    assert r.status_code == 409 and r.json()["detail"] == "you have already decided on this run", r.text
    monkeypatch.undo()
    trail = (await client.get(f"/api/v1/executions/{run_id}/approvals", headers=viewer.headers)).json()[
        "items"
    ]
    assert [d["username"] for d in trail] == ["admin"]
    assert await status_of(client, admin, run_id) == "awaiting_approval"


async def test_a_run_whose_script_was_deleted_while_it_waited_is_not_approved(
    client: httpx.AsyncClient, admin: LoggedIn, operator: LoggedIn, viewer: LoggedIn
) -> None:
    """Deleting the script leaves its waiting run to be rejected or to expire: approving it used
    to queue and run the deleted script (a new run of it is a 404)."""
    script_id, run_id = await held_run(client, viewer, admin)
    assert (await client.delete(f"/api/v1/scripts/{script_id}", headers=admin.headers)).status_code == 204
    r = await decide(client, operator, run_id, "approve")
    assert r.status_code == 409 and "was deleted" in r.json()["detail"], r.text
    # In the user's words: the script's id is shown nowhere ("script 12 was deleted").
    assert r.json()["detail"].startswith("this run's script was deleted after the run was requested"), r.text
    assert await status_of(client, admin, run_id) == "awaiting_approval"
    trail = (await client.get(f"/api/v1/executions/{run_id}/approvals", headers=viewer.headers)).json()[
        "items"
    ]
    assert trail == [], "a refused approval leaves no decision"
    r = await decide(client, operator, run_id, "reject", "script is gone")
    assert r.status_code == 200 and r.json()["status"] == "rejected", r.text


@pytest.mark.parametrize(
    "change",
    ["script deprecated", "script back to draft", "requester deactivated", "requester demoted"],
)
async def test_a_run_that_could_no_longer_start_is_not_approved(
    client: httpx.AsyncClient,
    admin: LoggedIn,
    operator: LoggedIn,
    change: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What changed while the run waited counts when it is approved: approving queued and ran a
    run of a script since deprecated (only active scripts run), of a requester since
    deactivated (their account may start nothing), or a local-runner run of a requester since
    demoted below the role the local runner needs (a process of the server's own user). Refused
    (409) with the reason; the run still waits, to be rejected, to expire, or approved once
    the script is active again (the account restored)."""
    monkeypatch.setattr(runtime.current().settings, "local_runner_role", "operator")
    requester = await make_user(client, "operator", "requester")
    script_id, run_id = await held_run(client, requester, admin)
    if change.startswith("requester"):
        demoted = change == "requester demoted"
        changed, undo = (
            ({"role": "viewer"}, {"role": "operator"})
            if demoted
            else ({"is_active": False}, {"is_active": True})
        )
        r = await client.put(f"/api/v1/users/{requester.id}", json=changed, headers=admin.headers)
        expected = (
            "is now viewer: the local runner is for operators" if demoted else "may no longer run scripts"
        )
    else:
        status = "deprecated" if change == "script deprecated" else "draft"
        r = await client.put(f"/api/v1/scripts/{script_id}", json={"status": status}, headers=admin.headers)
        expected, undo = f"is {status} since this run was requested", {"status": "active"}
    assert r.status_code == 200, r.text
    r = await decide(client, operator, run_id, "approve")
    assert r.status_code == 409 and expected in r.json()["detail"], r.text
    assert await status_of(client, admin, run_id) == "awaiting_approval"
    async with runtime.current().db.session() as session:
        run = await session.get(Execution, run_id)
        assert run is not None
        told = await approvals.notes(session, Actor(await session.get(User, operator.id)), run)
    assert [n for n in told if expected in n], "the approver is told before deciding"
    trail = (await client.get(f"/api/v1/executions/{run_id}/approvals", headers=admin.headers)).json()[
        "items"
    ]
    assert trail == [], "a refused approval leaves no decision"
    path = f"/api/v1/users/{requester.id}" if "requester" in change else f"/api/v1/scripts/{script_id}"
    assert (await client.put(path, json=undo, headers=admin.headers)).status_code == 200
    r = await decide(client, operator, run_id, "approve")
    assert r.status_code == 200 and r.json()["status"] != "awaiting_approval", r.text
    assert (await wait_for(client, admin, run_id))["status"] == "success"


async def test_the_badge_counts_what_waits_for_your_decision(
    client: httpx.AsyncClient, admin: LoggedIn, operator: LoggedIn
) -> None:
    """The navigation badge (`pending_count`) counted a run its user had approved already (two
    required: it waits for someone else), and not one whose requester was deleted (NULL
    `triggered_by`), which anyone may still reject."""
    requester = await make_user(client, "operator", "requester")
    _, run_id = await held_run(client, requester, admin, required=2)

    async def badge(who: LoggedIn) -> int:
        async with runtime.current().db.session() as session:
            user = await session.get(User, who.id)
            return await approvals.pending_count(session, Actor(user))

    assert (await badge(operator), await badge(admin), await badge(requester)) == (1, 1, 0)
    assert (await decide(client, operator, run_id, "approve")).status_code == 200
    assert (await badge(operator), await badge(admin)) == (0, 1), "the operator has decided"
    r = await client.delete(f"/api/v1/users/{requester.id}", headers=admin.headers)
    assert r.status_code == 204, r.text
    assert await badge(admin) == 1, "a deleted requester's run still waits for a decision"


async def test_the_badge_counts_only_what_you_can_still_decide(
    client: httpx.AsyncClient, admin: LoggedIn, operator: LoggedIn, viewer: LoggedIn
) -> None:
    """Two approvers, two required: the badge (`pending_count`) of each counts the run until
    they approve it, never for a viewer (who may not decide: the rule was the page's alone, so
    the service counted every waiting run for them), and no longer once the request is past
    its expiry (a decision then only ends it), before the sweep has ended it."""
    requester = await make_user(client, "operator", "requester")
    _, run_id = await held_run(client, requester, admin, required=2)

    async def badges() -> tuple[int, ...]:
        async with runtime.current().db.session() as session:
            people = [await session.get(User, who.id) for who in (admin, operator, viewer)]
            return tuple([await approvals.pending_count(session, Actor(user)) for user in people])

    assert await badges() == (1, 1, 0), "a viewer may not decide"
    assert (await decide(client, admin, run_id, "approve")).status_code == 200
    assert await badges() == (0, 1, 0), "the admin approved: it waits for the operator"
    await expire_requests()
    assert await badges() == (0, 0, 0), "past its expiry, no decision can be given"
    assert await status_of(client, admin, run_id) == "awaiting_approval", "not swept yet"


async def test_the_last_two_approvals_at_once_queue_the_run(
    client: httpx.AsyncClient, admin: LoggedIn, viewer: LoggedIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two people give the last two of two approvals at the same moment. Each counted the
    approvals before the other's committed (1 of 2, on PostgreSQL), so neither queued the run:
    it stayed waiting with both approvals in. Deciding locks the run, so the later one counts 2."""
    second = await make_user(client, "operator", "second-operator")
    _, run_id = await held_run(client, viewer, admin, required=2)
    counted = approvals._approval_counts
    other: list[asyncio.Task[httpx.Response]] = []

    async def other_decides_meanwhile(session: Any, ids: list[int]) -> dict[int, int]:
        counts = await counted(session, ids)
        if not other:  # the first approval, counted but not committed: the second one arrives
            other.append(asyncio.create_task(decide(client, second, run_id, "approve")))
            # It finishes here unless it waits on this decision (it must: the run is locked).
            await asyncio.wait(other, timeout=2)
        return counts

    monkeypatch.setattr(approvals, "_approval_counts", other_decides_meanwhile)
    first = await decide(client, admin, run_id, "approve")
    later = await other[0]
    assert first.status_code == 200 and later.status_code == 200, (first.text, later.text)
    trail = (await client.get(f"/api/v1/executions/{run_id}/approvals", headers=viewer.headers)).json()[
        "items"
    ]
    assert sorted(d["username"] for d in trail) == ["admin", "second-operator"]
    assert await status_of(client, admin, run_id) != "awaiting_approval", "two of two approvals are in"
    await wait_for(client, admin, run_id)


@pytest.mark.parametrize("change", ["demoted", "deactivated"])
async def test_a_run_whose_approvals_count_again_when_a_giver_is_restored_starts(
    client: httpx.AsyncClient, admin: LoggedIn, operator: LoggedIn, change: str
) -> None:
    """Two required: the first approver demoted (or deactivated), the second approves (1 of 2
    counts), the first restored: their approval counts again and the run starts, approved,
    audited as `execution.approval_reached`. It showed 2 of 2 and waited until it expired
    `rejected`: both had decided, no one was left to approve it."""
    first = await make_user(client, "operator", f"restored-{change}")
    second = await make_user(client, "operator", f"second-{change}")
    _, run_id = await held_run(client, operator, admin, required=2)
    assert (await decide(client, first, run_id, "approve")).status_code == 200
    lose, restore = ({"role": "viewer"}, {"role": "operator"})
    if change == "deactivated":
        lose, restore = {"is_active": False}, {"is_active": True}
    r = await client.put(f"/api/v1/users/{first.id}", json=lose, headers=admin.headers)
    assert r.status_code == 200, r.text
    r = await decide(client, second, run_id, "approve")
    assert r.status_code == 200 and r.json()["status"] == "awaiting_approval", r.text
    r = await client.put(f"/api/v1/users/{first.id}", json=restore, headers=admin.headers)
    assert r.status_code == 200, r.text
    assert (await wait_for(client, admin, run_id))["status"] == "success"
    state = (await client.get(f"/api/v1/executions/{run_id}/approval", headers=admin.headers)).json()
    assert (state["outcome"], state["approvals"]) == ("approved", 2)
    async with runtime.current().db.session() as session:
        query = select(AuditEvent).where(col(AuditEvent.action) == "execution.approval_reached")
        (event,) = [e for e in (await session.exec(query)).all() if e.target_id == str(run_id)]
    assert event.details == {"approvals": 2, "restored": f"restored-{change}"}
    assert event.actor_name == "admin"


@pytest.mark.parametrize("change", ["demoted", "deactivated", "deleted"])
async def test_an_approval_whose_giver_may_no_longer_approve_does_not_count(
    client: httpx.AsyncClient, admin: LoggedIn, operator: LoggedIn, change: str
) -> None:
    """Two approvals by operators or admins: one given by someone demoted to viewer, deactivated
    or deleted while the run waited no longer counts (it queued the run on the next approval,
    with one approver able to approve). It stays in the trail; the approver is told."""
    first = await make_user(client, "operator", "first-approver")
    second = await make_user(client, "operator", "second-approver")
    _, run_id = await held_run(client, operator, admin, required=2)
    assert (await decide(client, first, run_id, "approve", "fine")).status_code == 200
    if change == "deleted":
        r = await client.delete(f"/api/v1/users/{first.id}", headers=admin.headers)
    else:
        body = {"role": "viewer"} if change == "demoted" else {"is_active": False}
        r = await client.put(f"/api/v1/users/{first.id}", json=body, headers=admin.headers)
    assert r.status_code in (200, 204), r.text
    r = await decide(client, admin, run_id, "approve")
    assert r.status_code == 200 and r.json()["status"] == "awaiting_approval", r.text
    state = (await client.get(f"/api/v1/executions/{run_id}/approval", headers=admin.headers)).json()
    assert state["approvals"] == 1 and state["required"] == 2
    async with runtime.current().db.session() as session:
        run = await session.get(Execution, run_id)
        assert run is not None
        told = await approvals.notes(session, Actor(await session.get(User, second.id)), run)
    assert [n for n in told if "first-approver no longer counts" in n], told
    trail = (await client.get(f"/api/v1/executions/{run_id}/approvals", headers=admin.headers)).json()
    assert [d["username"] for d in trail["items"]] == ["first-approver", "admin"]
    r = await decide(client, second, run_id, "approve")
    assert r.status_code == 200 and r.json()["status"] != "awaiting_approval", r.text
    assert (await wait_for(client, admin, run_id))["status"] == "success"
    state = (await client.get(f"/api/v1/executions/{run_id}/approval", headers=admin.headers)).json()
    assert (state["outcome"], state["approvals"]) == ("approved", 2), "what it was approved on"


async def test_a_run_more_approvals_than_the_team_can_give_says_so(
    client: httpx.AsyncClient, admin: LoggedIn, operator: LoggedIn
) -> None:
    """A team of three operators and admins whose script requires three approvals: the
    requester's run can get two at most (the requester may not approve), so it waited a day and
    expired, nothing saying why. The approvers are told, and told again when an approver leaves."""
    requester = await make_user(client, "operator", "requester")
    _, run_id = await held_run(client, requester, admin, required=3)

    async def told() -> list[str]:
        async with runtime.current().db.session() as session:
            run = await session.get(Execution, run_id)
            assert run is not None
            notes = await approvals.notes(session, Actor(await session.get(User, operator.id)), run)
        return [n for n in notes if "can never be approved as the team stands" in n]

    [note] = await told()
    assert "needs 3 approvals" in note and "only 2 could be given (0 given so far)" in note
    third = await make_user(client, "operator", "third")
    assert await told() == [], "three may approve now"
    assert (await decide(client, operator, run_id, "approve")).status_code == 200
    assert await told() == [], "one given, two may still give theirs"
    r = await client.put(f"/api/v1/users/{third.id}", json={"is_active": False}, headers=admin.headers)
    assert r.status_code == 200, r.text
    [note] = await told()
    assert "only 2 could be given (1 given so far)" in note


async def test_a_policy_above_what_the_team_can_give_is_saved_with_a_warning(
    client: httpx.AsyncClient, admin: LoggedIn, operator: LoggedIn, viewer: LoggedIn
) -> None:
    """Two approvers (an admin and an operator): a run either requests can get one approval at
    most, so a policy requiring two was saved silently and every run waited a day and expired.
    It is saved (the approvers may be invited after the rule is set) with a warning saying so."""
    script_id = await make_script(client, operator, "echo warned\n")
    r = await client.put(
        f"/api/v1/scripts/{script_id}/approval", json={"required": 2}, headers=operator.headers
    )
    assert r.status_code == 200, r.text
    warning = r.json()["warning"]
    assert "runs need 2 approvals, but only 1 could be given" in warning
    assert "there are 2 active operators or admins" in warning
    shown = (await client.get(f"/api/v1/scripts/{script_id}/approval", headers=viewer.headers)).json()
    assert (shown["required"], shown["warning"]) == (2, warning)
    await make_user(client, "operator", "third-approver")
    shown = (await client.get(f"/api/v1/scripts/{script_id}/approval", headers=viewer.headers)).json()
    assert shown["warning"] is None, "three approvers: a run gets two besides its requester"
    r = await client.put(f"/api/v1/scripts/{script_id}/approval", json={"required": 1}, headers=admin.headers)
    assert r.status_code == 200 and r.json()["warning"] is None


async def test_the_author_of_the_version_a_run_executes_may_not_approve_it(
    client: httpx.AsyncClient, admin: LoggedIn, operator: LoggedIn, viewer: LoggedIn
) -> None:
    """Four-eyes: an operator who edits a script could approve a run of his own edit, the only
    pair of eyes on it. The version's author may reject the run, never approve it; another
    approver may, and the next version's author is the one refused for the runs of that one."""
    second = await make_user(client, "operator", "second-operator")
    script_id = await make_script(client, operator, "echo v1\n")
    r = await client.put(f"/api/v1/scripts/{script_id}/approval", json={"required": 1}, headers=admin.headers)
    assert r.status_code == 200, r.text

    async def requested() -> int:
        r = await client.post("/api/v1/executions", json={"script_id": script_id}, headers=viewer.headers)
        assert r.status_code == 202 and r.json()["status"] == "awaiting_approval", r.text
        return int(r.json()["id"])

    first = await requested()
    r = await decide(client, operator, first, "approve")
    assert r.status_code == 403, r.text
    assert "you wrote version 1 of this script, which this run executes" in r.json()["detail"]
    assert await status_of(client, admin, first) == "awaiting_approval"
    assert (await decide(client, second, first, "approve")).status_code == 200
    r = await client.put(
        f"/api/v1/scripts/{script_id}", json={"content": "echo v2\n"}, headers=second.headers
    )
    assert r.status_code == 200, r.text
    run = await requested()
    r = await decide(client, second, run, "approve")
    assert r.status_code == 403 and "you wrote version 2" in r.json()["detail"], r.text
    assert (await decide(client, second, run, "reject", "not my own")).status_code == 200, (
        "a reject is allowed"
    )
    assert await status_of(client, admin, run) == "rejected"
    run = await requested()
    assert (await decide(client, operator, run, "approve")).status_code == 200, "version 2 is not his"
