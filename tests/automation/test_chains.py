"""Chained runs: "then run" links (CRUD, cycles refused, 409/422), real chains on the local
runner (parameters and `::set-output` values mapped; failure outcome; masked outputs never
passed on), exactly once with several dispatchers and starters, approvals and RBAC."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
from sqlmodel import col, select

from opscraft import runtime
from opscraft.db.models import AuditEvent, ChainRun, Execution
from opscraft.db.models.executions import Trigger
from opscraft.db.types import utcnow
from opscraft.execution.run_events import RunEventDispatcher, RunEventMessage
from opscraft.services import chains
from opscraft.services.run_starter import start_for
from tests.conftest import LoggedIn, make_user
from tests.executions.conftest import make_script, start, wait_for
from tests.waiting import until

TARGET_PARAMS = [
    {"name": "ENV", "type": "string", "required": True},
    {"name": "VERSION", "type": "string", "default": "none"},
    {"name": "SOURCE_RUN", "type": "integer", "default": 0},
]


def links_path(script_id: int) -> str:
    return f"/api/v1/scripts/{script_id}/chains"


async def add_link(
    client: httpx.AsyncClient, who: LoggedIn, source: int, target: int, **body: Any
) -> httpx.Response:
    return await client.post(
        links_path(source), json={"target_script_id": target, **body}, headers=who.headers
    )


async def allow_local(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    r = await client.put("/api/v1/settings", json={"local_runner_enabled": True}, headers=admin.headers)
    assert r.status_code == 200, r.text


async def chain_view(client: httpx.AsyncClient, who: LoggedIn, execution_id: int) -> dict[str, Any]:
    r = await client.get(f"/api/v1/executions/{execution_id}/chain", headers=who.headers)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def wait_chained(
    client: httpx.AsyncClient, who: LoggedIn, execution_id: int, count: int = 1, timeout: float = 60
) -> list[dict[str, Any]]:
    """The firings of a run once `count` of them have settled (started, refused or error)."""

    async def settled() -> list[dict[str, Any]] | None:
        started = (await chain_view(client, who, execution_id))["started"]
        done = len(started) >= count and all(s["status"] in ("started", "refused", "error") for s in started)
        return list(started) if done else None

    return await until(settled, f"run {execution_id} to chain {count} settled runs", timeout, 0.1)


async def audit_actions(prefix: str) -> list[AuditEvent]:
    async with runtime.current().db.session() as session:
        rows = await session.exec(
            select(AuditEvent).where(col(AuditEvent.action).startswith(prefix)).order_by(col(AuditEvent.id))
        )
        return list(rows.all())


def test_outputs_follow_the_github_workflow_command_form() -> None:
    text = (
        "::set-output name=version::1.2.3\n"
        "  ::set-output name=indented::ignored\n"
        "echo ::set-output name=inline::ignored\n"
        "::set-output name=multi::a%0Ab%25c%0D\r\n"
        "::set-output name=9bad::ignored\n"
        "::set-output name=version::1.2.4\n"
        "::set-output name=code::$(rm -rf /) `id` ${HOME}\n"
        "::set-output name=empty::\n"
    )
    assert chains.parse_outputs(text) == {
        "version": "1.2.4",
        "multi": "a\nb%c\r",
        "code": "$(rm -rf /) `id` ${HOME}",
        "empty": "",
    }


async def test_links_crud_refusals_and_audit(
    client: httpx.AsyncClient, admin: LoggedIn, operator: LoggedIn, viewer: LoggedIn
) -> None:
    a = await make_script(client, admin, "true\n", parameters=[{"name": "ENV", "type": "string"}])
    b = await make_script(client, admin, "true\n", parameters=TARGET_PARAMS)
    c = await make_script(client, admin, "true\n")
    body = {
        "mapping": {"ENV": "/parameters/ENV", "VERSION": "/outputs/version"},
        "parameters": {"ENV": "dev"},
    }
    r = await add_link(client, operator, a, b, **body)
    assert r.status_code == 201, r.text
    link = r.json()
    assert link["outcome"] == "success" and link["owner_name"] == operator.username
    assert link["target_script_name"] and link["mapping"] == body["mapping"]
    assert (await add_link(client, viewer, a, c)).status_code == 403
    # refusals name the field
    for bad, field in [
        ({"target_script_id": 999999}, "target_script_id"),
        ({"target_script_id": b, "mapping": {"NOPE": "/parameters/ENV"}}, "mapping.NOPE"),
        ({"target_script_id": b, "mapping": {"ENV": "parameters/ENV"}}, "mapping.ENV"),
        ({"target_script_id": b, "mapping": {"ENV": "/secrets/X"}}, "mapping.ENV"),
        ({"target_script_id": b, "mapping": {"ENV": "/run/triggered_by"}}, "mapping.ENV"),
        ({"target_script_id": b, "parameters": {"NOPE": 1}}, "parameters.NOPE"),
        # fixed values are checked as the target's resolver will check them when the link fires
        ({"target_script_id": b, "parameters": {"SOURCE_RUN": "abc"}}, "parameters.SOURCE_RUN"),
        ({"target_script_id": b, "parameters": {"ENV": "x\u202ey"}}, "parameters.ENV"),
        ({"target_script_id": b, "parameters": {"VERSION": {"a": 1}}}, "parameters.VERSION"),
        ({"target_script_id": a}, "target_script_id"),  # a link to itself is a cycle
    ]:
        r = await client.post(links_path(a), json=bad, headers=operator.headers)
        assert r.status_code == 422, (bad, r.text)
        assert r.json()["errors"][0]["field"] == field, r.text
    # No script chosen (the form's empty select): said as what to do, not as a null number.
    r = await client.post(links_path(a), json={"target_script_id": None}, headers=operator.headers)
    assert r.status_code == 422 and r.json()["errors"] == [
        {"field": "target_script_id", "message": "choose a script to start"}
    ], r.text
    every = {"mapping": {"NOPE": "/parameters/ENV", "ENV": "/secrets/X"}, "parameters": {"SOURCE_RUN": "abc"}}
    r = await client.post(links_path(a), json={"target_script_id": b, **every}, headers=operator.headers)
    assert r.status_code == 422, r.text
    fields = [e["field"] for e in r.json()["errors"]]
    assert fields == ["mapping.NOPE", "mapping.ENV", "parameters.SOURCE_RUN"], "all at once: " + r.text
    r = await client.post(
        links_path(a), json={"target_script_id": b, "outcome": "sometimes"}, headers=operator.headers
    )
    assert r.status_code == 422 and "outcome" in r.text
    # the same source, target and outcome twice: 409 naming the field; another outcome is another link
    r = await add_link(client, operator, a, b, **body)
    assert r.status_code == 409 and [e["field"] for e in r.json()["errors"]] == ["target_script_id"], r.text
    assert (
        await add_link(client, operator, a, b, outcome="failure", parameters={"ENV": "x"})
    ).status_code == 201
    # cycles: a -> b exists; b -> c is fine; c -> a would close a -> b -> c -> a
    assert (await add_link(client, operator, b, c)).status_code == 201
    r = await add_link(client, operator, c, a)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "target_script_id"
    assert "cycle" in r.text
    async with runtime.current().db.session() as session:
        assert len((await session.exec(select(ChainRun))).all()) == 0
    listed = await client.get(links_path(a), headers=viewer.headers)
    assert listed.status_code == 200 and len(listed.json()["items"]) == 2
    # an update can close a cycle too: the c -> ? link retargeted is refused and left unchanged
    d = await make_script(client, admin, "true\n")
    r = await add_link(client, operator, c, d)
    assert r.status_code == 201
    cd = r.json()["id"]
    r = await client.put(f"{links_path(c)}/{cd}", json={"target_script_id": a}, headers=admin.headers)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "target_script_id"
    r = await client.get(f"{links_path(c)}/{cd}", headers=viewer.headers)
    assert r.json()["target_script_id"] == d and r.json()["owner_name"] == operator.username
    # an update onto another link's source, target and outcome: 409 naming the field, unchanged
    r = await client.put(
        f"{links_path(a)}/{link['id']}",
        json={**body, "target_script_id": b, "outcome": "failure"},
        headers=admin.headers,
    )
    assert r.status_code == 409 and [e["field"] for e in r.json()["errors"]] == ["target_script_id"], r.text
    r = await client.put(
        f"{links_path(a)}/{link['id']}",
        json={**body, "target_script_id": b, "outcome": "any", "enabled": False},
        headers=admin.headers,
    )
    assert r.status_code == 200 and r.json()["owner_name"] == "admin" and r.json()["enabled"] is False
    assert (await client.get(f"{links_path(b)}/{link['id']}", headers=viewer.headers)).status_code == 404
    assert (await client.delete(f"{links_path(a)}/{link['id']}", headers=viewer.headers)).status_code == 403
    assert (await client.delete(f"{links_path(a)}/{link['id']}", headers=operator.headers)).status_code == 204
    assert (await client.get(f"{links_path(a)}/{link['id']}", headers=viewer.headers)).status_code == 404
    assert (await client.get(links_path(999999), headers=viewer.headers)).status_code == 404
    # two saves of one new link at once: one is stored, the other a 409 naming the field
    both = await asyncio.gather(*(add_link(client, operator, a, c, outcome="any") for _ in range(2)))
    assert sorted(r.status_code for r in both) == [201, 409], [r.text for r in both]
    refused = next(r for r in both if r.status_code == 409)
    assert [e["field"] for e in refused.json()["errors"]] == ["target_script_id"], refused.text
    actions = [e.action for e in await audit_actions("chain_link.")]
    assert actions.count("chain_link.create") == 5  # with the one of the two at once
    assert actions.count("chain_link.update") == 1 and actions.count("chain_link.delete") == 1


SOURCE = """echo "building for $ENV"
echo "::set-output name=version::1.2.$((40 + 2))"
echo "::set-output name=note::a;b \\$(id) %0Aline2"
"""
TARGET = 'echo "deploy ENV=$ENV VERSION=$VERSION FROM=$SOURCE_RUN"\n'


async def test_success_starts_the_next_script_with_mapped_values(
    client: httpx.AsyncClient, admin: LoggedIn, operator: LoggedIn
) -> None:
    await allow_local(client, admin)
    a = await make_script(
        client, admin, SOURCE, parameters=[{"name": "ENV", "type": "string", "required": True}]
    )
    b = await make_script(
        client, admin, TARGET, parameters=[*TARGET_PARAMS, {"name": "NOTE", "type": "string", "default": ""}]
    )
    unused = await make_script(client, admin, "echo never\n")
    mapping = {
        "ENV": "/parameters/ENV",
        "VERSION": "/outputs/version",
        "SOURCE_RUN": "/run/id",
        "NOTE": "/outputs/note",
    }
    assert (await add_link(client, admin, a, b, mapping=mapping)).status_code == 201
    assert (await add_link(client, admin, a, unused, outcome="failure")).status_code == 201
    first = await start(client, operator, a, "local", parameters={"ENV": "staging"})
    assert (await wait_for(client, operator, first["id"]))["status"] == "success"
    (step,) = await wait_chained(client, operator, first["id"])
    assert step["status"] == "started" and step["target_script_id"] == b
    second = await wait_for(client, operator, step["execution_id"])
    assert second["status"] == "success"
    assert second["parameters"] == {
        "ENV": "staging",
        "VERSION": "1.2.42",
        "SOURCE_RUN": first["id"],
        "NOTE": "a;b $(id) \nline2",
    }, "values are data: passed as they were printed, never evaluated"
    assert second["trigger"] == "chain" and second["trigger_ref"] == f"execution:{first['id']}"
    assert second["triggered_by_name"] == operator.username, "on behalf of the first run's user"
    logs = await client.get(f"/api/v1/executions/{second['id']}/logs", headers=operator.headers)
    assert f"deploy ENV=staging VERSION=1.2.42 FROM={first['id']}" in logs.text
    back = await chain_view(client, operator, second["id"])
    assert back["started_by"]["source_execution_id"] == first["id"] and back["started"] == []
    create = [e for e in await audit_actions("execution.create") if e.target_id == str(second["id"])]
    assert create[0].details["trigger"] == "chain" and create[0].actor_name == operator.username


async def test_deleting_a_target_script_disables_the_links_that_start_it(
    client: httpx.AsyncClient, admin: LoggedIn, operator: LoggedIn
) -> None:
    """A link whose target was deleted stayed enabled and listed as usual, and every run of its
    source recorded a chain error ("script N not found"): deleting the target disables it, and
    audits it (`chain_link.update`: the link changed with no event)."""
    await allow_local(client, admin)
    a = await make_script(client, admin, "echo source\n")
    b = await make_script(client, admin, "echo target\n")
    other = await make_script(client, admin, "echo other\n")
    r = await add_link(client, admin, a, b)
    assert r.status_code == 201, r.text
    gone = r.json()["id"]
    assert (await add_link(client, admin, a, other)).status_code == 201
    assert (await client.delete(f"/api/v1/scripts/{b}", headers=operator.headers)).status_code == 204
    listed = {
        link["target_script_id"]: link
        for link in (await client.get(links_path(a), headers=admin.headers)).json()["items"]
    }
    assert listed[b]["id"] == gone and listed[b]["enabled"] is False
    assert listed[other]["enabled"] is True
    # Said in the link's audit log, in the deleter's name (it changed with no event).
    params = {"target_type": "chain_link", "target_id": gone, "action": "chain_link.update"}
    events = (await client.get("/api/v1/audit", params=params, headers=admin.headers)).json()["items"]
    assert [(e["actor_name"], e["details"]["enabled"], e["details"]["reason"]) for e in events] == [
        (operator.username, False, "its target script was deleted")
    ]
    run = await start(client, operator, a, "local")
    assert (await wait_for(client, operator, run["id"]))["status"] == "success"
    (step,) = await wait_chained(client, operator, run["id"])
    assert step["target_script_id"] == other and step["status"] == "started", step


async def test_a_link_saved_while_its_target_is_deleted_is_never_left_enabled(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """A link saved at the moment its target was deleted: its check read the target live, the
    deletion disabled the links it found and committed, and the new link was written enabled
    into a deleted script (an error on every run of its source). The save holds the target's
    row (`db.turns.read_held`): it is refused, or written first and disabled by the deletion."""
    source = await make_script(client, admin, "echo source\n")
    for _ in range(8):
        target = await make_script(client, admin, "echo target\n")
        saved, deleted = await asyncio.gather(
            add_link(client, admin, source, target),
            client.delete(f"/api/v1/scripts/{target}", headers=admin.headers),
        )
        assert deleted.status_code == 204, deleted.text
        assert saved.status_code in (201, 422), saved.text
    listed = (await client.get(f"{links_path(source)}?limit=500", headers=admin.headers)).json()["items"]
    assert [link["id"] for link in listed if link["enabled"]] == [], listed


async def test_failure_outcome_and_masked_outputs(
    client: httpx.AsyncClient, admin: LoggedIn, operator: LoggedIn
) -> None:
    await allow_local(client, admin)
    value = "chain-secret-Zq81"
    r = await client.post(
        "/api/v1/secrets", json={"name": "CHAIN_TOKEN", "value": value}, headers=operator.headers
    )
    assert r.status_code == 201, r.text
    secret_id = r.json()["id"]
    a = await make_script(
        client,
        admin,
        'echo "::set-output name=token::$CHAIN_TOKEN"\necho "::set-output name=ok::fine"\nexit 3\n',
    )
    r = await client.post(f"/api/v1/scripts/{a}/secrets/{secret_id}", headers=operator.headers)
    assert r.status_code == 201, r.text
    on_success = await make_script(client, admin, "echo success-path\n")
    on_failure = await make_script(client, admin, 'echo "got $ENV"\n', parameters=TARGET_PARAMS)
    leaky = await make_script(client, admin, 'echo "got $ENV"\n', parameters=TARGET_PARAMS)
    assert (await add_link(client, operator, a, on_success)).status_code == 201
    ok_map = {"ENV": "/outputs/ok", "SOURCE_RUN": "/run/exit_code"}
    assert (
        await add_link(client, operator, a, on_failure, outcome="failure", mapping=ok_map)
    ).status_code == 201
    leak_map = {"ENV": "/outputs/token"}
    assert (await add_link(client, operator, a, leaky, outcome="any", mapping=leak_map)).status_code == 201
    first = await start(client, operator, a, "local")
    assert (await wait_for(client, operator, first["id"]))["status"] == "failed"
    steps = {s["target_script_id"]: s for s in await wait_chained(client, operator, first["id"], count=2)}
    assert set(steps) == {on_failure, leaky}, "a failed run does not fire the success link"
    chained = await wait_for(client, operator, steps[on_failure]["execution_id"])
    assert chained["status"] == "success" and chained["parameters"]["ENV"] == "fine"
    assert chained["parameters"]["SOURCE_RUN"] == 3
    refused = steps[leaky]
    assert refused["status"] == "error" and refused["execution_id"] is None
    assert "masked secret" in refused["error"] and value not in refused["error"]
    async with runtime.current().db.session() as session:
        runs = (await session.exec(select(Execution).where(col(Execution.script_id) == leaky))).all()
        assert runs == [], "an output that held a secret starts nothing"
        row = (await session.exec(select(ChainRun).where(col(ChainRun.target_script_id) == leaky))).one()
        assert value not in str(row.parameters)
    errors = await audit_actions("chain_run.error")
    assert len(errors) == 1 and value not in str(errors[0].details)


async def test_a_test_run_of_unsaved_content_starts_no_chained_run(
    client: httpx.AsyncClient, admin: LoggedIn, operator: LoggedIn
) -> None:
    """A test run (draft) tries content nobody saved: its result must not start the scripts
    downstream (a deploy after an untested build), while a run of the saved script still does."""
    await allow_local(client, admin)
    a = await make_script(client, admin, 'echo "::set-output name=version::saved"\n')
    b = await make_script(client, admin, 'echo "got $ENV"\n', parameters=TARGET_PARAMS)
    body = {"outcome": "any", "mapping": {"ENV": "/outputs/version"}}
    assert (await add_link(client, operator, a, b, **body)).status_code == 201
    r = await client.post(
        f"/api/v1/scripts/{a}/test-runs",
        json={"content": 'echo "::set-output name=version::draft"\n', "runner": "local"},
        headers=operator.headers,
    )
    assert r.status_code == 202, r.text
    draft = r.json()
    assert (await wait_for(client, operator, draft["id"]))["status"] == "success"
    saved = await start(client, operator, a, "local")
    assert (await wait_for(client, operator, saved["id"]))["status"] == "success"
    (step,) = await wait_chained(client, operator, saved["id"])
    assert step["status"] == "started"
    # run events are delivered in order: the test run's was handled before the saved run's
    assert (await chain_view(client, operator, draft["id"]))["started"] == []
    async with runtime.current().db.session() as session:
        runs = (await session.exec(select(Execution).where(col(Execution.script_id) == b))).all()
        assert [run.parameters["ENV"] for run in runs] == ["saved"]


async def test_exactly_once_with_several_dispatchers_and_starters(
    client: httpx.AsyncClient, admin: LoggedIn, operator: LoggedIn, no_automation_loops: None
) -> None:
    """Several processes' dispatchers and starter loops race over the same run event: each holds
    its own database connections, as separate processes would (the claims are in the database)."""
    await allow_local(client, admin)
    a = await make_script(client, admin, "echo one\n")
    b = await make_script(client, admin, "echo two\n")
    assert (await add_link(client, operator, a, b, outcome="any")).status_code == 201
    first = await start(client, operator, a, "local")
    await wait_for(client, operator, first["id"])
    db = runtime.current().db
    dispatchers = []
    for n in range(3):
        dispatcher = RunEventDispatcher(db, f"test-process-{n}")
        dispatcher.subscribe(chains.SUBSCRIBER, chains.on_run_events)
        dispatchers.append(dispatcher)
    await asyncio.gather(*(d.deliver() for d in dispatchers))
    await asyncio.gather(*(chains.start_due(db) for _ in range(4)))
    await asyncio.gather(*(d.deliver() for d in dispatchers), *(chains.start_due(db) for _ in range(2)))
    async with db.session() as session:
        rows = (await session.exec(select(ChainRun))).all()
        assert len(rows) == 1 and rows[0].status == "started"
        runs = (await session.exec(select(Execution).where(col(Execution.script_id) == b))).all()
        assert [r.id for r in runs] == [rows[0].execution_id]


async def test_approval_and_rbac_of_chained_runs(
    client: httpx.AsyncClient, admin: LoggedIn, operator: LoggedIn, viewer: LoggedIn
) -> None:
    await allow_local(client, admin)
    a = await make_script(client, admin, "echo first\n")
    b = await make_script(client, admin, "echo approved-chain\n")
    r = await client.put(f"/api/v1/scripts/{b}/approval", json={"required": 1}, headers=admin.headers)
    assert r.status_code == 200, r.text
    assert (await add_link(client, operator, a, b)).status_code == 201
    # a viewer may run scripts: the chained run is theirs, and waits for someone else's approval
    first = await start(client, viewer, a, "local")
    (step,) = await wait_chained(client, viewer, first["id"])
    held = await wait_for(client, viewer, step["execution_id"], {"awaiting_approval"})
    assert held["triggered_by_name"] == viewer.username and held["trigger"] == "chain"
    r = await client.post(
        f"/api/v1/executions/{held['id']}/approve", json={"comment": ""}, headers=viewer.headers
    )
    assert r.status_code == 403
    # the link's author chose what it starts: someone else approves (`test_the_author_of_a_link...`)
    approver = await make_user(client, "operator")
    r = await client.post(
        f"/api/v1/executions/{held['id']}/approve", json={"comment": "ok"}, headers=approver.headers
    )
    assert r.status_code == 200, r.text
    assert (await wait_for(client, viewer, held["id"]))["status"] == "success"
    # the link's author deactivated: the link stops (refused, audited), nothing starts
    r = await client.put(f"/api/v1/users/{operator.id}", json={"is_active": False}, headers=admin.headers)
    assert r.status_code == 200, r.text
    second = await start(client, admin, a, "local")
    (step,) = await wait_chained(client, admin, second["id"])
    assert step["status"] == "refused" and "author" in step["error"] and step["execution_id"] is None
    assert len(await audit_actions("chain_run.refused")) == 1


async def test_the_author_of_a_link_may_reject_but_not_approve_a_run_it_started(
    client: httpx.AsyncClient, admin: LoggedIn, operator: LoggedIn, viewer: LoggedIn
) -> None:
    """Four eyes: the operator who links a script to one that needs approval chose the run's
    target and values, with the first run's user (a viewer, a schedule's owner) as its requester;
    approving it alone ran `prod-db` with no second pair of eyes. Refused as for the author of the
    version a run executes, also once the link is deleted or saved by someone else since."""
    await allow_local(client, admin)
    a = await make_script(client, admin, "echo first\n")
    b = await make_script(
        client, admin, 'echo "deleting $TARGET"\n', parameters=[{"name": "TARGET", "type": "string"}]
    )
    r = await client.put(f"/api/v1/scripts/{b}/approval", json={"required": 1}, headers=admin.headers)
    assert r.status_code == 200, r.text
    r = await add_link(client, operator, a, b, parameters={"TARGET": "prod-db"})
    assert r.status_code == 201, r.text
    link = r.json()["id"]
    first = await start(client, viewer, a, "local")
    (step,) = await wait_chained(client, viewer, first["id"])
    held = await wait_for(client, viewer, step["execution_id"], {"awaiting_approval"})
    assert held["triggered_by_name"] == viewer.username and held["parameters"] == {"TARGET": "prod-db"}
    # another operator saves the link, then deletes it: its author at the firing stays refused
    other = await make_user(client, "operator")
    r = await client.put(f"{links_path(a)}/{link}", json={"enabled": False}, headers=other.headers)
    assert r.status_code == 200 and r.json()["owner_name"] == other.username, r.text
    assert (await client.delete(f"{links_path(a)}/{link}", headers=other.headers)).status_code == 204
    approve = f"/api/v1/executions/{held['id']}/approve"
    r = await client.post(approve, json={"comment": "lgtm"}, headers=operator.headers)
    assert r.status_code == 403, r.text
    assert r.json()["detail"] == (
        'you saved the "then run" link that started this run, which chose what it runs: '
        "someone else must approve it (you may still reject it)"
    )
    r = await client.get(f"/api/v1/executions/{held['id']}", headers=viewer.headers)
    assert r.json()["status"] == "awaiting_approval", r.text
    r = await client.post(approve, json={"comment": "ok"}, headers=other.headers)
    assert r.status_code == 200, r.text
    assert (await wait_for(client, viewer, held["id"]))["status"] == "success"
    # ... and may reject one: a second firing, the link saved again by its first author
    r = await add_link(client, operator, a, b, parameters={"TARGET": "prod-db"})
    assert r.status_code == 201, r.text
    second = await start(client, viewer, a, "local")
    (step,) = await wait_chained(client, viewer, second["id"])
    await wait_for(client, viewer, step["execution_id"], {"awaiting_approval"})
    r = await client.post(
        f"/api/v1/executions/{step['execution_id']}/reject", json={"comment": "no"}, headers=operator.headers
    )
    assert r.status_code == 200 and r.json()["status"] == "rejected", r.text


async def wait_rows(source_id: int, count: int, timeout: float = 60) -> list[ChainRun]:
    """The chain_runs rows of a source run once the dispatcher has written `count` of them."""

    async def written() -> list[ChainRun] | None:
        async with runtime.current().db.session() as session:
            mine = col(ChainRun.source_execution_id) == source_id
            query = select(ChainRun).where(mine).order_by(col(ChainRun.id))
            rows = list((await session.exec(query)).all())
        return rows if len(rows) >= count else None

    return await until(written, f"run {source_id}: {count} chain rows", timeout, 0.1)


async def test_bad_values_runaway_chains_and_lost_starts(
    client: httpx.AsyncClient, admin: LoggedIn, operator: LoggedIn, no_automation_loops: None
) -> None:
    """The starter loop is driven by the test: a value the target's resolver refuses stops the
    link; a chain deeper than MAX_DEPTH stops; a start whose bookkeeping was lost is recovered."""
    await allow_local(client, admin)
    db = runtime.current().db
    a = await make_script(client, admin, "echo a\n")
    typed = await make_script(client, admin, "echo typed\n", parameters=TARGET_PARAMS)
    plain = await make_script(client, admin, "echo plain\n")
    bad_map = {"ENV": "/run/status", "SOURCE_RUN": "/run/status"}  # "success" is no integer
    assert (await add_link(client, operator, a, typed, mapping=bad_map)).status_code == 201
    assert (await add_link(client, operator, a, plain)).status_code == 201
    first = await start(client, operator, a, "local")
    await wait_for(client, operator, first["id"])
    rows = await wait_rows(first["id"], 2)
    assert [r.status for r in rows] == ["pending", "pending"]
    assert rows[0].parameters == {"ENV": "success", "SOURCE_RUN": "success"}
    # the process that claims the second row dies after its run committed, before the bookkeeping
    async with db.session() as session:
        row = await session.get(ChainRun, rows[1].id)
        assert row is not None
        row.status, row.started_at = "starting", utcnow() - timedelta(minutes=5)
        await session.commit()
        lost = await start_for(session, operator.id, f"execution:{first['id']}", Trigger.chain, plain, {})
    assert await chains.start_due(db) == 1
    assert await chains.recover_lost(db) == 1
    typed_row, plain_row = await wait_rows(first["id"], 2)
    assert typed_row.status == "error" and "SOURCE_RUN" in (typed_row.error or "")
    assert plain_row.status == "started" and plain_row.execution_id == lost.id
    async with db.session() as session:
        assert (await session.exec(select(Execution).where(col(Execution.script_id) == typed))).all() == []
    # a run deep in a chain: its links stop at MAX_DEPTH (a guard behind the cycle check)
    deep = await make_script(client, admin, "echo deep\n")
    assert (await add_link(client, operator, a, deep)).status_code == 201
    async with db.session() as session:
        session.add(
            ChainRun(
                source_execution_id=first["id"],
                target_script_id=a,
                execution_id=first["id"],
                status="started",
                depth=chains.MAX_DEPTH,
            )
        )
        await session.commit()
        await chains.on_run_events(
            session, [RunEventMessage(0, first["id"], "execution.finished", "success", {}, utcnow())]
        )
        await session.commit()
    rows = await wait_rows(first["id"], 3)
    assert rows[-1].target_script_id == deep and rows[-1].status == "error"
    assert f"longer than {chains.MAX_DEPTH}" in (rows[-1].error or "")
