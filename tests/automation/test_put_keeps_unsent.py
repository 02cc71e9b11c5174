"""Every `PUT` that updates a row keeps the stored value of a field the body leaves out
(`services/partial.over_stored`), never the model's default: an operator changing only an
approval policy's expiry is not "lowering" its requirement, a webhook renamed keeps its signing
secret, a disabled schedule, link or channel stays disabled, an inventory keeps its description.
Only a real lowering of an approval requirement is an admin's. A `PUT` that changes nothing
(`{}`, or what `GET` gave) writes nothing (`services/partial.unchanged`)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import LoggedIn
from tests.executions.conftest import make_script


async def put(client: httpx.AsyncClient, who: LoggedIn, url: str, body: dict[str, Any]) -> dict[str, Any]:
    r = await client.put(url, json=body, headers=who.headers)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def post(client: httpx.AsyncClient, who: LoggedIn, url: str, body: dict[str, Any]) -> dict[str, Any]:
    r = await client.post(url, json=body, headers=who.headers)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def test_an_operator_changes_only_the_expiry_of_an_approval_policy(
    client: httpx.AsyncClient, admin: LoggedIn, operator: LoggedIn
) -> None:
    script_id = await make_script(client, admin, "true\n")
    url = f"/api/v1/scripts/{script_id}/approval"
    await put(client, admin, url, {"required": 3, "expires_after_hours": 24})
    policy = await put(client, operator, url, {"expires_after_hours": 48})
    assert (policy["required"], policy["expires_after_hours"]) == (3, 48), "required kept"
    assert (await put(client, operator, url, {"required": 4}))["expires_after_hours"] == 48
    r = await client.put(url, json={"required": 2}, headers=operator.headers)
    assert r.status_code == 403 and "only an admin may lower" in r.json()["detail"], r.text
    assert (await put(client, admin, url, {"required": 2}))["required"] == 2, "an admin lowers it"


async def test_webhook_schedule_and_link_keep_unsent_fields(
    client: httpx.AsyncClient, admin: LoggedIn, operator: LoggedIn
) -> None:
    script_id = await make_script(
        client, admin, 'echo "$ENV"\n', parameters=[{"name": "ENV", "type": "string", "default": "dev"}]
    )
    target_id = await make_script(
        client, admin, 'echo "$ENV"\n', parameters=[{"name": "ENV", "type": "string", "default": "dev"}]
    )
    secret = await post(client, operator, "/api/v1/secrets", {"name": "HOOK_KEY", "value": "k" * 32})

    hooks = f"/api/v1/scripts/{script_id}/webhooks"
    hook = await post(
        client,
        operator,
        hooks,
        {"name": "push", "secret_id": secret["id"], "mapping": {"ENV": "/env"}, "enabled": False},
    )
    hook = await put(client, operator, f"{hooks}/{hook['id']}", {"name": "on-push"})
    assert hook["name"] == "on-push" and hook["secret_id"] == secret["id"] and hook["signed"]
    assert hook["mapping"] == {"ENV": "/env"} and hook["enabled"] is False
    hook = await put(client, operator, f"{hooks}/{hook['id']}", {"secret_id": None})
    assert hook["secret_id"] is None and hook["name"] == "on-push", "an explicit null is sent"

    schedules = f"/api/v1/scripts/{script_id}/schedules"
    body = {"name": "nightly", "cron": "0 3 * * *", "timezone": "Europe/Paris", "enabled": False}
    schedule = await post(client, operator, schedules, {**body, "parameters": {"ENV": "prod"}})
    await put(client, operator, f"{schedules}/{schedule['id']}", {"cron": "0 4 * * *"})
    (stored,) = (await client.get(schedules, headers=operator.headers)).json()["items"]
    assert (stored["cron"], stored["timezone"], stored["enabled"]) == ("0 4 * * *", "Europe/Paris", False)
    assert stored["parameters"]["ENV"] == "prod" and stored["name"] == "nightly"

    chains = f"/api/v1/scripts/{script_id}/chains"
    link = await post(
        client,
        operator,
        chains,
        {"target_script_id": target_id, "outcome": "failure", "mapping": {"ENV": "/parameters/ENV"}},
    )
    link = await put(client, operator, f"{chains}/{link['id']}", {"enabled": False})
    assert (link["target_script_id"], link["outcome"], link["enabled"]) == (target_id, "failure", False)
    assert link["mapping"] == {"ENV": "/parameters/ENV"}


async def test_channel_and_inventory_keep_unsent_fields(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    channels = "/api/v1/notifications/channels"
    channel = await post(
        client,
        admin,
        channels,
        {"name": "hook", "kind": "webhook", "config": {"url": "http://127.0.0.1:9/"}, "enabled": False},
    )
    channel = await put(client, admin, f"{channels}/{channel['id']}", {"name": "ops-hook"})
    # shown masked (scheme, host and port: the URL itself is sealed), and kept
    assert channel["config"] == {"url": "http://127.0.0.1:9"} and channel["enabled"] is False
    assert (channel["name"], channel["kind"]) == ("ops-hook", "webhook")

    inventory = await post(
        client,
        admin,
        "/api/v1/inventories",
        {"name": "web", "description": "the web tier", "content": "[web]\nweb1\n"},
    )
    inventory = await put(
        client, admin, f"/api/v1/inventories/{inventory['id']}", {"content": "[web]\nweb2\n"}
    )
    assert inventory["description"] == "the web tier" and inventory["name"] == "web"
    assert inventory["content"] == "[web]\nweb2\n"


async def audited(client: httpx.AsyncClient, admin: LoggedIn, action: str) -> int:
    r = await client.get(f"/api/v1/audit?action={action}", headers=admin.headers)
    assert r.status_code == 200, r.text
    return int(r.json()["total"])


async def test_a_put_that_changes_nothing_writes_nothing(
    client: httpx.AsyncClient, admin: LoggedIn, operator: LoggedIn
) -> None:
    """Field report: a schedule, webhook, "then run" link, channel or approval policy saved again
    as it was (or with `{}`) was audited as an update, moved its `updated_at` and made the caller
    its owner (the runs it starts were then theirs). Sent back as `GET` gave it, or empty, it now
    stays exactly as it was, with no event; a real change is still audited and takes it over."""
    script_id = await make_script(
        client, admin, 'echo "$ENV"\n', parameters=[{"name": "ENV", "type": "string", "default": "dev"}]
    )
    target_id = await make_script(client, admin, "true\n")
    secret = await post(client, admin, "/api/v1/secrets", {"name": "HOOK_KEY", "value": "k" * 32})
    base = f"/api/v1/scripts/{script_id}"
    nightly = {"name": "nightly", "cron": "0 3 * * *", "parameters": {"ENV": "a"}}
    schedule = await post(client, admin, f"{base}/schedules", nightly)
    push = {"name": "push", "secret_id": secret["id"], "mapping": {"ENV": "/e"}}
    hook = await post(client, admin, f"{base}/webhooks", push)
    link = await post(client, admin, f"{base}/chains", {"target_script_id": target_id, "outcome": "failure"})
    channel = await post(
        client,
        admin,
        "/api/v1/notifications/channels",
        {"name": "hook", "kind": "webhook", "config": {"url": "http://127.0.0.1:9/x"}},
    )
    await put(client, admin, f"{base}/approval", {"required": 2, "expires_after_hours": 12})
    cases = [  # url, who saves, audit action, the fields GET gives that a form sends back, a change
        (
            f"{base}/schedules/{schedule['id']}",
            operator,
            "schedule.update",
            ["name", "cron", "timezone", "parameters", "enabled", "missed_policy", "overlap_policy"],
            {"cron": "0 4 * * *"},
        ),
        (
            f"{base}/webhooks/{hook['id']}",
            operator,
            "webhook.update",
            ["name", "secret_id", "signature_scheme", "mapping", "parameters", "enabled"],
            {"name": "on-push"},
        ),
        (
            f"{base}/chains/{link['id']}",
            operator,
            "chain_link.update",
            ["target_script_id", "outcome", "mapping", "parameters", "enabled"],
            {"outcome": "success"},
        ),
        (
            f"/api/v1/notifications/channels/{channel['id']}",
            admin,
            "notification_channel.update",
            ["name", "kind", "config", "secret_id", "enabled"],
            {"name": "ops-hook"},
        ),
        (
            f"{base}/approval",
            operator,
            "approval_policy.set",
            ["required", "expires_after_hours"],
            {"required": 3},
        ),
    ]
    for url, who, action, fields, change in cases:
        stored = (await client.get(url, headers=admin.headers)).json()
        events = await audited(client, admin, action)
        for body in ({}, {key: stored[key] for key in fields}):
            assert await put(client, who, url, body) == stored, (url, body)
            assert (await client.get(url, headers=admin.headers)).json() == stored, (url, body)
        assert await audited(client, admin, action) == events, f"{action}: nothing changed, nothing recorded"
        changed = await put(client, who, url, change)
        assert await audited(client, admin, action) == events + 1, action
        assert changed.get("owner_id", who.id) == who.id, "a real change takes it over"
        assert changed.get("updated_at", "") >= stored.get("updated_at", ""), url
