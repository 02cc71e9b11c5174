"""Every refused list filter says it in one wording: `invalid input: <field>: <what to fix>`.

Field report (session 52): `GET /api/v1/executions?status=zzz` said "status must be one of: ...",
`?status=zzz` of the notification deliveries "status: must be one of: ...", a control character
in an audit filter "invalid filter: action: ...", while a bad `?sort=` or `?limit=5.0` (refused
by FastAPI's model) said "invalid input: sort: ...": a client matching the prefix of one missed
the others. Each query value a list's service refuses (`services.errors.Invalid.inputs`) now
has the words of the model's refusals. Read-only: one started runtime per database
(`tests.conftest.reader`).
"""

from __future__ import annotations

import pytest

from opscraft.db.models import Role
from tests.conftest import IN_MODULE_LOOP, Reader

# (list route and its query, the field refused)
REFUSED = [
    ("/api/v1/executions?status=zzz", "status"),
    ("/api/v1/executions?trigger=zzz", "trigger"),
    ("/api/v1/executions?host=web1&host_status=zzz", "host_status"),
    ("/api/v1/executions?host_status=failed", "host_status"),
    ("/api/v1/executions?host=web%01", "host"),
    ("/api/v1/executions?cursor=abc", "cursor"),
    ("/api/v1/executions?since=2030-01-02&until=2030-01-01", "since"),
    ("/api/v1/audit?action=x%01", "action"),
    ("/api/v1/audit?since=2030-01-02&until=2030-01-01", "since"),
    ("/api/v1/notifications/deliveries?status=zzz", "status"),
    ("/api/v1/scripts?search=a%01", "search"),
    ("/api/v1/users?search=a%01", "search"),
    # refused by the route's model (FastAPI): the words the services' refusals now share
    ("/api/v1/scripts?status=zzz", "status"),
    ("/api/v1/schedules?limit=0", "limit"),
    ("/api/v1/approvals?ended=maybe", "ended"),
]


@IN_MODULE_LOOP
@pytest.mark.parametrize(("url", "field"), REFUSED)
async def test_a_refused_list_filter_says_invalid_input_and_names_it(
    reader: Reader, url: str, field: str
) -> None:
    client, admin = reader.client, await reader.person(Role.admin)
    r = await client.get(url, headers=admin.headers)
    assert r.status_code == 422, r.text
    body = r.json()
    (error,) = body["errors"]
    assert error["field"] == field, body
    assert body["detail"] == f"invalid input: {field}: {error['message']}", body


@IN_MODULE_LOOP
async def test_a_cursor_with_a_skip_says_invalid_input(reader: Reader) -> None:
    client, admin = reader.client, await reader.person(Role.admin)
    first = await client.get("/api/v1/executions?limit=1", headers=admin.headers)
    cursor = first.json()["next_cursor"] or "x"
    r = await client.get("/api/v1/executions", params={"cursor": cursor, "skip": 1}, headers=admin.headers)
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith("invalid input: "), r.text
