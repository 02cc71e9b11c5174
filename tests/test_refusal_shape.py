"""Every 422 of the API that names fields has one shape: `{"detail": "invalid input: ...",
"errors": [{"field", "message"}, ...]}`, whichever part refused the request: the request limits
at the door (security/http.py), FastAPI's model (api/errors.py) or a service (`Invalid`,
`Problems`). Where the refusal is built from its fields, the detail is theirs
(`services.errors.input_summary`: `invalid input: field: message; ...`); a service's own
sentence, which may say more, follows the same prefix (`Invalid.detail`).

Field report (h3's brief): "invalid input: ..." was built in four places, and the services'
refusals had shapes of their own: `Invalid.at`'s "cron: ...", the password rules' "password: ...",
the settings' "setting 'output_retention_days' ...", the door's "JSON body nested too deeply: ..."
with no field at all. A client matching one shape missed the others. Read-only: every request is
refused (`tests.conftest.reader`).
"""

from __future__ import annotations

from typing import Any

import pytest

from opscraft.db.models import Role
from opscraft.services.errors import INVALID_INPUT, input_summary
from tests.conftest import IN_MODULE_LOOP, Reader

DEEP: Any = 0
for _ in range(100):
    DEEP = [DEEP]

# (method, route, JSON body or raw bytes, a field the refusal names, whether the detail is
# `input_summary` of the fields)
REFUSED: list[tuple[str, str, Any, str, bool]] = [
    # the door (security/http.py)
    ("POST", "/api/v1/scripts", b'{"name": "a", "name": "b"}', "name", True),
    ("POST", "/api/v1/scripts", {"name": "a\u0000b"}, "name", True),
    ("POST", "/api/v1/scripts", {"name": DEEP}, "body", True),
    ("POST", "/api/v1/scripts", {f"k{i}": i for i in range(5000)}, "body", True),
    # FastAPI's model (api/errors.py)
    ("POST", "/api/v1/users", {}, "username", True),
    # services: `Invalid.at`, their own `Invalid(...)`, `Problems`
    (
        "POST",
        "/api/v1/tokens",
        {"name": "t", "role": "viewer", "expires_at": "2001-01-01T00:00:00Z"},
        "expires_at",
        True,
    ),
    ("POST", "/api/v1/users", {"username": "newcomer", "password": "a", "role": "viewer"}, "password", False),
    (
        "PUT",
        "/api/v1/settings",
        {"output_retention_days": 0, "retention_delete_executions": True},
        "retention_delete_executions",
        False,
    ),
    ("POST", "/api/v1/scripts", {"name": "", "script_type": "bash", "content": ""}, "name", False),
]


@IN_MODULE_LOOP
@pytest.mark.parametrize(("method", "url", "body", "field", "summed"), REFUSED)
async def test_a_422_names_its_fields_in_the_one_shape(
    reader: Reader, method: str, url: str, body: Any, field: str, summed: bool
) -> None:
    client, admin = reader.client, await reader.person(Role.admin)
    sent = {"content": body} if isinstance(body, bytes) else {"json": body}
    headers = {**admin.headers, "content-type": "application/json"}
    r = await client.request(method, url, headers=headers, **sent)
    assert r.status_code == 422, r.text
    answer = r.json()
    assert set(answer) == {"detail", "errors"}, answer
    errors = answer["errors"]
    assert errors and all(set(e) == {"field", "message"} for e in errors), answer
    assert answer["detail"].startswith(INVALID_INPUT), answer
    assert field in [e["field"] for e in errors], answer
    if summed:
        assert answer["detail"] == input_summary(errors), answer
