"""`Idempotency-Key` on the requests that start a run, on SQLite and PostgreSQL (services/idempotency.py).

Field report (an integrator driving OpsCraft from CI): a retry of `POST /api/v1/executions` after a
network timeout started a second run; nothing let a client say "this is the same request".
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
from sqlalchemy import update
from sqlmodel import col, select

from opscraft import runtime
from opscraft.db.models import IdempotencyKey
from opscraft.db.types import utcnow
from opscraft.services import idempotency
from tests.conftest import LoggedIn, make_user
from tests.executions.conftest import make_script

URL = "/api/v1/executions"


async def _runs(client: httpx.AsyncClient, who: LoggedIn, script_id: int) -> int:
    r = await client.get(f"{URL}?script_id={script_id}", headers=who.headers)
    assert r.status_code == 200, r.text
    return int(r.json()["total"])


def _keyed(who: LoggedIn, key: str) -> dict[str, str]:
    return {**who.headers, "Idempotency-Key": key}


async def test_a_retry_with_the_same_key_answers_the_first_run(
    client: httpx.AsyncClient, admin: LoggedIn, operator: LoggedIn
) -> None:
    """The same key, user and body: the first answer again (202, the same run), marked
    `Idempotent-Replayed`; another body: 422 naming the header; another user's equal key and a
    request without a key: a run of their own. Rerun takes a key the same way."""
    script_id = await make_script(client, admin, "echo hi\n")
    body = {"script_id": script_id, "runner": "local", "parameters": {}}
    first = await client.post(URL, json=body, headers=_keyed(admin, "ci-build-41"))
    assert first.status_code == 202 and "Idempotent-Replayed" not in first.headers, first.text
    again = await client.post(
        URL, json={"runner": "local", "script_id": script_id}, headers=_keyed(admin, "ci-build-41")
    )
    assert again.status_code == 202, again.text
    assert again.json()["id"] == first.json()["id"] and again.headers["Idempotent-Replayed"] == "true"
    assert await _runs(client, admin, script_id) == 1
    other = await client.post(URL, json={**body, "runner": "docker"}, headers=_keyed(admin, "ci-build-41"))
    assert other.status_code == 422, other.text
    assert [e["field"] for e in other.json()["errors"]] == ["Idempotency-Key"], other.text
    assert "another request" in other.json()["detail"]
    theirs = await client.post(URL, json=body, headers=_keyed(operator, "ci-build-41"))
    assert theirs.status_code == 202 and theirs.json()["id"] != first.json()["id"], "keys are per user"
    assert (await client.post(URL, json=body, headers=admin.headers)).status_code == 202
    assert await _runs(client, admin, script_id) == 3
    rerun = f"{URL}/{first.json()['id']}/rerun"
    reruns = [(await client.post(rerun, headers=_keyed(admin, "rerun-1"))).json()["id"] for _ in range(2)]
    assert reruns[0] == reruns[1] and await _runs(client, admin, script_id) == 4


async def test_two_identical_requests_at_once_start_one_run(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """A client retrying before its first request was answered: every copy answers the one run
    (the key's row in the database decides, as it would between two web processes)."""
    script_id = await make_script(client, admin, "echo hi\n")
    body = {"script_id": script_id, "runner": "local"}
    answers = await asyncio.gather(
        *(client.post(URL, json=body, headers=_keyed(admin, "at-once")) for _ in range(6))
    )
    assert {a.status_code for a in answers} == {202}, [a.text for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1
    assert sum(a.headers.get("Idempotent-Replayed") == "true" for a in answers) == 5
    assert await _runs(client, admin, script_id) == 1


async def test_a_refused_request_leaves_no_key(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    """Only a started run is remembered: a request refused (the script is a draft: 409) may be
    sent again with its key once the refusal's cause is gone, and then starts the run."""
    script_id = await make_script(client, admin, "echo hi\n", status="draft")
    body = {"script_id": script_id, "runner": "local"}
    refused = await client.post(URL, json=body, headers=_keyed(admin, "after-fix"))
    assert refused.status_code == 409, refused.text
    r = await client.put(f"/api/v1/scripts/{script_id}", json={"status": "active"}, headers=admin.headers)
    assert r.status_code == 200, r.text
    started = await client.post(URL, json=body, headers=_keyed(admin, "after-fix"))
    assert started.status_code == 202 and "Idempotent-Replayed" not in started.headers, started.text


async def test_a_malformed_key_is_a_400_naming_the_header(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    script_id = await make_script(client, admin, "echo hi\n")
    body = {"script_id": script_id, "runner": "local"}
    for key in ("", "k" * 256, '"a\\x"', "\x01"):
        r = await client.post(URL, json=body, headers=_keyed(admin, key))
        assert r.status_code == 400, (key, r.text)
        assert [e["field"] for e in r.json()["errors"]] == ["Idempotency-Key"], r.text
        assert r.json()["detail"].startswith("Idempotency-Key: must be 1 to 255 visible ASCII characters")
    assert await _runs(client, admin, script_id) == 0
    quoted = await client.post(URL, json=body, headers=_keyed(admin, '"k-1"'))  # the draft's sf-string
    bare = await client.post(URL, json=body, headers=_keyed(admin, "k-1"))
    assert quoted.json()["id"] == bare.json()["id"], "the same key, quoted or not"


async def test_expired_keys_are_swept_and_start_anew(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    """A key past its window is swept by the history upkeep's round (`idempotency.sweep`); one
    not yet swept no longer answers the old run either."""
    script_id = await make_script(client, admin, "echo hi\n")
    body = {"script_id": script_id, "runner": "local"}
    first = await client.post(URL, json=body, headers=_keyed(admin, "old"))
    db = runtime.current().db
    async with db.session() as session:
        await session.exec(update(IdempotencyKey).values(expires_at=utcnow() - timedelta(seconds=1)))
        await session.commit()
    second = await client.post(URL, json=body, headers=_keyed(admin, "old"))
    assert second.status_code == 202 and second.json()["id"] != first.json()["id"], second.text
    viewer = await make_user(client, "viewer", "keyed-viewer")
    kept = await client.post(URL, json=body, headers=_keyed(viewer, "kept"))
    assert kept.status_code == 202, kept.text
    async with db.session() as session:
        await session.exec(
            update(IdempotencyKey)
            .where(col(IdempotencyKey.key) == "old")
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        await session.commit()
    assert await idempotency.sweep(db) == 1
    async with db.session() as session:
        assert (await session.exec(select(IdempotencyKey.key))).all() == ["kept"]
