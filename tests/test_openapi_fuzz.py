"""Schemathesis over `/openapi.json` of a real server: every route, as an authenticated admin.

No generated request may get a 5xx, every response must match its documented schema and status
codes, and a request the schema calls valid must not be refused with a 422 for a rule the schema
could have stated (names, lengths, enums, patterns): clients and generated SDKs then agree with the
server. A bounded number of examples per route keeps the module well under a minute.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from opscraft.api import install_api
from opscraft.config import load_settings
from opscraft.services.bodies import INT_MESSAGE
from opscraft.services.scripts import NOT_NULL_RUN_SETTINGS
from tests.conftest import PASSWORD, LiveServer, start_server, stop_server

EXAMPLES_PER_ROUTE = 4
ADMIN_ID = 1  # the first registered user
# Rules no JSON Schema can state: script syntax and lint, parameter declarations (checked by the
# resolver), the configured maximum timeout, "the password is not the username", email
# deliverability rules of email-validator. A 422 of a schema-valid request may only name these.
SEMANTIC_FIELDS = {"content", "parameters", "timeout_seconds", "password", "new_password", "email"}
# Rules about other rows or tools: Ansible settings only on Ansible scripts, an inventory that
# ansible-inventory parses, a key secret that exists and is a file; run options only for
# Ansible, destroy only when confirmed; a shared inventory that exists, and not with `inventory`.
SEMANTIC_FIELDS |= {"inventory", "inventory_id", "ssh_user", "ssh_key_secret", "run_options"}
SEMANTIC_FIELDS |= {"confirm_destroy", "terraform_action", "terraform_workspace"}
# The current password is checked against the stored hash; a channel's config depends on its
# kind, and so does whether it needs a vault secret (Slack, an SMTP login), which must exist; a
# rule names a channel that must exist.
SEMANTIC_FIELDS |= {"current_password", "config", "secret_id", "channel_id"}
# A cron expression's fields (croniter parses it); a webhook's mapping names declared parameters.
SEMANTIC_FIELDS |= {"cron", "mapping"}
# A webhook's GitHub or GitLab signature form needs its signing secret (`secret_id`).
SEMANTIC_FIELDS |= {"signature_scheme"}
# A rotation window is kept only for a secret that signs a webhook (another row: webhook_triggers).
SEMANTIC_FIELDS |= {"previous_accepted_seconds"}
# Deleting runs by retention needs a retention period: the switch on with 0 days (sent or stored).
SEMANTIC_FIELDS |= {"retention_delete_executions", "output_retention_days"}
# A time zone is a name the IANA database (zoneinfo) knows.
SEMANTIC_FIELDS |= {"timezone", "tz"}
# A chain link's target must be an existing script that does not close a cycle of links.
SEMANTIC_FIELDS |= {"target_script_id"}
# A history cursor is one this API made (`next_cursor`), and comes without `skip`.
SEMANTIC_FIELDS |= {"cursor", "skip"}
# A refresh token to revoke at logout is one this server signed for the caller.
SEMANTIC_FIELDS |= {"refresh_token"}
# An API token's expiry is in the future (a rule of the clock, which no schema states).
SEMANTIC_FIELDS |= {"expires_at"}
# A name another row has: a 409 alone, one more field error of a 422 that has others. And a
# whole number sent as `5.0`: JSON Schema's `integer` admits it, the API refuses it (bodies.py).
TAKEN_MESSAGES = {"another script has this name", INT_MESSAGE}


class Admin:
    """The admin's token (`token`: the seeding's sign-in); logged in again when a fuzzed request
    ended its sessions (reset-password, logout and change-password are fuzzed too)."""

    def __init__(self, server: LiveServer, token: str) -> None:
        self.server = server
        self.token = token

    def login(self) -> None:
        r = httpx.post(
            f"{self.server.url}/api/v1/auth/login",
            json={"username": "admin", "password": PASSWORD},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        self.token = r.json()["access_token"]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def _seed(server: LiveServer) -> str:
    """An admin, and a few rows of each kind so that generated ids 1..3 often exist; returns the
    admin's access token (one sign-in: each is an argon2 check at the server's real cost)."""
    url = server.url
    body = {"username": "admin", "email": "admin@example.com", "password": PASSWORD}
    assert httpx.post(f"{url}/api/v1/auth/register", json=body, timeout=30).status_code == 201
    login = httpx.post(
        f"{url}/api/v1/auth/login", json={"username": "admin", "password": PASSWORD}, timeout=30
    )
    token = str(login.json()["access_token"])
    headers = {"Authorization": f"Bearer {token}"}
    for i in range(1, 4):
        # Drafts: an execution of a generated request is refused (409) instead of running a container.
        script = {"name": f"seed-{i}", "script_type": "bash", "content": f"echo {i}\n", "tags": ["seed"]}
        assert (
            httpx.post(f"{url}/api/v1/scripts", json=script, headers=headers, timeout=30).status_code == 201
        )
        secret = {"name": f"SEED_{i}", "value": f"value-{i}"}
        assert (
            httpx.post(f"{url}/api/v1/secrets", json=secret, headers=headers, timeout=30).status_code == 201
        )
        user = {"username": f"seed{i}", "email": f"seed{i}@example.com", "password": PASSWORD}
        assert httpx.post(f"{url}/api/v1/users", json=user, headers=headers, timeout=30).status_code == 201
    return token


@pytest.fixture(scope="module")
def admin_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Admin]:
    """The module's server, seeded (`_seed`), and its admin's session from the seeding."""
    server = start_server(tmp_path_factory.mktemp("fuzz") / "server")
    try:
        yield Admin(server, _seed(server))
    finally:
        stop_server(server)


@pytest.fixture(scope="module")
def fuzz_server(admin_session: Admin) -> LiveServer:
    return admin_session.server


@functools.cache
def _document_text() -> str:
    """The OpenAPI document the server serves, built once per process without starting anything
    (the routers are the same; `test_the_live_server_serves_this_schema` checks it): building
    the API and its document is about a second of CPU, and four users of it built it four times."""
    app = FastAPI()
    install_api(app, load_settings(SECRET_KEY="x" * 40))
    return json.dumps(app.openapi())


def _document() -> dict[str, Any]:
    """A copy of its own of the document (`_document_text`): schemathesis may change the one it gets."""
    return dict(json.loads(_document_text()))


# The explicit examples and the random phase, EXAMPLES_PER_ROUTE each; not the coverage phase,
# whose boundary cases are unbounded in number (and slow on routes that hash a password).
CONFIG = schemathesis.Config.from_dict(
    {
        "phases": {"coverage": {"enabled": False}, "stateful": {"enabled": False}},
        "generation": {"max-examples": EXAMPLES_PER_ROUTE},
    }
)
schema = schemathesis.openapi.from_dict(_document(), config=CONFIG)


def _refused_for_a_stateable_rule(case: Any, response: Any) -> list[str]:
    """Fields of a 422 to a schema-valid request that the schema could have constrained."""
    meta = getattr(case, "meta", None)
    positive = meta is not None and meta.generation.mode.is_positive
    if not positive or response.status_code != 422:
        return []
    fields = [
        str(e.get("field", ""))
        for e in response.json().get("errors", [])
        if e.get("message") not in TAKEN_MESSAGES
    ]
    return [f for f in fields if f.split(".", 1)[0].split("[", 1)[0] not in SEMANTIC_FIELDS]


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_ROUTE,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_no_route_answers_a_server_error_or_off_its_schema(case: Any, admin_session: Admin) -> None:
    url = admin_session.server.url
    if case.path.endswith("/reset-password") and case.path_parameters.get("user_id") == ADMIN_ID:
        case.path_parameters["user_id"] = ADMIN_ID + 1  # a seeded user: the admin keeps its password
    response = case.call(base_url=url, headers=admin_session.headers, timeout=30)
    if response.status_code == 401 and not case.path.startswith("/api/v1/auth/"):
        admin_session.login()  # a fuzzed reset-password or logout ended the admin's sessions
        response = case.call(base_url=url, headers=admin_session.headers, timeout=30)
    case.validate_response(
        response,
        checks=[
            not_a_server_error,
            response_schema_conformance,
            status_code_conformance,
            content_type_conformance,
        ],
    )
    assert not _refused_for_a_stateable_rule(case, response), (case.method, case.path, response.text)


def test_the_live_server_serves_this_schema(fuzz_server: LiveServer) -> None:
    served = httpx.get(f"{fuzz_server.url}/openapi.json", timeout=30).json()
    assert served["paths"] == _document()["paths"]


def test_the_schema_states_the_real_constraints() -> None:
    """The rules the fuzzer found missing are in the documented request bodies."""
    models = _document()["components"]["schemas"]
    assert models["ScriptCreate"]["properties"]["name"]["pattern"].startswith("^[A-Za-z0-9]")
    assert models["SecretCreate"]["properties"]["name"]["pattern"].startswith("^[A-Za-z_]")
    assert models["UserCreate"]["properties"]["username"]["pattern"].startswith("^[A-Za-z0-9]")
    assert models["ScriptCreate"]["properties"]["tags"]["maxItems"] == 20
    assert "pattern" in models["ScriptCreate"]["properties"]["description"], "no NUL: PostgreSQL refuses it"
    # A secret's rotation window goes with a new value, and alone changes nothing
    assert models["SecretUpdate"]["dependentRequired"] == {"previous_accepted_seconds": ["value"]}
    assert models["SecretUpdate"]["anyOf"] == [{"required": ["description"]}, {"required": ["value"]}]
    for model in ("ScriptCreate", "ScriptUpdate"):  # left out or a value, never null (a 422)
        for field in NOT_NULL_RUN_SETTINGS:
            shown = models[model]["properties"][field]
            assert "anyOf" not in shown and shown["type"] != "null" and shown.get("default", 0) is not None


# Pydantic's names of numeric bounds: in a schema they are unknown keys no client enforces.
NOT_JSON_SCHEMA = {"ge", "gt", "le", "lt"}


def test_every_parameter_bound_is_a_json_schema_keyword() -> None:
    """Ids, pages and versions state their bounds as `minimum`/`maximum` (a validator placed
    before `Path`/`Query` once turned them into `ge`/`le` keys, and a client sent 0 or 2**31)."""
    found = 0
    for path, operations in _document()["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                schema = parameter["schema"]
                choices = [schema, *schema.get("anyOf", [])]
                assert not NOT_JSON_SCHEMA & {key for choice in choices for key in choice}, (
                    method,
                    path,
                    schema,
                )
                found += any(choice.get("type") == "integer" and "maximum" in choice for choice in choices)
    assert found > 50, "the integer parameters of the API state their maximum"


def test_a_put_body_requires_no_field_and_shows_no_default() -> None:
    """A field a `PUT` leaves out keeps its stored value (services/partial.py), so its schema
    requires none and shows no create-time default."""
    document = _document()
    models = document["components"]["schemas"]
    for name in ["ScheduleChanges", "WebhookChanges", "LinkChanges", "ChannelChanges", "InventoryChanges"]:
        assert "required" not in models[name] and models[name]["properties"], name
        assert not [field for field, prop in models[name]["properties"].items() if "default" in prop], name
    put = document["paths"]["/api/v1/scripts/{script_id}/schedules/{schedule_id}"]["put"]
    assert put["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/ScheduleChanges")
    assert models["ScheduleIn"]["required"] == ["name", "cron"], "the POST body still requires them"


def test_a_base_states_that_its_text_holds_no_nul() -> None:
    """The `base` of every `PUT` (what the fields held when the edit started: services/partial.py)
    takes plain types, and its text says it holds no NUL, as the body's text does: a base key or
    value with one was a 422 of a request the schema called valid."""
    models = _document()["components"]["schemas"]
    bases = set()
    for model in models.values():
        base = model.get("properties", {}).get("base", {})
        bases |= {c["$ref"].rsplit("/", 1)[1] for c in [base, *base.get("anyOf", [])] if "$ref" in c}
    assert {"ScheduleBase", "WebhookBase", "LinkBase", "ChannelBase", "RuleBase", "UserBase"} <= bases
    for name in bases:
        for field, prop in models[name]["properties"].items():
            for choice in [prop, *prop.get("anyOf", [])]:
                texts = [choice, choice.get("items", {})] if "enum" not in choice else []
                for text in (t for t in texts if t.get("type") == "string"):
                    assert text.get("pattern") == "^[^\\u0000]*$", (name, field)
                if choice.get("type") == "object" and (name, field) != ("ScriptBase", "parameters"):
                    # (a script's base parameters are a declaration, checked as one: semantic)
                    assert choice.get("propertyNames") == {"pattern": "^[^\\u0000]*$"}, (name, field)
