"""Scripts, script versions and users whose stored values today's version cannot read (SQLite
holds any text in an enum column; a JSON column takes any JSON), read by the paths that bypass
an ORM load (the submit path's Core statement, a worker's claim, the user cache, the tokens
list): they read as a load reads them (db/stored_shapes.py) and runs of them are refused
saying why. SQLite and PostgreSQL (whose enum types refuse unknown text when it is written)."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from opscraft import runtime
from opscraft.services import user_cache
from tests.conftest import LoggedIn
from tests.executions.conftest import make_script, start, wait_for

PERL = "script_type: stored as 'perl', none of bash, python, ansible, terraform"


async def _store(backend: str, statement: str, unknown_enum: bool = False) -> bool:
    """Run `statement` as a manual edit would: True when stored; False on PostgreSQL when it
    writes an enum column's `unknown_enum` text, which its type refuses (checked)."""
    async with runtime.current().db.session() as session:
        if unknown_enum and backend == "postgresql":
            with pytest.raises(DBAPIError, match="invalid input value for enum"):
                await session.exec(text(statement))  # type: ignore[call-overload]
            return False
        await session.exec(text(statement))  # type: ignore[call-overload]
        await session.commit()
    return True


async def test_a_script_type_none_of_todays_lists_reads_and_refuses_its_runs(
    client: httpx.AsyncClient, admin: LoggedIn, viewer: LoggedIn, backend: str
) -> None:
    """`scripts.script_type` / `script_versions.script_type` `perl` (SQLite) made the scripts'
    list, the script's page, its versions and a run of it a 500 (LookupError). They read as
    bash saying what was stored; a run (the submit path's Core read) and a test run leaving the
    type to the script are 409s saying it; a save of a type replaces it."""
    script_id = await make_script(client, admin, "echo hi\n")
    where = f"WHERE id = {script_id}"
    if not await _store(backend, f"UPDATE scripts SET script_type = 'perl' {where}", unknown_enum=True):
        return
    await _store(backend, f"UPDATE script_versions SET script_type = 'perl' WHERE script_id = {script_id}")
    base = f"/api/v1/scripts/{script_id}"
    for url in ["/api/v1/scripts", base, f"{base}/versions", f"{base}/versions/1"]:
        r = await client.get(url, headers=viewer.headers)
        assert r.status_code == 200, (url, r.text)
        shown = r.json()["items"][0] if "items" in r.json() else r.json()
        assert shown["script_type"] == "bash" and PERL in shown["stored_problem"], shown
    # The list's filters take it as what it reads as (`db.read_as`: a filter skipped it).
    for params, listed in (({"script_type": "bash"}, [script_id]), ({"script_type": "python"}, [])):
        r = await client.get("/api/v1/scripts", params=params, headers=viewer.headers)
        assert [s["id"] for s in r.json()["items"]] == listed and r.json()["total"] == len(listed), r.text
    await _store(backend, f"UPDATE scripts SET status = 'retired' {where}")
    for params, listed in (({"status": "draft"}, [script_id]), ({"status": "active"}, [])):
        r = await client.get("/api/v1/scripts", params=params, headers=viewer.headers)
        assert [s["id"] for s in r.json()["items"]] == listed and r.json()["total"] == len(listed), r.text
    await _store(backend, f"UPDATE scripts SET status = 'active' {where}")
    r = await client.post("/api/v1/executions", json={"script_id": script_id}, headers=admin.headers)
    # The script's name quoted once: `'deploy''s stored settings` read as an escaped quote.
    name = (await client.get(base, headers=viewer.headers)).json()["name"]
    named = f"the stored settings of script {name!r} cannot be read: {PERL}"
    assert r.status_code == 409 and r.json()["detail"].startswith(named), r.text
    problem = PERL.split(": ", 1)[1]
    assert r.json()["errors"] == [{"field": "script.script_type", "message": problem}], r.text
    r = await client.post(f"{base}/test-runs", json={"content": "echo t\n"}, headers=admin.headers)
    assert r.status_code == 409 and r.json()["detail"].startswith(named), r.text
    assert r.json()["errors"] == [{"field": "script_type", "message": problem}], r.text
    r = await client.put(base, json={"script_type": "bash"}, headers=admin.headers)
    assert r.status_code == 200 and r.json()["stored_problem"] is None, r.text


async def test_a_run_of_a_version_stored_in_another_shape_ends_saying_why(
    client: httpx.AsyncClient, admin: LoggedIn, backend: str
) -> None:
    """The worker's claim reads the run's version with a Core statement: a type none of
    today's (SQLite) or run settings stored as a list made the claim raise. The run ends as an
    error naming the column; a rollback to such a version is a 409 naming it, where it wrote
    the version's unreadable declarations as `[]`."""
    r = await client.put("/api/v1/settings", json={"local_runner_enabled": True}, headers=admin.headers)
    assert r.status_code == 200, r.text
    declared = [{"name": "P", "type": "string", "default": "x"}]
    script_id = await make_script(client, admin, "echo hi\n", parameters=declared)
    r = await client.put(f"/api/v1/scripts/{script_id}", json={"content": "echo 2\n"}, headers=admin.headers)
    assert r.status_code == 200 and r.json()["current_version"] == 2, r.text
    versions = f"UPDATE script_versions SET {{}} WHERE script_id = {script_id} AND number = {{}}"
    await _store(backend, versions.format("run_settings = '[1]'", 2))
    run = await wait_for(client, admin, (await start(client, admin, script_id, "local"))["id"])
    assert run["status"] == "error", run
    said = "version 2 of the script cannot be read: run_settings: stored as a list ([1]), not an object"
    assert said in run["error_message"], run
    await _store(backend, versions.format("parameters = '\"P\"'", 1))
    r = await client.post(f"/api/v1/scripts/{script_id}/rollback/1", headers=admin.headers)
    assert r.status_code == 409, r.text
    assert "version 1 holds settings that cannot be read (parameters: stored as text ('P')" in r.text
    assert r.json()["errors"] == [
        {"field": "parameters", "message": "stored as text ('P'), not a list of object items"}
    ], r.text
    r = await client.get(f"/api/v1/scripts/{script_id}", headers=admin.headers)
    assert r.json()["current_version"] == 2 and r.json()["parameters"], r.text
    if await _store(
        backend, versions.format("run_settings = '{}', script_type = 'perl'", 2), unknown_enum=True
    ):
        run = await wait_for(client, admin, (await start(client, admin, script_id, "local"))["id"])
        assert (
            run["status"] == "error"
            and f"version 2 of the script cannot be read: {PERL}" in run["error_message"]
        )


async def test_a_role_none_of_todays_is_said_by_cached_reads_and_the_tokens_list(
    client: httpx.AsyncClient, admin: LoggedIn, viewer: LoggedIn, backend: str
) -> None:
    """The user cache kept a row's values, not what it could not read: the second request of a
    user whose stored role is `superuser` lost its `stored_problem`; the tokens list read the
    owner's role with a Core column, a 500 (`Role('superuser')`). Both read it as a load does."""
    r = await client.post("/api/v1/tokens", json={"name": "t"}, headers=viewer.headers)
    assert r.status_code == 201, r.text
    superuser = f"UPDATE users SET role = 'superuser' WHERE username = '{viewer.username}'"
    if not await _store(backend, superuser, unknown_enum=True):
        return
    user_cache.clear()  # the raw UPDATE above passed by the ORM's invalidation
    for _ in range(2):  # loaded (and cached), then read from the cache
        r = await client.get("/api/v1/auth/me", headers=viewer.headers)
        assert r.status_code == 200 and r.json()["role"] == "viewer", r.text
        assert r.json()["stored_problem"].startswith("role: stored as 'superuser'"), r.text
    r = await client.get("/api/v1/tokens", params={"all": True}, headers=admin.headers)
    assert r.status_code == 200, r.text
    (token,) = [t for t in r.json()["items"] if t["name"] == "t"]
    assert token["acts_as"] == "viewer", token


async def test_an_edit_whose_base_parameters_are_no_declaration_is_a_422_naming_it(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """A `base.parameters` no GET returns (a declaration without a name) was compared as sent
    and taken for a change made meanwhile: a 409. It is a 422 naming `base.parameters`."""
    script_id = await make_script(client, admin, "echo hi\n")
    body = {"parameters": {"P": "x"}, "base": {"parameters": [{"type": "string"}]}}
    r = await client.put(f"/api/v1/scripts/{script_id}", json=body, headers=admin.headers)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "base.parameters[0]" and "base.parameters" in r.json()["detail"]


async def test_a_new_version_never_carries_unreadable_declarations_over_as_empty(
    client: httpx.AsyncClient, admin: LoggedIn, backend: str
) -> None:
    """A content change of a script whose declarations are stored as text wrote them as the `[]`
    they read as (script and new version), silently. It is a 422 naming `parameters`, nothing
    written; sent with new declarations it saves."""
    script_id = await make_script(client, admin, "echo hi\n")
    await _store(backend, f"UPDATE scripts SET parameters = '\"P\"' WHERE id = {script_id}")
    url = f"/api/v1/scripts/{script_id}"
    r = await client.put(url, json={"content": "echo 2\n"}, headers=admin.headers)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "parameters", r.text
    assert "stored as text ('P')" in r.text, r.text
    shown = (await client.get(url, headers=admin.headers)).json()
    assert shown["current_version"] == 1 and shown["stored_problem"], shown
    body = {"content": "echo 2\n", "parameters": [{"name": "P", "type": "string"}]}
    r = await client.put(url, json=body, headers=admin.headers)
    assert r.status_code == 200 and r.json()["stored_problem"] is None, r.text


async def test_a_run_again_of_a_run_whose_parameters_cannot_be_read_is_a_409_naming_them(
    client: httpx.AsyncClient, admin: LoggedIn, backend: str
) -> None:
    """A run's parameters stored as a list read as `{}`: its run again started with none, its
    values silently lost. It is a 409 whose `errors` name `parameters` (the UI shows it by the
    field), nothing queued."""
    script_id = await make_script(client, admin, "echo hi\n")
    run = await wait_for(client, admin, (await start(client, admin, script_id, "local"))["id"])
    await _store(backend, f"UPDATE executions SET parameters = '[1]' WHERE id = {run['id']}")
    r = await client.post(f"/api/v1/executions/{run['id']}/rerun", headers=admin.headers)
    assert r.status_code == 409, r.text
    said = "stored as a list ([1]), not an object"
    assert f"the stored settings of execution {run['id']} cannot be read: parameters: {said}" in r.text
    assert r.json()["errors"] == [{"field": "parameters", "message": said}], r.text
    listed = await client.get("/api/v1/executions", params={"script_id": script_id}, headers=admin.headers)
    assert [e["id"] for e in listed.json()["items"]] == [run["id"]], listed.text
