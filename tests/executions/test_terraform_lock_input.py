"""Bad input on the Terraform HTTP state backend: the lock `?ID=` and the lock info body.

Terraform's http backend sends the lock's ID as `?ID=` on POST and DELETE while it holds the lock,
and its lock info (`statemgr.LockInfo`: ID, Operation, Info, Who, Version, Created, Path, all
strings) as the JSON body of LOCK and UNLOCK; `terraform force-unlock ID` sends an ID a person
typed. The protocol answers 200 for success and 423/409 (with the holder's lock info) for a held
lock; any other status is an error Terraform reports. A value no lock can have (a control or
invisible character, longer than 64 characters, empty, a number beyond 64 bits, NaN, a lone
surrogate, the wrong JSON type) is a 422 naming the field, and nothing is stored or locked by it:
before, `?ID=a%01` on an unlocked state stored a version, a NaN in the lock info was stored and
made the operators' state list a 500, and a lone surrogate was a 500. Runs are rows written
straight to the database, on SQLite and PostgreSQL (the credentials are what a worker issues).
"""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from opscraft import runtime
from tests.conftest import LoggedIn
from tests.executions.conftest import make_script, terraform_run_row

TF = 'output "x" {\n  value = 1\n}\n'
STATE = '{"version": 4, "serial": 1, "lineage": "l-1", "outputs": {}, "resources": []}'
# What Terraform 1.x sends with LOCK (its field names and string forms).
REAL_LOCK = {
    "ID": "0b0c4c0e-6f5e-4f8c-9a8b-3d2c1b0a9f8e",
    "Operation": "OperationTypeApply",
    "Info": "",
    "Who": "runner@host-1",
    "Version": "1.9.8",
    "Created": "2026-12-01T05:00:00.123456789Z",
    "Path": "",
}

# (the `?ID=` value, words of the message naming what to fix).
BAD_IDS = [
    ("a\x01b", "control characters (U+0001)"),
    ("\x1b[2J", "control characters (U+001B)"),
    ("id\x7f", "control characters (U+007F)"),
    ("x" * 65, "1-64 characters (it has 65)"),
    ("", "1-64 characters (it has 0)"),
    ("lock\u200b", "print as nothing or as blank space, or reorder the text (U+200B)"),
    ("lock\u202e", "print as nothing or as blank space, or reorder the text (U+202E)"),
]


def _url(script_id: int) -> str:
    return f"/api/v1/terraform/state/{script_id}/default"


async def _state_row(client: httpx.AsyncClient, who: LoggedIn, script_id: int) -> list[dict]:
    r = await client.get(f"/api/v1/scripts/{script_id}/terraform/states", headers=who.headers)
    assert r.status_code == 200, r.text  # a refused value never breaks this later read
    return list(r.json()["items"])


async def test_a_bad_lock_id_query_is_422_naming_ID_and_stores_nothing(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    """Each of `BAD_IDS` in turn (a script and a run of its own each), in one test: one server
    per database, not one per ID (the server's start took most of each case's time)."""
    for bad, said in BAD_IDS:
        script_id = await make_script(client, operator, TF, script_type="terraform")
        _, auth = await terraform_run_row(script_id)
        url = _url(script_id)
        for locked in (False, True):  # an unlocked state used to take the POST whatever the ID
            for method in ("POST", "DELETE"):
                r = await client.request(method, url, params={"ID": bad}, content=STATE, auth=auth)
                assert r.status_code == 422, (bad, method, locked, r.text)
                errors = r.json()["errors"]
                assert [e["field"] for e in errors] == ["ID"], (bad, errors)
                assert said in errors[0]["message"], (bad, errors)
            if not locked:
                assert await _state_row(client, operator, script_id) == [], bad  # no state row was made
                lock = await client.request("LOCK", f"{url}/lock", json=REAL_LOCK, auth=auth)
                assert lock.status_code == 200, lock.text
        [state] = await _state_row(client, operator, script_id)
        assert (state["current_version"], state["lock_info"]["ID"]) == (0, REAL_LOCK["ID"]), bad
        # The right ID still works.
        r = await client.post(url, params={"ID": REAL_LOCK["ID"]}, content=STATE, auth=auth)
        assert r.status_code == 200, (bad, r.text)


# (LOCK/UNLOCK body, the field the 422 names).
BAD_BODIES = [
    ({**REAL_LOCK, "ID": "a\x01b"}, "ID"),
    ({**REAL_LOCK, "ID": "y" * 65}, "ID"),
    ({**REAL_LOCK, "ID": ""}, "ID"),
    ({**REAL_LOCK, "ID": 7}, "ID"),
    ({**REAL_LOCK, "ID": None}, "ID"),
    ({k: v for k, v in REAL_LOCK.items() if k != "ID"}, "ID"),
    ({**REAL_LOCK, "Who": "root\x1b]0;owned\x07"}, "Who"),
    ({**REAL_LOCK, "Who": "w" * 1025}, "Who"),
    ({**REAL_LOCK, "Operation": 2**70}, "Operation"),
    ({**REAL_LOCK, "Path": ["../../etc/passwd"]}, "Path"),
    ({**REAL_LOCK, "Created": {"at": 1}}, "Created"),
    ({**REAL_LOCK, "Version": True}, "Version"),
]
# Bodies Python's json cannot write: NaN, Infinity, a lone surrogate, NUL (raw JSON text).
RAW_BAD_BODIES = [
    (b'{"ID": "nan-lock", "Version": NaN}', "Version"),
    (b'{"ID": "inf-lock", "Created": -Infinity}', "Created"),
    (b'{"ID": "s-lock", "Who": "x\\ud800y"}', "Who"),
    (b'{"ID": "\\ud800"}', "ID"),
    (b'{"ID": "n-lock", "Info": "a\\u0000b"}', "Info"),
    (b"", "body"),
    (b"[]", "body"),
    (b'"ID"', "body"),
    (b"{not json", "body"),
    (b'{"ID": "dup", "ID": "\\u0001"}', "ID"),
]


async def test_bad_lock_info_is_422_naming_the_field_and_locks_nothing(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    """Each of `BAD_BODIES` (as JSON) and `RAW_BAD_BODIES` in turn (a script and a run of its own
    each), in one test: one server per database, not one per body."""
    bodies = [(httpx.Request("LOCK", "http://x", json=b).content, f) for b, f in BAD_BODIES] + RAW_BAD_BODIES
    headers = {"Content-Type": "application/json"}
    for body, field in bodies:
        script_id = await make_script(client, operator, TF, script_type="terraform")
        _, auth = await terraform_run_row(script_id)
        url = f"{_url(script_id)}/lock"
        r = await client.request("LOCK", url, content=body, headers=headers, auth=auth)
        assert r.status_code == 422, (body, r.text)
        assert [e["field"] for e in r.json()["errors"]] == [field], (body, r.text)
        assert all(not s["locked"] for s in await _state_row(client, operator, script_id)), body
        # UNLOCK checks its body the same way (a held lock is never released by a malformed one).
        assert (await client.request("LOCK", url, json=REAL_LOCK, auth=auth)).status_code == 200
        r = await client.request("UNLOCK", url, content=body, headers=headers, auth=auth)
        assert r.status_code == 422, (body, r.text)
        assert [e["field"] for e in r.json()["errors"]] == [field], (body, r.text)
        [state] = await _state_row(client, operator, script_id)
        assert state["locked"] and state["lock_info"]["ID"] == REAL_LOCK["ID"], body


async def test_lock_info_keeps_terraforms_fields_only(client: httpx.AsyncClient, operator: LoggedIn) -> None:
    """A field Terraform does not send is not stored (nor echoed to the next run's Terraform)."""
    script_id = await make_script(client, operator, TF, script_type="terraform")
    run_id, auth = await terraform_run_row(script_id)
    body = {**REAL_LOCK, "Extra": {"deep": [1, 2**80]}, "ID": "keep-1"}
    r = await client.request("LOCK", f"{_url(script_id)}/lock", json=body, auth=auth)
    assert r.status_code == 200, r.text
    [state] = await _state_row(client, operator, script_id)
    assert state["lock_info"] == {**REAL_LOCK, "ID": "keep-1", "Info": f"OpsCraft execution {run_id} (held)"}
    assert r.json() == state["lock_info"]


async def test_a_lock_held_by_a_run_whose_status_is_none_of_todays_is_taken_over(
    client: httpx.AsyncClient, operator: LoggedIn, admin: LoggedIn, backend: str
) -> None:
    """A holder whose stored status is none of today's (SQLite holds any text: an older
    version's, a manual edit's) reads as `failed`, as its page and every count say: over, so its
    lock is listed as ended and the script's next run takes it over (audited), instead of the
    lock blocking every run until an admin breaks it. PostgreSQL's enum refuses such a status."""
    script_id = await make_script(client, operator, TF, script_type="terraform")
    holder, held = await terraform_run_row(script_id)
    lock = await client.request("LOCK", f"{_url(script_id)}/lock", json=REAL_LOCK, auth=held)
    assert lock.status_code == 200, lock.text
    statement = text(f"UPDATE executions SET status = 'exploded' WHERE id = {holder}")
    async with runtime.current().db.session() as session:
        if backend == "postgresql":
            with pytest.raises(DBAPIError, match="invalid input value for enum"):
                await session.exec(statement)  # type: ignore[call-overload]
            return
        await session.exec(statement)  # type: ignore[call-overload]
        await session.commit()
    [state] = await _state_row(client, operator, script_id)
    assert (state["locked"], state["lock_ended"], state["locked_by_execution"]) == (False, True, holder)
    _, auth = await terraform_run_row(script_id)
    taken = {**REAL_LOCK, "ID": "next-run"}
    r = await client.request("LOCK", f"{_url(script_id)}/lock", json=taken, auth=auth)
    assert r.status_code == 200, r.text
    [state] = await _state_row(client, operator, script_id)
    assert (state["locked"], state["lock_info"]["ID"]) == (True, "next-run"), state
    r = await client.get("/api/v1/audit", params={"action": "terraform.lock_release"}, headers=admin.headers)
    assert [e["details"]["execution_id"] for e in r.json()["items"]] == [holder], r.text


async def test_the_openapi_schema_states_the_lock_ids_bound(client: httpx.AsyncClient) -> None:
    """The lock `ID` the service refuses outside 1-64 characters is documented with that bound,
    as the `?ID=` of POST and DELETE and in the lock info of LOCK, UNLOCK and the 423."""
    r = await client.get("/openapi.json")
    assert r.status_code == 200, r.text
    spec = r.json()
    backend = spec["paths"]["/api/v1/terraform/state/{script_id}/{workspace}"]
    for method in ("post", "delete"):
        [query] = [p for p in backend[method]["parameters"] if p["name"] == "ID"]
        assert query["in"] == "query" and not query.get("required", False)
        assert (query["schema"]["minLength"], query["schema"]["maxLength"]) == (1, 64), query
        assert "1-64 characters" in query["description"]
    lock_id = spec["components"]["schemas"]["LockInfo"]["properties"]["ID"]
    assert (lock_id["minLength"], lock_id["maxLength"]) == (1, 64), lock_id
    assert "1-64 characters" in lock_id["description"]
    lock = spec["paths"]["/api/v1/terraform/state/{script_id}/{workspace}/lock"]
    for method in ("lock", "unlock"):
        body = lock[method]["requestBody"]["content"]["application/json"]["schema"]
        assert body == {"$ref": "#/components/schemas/LockInfo"}
