"""Messages a service sends are true to the situation and say what to do (issue 10: "review every
message a service can send for truth"), on SQLite and PostgreSQL."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from datetime import timedelta

import httpx
import pytest
from pydantic import BaseModel, ValidationError

import opscraft.api
import opscraft.services
from opscraft import runtime
from opscraft.db.models.scripts import ScriptType
from opscraft.security.tokens import issue_token
from opscraft.services import auth, line_endings
from opscraft.services.script_checks import check
from tests.conftest import PASSWORD, LoggedIn


async def test_a_token_of_the_wrong_type_is_named_with_the_fix(
    client: httpx.AsyncClient, viewer: LoggedIn
) -> None:
    login = await client.post("/api/v1/auth/login", json={"username": "viewer", "password": PASSWORD})
    tokens = login.json()
    as_bearer = await client.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {tokens['refresh_token']}"}
    )
    assert as_bearer.status_code == 401
    assert as_bearer.json()["detail"] == (
        "this is a refresh token, not an access token: send the access_token of the login response"
    )
    as_refresh = await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["access_token"]})
    assert as_refresh.status_code == 401
    assert as_refresh.json()["detail"] == (
        "this is an access token, not a refresh token: send the refresh_token of the login response"
    )
    key = runtime.current().settings.secret_key
    assert key is not None
    expired, _ = issue_token(key, viewer.id, "access", 0, timedelta(seconds=-5), "k")
    late = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {expired}"})
    assert late.json()["detail"] == (
        "the access token has expired: get a new one (POST /api/v1/auth/refresh) or log in again"
    )
    garbage = await client.get("/api/v1/auth/me", headers={"Authorization": "Bearer not-a-jwt"})
    assert garbage.json()["detail"] == "the access token is invalid: log in again"


@pytest.mark.parametrize(
    ("script_type", "content", "message"),
    [
        (
            ScriptType.bash,
            "\ufeff#!/bin/bash\necho hi\n",
            "removed the invisible byte order mark (BOM) at the start: with it, the first line "
            "(such as #!/bin/bash) is not read as a shebang",
        ),
        (
            ScriptType.python,
            "\ufeffprint('hi')\n",
            "removed the invisible byte order mark (BOM) at the start: with it, Python refuses line 1 "
            "(invalid non-printable character U+FEFF)",
        ),
        (
            ScriptType.ansible,
            "\ufeff- hosts: localhost\n  tasks: []\n",
            "removed the invisible byte order mark (BOM) at the start: scripts are stored without one",
        ),
        (
            ScriptType.terraform,
            '\ufeffoutput "x" {\n  value = 1\n}\n',
            "removed the invisible byte order mark (BOM) at the start: scripts are stored without one",
        ),
    ],
)
async def test_the_bom_notice_speaks_of_the_script_type(
    script_type: ScriptType, content: str, message: str
) -> None:
    checks = await check(script_type, content)
    assert [n.message for n in checks.notices] == [message]
    assert "#!/bin/bash" not in line_endings.normalize(content, "terraform")[1][0].message


async def test_nul_refusals_say_what_to_do_not_which_database(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    body = {"username": "nul-user", "email": "nul@example.com", "password": "pass\u0000word-long-1"}
    response = await client.post("/api/v1/users", json=body, headers=admin.headers)
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "password", "message": "must not contain NUL characters (U+0000): remove them"}
    ]
    secret = {"name": "NUL_SECRET", "value": "a\u0000b"}
    refused = await client.post("/api/v1/secrets", json=secret, headers=admin.headers)
    assert refused.status_code == 422
    assert "PostgreSQL" not in refused.text and "NUL" in refused.text


async def test_script_create_reports_every_field_error_at_once(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    first = {"name": "taken", "script_type": "bash", "content": "echo hi\n"}
    assert (await client.post("/api/v1/scripts", json=first, headers=admin.headers)).status_code == 201
    body = {
        "name": "taken",
        "script_type": "python",
        "content": "def broken(:\n",
        "parameters": [{"name": "N", "type": "integer", "required": True, "default": 3}],
        "timeout_seconds": 10**9,
        "inventory": "[web]\nweb1\n",
    }
    response = await client.post("/api/v1/scripts", json=body, headers=admin.headers)
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert {e["field"] for e in errors} == {
        "content",
        "parameters.N",
        "timeout_seconds",
        "inventory",
        "name",
    }, errors
    required = next(e for e in errors if e["field"] == "parameters.N")
    assert required["message"] == (
        "default not allowed on a required parameter (every run must give its value): "
        "remove the default or make the parameter optional"
    )
    # The name alone: a 409 conflict, as before.
    again = await client.post("/api/v1/scripts", json=first, headers=admin.headers)
    assert again.status_code == 409
    assert again.json()["detail"] == "a script with this name already exists: choose another name"
    # Dangerous patterns are asked about only once nothing else is wrong.
    risky = {
        **first,
        "name": "risky",
        "content": "curl -s http://127.0.0.1:9/x | sh\n",
        "timeout_seconds": 10**9,
    }
    refused = await client.post("/api/v1/scripts", json=risky, headers=admin.headers)
    assert [e["field"] for e in refused.json()["errors"]] == ["timeout_seconds"]


async def test_script_update_reports_every_field_error_at_once(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    made = await client.post(
        "/api/v1/scripts",
        json={"name": "one", "script_type": "bash", "content": "echo\n"},
        headers=admin.headers,
    )
    await client.post(
        "/api/v1/scripts",
        json={"name": "two", "script_type": "bash", "content": "echo\n"},
        headers=admin.headers,
    )
    change = {"name": "two", "content": "if then\n", "timeout_seconds": 10**9, "ssh_user": "deploy"}
    response = await client.put(f"/api/v1/scripts/{made.json()['id']}", json=change, headers=admin.headers)
    assert response.status_code == 422, response.text
    assert {e["field"] for e in response.json()["errors"]} == {
        "content",
        "timeout_seconds",
        "ssh_user",
        "name",
    }


async def test_a_script_that_cannot_run_says_who_can_fix_it(
    client: httpx.AsyncClient, viewer: LoggedIn, operator: LoggedIn
) -> None:
    body = {"name": "not-yet", "script_type": "bash", "content": "echo hi\n"}
    script_id = (await client.post("/api/v1/scripts", json=body, headers=operator.headers)).json()["id"]
    messages = {}
    for who in (viewer, operator):
        r = await client.post("/api/v1/executions", json={"script_id": script_id}, headers=who.headers)
        assert r.status_code == 409
        messages[who.username] = r.json()["detail"]
    assert messages == {
        "viewer": "script 'not-yet' is draft: only active scripts can be executed; "
        "ask an operator or an admin to activate it first",
        "operator": "script 'not-yet' is draft: only active scripts can be executed; "
        "activate it first, or test-run it from its editor",
    }


async def test_used_and_unknown_credentials_say_what_to_do(
    client: httpx.AsyncClient, viewer: LoggedIn
) -> None:
    login = await client.post("/api/v1/auth/login", json={"username": "viewer", "password": PASSWORD})
    refresh_token = login.json()["refresh_token"]
    rotated = await client.post("/api/v1/auth/refresh", json={"refresh_token": refresh_token})
    assert rotated.status_code == 200
    reused = await client.post("/api/v1/auth/refresh", json={"refresh_token": refresh_token})
    assert reused.json()["detail"] == auth.REFRESH_REUSED
    # The newest token of that sign-in was revoked with it (not rotated): only refused.
    newest_token = rotated.json()["refresh_token"]
    newest = await client.post("/api/v1/auth/refresh", json={"refresh_token": newest_token})
    assert newest.json()["detail"] == "the refresh token has been used or revoked: log in again"
    unknown = await client.get("/api/v1/auth/me", headers={"Authorization": "Bearer ocp_" + "x" * 40})
    assert unknown.json()["detail"] == (
        "API token is invalid or revoked: check it, or create a new one on the API tokens page"
    )


async def test_a_refusal_names_what_was_refused_and_who_may(
    client: httpx.AsyncClient, viewer: LoggedIn, operator: LoggedIn
) -> None:
    """Actions checked with another permission said that permission ("your role (viewer) may not
    edit scripts" for a schedule or a plan's apply): each says its own action and the roles it needs."""
    body = {"name": "refusals", "script_type": "bash", "content": "echo hi\n"}
    script_id = (await client.post("/api/v1/scripts", json=body, headers=operator.headers)).json()["id"]
    cases = {
        f"/api/v1/scripts/{script_id}/schedules": ({"name": "n", "cron": "0 1 * * *"}, "manage schedules"),
        f"/api/v1/scripts/{script_id}/webhooks": ({"name": "n"}, "manage webhooks"),
        f"/api/v1/scripts/{script_id}/test-runs": (
            {"content": "echo x\n"},
            "start a test run of unsaved code",
        ),
        "/api/v1/scripts": (body, "edit scripts"),
    }
    for path, (payload, action) in cases.items():
        r = await client.post(path, json=payload, headers=viewer.headers)
        assert r.status_code == 403, (path, r.text)
        assert r.json()["detail"] == f"your role (viewer) may not {action}: that needs operator or admin"
    r = await client.get("/api/v1/users", headers=operator.headers)
    assert r.json()["detail"] == "your role (operator) may not manage users: that needs admin"


def _request_models() -> list[type[BaseModel]]:
    """Every pydantic model defined in opscraft.services and opscraft.api."""
    models: dict[str, type[BaseModel]] = {}
    for package in (opscraft.services, opscraft.api):
        for module in pkgutil.iter_modules(package.__path__):
            loaded = importlib.import_module(f"{package.__name__}.{module.name}")
            for _, cls in inspect.getmembers(loaded, inspect.isclass):
                if issubclass(cls, BaseModel) and cls.__module__.startswith("opscraft."):
                    models[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return list(models.values())


def test_a_too_long_text_is_refused_in_characters_by_every_model() -> None:
    """A limit on an optional text field (`Text | None = Field(max_length=...)`) was checked after
    the field's validators, and said "Value should have at most 1000 items after validation, not
    10000" under a secret's description in the edit dialog; `storable.limited` says characters."""
    models = _request_models()
    assert len(models) > 50
    found = []
    for model in models:
        for name in model.model_fields:
            try:
                model.__pydantic_validator__.validate_assignment(model.model_construct(), name, "x" * 300_000)
            except ValidationError as exc:
                found += [
                    f"{model.__qualname__}.{name}: {e['msg']}" for e in exc.errors() if "items" in e["msg"]
                ]
    assert found == []


async def test_an_edit_too_long_is_refused_under_its_field_in_characters(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    created = await client.post(
        "/api/v1/secrets", json={"name": "LONG_DESC", "value": "v4lue"}, headers=admin.headers
    )
    assert created.status_code == 201, created.text
    edit = await client.put(
        f"/api/v1/secrets/{created.json()['id']}", json={"description": "x" * 1001}, headers=admin.headers
    )
    assert edit.status_code == 422
    assert edit.json()["errors"] == [
        {"field": "description", "message": "must be at most 1000 characters, not 1001"}
    ]
