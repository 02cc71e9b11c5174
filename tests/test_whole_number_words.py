"""Every refused whole number says, in one wording, what was sent instead of it.

Field report (session 52): a path or query value that is no whole number was told "must be a
whole number, e.g. 42 (digits only: not 5.0)" whatever was sent (`/scripts/abc` was told
"not 5.0"), while a body's `5.0` was told "must be a whole number (it is a number with a decimal
point)". Each now says what it is in the body's words (`bodies.text_kind`, never the text
itself), the same for a body, a path, a query and the web UI's addresses (ui/address.py).
Read-only: one started runtime per database (`tests.conftest.reader`).
"""

from __future__ import annotations

import pytest

from opscraft.db.models import Role
from opscraft.services.bodies import INT_MESSAGE
from tests.conftest import IN_MODULE_LOOP, Reader

DECIMAL = "a number with a decimal point"
# (path and query, the parameter, what it is said to be)
SENT = [
    ("/api/v1/scripts?limit=5.0", "limit", DECIMAL),
    ("/api/v1/scripts/5.0", "script_id", DECIMAL),
    ("/api/v1/scripts?limit=.5", "limit", DECIMAL),
    ("/api/v1/scripts?limit=abc", "limit", "text"),
    ("/api/v1/scripts/abc", "script_id", "text"),
    ("/api/v1/executions?script_id=1e3", "script_id", "a number with an exponent"),
    ("/api/v1/audit?limit=%205", "limit", "a number with spaces around it"),
    ("/api/v1/executions/%D9%A3", "execution_id", "digits other than 0-9"),
    ("/api/v1/executions?skip=-", "skip", "text"),
]


@IN_MODULE_LOOP
@pytest.mark.parametrize(("url", "field", "kind"), SENT)
async def test_a_whole_number_in_a_path_or_query_names_what_was_sent(
    reader: Reader, url: str, field: str, kind: str
) -> None:
    client, admin = reader.client, await reader.person(Role.admin)
    r = await client.get(url, headers=admin.headers)
    assert r.status_code == 422, r.text
    assert r.json()["errors"] == [{"field": field, "message": f"must be a whole number (it is {kind})"}]


@IN_MODULE_LOOP
async def test_a_decimal_point_is_said_alike_in_a_body_a_path_and_a_query(reader: Reader) -> None:
    client, admin = reader.client, await reader.person(Role.admin)
    body = await client.post("/api/v1/executions", json={"script_id": 5.0}, headers=admin.headers)
    path = await client.get("/api/v1/executions/5.0", headers=admin.headers)
    query = await client.get("/api/v1/executions?script_id=5.0", headers=admin.headers)
    said = {r.json()["errors"][0]["message"] for r in (body, path, query)}
    assert said == {INT_MESSAGE}, said
