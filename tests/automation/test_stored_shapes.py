"""Rows whose JSON settings are stored in a shape the code does not read (as an older version or a
manual edit leaves them: db/stored_shapes.py) list and read, say what is wrong, are refused at fire
or send time saying the same, and can be fixed or deleted. SQLite and PostgreSQL."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest
from sqlalchemy.exc import DBAPIError
from sqlmodel import col, delete, select, update

from opscraft import runtime
from opscraft.db.models import (
    AppSetting,
    AuditEvent,
    ChainLink,
    ChainRun,
    Execution,
    NotificationChannel,
    NotificationDelivery,
    NotificationRule,
    Schedule,
    Script,
    User,
    WebhookTrigger,
)
from opscraft.db.types import utcnow
from opscraft.execution import store
from opscraft.services import app_settings, chains, notifications, schedules
from opscraft.services.notifications import SendError
from tests.conftest import LoggedIn
from tests.executions.conftest import make_script, start, wait_for
from tests.history import seeding
from tests.history.seeding import stored_on_sqlite
from tests.waiting import until

MODELS = {
    "webhook": WebhookTrigger,
    "link": ChainLink,
    "schedule": Schedule,
    "channel": NotificationChannel,
    "rule": NotificationRule,
}

# (kind of row, column, value stored, a good value a save sends to fix it, the problem's start)
CASES = [
    ("webhook", "mapping", [1, 2], {}, "mapping: stored as a list ([1, 2]), not an object of text"),
    ("webhook", "mapping", {"P": 5}, {"P": "/p"}, "mapping: stored with 'P' as a number (5)"),
    ("webhook", "parameters", ["x"], {}, "parameters: stored as a list (['x']), not an object"),
    ("webhook", "run_options", "check", None, "run_options: stored as text ('check')"),
    ("link", "mapping", "text", {}, "mapping: stored as text ('text')"),
    ("link", "parameters", [1], {}, "parameters: stored as a list ([1])"),
    ("schedule", "parameters", [1], {}, "parameters: stored as a list ([1])"),
    ("schedule", "run_options", 3, None, "run_options: stored as a number (3)"),
    (
        "channel",
        "config",
        ["a"],
        {"url": "https://hooks.example.com/x"},
        "config: stored as a list, not an object",
    ),
    ("rule", "events", "failure", None, "events: stored as text ('failure'), not a list of text"),
    # enum-like text, read as the choice that does least
    ("channel", "kind", "sms", "webhook", "kind: stored as 'sms', none of webhook, slack, email"),
    ("schedule", "missed_policy", "later", "skip", "missed_policy: stored as 'later', none of run_once"),
    ("schedule", "overlap_policy", "x", "queue", "overlap_policy: stored as 'x', none of skip, queue"),
    ("link", "outcome", "maybe", "failure", "outcome: stored as 'maybe', none of success, failure, any"),
    (
        "webhook",
        "signature_scheme",
        "bitbucket",
        "opscraft",
        "signature_scheme: stored as 'bitbucket', none of opscraft, github, gitlab",
    ),
]
# what an enum-like column is read as meanwhile (a JSON column: its empty value)
READ_AS = {
    "kind": "webhook",
    "missed_policy": "skip",
    "overlap_policy": "skip",
    "outcome": "success",
    "signature_scheme": "opscraft",
}
# PostgreSQL's enum types hold none but their values: such a row exists on SQLite only
NATIVE_ENUMS = {"kind", "missed_policy", "overlap_policy"}


async def _script(client: httpx.AsyncClient, admin: LoggedIn) -> int:
    """An active bash script declaring the string parameter P."""
    return await make_script(
        client, admin, "echo hi\n", parameters=[{"name": "P", "type": "string", "default": "x"}]
    )


async def _make(client: httpx.AsyncClient, admin: LoggedIn, kind: str) -> tuple[int, str, str, Any]:
    """A row of `kind` saved through the API: (its id, its list's path, its own path, extra)."""
    if kind == "channel" or kind == "rule":
        body = {"name": "ops", "kind": "webhook", "config": {"url": "https://hooks.example.com/a"}}
        r = await client.post("/api/v1/notifications/channels", json=body, headers=admin.headers)
        assert r.status_code == 201, r.text
        channel_id = r.json()["id"]
        if kind == "channel":
            path = "/api/v1/notifications/channels"
            return channel_id, path, f"{path}/{channel_id}", None
        body = {"channel_id": channel_id, "events": ["failure"]}
        r = await client.post("/api/v1/notifications/rules", json=body, headers=admin.headers)
        assert r.status_code == 201, r.text
        return r.json()["id"], "/api/v1/notifications/rules", "", channel_id
    script_id = await _script(client, admin)
    if kind == "link":
        body = {"target_script_id": await _script(client, admin)}
        path = f"/api/v1/scripts/{script_id}/chains"
    else:
        body = {"name": "n", "cron": "0 3 * * *"} if kind == "schedule" else {"name": "n"}
        path = f"/api/v1/scripts/{script_id}/{kind}s"
    r = await client.post(path, json=body, headers=admin.headers)
    assert r.status_code == 201, r.text
    return r.json()["id"], path, f"{path}/{r.json()['id']}", r.json()


async def _store(kind: str, row_id: int, column: str, value: Any) -> None:
    """Write `value` into the row's JSON `column` as an older version or a manual edit would."""
    model: Any = MODELS[kind]
    async with runtime.current().db.session() as session:
        await session.exec(update(model).where(col(model.id) == row_id).values({column: value}))
        await session.commit()


def _problem_of(kind: str, shown: dict[str, Any]) -> str | None:
    return shown["paused_reason"] if kind == "schedule" else shown["stored_problem"]


@pytest.mark.parametrize(("kind", "column", "stored", "fix", "said"), CASES)
async def test_a_row_stored_in_another_shape_lists_reads_says_why_and_is_fixed_or_deleted(
    client: httpx.AsyncClient,
    admin: LoggedIn,
    viewer: LoggedIn,
    no_automation_loops: None,
    backend: str,
    kind: str,
    column: str,
    stored: Any,
    fix: Any,
    said: str,
) -> None:
    """Every list and read holding such a row was a 500. It now lists and reads with the column
    empty and `stored_problem` (a schedule's `paused_reason`) saying what was stored; a change
    that keeps the column is a 422 naming it, one that sends it anew clears the problem."""
    row_id, list_path, own_path, _ = await _make(client, admin, kind)
    if backend == "postgresql" and column in NATIVE_ENUMS:
        with pytest.raises(DBAPIError, match="invalid input value for enum"):
            await _store(kind, row_id, column, stored)
        return
    await _store(kind, row_id, column, stored)
    reads = [list_path] + ([own_path] if own_path else [])
    if kind == "schedule":
        reads.append("/api/v1/schedules")
    for url in reads:
        r = await client.get(url, headers=(viewer if kind not in ("channel", "rule") else admin).headers)
        assert r.status_code == 200, (url, r.text)
        shown = r.json()["items"][0] if "items" in r.json() else r.json()
        problem = _problem_of(kind, shown) or ""
        read_as = READ_AS.get(column, {"events": [], "run_options": None}.get(column, {}))
        assert said in problem and problem.endswith(f", read as {json.dumps(read_as)} (edit or delete it)")
        assert shown[column] == read_as, shown
    if own_path:
        r = await client.put(own_path, json={"name": "renamed"}, headers=admin.headers)
        assert r.status_code == 422, r.text
        assert r.json()["errors"][0]["field"] == column and said.split(": ", 1)[1] in r.text, r.text
        r = await client.put(own_path, json={column: fix}, headers=admin.headers)
        assert r.status_code == 200, r.text
        assert _problem_of(kind, r.json()) is None, r.text
        r = await client.get(own_path, headers=admin.headers)
        assert r.status_code == 200 and _problem_of(kind, r.json()) is None, r.text
        await _store(kind, row_id, column, stored)
    r = await client.delete(own_path or f"{list_path}/{row_id}", headers=admin.headers)
    assert r.status_code == 204, r.text
    r = await client.get(list_path, headers=admin.headers)
    assert r.status_code == 200 and r.json()["items"] == [], r.text


async def test_a_webhook_stored_in_another_shape_refuses_its_calls_saying_why(
    client: httpx.AsyncClient, admin: LoggedIn, no_automation_loops: None
) -> None:
    """A call of it was a 500 (or ran with what the code guessed): now a 409 saying what to edit."""
    hook_id, _, _, created = await _make(client, admin, "webhook")
    await _store("webhook", hook_id, "mapping", [1, 2])
    r = await client.post(created["url_path"], json={"p": 1})
    assert r.status_code == 409, r.text
    assert "the webhook's stored settings cannot be read: mapping: stored as a list" in r.text
    said = "stored as a list ([1, 2]), not an object of text values"
    assert r.json()["errors"] == [{"field": "mapping", "message": said}], r.text


async def test_a_schedule_stored_in_another_shape_is_paused_saying_why(
    client: httpx.AsyncClient, admin: LoggedIn, no_automation_loops: None
) -> None:
    schedule_id, _, own_path, _ = await _make(client, admin, "schedule")
    db = runtime.current().db
    async with db.session() as session:
        values = {"parameters": ["x"], "next_fire_at": utcnow()}
        await session.exec(update(Schedule).where(col(Schedule.id) == schedule_id).values(values))
        await session.commit()
    assert await schedules.tick(db) == 0
    shown = (await client.get(own_path, headers=admin.headers)).json()
    assert shown["enabled"] is False
    assert shown["paused_reason"].startswith("paused: parameters: stored as a list (['x'])"), shown
    r = await client.put(own_path, json={"parameters": {}}, headers=admin.headers)
    assert r.status_code == 200 and r.json()["enabled"] is True and r.json()["paused_reason"] is None


async def test_a_channel_stored_in_another_shape_fails_its_sends_saying_why(
    client: httpx.AsyncClient, admin: LoggedIn, no_automation_loops: None
) -> None:
    channel_id, _, own_path, _ = await _make(client, admin, "channel")
    await _store("channel", channel_id, "config", ["https://hooks.example.com/tok-3141"])
    r = await client.post(f"{own_path}/test", headers=admin.headers)
    assert r.status_code == 409 and "tok-3141" not in r.text, r.text
    listed = await client.get("/api/v1/notifications/channels", headers=admin.headers)
    assert listed.json()["items"][0]["stored_problem"] and "tok-3141" not in listed.text, listed.text
    assert "the channel's stored settings cannot be read (config: stored as a list, not an object" in r.text
    assert r.json()["errors"] == [{"field": "config", "message": "stored as a list, not an object"}], r.text
    async with runtime.current().db.session() as session:
        channel = await session.get(NotificationChannel, channel_id)
        assert channel is not None
        with pytest.raises(SendError, match="config: stored as a list"):
            notifications.stored_config(channel)


async def test_a_link_stored_in_another_shape_fires_as_an_error_saying_why(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """The finished source run's firing of the link is an error row naming the column (the
    mapping read as stored was a 500 in the run-event delivery, retried for ever)."""
    r = await client.put("/api/v1/settings", json={"local_runner_enabled": True}, headers=admin.headers)
    assert r.status_code == 200, r.text
    link_id, _, _, created = await _make(client, admin, "link")
    await _store("link", link_id, "mapping", "text")
    await start(client, admin, created["script_id"], "local")

    async def fired() -> ChainRun | None:
        async with runtime.current().db.session() as session:
            return (await session.exec(select(ChainRun).where(col(ChainRun.link_id) == link_id))).first()

    row = await until(fired, "the link to fire", 60, 0.1)
    assert row.status == "error" and "the link's stored settings cannot be read: mapping" in (row.error or "")


async def test_a_link_mapping_the_parameters_of_a_run_whose_parameters_cannot_be_read_is_an_error(
    client: httpx.AsyncClient, admin: LoggedIn, no_automation_loops: None
) -> None:
    """The source run's parameters stored as a list read as `{}`: a link mapping `P` from
    `/parameters/P` started its target with P's default, silently. Its chain run is an error
    naming the source's `parameters`; a link mapping nothing from them still fires."""
    mapped_id, _, _, created = await _make(client, admin, "link")
    source_script = created["script_id"]
    body = {"target_script_id": created["target_script_id"], "outcome": "any"}
    r = await client.post(f"/api/v1/scripts/{source_script}/chains", json=body, headers=admin.headers)
    assert r.status_code == 201, r.text
    plain_id = r.json()["id"]
    await _store("link", mapped_id, "mapping", {"P": "/parameters/P"})
    run_id = await seeding.execution(source_script, utcnow())
    async with runtime.current().db.session() as session:
        await session.exec(update(Execution).where(col(Execution.id) == run_id).values(parameters=[1]))
        await session.commit()
    async with runtime.current().db.session() as session:
        assert await chains._fire_links(session, run_id)
        await session.commit()
        rows = {r.link_id: r for r in (await session.exec(select(ChainRun))).all()}
    said = "the source run's stored parameters cannot be read: parameters: stored as a list ([1])"
    assert rows[mapped_id].status == "error" and said in (rows[mapped_id].error or ""), rows[mapped_id]
    assert rows[plain_id].status == "pending" and rows[plain_id].error is None, rows[plain_id]


async def test_a_delivery_of_a_status_none_of_todays_is_listed_under_the_failed_it_reads_as(
    client: httpx.AsyncClient, admin: LoggedIn, no_automation_loops: None
) -> None:
    """A delivery whose stored status is `x` (SQLite) reads as failed, but the delivery log's
    `status=failed` skipped it (`db.read_as`: the filter takes it as it reads)."""
    channel_id, _, _, _ = await _make(client, admin, "channel")
    async with runtime.current().db.session() as session:
        rows = [
            NotificationDelivery(channel_id=channel_id, event_key=f"k{i}", event="failure", status="failed")
            for i in range(2)
        ]
        session.add_all(rows)
        await session.commit()
        ids = sorted(int(row.id or 0) for row in rows)
    odd = update(NotificationDelivery).where(col(NotificationDelivery.id) == ids[0]).values(status="x")
    if not await stored_on_sqlite(odd):
        return
    url = "/api/v1/notifications/deliveries"
    r = await client.get(url, params={"status": "failed"}, headers=admin.headers)
    assert r.status_code == 200 and sorted(d["id"] for d in r.json()["items"]) == ids, r.text
    assert r.json()["total"] == 2, r.text
    r = await client.get(url, params={"status": "delivered"}, headers=admin.headers)
    assert r.json()["items"] == [] and r.json()["total"] == 0, r.text


# (column, value stored, the problem's start) of a script's JSON settings
SCRIPT_CASES = [
    ("parameters", "P", "parameters: stored as text ('P'), not a list of object items"),
    ("parameters", [{"type": "string"}], "parameters: declaration 0 has no name"),
    ("parameters", [{"name": "P", "type": "text"}], "parameters: P: type 'text' is none of string"),
    ("parameters", [{"name": "P", "type": "choice", "options": "a,b"}], "parameters: P: options are"),
    ("tags", "a,b", "tags: stored as text ('a,b'), not a list of text items"),
]


async def test_a_script_stored_in_another_shape_lists_reads_and_refuses_runs_saying_why(
    client: httpx.AsyncClient, admin: LoggedIn, viewer: LoggedIn
) -> None:
    """Its parameters were read as stored by every list (the scripts' list and page, the API),
    a 500; a run of it would start without the declarations checking its values. It lists and
    reads with `stored_problem` saying what was stored, a run is a 409 saying the same, and a
    save sending the column anew clears it. Each of `SCRIPT_CASES` on a script of its own in one
    runtime (one each cost more than the checks: docs/benchmarks.md, session 51)."""
    for column, stored, said in SCRIPT_CASES:
        script_id = await _script(client, admin)
        async with runtime.current().db.session() as session:
            await session.exec(update(Script).where(col(Script.id) == script_id).values({column: stored}))
            await session.commit()
        for url in ["/api/v1/scripts", f"/api/v1/scripts/{script_id}"]:
            r = await client.get(url, headers=viewer.headers)
            assert r.status_code == 200, (url, r.text)
            body = r.json()
            (shown,) = [x for x in body["items"] if x["id"] == script_id] if "items" in body else [body]
            assert said in (shown["stored_problem"] or ""), shown
        if column == "parameters":  # what a run reads of it
            r = await client.post("/api/v1/executions", json={"script_id": script_id}, headers=admin.headers)
            assert r.status_code == 409 and "cannot be read: " + said in r.json()["detail"], r.text
            ((field, message),) = [(e["field"], e["message"]) for e in r.json()["errors"]]
            assert field == "script.parameters" and said == f"parameters: {message}"[: len(said)], r.text
        fix = {"parameters": [{"name": "P", "type": "string"}]} if column == "parameters" else {"tags": ["a"]}
        r = await client.put(f"/api/v1/scripts/{script_id}", json=fix, headers=admin.headers)
        assert r.status_code == 200 and r.json()["stored_problem"] is None, r.text
        r = await client.get(f"/api/v1/scripts/{script_id}", headers=admin.headers)
        assert r.json()["stored_problem"] is None and r.json()[column], r.text


async def test_runs_and_audit_events_stored_in_another_shape_still_list(
    client: httpx.AsyncClient, admin: LoggedIn, no_automation_loops: None
) -> None:
    """A run's parameters and an audit event's details stored as lists were 500s of the history
    and the audit log; they list with the column empty."""
    script_id = await _script(client, admin)
    run = await start(client, admin, script_id, "local")
    await wait_for(client, admin, run["id"])  # its end's audit event written
    async with runtime.current().db.session() as session:
        await session.exec(update(Execution).where(col(Execution.id) == run["id"]).values(parameters=[1]))
        created = update(AuditEvent).where(col(AuditEvent.action) == "script.create")
        await session.exec(created.values(details=["x"]))
        await session.commit()
    for url in ["/api/v1/executions", f"/api/v1/executions/{run['id']}"]:
        r = await client.get(url, headers=admin.headers)
        assert r.status_code == 200, (url, r.text)
        shown = r.json()["items"][0] if "items" in r.json() else r.json()
        assert shown["parameters"] == {}, shown
    r = await client.get("/api/v1/audit", headers=admin.headers)
    assert r.status_code == 200, r.text
    assert [e["details"] for e in r.json()["items"] if e["action"] == "script.create"] == [{}], r.text


async def test_a_run_whose_status_is_none_of_todays_lists_as_failed_on_sqlite(
    client: httpx.AsyncClient, admin: LoggedIn, no_automation_loops: None
) -> None:
    """A run's status `x` (SQLite holds any text) was a 500 of the history and the run's page; it
    reads as failed (neither run, claimed nor awaited). PostgreSQL's enum type refuses it."""
    script_id = await _script(client, admin)
    run = await start(client, admin, script_id, "local")
    await wait_for(client, admin, run["id"])
    if not await stored_on_sqlite(update(Execution).where(col(Execution.id) == run["id"]).values(status="x")):
        return
    for url in ["/api/v1/executions", f"/api/v1/executions/{run['id']}"]:
        r = await client.get(url, headers=admin.headers)
        assert r.status_code == 200, (url, r.text)
        shown = r.json()["items"][0] if "items" in r.json() else r.json()
        assert shown["status"] == "failed", shown


async def _store_setting(key: str, value: Any) -> None:
    """Store `value` as setting `key`'s row, in place of any row there (deleted, then added: an
    ORM update of `True` to `1` is no change to SQLAlchemy, which compares them equal)."""
    async with runtime.current().db.session() as session:
        await session.exec(delete(AppSetting).where(col(AppSetting.key) == key))
        session.add(AppSetting(key=key, value=value))
        await session.commit()


# (setting, value stored, what it is read as meanwhile)
SETTING_CASES = [
    ("local_runner_enabled", "true", False),  # bool("false") was True: text is no switch
    ("local_runner_enabled", 1, False),
    ("output_retention_days", "30", 0),  # int("abc") was a 500 of every read
    ("warm_pool_size", [2], app_settings.KNOWN["warm_pool_size"][1]),
    ("output_retention_gb", -5, 0.0),
    ("local_runner_role", "root", "operator"),
]


async def test_a_setting_stored_in_another_shape_reads_as_its_default_logged(
    client: httpx.AsyncClient, admin: LoggedIn, caplog: pytest.LogCaptureFixture
) -> None:
    """A settings row today's rules refuse (an older version's, a manual edit's) was read with
    the setting's type as a function: text `false` switched a switch on, `abc` was a 500 of
    every read (the settings, each run's local-runner check). It reads as its default with a
    logged warning, and a save replaces it. Each of `SETTING_CASES` in turn in one runtime (one
    each cost more than the checks: docs/benchmarks.md, session 51), written over the row a
    save of the one before left."""
    for key, stored, read_as in SETTING_CASES:
        await _store_setting(key, stored)
        app_settings.forget()
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="opscraft.services.app_settings"):
            r = await client.get("/api/v1/settings", headers=admin.headers)
        assert r.status_code == 200 and r.json()[key] == read_as, r.text
        assert f"setting {key}: the stored value {stored!r} must be" in caplog.text
        saved = {"local_runner_role": "admin"}.get(key, True if isinstance(read_as, bool) else 1)
        r = await client.put("/api/v1/settings", json={key: saved}, headers=admin.headers)
        assert r.status_code == 200 and r.json()[key] == saved, r.text
        async with runtime.current().db.session() as session:
            row = await session.get(AppSetting, key)
            assert row is not None and row.value == saved, key


async def _stored_as_superuser(username: str, backend: str) -> bool:
    """Store the role 'superuser' for `username`, as a manual edit would: True on SQLite, which
    holds any text; on PostgreSQL, whose enum refuses the text (checked), False."""
    stored = update(User).where(col(User.username) == username).values(role="superuser")
    async with runtime.current().db.session() as session:
        if backend == "postgresql":
            with pytest.raises(DBAPIError, match="invalid input value for enum"):
                await session.exec(stored)
            return False
        await session.exec(stored)
        await session.commit()
    return True


async def test_a_role_none_of_todays_reads_as_viewer_saying_so(
    client: httpx.AsyncClient, admin: LoggedIn, viewer: LoggedIn, backend: str
) -> None:
    """A user whose stored role is none of today's (SQLite holds any text) was a 500 of the user
    list and of each of their requests: they list as a viewer saying what was stored, may do
    what a viewer may, and an admin's role change replaces it. PostgreSQL's enum refuses it."""
    if not await _stored_as_superuser(viewer.username, backend):
        return
    r = await client.get("/api/v1/users", headers=admin.headers)
    assert r.status_code == 200, r.text
    (shown,) = [u for u in r.json()["items"] if u["username"] == viewer.username]
    assert shown["role"] == "viewer", shown
    assert shown["stored_problem"].startswith("role: stored as 'superuser', none of viewer, operator, admin")
    r = await client.post("/api/v1/scripts", json={"name": "x", "content": "true\n"}, headers=viewer.headers)
    assert r.status_code == 403, r.text
    r = await client.put(f"/api/v1/users/{shown['id']}", json={"role": "operator"}, headers=admin.headers)
    assert r.status_code == 200 and r.json()["stored_problem"] is None, r.text


@pytest.mark.parametrize(
    ("column", "stored", "read_as"),
    [("tags", "a,b", []), ("parameters", "P=1", {}), ("status", "gone", "draft")],
)
async def test_a_script_saved_with_the_value_its_stored_one_reads_as_is_fixed(
    client: httpx.AsyncClient, admin: LoggedIn, backend: str, column: str, stored: Any, read_as: Any
) -> None:
    """Defect: a save sending what the unreadable value reads as (`[]` for tags stored as text,
    `draft` for a status none of today's) was taken for no change: 200, nothing written, the
    stored value and its problem kept. Such a save replaces it."""
    script_id = await _script(client, admin)
    async with runtime.current().db.session() as session:
        stored_it = update(Script).where(col(Script.id) == script_id).values({column: stored})
        if backend == "postgresql" and column == "status":
            with pytest.raises(DBAPIError, match="invalid input value for enum"):
                await session.exec(stored_it)
            return
        await session.exec(stored_it)
        await session.commit()
    url = f"/api/v1/scripts/{script_id}"
    assert (await client.get(url, headers=admin.headers)).json()["stored_problem"], "not stored"
    r = await client.put(url, json={column: read_as}, headers=admin.headers)
    assert r.status_code == 200 and r.json()["stored_problem"] is None, r.text
    r = await client.get(url, headers=admin.headers)
    assert r.json()["stored_problem"] is None and r.json()[column] == read_as, r.text


async def test_a_role_set_to_viewer_replaces_a_role_none_of_todays(
    client: httpx.AsyncClient, admin: LoggedIn, viewer: LoggedIn, backend: str
) -> None:
    """Defect: `{"role": "viewer"}` for a user stored as 'superuser' (read as viewer) was taken
    for no change: 200, nothing written or audited, the problem kept, and the Users page's edit
    could not fix it but by two role changes. PostgreSQL's enum refuses the text."""
    if not await _stored_as_superuser(viewer.username, backend):
        return
    r = await client.get("/api/v1/users", params={"search": viewer.username}, headers=admin.headers)
    (shown,) = r.json()["items"]
    assert shown["stored_problem"], shown
    r = await client.put(f"/api/v1/users/{shown['id']}", json={"role": "viewer"}, headers=admin.headers)
    assert r.status_code == 200 and r.json()["stored_problem"] is None, r.text
    async with runtime.current().db.session() as session:
        row = (await session.exec(select(User).where(col(User.id) == shown["id"]))).one()
        assert row.role == "viewer"
    r = await client.get("/api/v1/audit", params={"action": "user.update"}, headers=admin.headers)
    assert [e["target_id"] for e in r.json()["items"]] == [str(shown["id"])], r.text


async def test_the_worker_reads_a_warm_pool_size_stored_in_another_shape_as_its_default(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """The worker read `warm_pool_size` with `int()`: a row of `"x"` (a manual edit's) stopped it,
    and with it the server, from starting. It reads such a row as the default, as the settings do.
    Each stored shape in turn in one runtime (one each cost more than the checks:
    docs/benchmarks.md, session 51)."""
    worker = runtime.current().worker
    assert worker is not None
    for stored in ["x", "3", [2], -1, 10**6, True]:
        await _store_setting("warm_pool_size", stored)
        default = app_settings.KNOWN["warm_pool_size"][1]
        assert worker.store.run(store.warm_pool_size) == default, stored
