"""Every collection of the API pages alike: `{items, total, skip, limit}`, `skip` and `limit`
(at most 500) checked with a 422 naming the field, and a stable order.

Field report (API consistency): the approvals, chains, inventories, notification channels and
rules, schedules, webhooks, workers, a script's secrets and its Terraform states answered bare
JSON arrays of every row, while the scripts, executions, audit, users, secrets and tokens lists
paged; a client could neither page them nor bound an answer, and `?limit=` was refused as unknown.
The warm pools answered `{items}` of every live worker and refused `skip` and `limit` too.
Each list here is filled with more rows than one page, read page by page and compared with the
whole list, on SQLite and PostgreSQL (the `backend` fixture behind `client`).
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest

from opscraft import runtime
from opscraft.db.models import NotificationRule, RegisteredWorker, Role, TerraformState, User
from opscraft.db.types import utcnow
from opscraft.services import notifications, paging, shared_inventories
from opscraft.services.actor import Actor
from opscraft.services.errors import Invalid
from opscraft.ui.widgets import call_all
from tests.conftest import IN_MODULE_LOOP, LoggedIn, Reader, make_user

PAGE = 2  # items per page read: every list below holds more than one page of them
COUNT = 5  # rows each list is filled with


@dataclass
class Filled:
    """A list filled with `COUNT` rows: its URL, who reads it, how an item is told apart, how one
    more row is added (`add(name)`, `name` sorting before every other name), and whether a row
    added lands after every row there (lists in creation order)."""

    url: str
    headers: dict[str, str]
    key: Callable[[dict[str, Any]], Any]
    add: Callable[[str], Awaitable[None]]
    appends: bool
    params: dict[str, str] = field(default_factory=dict)  # the list's own query parameters


async def _ok(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code in (200, 201, 202), r.text
    return dict(r.json())


async def _script(client: httpx.AsyncClient, admin: LoggedIn, name: str, **fields: Any) -> int:
    body = {"name": name, "script_type": "bash", "content": "echo\n", "status": "active", **fields}
    return int((await _ok(await client.post("/api/v1/scripts", json=body, headers=admin.headers)))["id"])


async def _held_run(
    client: httpx.AsyncClient, admin: LoggedIn, requester: LoggedIn, required: int = 1
) -> int:
    """A run of a new script that needs `required` approvals: it waits."""
    local = {"local_runner_enabled": True}  # the run waits before any runner is used
    await _ok(await client.put("/api/v1/settings", json=local, headers=admin.headers))
    script_id = await _script(client, admin, f"held-{secrets.token_hex(4)}")
    url = f"/api/v1/scripts/{script_id}/approval"
    await _ok(await client.put(url, json={"required": required}, headers=admin.headers))
    run = {"script_id": script_id, "runner": "local"}
    made = await _ok(await client.post("/api/v1/executions", json=run, headers=requester.headers))
    assert made["status"] == "awaiting_approval", made
    return int(made["id"])


async def _db_add(row: Any) -> None:
    async with runtime.current().db.session() as session:
        session.add(row)
        await session.commit()


async def _fill(kind: str, client: httpx.AsyncClient, admin: LoggedIn, operator: LoggedIn) -> Filled:
    """`COUNT` rows of list `kind`, named n00, n01... (where rows have names)."""
    h = admin.headers

    async def post(url: str, body: dict[str, Any], headers: dict[str, str] = h) -> dict[str, Any]:
        return await _ok(await client.post(url, json=body, headers=headers))

    by_id: Callable[[dict[str, Any]], Any] = lambda item: item["id"]  # noqa: E731
    if kind == "inventories":

        async def add(name: str) -> None:
            await post("/api/v1/inventories", {"name": name, "content": "[web]\nh1\n"})

        filled = Filled("/api/v1/inventories", h, by_id, add, appends=False)
    elif kind == "channels":

        async def add(name: str) -> None:
            await post(
                "/api/v1/notifications/channels",
                {"name": name, "kind": "webhook", "config": {"url": "http://h/in"}},
            )

        filled = Filled("/api/v1/notifications/channels", h, by_id, add, appends=False)
    elif kind == "rules":
        channel = await post(
            "/api/v1/notifications/channels",
            {"name": "ch", "kind": "webhook", "config": {"url": "http://h/in"}},
        )

        async def add(name: str) -> None:
            script_id = await _script(client, admin, f"rule-{name}")
            await post(
                "/api/v1/notifications/rules",
                {"channel_id": channel["id"], "script_id": script_id, "events": ["failure"]},
            )

        filled = Filled("/api/v1/notifications/rules", h, by_id, add, appends=True)
    elif kind in ("schedules", "script schedules"):
        script_id = await _script(client, admin, "scheduled")
        url = f"/api/v1/scripts/{script_id}/schedules"

        async def add(name: str) -> None:
            await post(url, {"name": name, "cron": "0 3 * * *"})

        filled = Filled("/api/v1/schedules" if kind == "schedules" else url, h, by_id, add, appends=False)
    elif kind == "chains":
        script_id = await _script(client, admin, "source")
        url = f"/api/v1/scripts/{script_id}/chains"

        async def add(name: str) -> None:
            await post(url, {"target_script_id": await _script(client, admin, f"target-{name}")})

        filled = Filled(url, h, by_id, add, appends=True)
    elif kind == "webhooks":
        url = f"/api/v1/scripts/{await _script(client, admin, 'hooked')}/webhooks"

        async def add(name: str) -> None:
            await post(url, {"name": name})

        filled = Filled(url, h, by_id, add, appends=True)
    elif kind == "script secrets":
        url = f"/api/v1/scripts/{await _script(client, admin, 'with-secrets')}/secrets"

        async def add(name: str) -> None:
            secret = await post("/api/v1/secrets", {"name": name.upper().replace("-", "_"), "value": "v"})
            await post(f"{url}/{secret['id']}", {})

        filled = Filled(url, h, lambda item: item["secret_id"], add, appends=False)
    elif kind == "terraform states":
        script_id = await _script(client, admin, "infra", script_type="terraform", content="locals {}\n")

        async def add(name: str) -> None:
            await _db_add(TerraformState(script_id=script_id, workspace=name))

        url = f"/api/v1/scripts/{script_id}/terraform/states"
        filled = Filled(url, operator.headers, lambda item: item["workspace"], add, appends=False)
    elif kind in ("workers", "warm pools"):
        # Live workers, a heartbeat a day ahead. The workers list puts alive ones first, the
        # latest heartbeat first: a new one is listed first, and the runtime's own worker,
        # heartbeating between two walks, stays behind them all instead of moving up the list
        # (it did: "ties never swap"). The warm pools list them by id: `a-early` sorts first.
        async def add(name: str) -> None:
            ahead = utcnow() + timedelta(days=1)
            await _db_add(
                RegisteredWorker(
                    id=name, host_name="h", pid=1, runners=["local"], slots=1, heartbeat_at=ahead
                )
            )

        if kind == "workers":
            filled = Filled("/api/v1/workers", h, by_id, add, appends=False)
        else:
            filled = Filled("/api/v1/warm-pools", h, lambda item: item["worker_id"], add, appends=False)
    elif kind == "approvals":

        async def add(name: str) -> None:
            await _held_run(client, admin, operator)

        filled = Filled("/api/v1/approvals", h, lambda item: item["execution"]["id"], add, appends=True)
    elif kind == "ended approvals":

        async def add(name: str) -> None:
            run_id = await _held_run(client, admin, operator)
            await post(f"/api/v1/executions/{run_id}/reject", {"comment": name})

        key = lambda item: item["execution"]["id"]  # noqa: E731
        filled = Filled("/api/v1/approvals", h, key, add, appends=False, params={"ended": "true"})
    elif kind == "decisions":
        # COUNT approvals at most (the policy's bound): the last one added queues the run
        run_id = await _held_run(client, admin, operator, required=COUNT)

        async def add(name: str) -> None:
            approver = await make_user(client, "operator", name)
            await post(f"/api/v1/executions/{run_id}/approve", {"comment": name}, approver.headers)

        url = f"/api/v1/executions/{run_id}/approvals"
        filled = Filled(url, h, lambda item: item["username"], add, appends=True)
    else:
        raise AssertionError(kind)
    for n in range(COUNT - 1 if kind == "decisions" else COUNT):
        await filled.add(f"n{n:02d}")
    return filled


KINDS = [
    "inventories",
    "channels",
    "rules",
    "schedules",
    "script schedules",
    "chains",
    "webhooks",
    "script secrets",
    "terraform states",
    "workers",
    "warm pools",
    "approvals",
    "ended approvals",
    "decisions",
]


async def _page(client: httpx.AsyncClient, filled: Filled, skip: int, limit: int) -> dict[str, Any]:
    params = {**filled.params, "skip": skip, "limit": limit}
    r = await client.get(filled.url, params=params, headers=filled.headers)
    assert r.status_code == 200, r.text
    body = dict(r.json())
    assert set(body) == {"items", "total", "skip", "limit"}, body
    assert (body["skip"], body["limit"]) == (skip, limit)
    assert len(body["items"]) == max(0, min(limit, body["total"] - skip)), body
    return body


async def _walk(client: httpx.AsyncClient, filled: Filled) -> list[Any]:
    """The keys of every item, read `PAGE` at a time from the start to past the end."""
    keys: list[Any] = []
    skip = 0
    while True:
        body = await _page(client, filled, skip, PAGE)
        keys += [filled.key(item) for item in body["items"]]
        skip += PAGE
        if skip >= body["total"]:
            assert len(keys) == body["total"]
            return keys


@pytest.mark.parametrize("kind", KINDS)
async def test_each_list_pages_through_every_row_in_a_stable_order_and_a_row_added_hides_none(
    client: httpx.AsyncClient, admin: LoggedIn, operator: LoggedIn, kind: str
) -> None:
    """One filled list per kind and database for both checks (`_pages_in_a_stable_order`, then
    `_a_row_added_between_two_pages_hides_none`, which the first leaves unchanged): a runtime
    and a filled list of their own each cost most of these tests' time."""
    filled = await _fill(kind, client, admin, operator)
    await _pages_in_a_stable_order(client, filled)
    await _a_row_added_between_two_pages_hides_none(client, filled)


async def _pages_in_a_stable_order(client: httpx.AsyncClient, filled: Filled) -> None:
    whole = await _page(client, filled, 0, paging.MAX_PAGE)
    assert whole["total"] > PAGE and len(whole["items"]) == whole["total"]
    everything = [filled.key(item) for item in whole["items"]]
    assert len(set(everything)) == len(everything), "no row twice"
    assert await _walk(client, filled) == everything, "the pages are the whole list, in its order"
    assert await _walk(client, filled) == everything, "and again: ties never swap"
    beyond = await _page(client, filled, whole["total"], PAGE)
    assert beyond["items"] == [] and beyond["total"] == whole["total"]
    # The default page: 50 items.
    r = await client.get(filled.url, params=filled.params, headers=filled.headers)
    assert (r.json()["skip"], r.json()["limit"]) == (0, 50), r.text


async def _a_row_added_between_two_pages_hides_none(client: httpx.AsyncClient, filled: Filled) -> None:
    """Offset pages with a total order: the rows there before keep their order and each is still
    read; on a list in creation order the new row comes last and nothing repeats; elsewhere it
    lands where the order puts it (a name sorting first here, a newer run or worker first)."""
    before = [filled.key(item) for item in (await _page(client, filled, 0, paging.MAX_PAGE))["items"]]
    first = [filled.key(item) for item in (await _page(client, filled, 0, PAGE))["items"]]
    await filled.add("a-early")
    rest: list[Any] = []
    skip = PAGE
    while True:
        body = await _page(client, filled, skip, PAGE)
        rest += [filled.key(item) for item in body["items"]]
        skip += PAGE
        if skip >= body["total"]:
            break
    assert body["total"] == len(before) + 1
    after = [filled.key(item) for item in (await _page(client, filled, 0, paging.MAX_PAGE))["items"]]
    assert [k for k in after if k in before] == before, "the rows there before keep their order"
    read = first + rest
    assert set(before) <= set(read), "no row there before is skipped"
    if filled.appends:
        assert after[-1] not in before, "the new row comes last"
        assert read == after, "nothing repeats"
    else:
        assert len(read) == len(after), "one row read twice at most: the one the new row pushed down"


PATHS = {
    "inventories": "/api/v1/inventories",
    "channels": "/api/v1/notifications/channels",
    "rules": "/api/v1/notifications/rules",
    "schedules": "/api/v1/schedules",
    "workers": "/api/v1/workers",
    "warm pools": "/api/v1/warm-pools",
    "approvals": "/api/v1/approvals",
    "script schedules": "/api/v1/scripts/{script_id}/schedules",
    "chains": "/api/v1/scripts/{script_id}/chains",
    "webhooks": "/api/v1/scripts/{script_id}/webhooks",
    "script secrets": "/api/v1/scripts/{script_id}/secrets",
    "terraform states": "/api/v1/scripts/{script_id}/terraform/states",
    "decisions": "/api/v1/executions/{execution_id}/approvals",
}


@IN_MODULE_LOOP
@pytest.mark.parametrize(
    ("param", "value", "said"),
    [
        ("limit", "501", "must be at most 500"),
        ("limit", "0", "must be at least 1"),
        ("limit", "many", "whole number"),
        ("skip", "-1", "must be at least 0"),
        ("skip", "2147483648", "must be at most 2147483647"),
        ("skip", "1.5", ""),
        ("skip", "abc", ""),
        ("skip", "%00", ""),
    ],
)
async def test_a_bad_skip_or_limit_is_422_naming_it_on_every_list(
    reader: Reader, param: str, value: str, said: str
) -> None:
    """`limit` above 500 (the bound docs/api.md states) and a `skip` that is no whole number in
    range are refused with a 422 naming the parameter, on every list alike; 500 itself answers.
    The lists' script and run are made once per database (`Reader.rows`): the tests only read."""
    client, admin = reader.client, await reader.person(Role.admin)
    operator = await reader.person(Role.operator)

    async def listed() -> dict[str, int]:
        script_id = await _script(client, admin, "listed", script_type="terraform", content="locals {}\n")
        return {"script_id": script_id, "execution_id": await _held_run(client, admin, operator)}

    ids = await reader.rows("listed", listed)
    for kind, path in PATHS.items():
        url = path.format(**ids)
        r = await client.get(f"{url}?{param}={value}", headers=admin.headers)
        assert r.status_code == 422, (kind, r.text)
        assert [e["field"] for e in r.json()["errors"]] == [param], (kind, r.text)
        assert said in r.json()["errors"][0]["message"], (kind, r.text)
        ok = await client.get(url, params={"limit": 500, "skip": 0}, headers=admin.headers)
        assert ok.status_code == 200 and ok.json()["limit"] == 500, (kind, ok.text)


@IN_MODULE_LOOP
async def test_the_services_check_the_page_bounds(reader: Reader) -> None:
    """The UI calls the services without the API's query types: they refuse the same bounds,
    naming the field."""
    admin = await reader.person(Role.admin)
    async with runtime.current().db.session() as session:
        actor = Actor(await session.get(User, admin.id))
        for skip, limit, field in ((0, 501, "limit"), (0, 0, "limit"), (-1, 10, "skip"), (2**31, 10, "skip")):
            with pytest.raises(Invalid) as refused:
                await shared_inventories.list_all(session, actor, skip=skip, limit=limit)
            assert [d["field"] for d in refused.value.details] == [field]


async def test_the_ui_reads_a_whole_list_past_one_page(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    """The Notifications page lists every rule: `call_all` reads page after page, so a list
    longer than the 500 of one page is shown whole, not cut at 500."""
    channel = await _ok(
        await client.post(
            "/api/v1/notifications/channels",
            json={"name": "ch", "kind": "webhook", "config": {"url": "http://h/in"}},
            headers=admin.headers,
        )
    )
    async with runtime.current().db.session() as session:
        for _ in range(paging.MAX_PAGE + 3):
            session.add(NotificationRule(channel_id=channel["id"], events=["failure"]))
        await session.commit()
        actor = Actor(await session.get(User, admin.id))
    rules = await call_all(notifications.list_rules, actor)
    assert len(rules) == paging.MAX_PAGE + 3
    assert len({r.id for r in rules}) == len(rules)
    assert [r.id for r in rules] == sorted(r.id for r in rules)
    assert (await client.get("/api/v1/notifications/rules", headers=admin.headers)).json()["total"] == len(
        rules
    )


async def test_a_worker_alive_is_listed_before_a_stopped_one_whatever_its_heartbeat(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """The workers list orders in the database now (alive first, then the latest heartbeat):
    a stopped worker that heartbeated last still comes after every live one, on every page."""
    now = utcnow()
    await _db_add(RegisteredWorker(id="stopped", host_name="h", pid=1, runners=[], slots=1, stopped_at=now))
    await _db_add(
        RegisteredWorker(
            id="alive", host_name="h", pid=2, runners=[], slots=1, heartbeat_at=now - timedelta(seconds=1)
        )
    )
    items = (await client.get("/api/v1/workers", params={"limit": 500}, headers=admin.headers)).json()[
        "items"
    ]
    states = [w["state"] for w in items]
    assert states == sorted(states, key=lambda s: s != "alive"), states
    order = [w["id"] for w in items]
    assert order.index("alive") < order.index("stopped")
