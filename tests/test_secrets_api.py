"""The secrets API on SQLite and PostgreSQL: shapes, rules, audit, and no value in any response."""

from __future__ import annotations

import base64
import secrets as pysecrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from opscraft import runtime
from opscraft.db.models import Execution
from opscraft.services import keyring, secrets
from tests.conftest import LoggedIn

VALUE = "Hunter2-correct-horse-Zx9!"
SECRET_FORMS = (VALUE, base64.b64encode(VALUE.encode()).decode(), VALUE.encode().hex())


@pytest.fixture
async def seen(client: httpx.AsyncClient) -> AsyncIterator[list[str]]:
    """Every response body of the test; checked at the end for the secret value in any form."""
    bodies: list[str] = []

    async def record(response: httpx.Response) -> None:
        await response.aread()
        bodies.append(response.text)

    client.event_hooks["response"].append(record)
    yield bodies
    client.event_hooks["response"].remove(record)
    for body in bodies:
        for form in SECRET_FORMS:
            assert form not in body


async def make_script(client: httpx.AsyncClient, who: LoggedIn, **extra: Any) -> int:
    body = {"name": f"s-{pysecrets.token_hex(4)}", "script_type": "bash", "content": "echo hi\n", **extra}
    r = await client.post("/api/v1/scripts", json=body, headers=who.headers)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def make_secret(client: httpx.AsyncClient, who: LoggedIn, name: str = "DB_PASSWORD") -> dict[str, Any]:
    r = await client.post(
        "/api/v1/secrets",
        json={"name": name, "value": VALUE, "description": "Production database password"},
        headers=who.headers,
    )
    assert r.status_code == 201, r.text
    return r.json()


async def actions(client: httpx.AsyncClient, who: LoggedIn, secret_id: int) -> list[str]:
    r = await client.get(f"/api/v1/secrets/{secret_id}/audit-logs", headers=who.headers)
    assert r.status_code == 200, r.text
    return [e["action"] for e in reversed(r.json()["items"])]


async def test_create_list_get_metadata_only(
    client: httpx.AsyncClient, operator: LoggedIn, seen: list
) -> None:
    created = await make_secret(client, operator)
    assert created["name"] == "DB_PASSWORD"
    assert created["created_by_name"] == "operator" and created["scripts"] == []
    assert not {"value", "ciphertext", "salt", "nonce"} & created.keys()
    assert created["warnings"] == []
    listed = (await client.get("/api/v1/secrets", headers=operator.headers)).json()
    assert listed["total"] == 1 and listed["items"][0]["id"] == created["id"]
    r = await client.get("/api/v1/secrets", params={"search": "production"}, headers=operator.headers)
    assert r.json()["total"] == 1
    r = await client.get("/api/v1/secrets", params={"search": "nothing-like-it"}, headers=operator.headers)
    assert r.json()["total"] == 0
    got = (await client.get(f"/api/v1/secrets/{created['id']}", headers=operator.headers)).json()
    assert got["description"] == "Production database password"
    assert await actions(client, operator, created["id"]) == ["secret.create"]


async def test_search_takes_percent_and_underscore_literally(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    """`DB_` finds DB_PASS, not DBXPASS; `%` finds the description saying 100%, not every secret
    (they are LIKE's wildcards)."""
    for name in ("DB_PASS", "DBXPASS", "OTHER"):
        await make_secret(client, operator, name)
    r = await client.put(
        f"/api/v1/secrets/{(await make_secret(client, operator, 'QUOTA'))['id']}",
        json={"description": "alert at 100% \\ full"},
        headers=operator.headers,
    )
    assert r.status_code == 200, r.text

    async def names(search: str) -> list[str]:
        r = await client.get("/api/v1/secrets", params={"search": search}, headers=operator.headers)
        assert r.status_code == 200, r.text
        return [item["name"] for item in r.json()["items"]]

    assert await names("db_") == ["DB_PASS"]
    assert await names("%") == await names("100%") == await names("\\") == ["QUOTA"]
    assert await names("_") == ["DB_PASS"]


async def test_search_ignores_the_case_of_every_letter(client: httpx.AsyncClient, operator: LoggedIn) -> None:
    """SQLite's lower() folds A-Z only: `résumé` missed a description saying `RÉSUMÉ` there
    while PostgreSQL found it. Both databases fold every cased letter (db/fold.py)."""
    created = await make_secret(client, operator, "CV_KEY")
    r = await client.put(
        f"/api/v1/secrets/{created['id']}",
        json={"description": "RÉSUMÉ ΣΟΦΊΑ Ünïcode"},
        headers=operator.headers,
    )
    assert r.status_code == 200, r.text
    await make_secret(client, operator, "OTHER")
    for search in ("résumé", "RÉSUMÉ", "σοφία", "ünï"):
        r = await client.get("/api/v1/secrets", params={"search": search}, headers=operator.headers)
        assert [item["name"] for item in r.json()["items"]] == ["CV_KEY"], (search, r.text)


async def test_search_folds_dotted_capital_i_and_final_sigma_alike_on_both_databases(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    """PostgreSQL's lower() maps `İ` to `i` and `Σ` to U+03C3 everywhere; Python's str.lower (the
    searched term's, and SQLite's fold) made `İ` an `i` and a combining dot and a word-final `Σ`
    a `ς`: searching `İstanbul` as shown found nothing on PostgreSQL, `istanbul` nothing on
    SQLite (db/fold.py `lower`)."""
    created = await make_secret(client, operator, "TR_KEY")
    r = await client.put(
        f"/api/v1/secrets/{created['id']}", json={"description": "İSTANBUL ΟΔΟΣ"}, headers=operator.headers
    )
    assert r.status_code == 200, r.text
    await make_secret(client, operator, "OTHER")
    for search in ("İstanbul", "istanbul", "ISTANBUL", "ΟΔΟΣ", "οδοσ"):
        r = await client.get("/api/v1/secrets", params={"search": search}, headers=operator.headers)
        assert [item["name"] for item in r.json()["items"]] == ["TR_KEY"], (search, r.text)


# (case, body: JSON or raw JSON text, the field the 422 names, words of its message).
INVALID_SECRETS: list[tuple[str, dict | str, str, str]] = [
    ("digit-first", {"name": "1ABC", "value": VALUE}, "name", "environment variable name"),
    ("reserved", {"name": "PATH", "value": VALUE}, "name", "reserved"),
    ("reserved-prefix", {"name": "OPSCRAFT_TOKEN", "value": VALUE}, "name", "reserved"),
    ("empty", {"name": "OK_NAME", "value": ""}, "value", "must not be empty"),
    (
        "blank",
        {"name": "OK_NAME", "value": " \t\r\n    "},
        "value",
        "must not be only spaces, tabs or line breaks",
    ),
    ("nul", {"name": "OK_NAME", "value": VALUE + "\x00"}, "value", "NUL"),
    ("too-large", {"name": "OK_NAME", "value": VALUE * 3000}, "value", "at most 65536 bytes"),
    (
        "not-text",
        {"name": "OK_NAME", "value": 12345678},
        "value",
        "must be text, a JSON string (it is a number)",
    ),
    ("missing", {"name": "OK_NAME"}, "value", "is required: this field is missing"),
    # JSON may escape a lone surrogate, which no UTF-8 text (or database) can hold.
    ("lone-surrogate", '{"name": "OK_NAME", "value": "ab\\ud800cd"}', "value", "valid Unicode"),
    (
        "surrogate-description",
        '{"name": "OK_NAME", "value": "abcd", "description": "x\\udfff"}',
        "description",
        "valid Unicode",
    ),
]


async def test_invalid_input_names_the_field_never_the_value(
    client: httpx.AsyncClient, operator: LoggedIn, seen: list
) -> None:
    """Each of `INVALID_SECRETS` in turn, in one test: one server per database, not one per case."""
    for case, body, field, message in INVALID_SECRETS:
        if isinstance(body, str):
            headers = {**operator.headers, "Content-Type": "application/json"}
            r = await client.post("/api/v1/secrets", content=body, headers=headers)
        else:
            r = await client.post("/api/v1/secrets", json=body, headers=operator.headers)
        assert r.status_code == 422, (case, r.text)
        errors = r.json()["errors"]
        assert errors[0]["field"] == field and message in errors[0]["message"], (case, errors)
        assert "12345678" not in r.text, case


async def test_duplicate_name_is_a_conflict(
    client: httpx.AsyncClient, operator: LoggedIn, seen: list
) -> None:
    await make_secret(client, operator)
    r = await client.post(
        "/api/v1/secrets", json={"name": "DB_PASSWORD", "value": VALUE}, headers=operator.headers
    )
    assert r.status_code == 409 and "already exists" in r.json()["detail"]


async def test_update_description_and_value(
    client: httpx.AsyncClient, operator: LoggedIn, seen: list
) -> None:
    secret_id = (await make_secret(client, operator))["id"]
    url = f"/api/v1/secrets/{secret_id}"
    r = await client.put(url, json={}, headers=operator.headers)
    assert r.status_code == 422 and "send a new description and/or a new value" in r.json()["detail"]
    r = await client.put(url, json={"description": "rotated quarterly"}, headers=operator.headers)
    assert r.status_code == 200 and r.json()["description"] == "rotated quarterly"
    r = await client.put(url, json={"value": VALUE[::-1]}, headers=operator.headers)
    assert r.status_code == 200, r.text
    r = await client.put(url, json={"value": ""}, headers=operator.headers)
    assert r.status_code == 422
    r = await client.put(url, json={"value": "\n\n    "}, headers=operator.headers)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "value", r.text
    assert await actions(client, operator, secret_id) == [
        "secret.create",
        "secret.update_description",
        "secret.update_value",
    ]
    r = await client.put("/api/v1/secrets/999999", json={"description": "x"}, headers=operator.headers)
    assert r.status_code == 404


async def test_a_value_too_short_to_mask_is_saved_with_a_warning(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    """A value under 4 characters is not masked in output (docs/secrets.md): it is kept, and the
    create and update answers say so (it said nothing), without the value; listings carry none."""
    r = await client.post("/api/v1/secrets", json={"name": "PIN", "value": "7q9"}, headers=operator.headers)
    assert r.status_code == 201, r.text
    (warning,) = r.json()["warnings"]
    assert warning.startswith("value: shorter than 4 characters") and "not masked" in warning
    assert "7q9" not in r.text
    url = f"/api/v1/secrets/{r.json()['id']}"
    r = await client.put(url, json={"value": "  z8 \n"}, headers=operator.headers)  # blanks aside: 2
    assert r.status_code == 200 and r.json()["warnings"] == [warning], r.text
    r = await client.put(url, json={"value": "long enough"}, headers=operator.headers)
    assert r.status_code == 200 and r.json()["warnings"] == []
    r = await client.put(url, json={"description": "a PIN"}, headers=operator.headers)
    assert r.json()["warnings"] == []
    for got in (
        (await client.get("/api/v1/secrets", headers=operator.headers)).json()["items"][0],
        (await client.get(url, headers=operator.headers)).json(),
    ):
        assert got["warnings"] == []


async def test_the_same_description_again_changes_nothing(
    client: httpx.AsyncClient, operator: LoggedIn, admin: LoggedIn
) -> None:
    """Saving the description unchanged is not a change: the secret stays "updated by" whoever
    last changed it (as its audit log says), not by the admin who saved nothing."""
    secret_id = (await make_secret(client, operator))["id"]
    url = f"/api/v1/secrets/{secret_id}"
    before = (await client.put(url, json={"description": "rotated"}, headers=operator.headers)).json()
    r = await client.put(url, json={"description": "rotated"}, headers=admin.headers)
    assert r.status_code == 200, r.text
    assert (r.json()["updated_by_name"], r.json()["updated_at"]) == ("operator", before["updated_at"])
    assert await actions(client, operator, secret_id) == ["secret.create", "secret.update_description"]
    r = await client.put(url, json={"value": "new-value-1"}, headers=admin.headers)
    assert r.json()["updated_by_name"] == "admin" and r.json()["updated_at"] > before["updated_at"]


async def test_a_description_changed_since_the_edit_started_is_not_undone(
    client: httpx.AsyncClient, operator: LoggedIn, admin: LoggedIn
) -> None:
    """Two tabs edit one secret's description: the later save replaced the earlier one without a
    word. With `base` (what its edit started from) it is a 409 naming `description`, nothing
    written; a `base` still current, or a description left as it started, saves as before."""
    secret_id = (await make_secret(client, operator))["id"]
    url = f"/api/v1/secrets/{secret_id}"
    started = {"description": "Production database password"}
    r = await client.put(url, json={"description": "by admin", "base": started}, headers=admin.headers)
    assert r.status_code == 200 and r.json()["description"] == "by admin", r.text
    r = await client.put(url, json={"description": "by operator", "base": started}, headers=operator.headers)
    assert r.status_code == 409, r.text
    assert [e["field"] for e in r.json()["errors"]] == ["description"]
    assert "changed by someone else" in r.json()["detail"]
    assert (await client.get(url, headers=operator.headers)).json()["description"] == "by admin"
    # The description as it started, with a new value: the value is saved, the description kept.
    body = {"description": started["description"], "value": VALUE[::-1], "base": started}
    r = await client.put(url, json=body, headers=operator.headers)
    assert r.status_code == 200 and r.json()["description"] == "by admin", r.text
    r = await client.put(
        url,
        json={"description": "by operator", "base": {"description": "by admin"}},
        headers=operator.headers,
    )
    assert r.status_code == 200 and r.json()["description"] == "by operator", r.text
    assert await actions(client, operator, secret_id) == [
        "secret.create",
        "secret.update_description",
        "secret.update_value",
        "secret.update_description",
    ]


async def test_attach_list_detach(
    client: httpx.AsyncClient, operator: LoggedIn, viewer: LoggedIn, seen: list
) -> None:
    script_id = await make_script(client, operator)
    secret_id = (await make_secret(client, operator))["id"]
    path = f"/api/v1/scripts/{script_id}/secrets/{secret_id}"
    r = await client.post(path, headers=operator.headers)
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "DB_PASSWORD" and r.json()["attached_by_name"] == "operator"
    r = await client.post(path, headers=operator.headers)
    assert r.status_code == 409 and "already attached" in r.json()["detail"]
    assert r.json()["errors"] == [{"field": "secret_id", "message": "already attached to this script"}]
    # Viewers see which secrets a script runs with, by name only; never the secrets list.
    r = await client.get(f"/api/v1/scripts/{script_id}/secrets", headers=viewer.headers)
    assert r.status_code == 200 and [a["name"] for a in r.json()["items"]] == ["DB_PASSWORD"]
    assert (await client.get("/api/v1/secrets", headers=viewer.headers)).status_code == 403
    got = (await client.get(f"/api/v1/secrets/{secret_id}", headers=operator.headers)).json()
    assert [s["id"] for s in got["scripts"]] == [script_id]
    assert (await client.delete(path, headers=operator.headers)).status_code == 204
    r = await client.delete(path, headers=operator.headers)
    assert r.status_code == 404 and "is not attached" in r.json()["detail"]
    assert (
        await client.post(f"/api/v1/scripts/999999/secrets/{secret_id}", headers=operator.headers)
    ).status_code == 404
    assert (
        await client.post(f"/api/v1/scripts/{script_id}/secrets/999999", headers=operator.headers)
    ).status_code == 404
    assert await actions(client, operator, secret_id) == ["secret.create", "secret.attach", "secret.detach"]


async def test_attach_refused_when_a_parameter_has_the_name(
    client: httpx.AsyncClient, operator: LoggedIn, seen: list
) -> None:
    script_id = await make_script(
        client, operator, parameters={"DB_PASSWORD": "x"}, content="echo $DB_PASSWORD\n"
    )
    secret_id = (await make_secret(client, operator))["id"]
    r = await client.post(f"/api/v1/scripts/{script_id}/secrets/{secret_id}", headers=operator.headers)
    assert r.status_code == 409 and "declares a parameter named DB_PASSWORD" in r.json()["detail"]
    assert r.json()["errors"] == [
        {"field": "secret_id", "message": "would shadow the script's parameter DB_PASSWORD"}
    ]


async def test_a_terraform_parameter_and_its_tf_var_secret_are_refused_together(
    client: httpx.AsyncClient, operator: LoggedIn, seen: list
) -> None:
    """A Terraform parameter `region` reaches its runs as `TF_VAR_region`: a secret of that name
    attached to the script would silently replace the value a run was given (it did: the check
    compared `region` with `TF_VAR_region`). Attaching, saving and running are refused; a bash
    script's `region` does not clash with `TF_VAR_region`."""
    r = await client.post(
        "/api/v1/secrets", json={"name": "TF_VAR_region", "value": VALUE}, headers=operator.headers
    )
    assert r.status_code == 201, r.text
    secret_id = r.json()["id"]
    content = 'variable "region" {\n  type = string\n}\n'
    tf = await make_script(
        client, operator, script_type="terraform", content=content, parameters={"region": "x"}
    )
    r = await client.post(f"/api/v1/scripts/{tf}/secrets/{secret_id}", headers=operator.headers)
    assert r.status_code == 409, r.text
    assert "declares a parameter named region (the variable TF_VAR_region" in r.json()["detail"]

    bare = await make_script(client, operator, script_type="terraform", content=content, status="active")
    r = await client.post(f"/api/v1/scripts/{bare}/secrets/{secret_id}", headers=operator.headers)
    assert r.status_code == 201, r.text
    r = await client.put(
        f"/api/v1/scripts/{bare}", json={"parameters": {"region": "x"}}, headers=operator.headers
    )
    assert r.status_code == 422, r.text
    assert r.json()["errors"] == [{"field": "parameters.region", "message": "shadows an attached secret"}]
    r = await client.post(
        "/api/v1/executions",
        json={"script_id": bare, "parameters": {"region": "eu"}},
        headers=operator.headers,
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "parameters.region", r.text

    shell = await make_script(client, operator, parameters={"region": "x"}, content="echo $region\n")
    r = await client.post(f"/api/v1/scripts/{shell}/secrets/{secret_id}", headers=operator.headers)
    assert r.status_code == 201, r.text


async def test_delete_refused_while_attached_unless_forced(
    client: httpx.AsyncClient, operator: LoggedIn, seen: list
) -> None:
    script_id = await make_script(client, operator)
    secret_id = (await make_secret(client, operator))["id"]
    await client.post(f"/api/v1/scripts/{script_id}/secrets/{secret_id}", headers=operator.headers)
    r = await client.delete(f"/api/v1/secrets/{secret_id}", headers=operator.headers)
    assert r.status_code == 409
    assert "attached to 1 script(s)" in r.json()["detail"] and "force=true" in r.json()["detail"]
    r = await client.delete(
        f"/api/v1/secrets/{secret_id}", params={"force": "true"}, headers=operator.headers
    )
    assert r.status_code == 204
    assert (await client.get(f"/api/v1/secrets/{secret_id}", headers=operator.headers)).status_code == 404
    assert (await client.get(f"/api/v1/scripts/{script_id}/secrets", headers=operator.headers)).json()[
        "items"
    ] == []
    r = await client.get(
        "/api/v1/audit",
        params={"target_type": "secret", "action": "secret.delete"},
        headers=(await _admin(client)).headers,
    )
    assert r.json()["items"][0]["details"]["detached"] == [script_id]


async def _admin(client: httpx.AsyncClient) -> LoggedIn:
    from tests.conftest import make_user

    return await make_user(client, "admin")


async def test_deleting_a_script_frees_its_secrets(
    client: httpx.AsyncClient, operator: LoggedIn, seen: list
) -> None:
    script_id = await make_script(client, operator)
    secret_id = (await make_secret(client, operator))["id"]
    await client.post(f"/api/v1/scripts/{script_id}/secrets/{secret_id}", headers=operator.headers)
    assert (await client.delete(f"/api/v1/scripts/{script_id}", headers=operator.headers)).status_code == 204
    assert (await client.get(f"/api/v1/secrets/{secret_id}", headers=operator.headers)).json()[
        "scripts"
    ] == []
    assert (await client.delete(f"/api/v1/secrets/{secret_id}", headers=operator.headers)).status_code == 204


async def test_a_secret_in_use_by_a_webhook_or_channel_is_not_deleted_even_forced(
    client: httpx.AsyncClient, admin: LoggedIn, seen: list
) -> None:
    """Deleting a webhook's signing key would turn signing off, and a channel's credential would
    silently stop it: 409 naming each use (in `detail` and as `secret_id` errors), force or not,
    until the use is removed; then the delete goes through. Races: test_secret_use_races.py."""
    key = await make_secret(client, admin, "HOOK_KEY_A")
    script_id = await make_script(client, admin, name="deploy")
    r = await client.post(
        f"/api/v1/scripts/{script_id}/webhooks",
        json={"name": "signed", "secret_id": key["id"]},
        headers=admin.headers,
    )
    assert r.status_code == 201, r.text
    hook_id = r.json()["id"]
    r = await client.post(
        "/api/v1/notifications/channels",
        json={"name": "ops-hook", "kind": "webhook", "config": {"url": "http://h/in"}}
        | {"secret_id": key["id"]},
        headers=admin.headers,
    )
    assert r.status_code == 201, r.text
    channel_id = r.json()["id"]
    for force in ("false", "true"):
        r = await client.delete(f"/api/v1/secrets/{key['id']}?force={force}", headers=admin.headers)
        assert r.status_code == 409, r.text
        message = r.json()["detail"]
        assert "signs 1 webhook(s) (deploy/signed)" in message, message
        assert "notification channel(s) (ops-hook)" in message, message
        assert [e["field"] for e in r.json()["errors"]] == ["secret_id", "secret_id"], r.text
        assert "(deploy/signed)" in r.json()["errors"][0]["message"], r.text
    r = await client.get(f"/api/v1/scripts/{script_id}/webhooks/{hook_id}", headers=admin.headers)
    assert r.json()["signed"] is True and r.json()["secret_id"] == key["id"]

    r = await client.delete(f"/api/v1/notifications/channels/{channel_id}", headers=admin.headers)
    assert r.status_code == 204, r.text
    r = await client.delete(f"/api/v1/secrets/{key['id']}", headers=admin.headers)
    assert r.status_code == 409 and "ops-hook" not in r.json()["detail"], r.text
    hook_url = f"/api/v1/scripts/{script_id}/webhooks/{hook_id}"
    r = await client.put(hook_url, json={"name": "signed"}, headers=admin.headers)
    assert r.status_code == 200 and r.json()["signed"] is True, "a field left out keeps its value"
    r = await client.put(hook_url, json={"secret_id": None}, headers=admin.headers)
    assert r.status_code == 200 and r.json()["signed"] is False, r.text
    r = await client.delete(f"/api/v1/secrets/{key['id']}", headers=admin.headers)
    assert r.status_code == 204, r.text


async def test_an_injection_for_a_run_whose_starter_was_deleted_names_them(
    client: httpx.AsyncClient, operator: LoggedIn, admin: LoggedIn
) -> None:
    """A run queued (or awaiting approval) by a user deleted before it started: its injection
    was audited as "system", hiding who asked for the secret; the run remembers the name."""
    r = await client.post(
        "/api/v1/users",
        json={"username": "leaver", "email": "leaver@example.com", "password": "Leaver-Pass-123"},
        headers=admin.headers,
    )
    assert r.status_code == 201, r.text
    leaver = r.json()["id"]
    script_id = await make_script(client, operator)
    secret_id = (await make_secret(client, operator))["id"]
    r = await client.post(f"/api/v1/scripts/{script_id}/secrets/{secret_id}", headers=operator.headers)
    assert r.status_code == 201, r.text
    async with runtime.current().db.session() as session:
        run = Execution(
            script_id=script_id,
            script_version=1,
            script_name="s",
            script_type="bash",
            triggered_by=leaver,
            triggered_by_name="leaver",
        )
        session.add(run)
        await session.commit()
        run_id = run.id
    assert (await client.delete(f"/api/v1/users/{leaver}", headers=admin.headers)).status_code == 204
    async with runtime.current().db.session() as session:
        run = await session.get(Execution, run_id)
        assert run is not None and run.triggered_by is None
        found = await secrets.inject_for_execution(session, run, keyring.current_vault())
    assert found.env == {"DB_PASSWORD": VALUE}
    events = (await client.get(f"/api/v1/secrets/{secret_id}/audit-logs", headers=operator.headers)).json()
    inject = events["items"][0]
    assert inject["action"] == "secret.inject" and inject["execution_id"] == run_id
    assert (inject["actor_id"], inject["actor_name"]) == (None, "leaver")
