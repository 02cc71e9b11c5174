"""A limit's message says what must be and what was sent, in every rule of the services: the
Profile page said "At least 8 characters" of the password the set-up page called "Must be at
least 8 characters, not 5", and the editor said "At most 86400" of a timeout beside "Must be at
most 65536" of the memory (pydantic's words, `input_words`). A new user read a bare limit as a
hint, not as what to fix. Tags: tests/test_scripts_api.py (test_tag_and_cpu_bounds_say_what_is_wrong)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from opscraft.services import parameters
from tests.conftest import PASSWORD, LoggedIn

BODY = {"name": "limits", "script_type": "bash", "content": "echo hi\n"}
OPTIONS = [str(n) for n in range(parameters.MAX_OPTIONS + 1)]


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        (
            {"timeout_seconds": 10**6},
            "timeout_seconds",
            "must be at most 86400 (OPSCRAFT_MAX_TIMEOUT_SECONDS), not 1000000",
        ),
        (  # JSON numbers have no length limit: the refusal does not write 401 digits back
            {"timeout_seconds": 10**400},
            "timeout_seconds",
            "must be at most 86400 (OPSCRAFT_MAX_TIMEOUT_SECONDS), not a number of 401 digits",
        ),
        (
            {
                "parameters": [
                    {"name": f"P{n}", "type": "string"} for n in range(parameters.MAX_PARAMETERS + 1)
                ]
            },
            "parameters",
            "must have at most 100, not 101",
        ),
        (
            {"parameters": [{"name": "C", "type": "choice", "options": OPTIONS}]},
            "parameters.C",
            "must have at most 100 options, not 101",
        ),
    ],
)
async def test_a_script_field_past_its_limit_says_the_limit_and_what_was_sent(
    client: httpx.AsyncClient, operator: LoggedIn, overrides: dict[str, Any], field: str, message: str
) -> None:
    r = await client.post("/api/v1/scripts", json={**BODY, **overrides}, headers=operator.headers)
    assert r.status_code == 422, r.text
    said = {e["field"]: e["message"] for e in r.json()["errors"]}
    assert message in said[field], said
    detail = r.json()["detail"]
    assert detail.startswith("invalid input: ") and f"{field}: {said[field]}" in detail, r.text


async def test_a_password_change_past_a_limit_says_it_as_the_set_up_page_does(
    client: httpx.AsyncClient, viewer: LoggedIn
) -> None:
    for new, message in (
        ("short", "must be at least 8 characters, not 5"),
        ("p" * 300, "must be at most 256 characters, not 300"),
    ):
        r = await client.post(
            "/api/v1/auth/change-password",
            json={"current_password": PASSWORD, "new_password": new},
            headers=viewer.headers,
        )
        assert r.status_code == 422, r.text
        assert r.json()["errors"] == [{"field": "new_password", "message": message}]


async def test_a_token_name_past_its_limit_says_the_length_sent(
    client: httpx.AsyncClient, viewer: LoggedIn
) -> None:
    r = await client.post("/api/v1/tokens", json={"name": "t" * 65}, headers=viewer.headers)
    assert r.status_code == 422, r.text
    assert r.json()["errors"] == [{"field": "name", "message": "must be at most 64 characters, not 65"}]
