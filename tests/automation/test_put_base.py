"""The `PUT` of a schedule, webhook, "then run" link, notification channel or rule takes a `base`
(what the fields held when the edit started, as `GET` gave them: `services/partial.three_way`),
as those of users, secrets and scripts do: two API clients changing the same field got "the last
write wins" without a word. A field changed meanwhile is a 409 naming it with nothing written, a
field sent equal to its base keeps the stored value, and without `base` the last write wins."""

from __future__ import annotations

from typing import Any

import httpx
from sqlmodel import col, update

from opscraft import runtime
from opscraft.db.models import Schedule
from tests.automation.test_put_keeps_unsent import audited, post, put
from tests.conftest import LoggedIn
from tests.executions.conftest import make_script


async def _rows(client: httpx.AsyncClient, admin: LoggedIn) -> list[tuple[str, str, str, Any, Any, str, Any]]:
    """One row of each kind, and per row: its URL, its audit action, the field two edits change
    (`field`) with the first edit's and the second edit's value, and another field the second
    edit changes with its value."""
    script_id = await make_script(
        client, admin, 'echo "$ENV"\n', parameters=[{"name": "ENV", "type": "string", "default": "dev"}]
    )
    target_id = await make_script(client, admin, "true\n")
    keys = [
        await post(client, admin, "/api/v1/secrets", {"name": f"KEY_{i}", "value": "k" * 32}) for i in (1, 2)
    ]
    scripts = f"/api/v1/scripts/{script_id}"
    schedule = await post(client, admin, f"{scripts}/schedules", {"name": "nightly", "cron": "0 3 * * *"})
    hook = await post(client, admin, f"{scripts}/webhooks", {"name": "push"})
    link = await post(
        client, admin, f"{scripts}/chains", {"target_script_id": target_id, "outcome": "failure"}
    )
    channels = "/api/v1/notifications/channels"
    body = {"name": "hook", "kind": "webhook", "config": {"url": "http://127.0.0.1:9/x"}}
    channel = await post(client, admin, channels, body)
    rule = await post(
        client, admin, "/api/v1/notifications/rules", {"channel_id": channel["id"], "events": ["failure"]}
    )
    return [
        (
            f"{scripts}/schedules/{schedule['id']}",
            "schedule.update",
            "cron",
            "0 4 * * *",
            "0 5 * * *",
            "name",
            "n2",
        ),
        # the signing secret's id (never its value) has a base like any field
        (
            f"{scripts}/webhooks/{hook['id']}",
            "webhook.update",
            "secret_id",
            keys[0]["id"],
            keys[1]["id"],
            "name",
            "a",
        ),
        (
            f"{scripts}/chains/{link['id']}",
            "chain_link.update",
            "outcome",
            "success",
            "any",
            "enabled",
            False,
        ),
        (
            f"{channels}/{channel['id']}",
            "notification_channel.update",
            "name",
            "ops",
            "dev",
            "enabled",
            False,
        ),
        (
            f"/api/v1/notifications/rules/{rule['id']}",
            "notification_rule.update",
            "events",
            ["success"],
            ["failure", "success"],
            "enabled",
            False,
        ),
    ]


async def shown(client: httpx.AsyncClient, admin: LoggedIn, url: str) -> dict[str, Any]:
    """The row at `url` as `GET` shows it (a rule: in the list of rules, which has no `GET` of one)."""
    listing, _, rule_id = url.rpartition("/")
    if not listing.endswith("/rules"):
        return dict((await client.get(url, headers=admin.headers)).json())
    rules = (await client.get(listing, headers=admin.headers)).json()["items"]
    return next(dict(rule) for rule in rules if str(rule["id"]) == rule_id)


async def test_a_field_changed_since_the_edit_started_is_not_undone(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    for url, action, field, first, second, other, value in await _rows(client, admin):
        started = await shown(client, admin, url)
        base = {key: started[key] for key in (field, other)}
        assert (await put(client, admin, url, {field: first, "base": base}))[field] == first, url
        saved = await shown(client, admin, url)
        events = await audited(client, admin, action)

        # A second edit from the same start changes the field again: 409 naming it, nothing saved.
        r = await client.put(url, json={field: second, other: value, "base": base}, headers=admin.headers)
        assert r.status_code == 409 and [e["field"] for e in r.json()["errors"]] == [field], (url, r.text)
        assert await shown(client, admin, url) == saved, url
        assert await audited(client, admin, action) == events, f"{action}: refused, not recorded"

        # A base alone changes nothing, nor records anything.
        assert await put(client, admin, url, {"base": base}) == saved, url
        assert await audited(client, admin, action) == events, f"{action}: nothing changed, nothing recorded"

        # The field sent as it started keeps the first edit's value; the other field is saved.
        kept = await put(client, admin, url, {field: started[field], other: value, "base": base})
        assert (kept[field], kept[other]) == (first, value), url

        # Without a base the last write wins, as before.
        assert (await put(client, admin, url, {field: second}))[field] == second, url

        r = await client.put(url, json={field: second, "base": {"nope": 1}}, headers=admin.headers)
        assert r.status_code == 422 and [e["field"] for e in r.json()["errors"]] == ["base.nope"], r.text


async def test_a_paused_schedule_sent_disabled_as_it_started_stays_paused(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """A schedule the system paused resumes on a save that leaves `enabled` out. One that sends
    `enabled: false` equal to its base keeps the stored value (three-way): still disabled, as the
    body asked (as without `base`), not resumed because the field was dropped as unchanged."""
    script_id = await make_script(client, admin, "true\n")
    url = f"/api/v1/scripts/{script_id}/schedules"
    schedule = await post(client, admin, url, {"name": "nightly", "cron": "0 3 * * *"})
    url = f"{url}/{schedule['id']}"

    async def pause() -> None:
        async with runtime.current().db.session() as session:
            paused = {"enabled": False, "paused_reason": "paused: its owner was deactivated"}
            await session.exec(update(Schedule).where(col(Schedule.id) == schedule["id"]).values(**paused))
            await session.commit()

    await pause()
    body = {"cron": "0 4 * * *", "enabled": False, "base": {"cron": "0 3 * * *", "enabled": False}}
    saved = await put(client, admin, url, body)
    assert (saved["cron"], saved["enabled"]) == ("0 4 * * *", False), "not resumed"
    await pause()
    saved = await put(client, admin, url, {"cron": "0 5 * * *", "base": {"cron": "0 4 * * *"}})
    assert (saved["enabled"], saved["paused_reason"]) == (True, None), "left out: resumed"


async def test_a_webhook_url_changed_meanwhile_on_the_same_host_is_caught_by_its_fingerprint(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """A webhook channel's `config.url` is shown masked (`https://hooks.example/…`): a URL changed
    meanwhile to another of the same host compared equal, and a second edit's new URL silently
    replaced it. `url_fingerprint` (GET's) stands for the sealed URL in a `base`: a new URL sent
    while it moved is a 409 naming `config.url`, nothing written; it tells nothing of the URL."""
    channels = "/api/v1/notifications/channels"
    body = {"name": "sealed", "kind": "webhook", "config": {"url": "https://hooks.example/t/first-token"}}
    started = await post(client, admin, channels, body)
    url = f"{channels}/{started['id']}"
    base = {"config": started["config"], "url_fingerprint": started["url_fingerprint"]}
    assert started["url_fingerprint"] and "first-token" not in started["url_fingerprint"]
    # Someone moves it to another URL of the same host: its masked form stays, not its fingerprint.
    moved = await put(client, admin, url, {"config": {"url": "https://hooks.example/t/second-token"}})
    assert moved["config"] == started["config"] and moved["url_fingerprint"] != started["url_fingerprint"]
    events = await audited(client, admin, "notification_channel.update")
    third = {"config": {"url": "https://hooks.example/t/third-token"}, "base": base}
    r = await client.put(url, json=third, headers=admin.headers)
    assert r.status_code == 409 and [e["field"] for e in r.json()["errors"]] == ["config.url"], r.text
    assert await shown(client, admin, url) == moved, "nothing written"
    assert await audited(client, admin, "notification_channel.update") == events
    # The masked URL sent back keeps the stored one: no conflict; so does a base without it
    # (last write wins, as before), and an edit from the current fingerprint saves.
    kept = await put(client, admin, url, {"config": moved["config"], "name": "kept", "base": base})
    assert (kept["name"], kept["url_fingerprint"]) == ("kept", moved["url_fingerprint"])
    fresh = {**base, "url_fingerprint": moved["url_fingerprint"]}
    saved = await put(client, admin, url, {**third, "base": fresh})
    assert saved["url_fingerprint"] not in (started["url_fingerprint"], moved["url_fingerprint"])
    last = await put(client, admin, url, {**third, "base": {"config": base["config"]}})
    assert last["url_fingerprint"] != saved["url_fingerprint"], "sealed anew: last write wins"
