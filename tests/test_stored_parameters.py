"""A change of a script's parameters that breaks the values a schedule, a webhook or a "then run"
link stored is saved with one notice per broken trigger (it used to answer `notices: []`, and the
schedule failed silently at its next fire), on SQLite and PostgreSQL."""

from __future__ import annotations

import httpx

from tests.conftest import LoggedIn

INTEGER_P = [{"name": "P", "type": "integer", "default": 1}]
CHOICE_P = [{"name": "P", "type": "choice", "options": ["x"], "default": "x"}]


async def _script(client: httpx.AsyncClient, who: LoggedIn, name: str, params: list) -> int:
    body = {"name": name, "script_type": "bash", "content": "echo $P\n", "parameters": params}
    r = await client.post("/api/v1/scripts", json={**body, "status": "active"}, headers=who.headers)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def test_a_parameter_change_names_every_trigger_it_breaks(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    target = await _script(client, operator, "target", INTEGER_P)
    source = await _script(client, operator, "source", [])
    h = operator.headers
    for path, body in {
        f"/api/v1/scripts/{target}/schedules": {
            "name": "nightly",
            "cron": "0 1 * * *",
            "parameters": {"P": 5},
        },
        f"/api/v1/scripts/{target}/webhooks": {"name": "on-push", "parameters": {"P": 7}},
        f"/api/v1/scripts/{source}/chains": {"target_script_id": target, "parameters": {"P": 9}},
    }.items():
        r = await client.post(path, json=body, headers=h)
        assert r.status_code == 201, r.text

    # A change the stored values still fit: no notice.
    wider = [{"name": "P", "type": "integer", "default": 2}]
    r = await client.put(f"/api/v1/scripts/{target}", json={"parameters": wider}, headers=h)
    assert r.status_code == 200 and r.json()["notices"] == [], r.text

    r = await client.put(f"/api/v1/scripts/{target}", json={"parameters": CHOICE_P}, headers=h)
    assert r.status_code == 200, r.text
    notices = r.json()["notices"]
    assert [n["code"] for n in notices] == ["stored-parameters"] * 3, notices
    messages = [n["message"] for n in notices]
    assert messages[0].startswith("schedule 'nightly' stores parameters the script no longer accepts")
    assert "its next fire will fail; edit or pause it" in messages[0]
    assert messages[1].startswith("webhook 'on-push' stores parameters")
    assert messages[2].startswith("the 'then run' link from script 'source' stores parameters")
    assert all("parameters.P: must be one of" in m for m in messages), messages

    # Renaming the parameter away: the stored P is no longer declared.
    renamed = [{"name": "Q", "type": "string", "default": ""}]
    r = await client.put(f"/api/v1/scripts/{target}", json={"parameters": renamed}, headers=h)
    assert [n["message"].split("(")[1].split(")")[0] for n in r.json()["notices"]] == [
        "parameters.P: unknown parameter: this script does not declare it",
        "parameters.P: no longer declared",
        "parameters.P: no longer declared",
    ]

    # Rolling back to version 1 (P integer) fits again; to the choice version breaks again.
    r = await client.post(f"/api/v1/scripts/{target}/rollback/1", json={}, headers=h)
    assert r.status_code == 200 and r.json()["notices"] == [], r.text
    r = await client.post(f"/api/v1/scripts/{target}/rollback/3", json={}, headers=h)
    assert r.status_code == 200 and len(r.json()["notices"]) == 3, r.text


async def test_a_new_required_parameter_is_named_for_the_triggers_that_lack_it(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    """Adding a required parameter (no default) breaks every trigger that neither stores a value
    for it nor maps it; one with a default breaks nothing."""
    target = await _script(client, operator, "target", INTEGER_P)
    source = await _script(client, operator, "source", [])
    h = operator.headers
    for path, body in {
        f"/api/v1/scripts/{target}/schedules": {"name": "nightly", "cron": "0 1 * * *", "parameters": {}},
        f"/api/v1/scripts/{target}/webhooks": {"name": "on-push", "parameters": {"P": 7}},
        f"/api/v1/scripts/{source}/chains": {"target_script_id": target, "parameters": {}},
    }.items():
        r = await client.post(path, json=body, headers=h)
        assert r.status_code == 201, r.text
    with_default = [*INTEGER_P, {"name": "R", "type": "string", "default": "main"}]
    r = await client.put(f"/api/v1/scripts/{target}", json={"parameters": with_default}, headers=h)
    assert r.status_code == 200 and r.json()["notices"] == [], r.text
    mapped = {"name": "mapped", "mapping": {"R": "/ref"}}
    r = await client.post(f"/api/v1/scripts/{target}/webhooks", json=mapped, headers=h)
    assert r.status_code == 201, r.text

    required = [*INTEGER_P, {"name": "R", "type": "string", "required": True}]
    r = await client.put(f"/api/v1/scripts/{target}", json={"parameters": required}, headers=h)
    assert r.status_code == 200, r.text
    messages = [n["message"] for n in r.json()["notices"]]
    assert len(messages) == 3, messages  # not the webhook that maps R
    assert messages[0].startswith("schedule 'nightly'") and "parameters.R: is required" in messages[0]
    assert messages[1].startswith("webhook 'on-push'")
    assert messages[2].startswith("the 'then run' link from script 'source'")
    for message, source in zip(messages[1:], ("the request body", "the source run"), strict=True):
        wanted = f"(parameters.R: is required: map it from {source} or give it a fixed value)"
        assert wanted in message, message
