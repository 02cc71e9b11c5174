"""An id in a JSON body beyond the databases' integers is a 422 naming the field, never a 500.

Field report (the kind "numbers beyond 64-bit"): `POST /api/v1/scripts/1/chains` with
`{"target_script_id": 18446744073709551616}` answered 500 (SQLite cannot bind an integer over
64 bits; PostgreSQL's ids are 32-bit). Every request body field holding a row's id is one member
of the kind: each is checked with 2**31 (over PostgreSQL's `integer`) and 2**64 (over SQLite's),
on SQLite and PostgreSQL.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import LoggedIn

# (method, url, a valid body, the id field set out of range in it).
ID_FIELDS: list[tuple[str, str, dict[str, Any], str]] = [
    ("POST", "/api/v1/scripts/1/chains", {"target_script_id": 1}, "target_script_id"),
    ("POST", "/api/v1/notifications/rules", {"channel_id": 1, "events": ["failed"]}, "channel_id"),
    ("POST", "/api/v1/notifications/rules", {"channel_id": 1, "events": ["failed"]}, "script_id"),
    (
        "POST",
        "/api/v1/notifications/channels",
        {"name": "c", "kind": "webhook", "config": {"url": "http://h"}},
        "secret_id",
    ),
    ("POST", "/api/v1/scripts/1/webhooks", {"name": "w"}, "secret_id"),
    ("PUT", "/api/v1/scripts/1", {"description": "d"}, "inventory_id"),
    ("PUT", "/api/v1/scripts/1", {"description": "d"}, "base_version"),
    ("POST", "/api/v1/executions", {"script_id": 1}, "script_id"),
]


@pytest.mark.parametrize("number", [2**31, 2**64])
async def test_an_id_beyond_the_databases_is_422_naming_it(
    client: httpx.AsyncClient, admin: LoggedIn, number: int
) -> None:
    script = {"name": "seed", "script_type": "bash", "content": "echo hi\n", "status": "active"}
    assert (await client.post("/api/v1/scripts", json=script, headers=admin.headers)).status_code == 201
    for method, url, body, field in ID_FIELDS:
        r = await client.request(method, url, json={**body, field: number}, headers=admin.headers)
        assert r.status_code == 422, (url, field, r.text)
        assert [e["field"] for e in r.json()["errors"]] == [field], (url, r.text)
        assert "2147483647" in r.json()["errors"][0]["message"], r.text
    for listing in ("/api/v1/scripts/1/chains", "/api/v1/notifications/rules", "/api/v1/scripts/1/webhooks"):
        assert (await client.get(listing, headers=admin.headers)).json()["items"] == [], (
            listing
        )  # nothing stored


# Body fields naming a row, each with a valid body on the rows the test makes (script 1, channel
# 1), and the status an id no row has answers: 404 for the run's script (as documented for an
# unknown script: docs/executions.md), 422 for the others (docs/api.md, *Errors*).
ROW_FIELDS: list[tuple[str, str, dict[str, Any], str, int]] = [
    ("POST", "/api/v1/executions", {"script_id": 1}, "script_id", 404),
    ("POST", "/api/v1/executions/stream", {"script_id": 1}, "script_id", 404),
    ("POST", "/api/v1/scripts/1/chains", {"target_script_id": 1}, "target_script_id", 422),
    ("POST", "/api/v1/notifications/rules", {"channel_id": 1, "events": ["failure"]}, "channel_id", 422),
    ("POST", "/api/v1/notifications/rules", {"channel_id": 1, "events": ["failure"]}, "script_id", 422),
    (
        "POST",
        "/api/v1/notifications/channels",
        {"name": "c2", "kind": "webhook", "config": {"url": "http://h"}},
        "secret_id",
        422,
    ),
    ("POST", "/api/v1/scripts/1/webhooks", {"name": "w"}, "secret_id", 422),
    ("PUT", "/api/v1/scripts/1", {"description": "d"}, "inventory_id", 422),
]


async def test_an_id_no_row_has_is_refused_naming_it(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    """`POST /api/v1/executions` with a `script_id` no script has said 404 with `errors: []`: a
    client could not tell which value to fix, where every other body field naming a missing row
    (a chain's target, a rule's channel, a webhook's secret...) is named. Every member names it."""
    script = {"name": "seed", "script_type": "bash", "content": "echo hi\n", "status": "active"}
    assert (await client.post("/api/v1/scripts", json=script, headers=admin.headers)).status_code == 201
    channel = {"name": "c", "kind": "webhook", "config": {"url": "http://h"}}
    r = await client.post("/api/v1/notifications/channels", json=channel, headers=admin.headers)
    assert r.status_code == 201, r.text
    headers = {**admin.headers, "Accept": "text/event-stream"}
    for method, url, body, field, status in ROW_FIELDS:
        r = await client.request(method, url, json={**body, field: 999_999}, headers=headers)
        assert r.status_code == status, (url, field, r.text)
        assert [e["field"] for e in r.json()["errors"]] == [field], (url, r.text)
