"""A webhook's signing secret given a new value: the value it replaces stays accepted for the
rotation window the operator chose (services/secrets.py), then only the new one is; the audit
says which key verified each call; the previous value is stored encrypted, re-encrypted by a
master key rotation, deleted when its window is over or ended early, and shown nowhere. Every
call is a real HTTP request to the app; time moves by the database clock's seam (`db.clock.now`,
which `db.types.utcnow` reads), never by sleeping."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import count
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlmodel import col, select

from opscraft import runtime
from opscraft.db import clock
from opscraft.db.models import AuditEvent, RegisteredWorker, SecretPreviousValue
from opscraft.security.vault import generate_key_text, parse_key
from opscraft.services import keyring, secrets
from tests.automation.conftest import LOOPBACK_RECEIVERS
from tests.automation.test_webhooks import audit_calls, github_signed, setup_hook, signed
from tests.conftest import PASSWORD, LoggedIn
from tests.test_secrets_storage import forms, stored_bytes
from tests.waiting import until

OLD = "old-Signing-Key-4f1e2d"
NEW = "new-Signing-Key-9a8b7c"
THIRD = "third-Signing-Key-5c6d"
SCHEMES = ["opscraft", "github", "gitlab"]
MISMATCH = {"opscraft": "signature does not match", "github": "signature does not match"}
MISMATCH["gitlab"] = "x-gitlab-token does not match"


@pytest.fixture
def engine_settings() -> dict[str, Any]:
    """The worker's heartbeat every 0.5 s (5 s by default): `MovedClock.move_to` waits for one in
    the moved clock, twice a window test (each waited about 5 s: 10 s a test)."""
    return {**LOOPBACK_RECEIVERS, "OPSCRAFT_WORKER_HEARTBEAT_SECONDS": "0.5"}


@pytest.fixture
def worker_runners() -> frozenset[str]:
    """The runs the calls start only need to start, on the local runner (`setup_hook`)."""
    return frozenset({"local"})


@dataclass
class MovedClock:
    """The database's clock as this process reads it (`db.clock.now`), `ahead` later."""

    real: Callable[[], datetime]
    ahead: timedelta = timedelta(0)

    def now(self) -> datetime:
        """The real `clock.now()` (this process's measured offset included) plus `ahead`."""
        return self.real() + self.ahead

    async def move_to(self, moment: datetime) -> None:
        """Move the clock to `moment`, and wait for the runtime's worker to say it is alive in
        the moved clock (its next heartbeat: until then its last one looks as old as the move,
        the worker lost, and a call that starts a run is a 409 "no runner is available"). The
        clock is then set to `moment` again: the wait took real seconds, which the moved clock
        counted too (a heartbeat a few seconds in the future is alive)."""
        rt = runtime.current()
        self.ahead = moment - self.real()

        async def heartbeat_since_the_move() -> bool:
            async with rt.db.session() as session:
                beats = await session.exec(select(RegisteredWorker.heartbeat_at))
                fresh = self.now() - timedelta(seconds=rt.settings.worker_heartbeat_seconds)
                return any(beat > fresh for beat in beats.all())

        await until(heartbeat_since_the_move, "the worker's heartbeat in the moved clock")
        self.ahead = moment - self.real()


@pytest.fixture
def moved_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[MovedClock]:
    """The clock seam every stored moment and every window is judged in (`db.types.utcnow`),
    moved by setting `ahead`; back to the real clock after the test."""
    moved = MovedClock(clock.now)
    monkeypatch.setattr(clock, "now", moved.now)
    yield moved


@dataclass
class Caller:
    """A sender of calls to one webhook, signing each new body in the webhook's `scheme`."""

    client: httpx.AsyncClient
    url: str
    scheme: str
    bodies: Iterator[int] = field(default_factory=count)

    async def call(self, key: str) -> httpx.Response:
        """POST a new body (so that no call is a replay of another) signed with `key`, stamped
        with the database clock's now (moved or not)."""
        body = orjson.dumps({"ref": f"refs/heads/b{next(self.bodies)}"})
        if self.scheme == "opscraft":
            headers = signed(key, body, int(clock.now().timestamp()))
        elif self.scheme == "github":
            headers = github_signed(key, body)
        else:
            headers = {"X-Gitlab-Token": key, "Content-Type": "application/json"}
        return await self.client.post(self.url, content=body, headers=headers)


async def signed_hook(
    client: httpx.AsyncClient, who: LoggedIn, scheme: str = "opscraft", name: str = "HOOK_KEY"
) -> tuple[int, int, dict[str, object], Caller]:
    """A vault secret `name` holding `OLD` and a webhook of a new script signing with it:
    (the secret's id, the script's id, the webhook as created, a caller of it)."""
    r = await client.post("/api/v1/secrets", json={"name": name, "value": OLD}, headers=who.headers)
    assert r.status_code == 201, r.text
    secret_id = int(r.json()["id"])
    script_id, hook = await setup_hook(client, who, secret_id=secret_id, signature_scheme=scheme)
    return secret_id, script_id, hook, Caller(client, str(hook["url_path"]), scheme)


async def sign_in(client: httpx.AsyncClient, who: LoggedIn) -> dict[str, str]:
    """`who`'s headers signed in anew (after the clock moved past their access token's end)."""
    r = await client.post("/api/v1/auth/login", json={"username": who.username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def accepted_keys() -> list[str | None]:
    """The `key` of each accepted `webhook.call`, oldest first."""
    return [e.details.get("key") for e in await audit_calls() if e.details["accepted"]]


async def stored_previous(secret_id: int) -> SecretPreviousValue | None:
    async with runtime.current().db.session() as session:
        return await session.get(SecretPreviousValue, secret_id)


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_the_replaced_key_is_accepted_until_its_window_ends(
    client: httpx.AsyncClient, admin: LoggedIn, moved_clock: MovedClock, scheme: str
) -> None:
    """A new value of a signing secret refused every caller still signing with the old one at
    once: a rotation was an outage until each sender was changed. The old value is now accepted
    for the window (by default an hour), the new one at once, then only the new one."""
    secret_id, script_id, hook, caller = await signed_hook(client, admin, scheme)
    assert (await caller.call(OLD)).status_code == 202
    r = await client.put(f"/api/v1/secrets/{secret_id}", json={"value": NEW}, headers=admin.headers)
    assert r.status_code == 200, r.text
    assert (await caller.call(OLD)).status_code == 202, "a sender not switched yet"
    assert (await caller.call(NEW)).status_code == 202, "a sender switched already"
    until = r.json()["previous_accepted_until"]
    assert until is not None, r.text
    ends = datetime.fromisoformat(until)
    assert timedelta(minutes=59) < ends - clock.now() <= timedelta(hours=1), ends
    r = await client.get(f"/api/v1/scripts/{script_id}/webhooks/{hook['id']}", headers=admin.headers)
    assert r.json()["previous_key_accepted_until"] == until, r.text
    r = await client.get(f"/api/v1/scripts/{script_id}/webhooks", headers=admin.headers)
    assert [h["previous_key_accepted_until"] for h in r.json()["items"]] == [until]
    r = await caller.call("neither-key")
    assert (r.status_code, r.json()["detail"]) == (401, MISMATCH[scheme])
    await moved_clock.move_to(ends - timedelta(seconds=30))
    assert (await caller.call(OLD)).status_code == 202, "inside the window"
    await moved_clock.move_to(ends + timedelta(seconds=1))
    r = await caller.call(OLD)
    assert (r.status_code, r.json()["detail"]) == (401, MISMATCH[scheme]), "after the window"
    assert (await caller.call(NEW)).status_code == 202
    assert await accepted_keys() == ["current", "previous", "current", "previous", "current"]
    # Gone at its first use after the window, and shown as over
    assert await stored_previous(secret_id) is None
    headers = await sign_in(client, admin)
    r = await client.get(f"/api/v1/secrets/{secret_id}", headers=headers)
    assert r.json()["previous_accepted_until"] is None, r.text
    r = await client.get(f"/api/v1/scripts/{script_id}/webhooks/{hook['id']}", headers=headers)
    assert r.json()["previous_key_accepted_until"] is None, r.text


async def test_a_window_of_0_refuses_at_once_and_an_operator_ends_one_early(
    client: httpx.AsyncClient, admin: LoggedIn, operator: LoggedIn, viewer: LoggedIn
) -> None:
    """`previous_accepted_seconds` 0 refuses the replaced value at once (as before), up to a
    week keeps it that long, and a secret keeps one previous value: the one just replaced. An
    operator ends a window early (`DELETE .../previous-value`, audited); a viewer may not."""
    secret_id, _, _, caller = await signed_hook(client, admin)
    url = f"/api/v1/secrets/{secret_id}"
    r = await client.put(url, json={"value": NEW, "previous_accepted_seconds": 0}, headers=admin.headers)
    assert r.status_code == 200 and r.json()["previous_accepted_until"] is None, r.text
    assert (await caller.call(OLD)).status_code == 401
    assert (await caller.call(NEW)).status_code == 202
    week = {"value": THIRD, "previous_accepted_seconds": 7 * 24 * 3600}
    r = await client.put(url, json=week, headers=admin.headers)
    left = datetime.fromisoformat(r.json()["previous_accepted_until"]) - clock.now()
    assert timedelta(days=7) - timedelta(minutes=1) < left <= timedelta(days=7), left
    assert (await caller.call(NEW)).status_code == 202, "the value just replaced"
    assert (await caller.call(OLD)).status_code == 401, "the one before: one previous value per secret"
    assert (await caller.call(THIRD)).status_code == 202

    r = await client.delete(f"{url}/previous-value", headers=viewer.headers)
    assert r.status_code == 403, r.text
    assert (await caller.call(NEW)).status_code == 202
    r = await client.delete(f"{url}/previous-value", headers=operator.headers)
    assert r.status_code == 204, r.text
    assert (await caller.call(NEW)).status_code == 401, "ended early"
    assert (await caller.call(THIRD)).status_code == 202
    r = await client.delete(f"{url}/previous-value", headers=operator.headers)
    assert r.status_code == 404 and "no previous value still accepted" in r.json()["detail"], r.text
    assert await stored_previous(secret_id) is None
    r = await client.get(f"{url}/audit-logs", headers=admin.headers)
    events = [(e["action"], e["actor_name"]) for e in r.json()["items"] if e["action"] != "secret.use"]
    assert events[:3] == [
        ("secret.end_previous", operator.username),
        ("secret.update_value", admin.username),
        ("secret.update_value", admin.username),
    ], events
    assert await accepted_keys() == ["current", "previous", "current", "previous", "current"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"value": NEW, "previous_accepted_seconds": 7 * 24 * 3600 + 1}, "must be at most 604800"),
        ({"value": NEW, "previous_accepted_seconds": -1}, "must be at least 0"),
        ({"description": "d", "previous_accepted_seconds": 60}, "goes with a new value"),
    ],
)
async def test_a_window_out_of_its_range_or_without_a_value_is_refused(
    client: httpx.AsyncClient, admin: LoggedIn, body: dict[str, object], message: str
) -> None:
    secret_id, _, _, caller = await signed_hook(client, admin)
    r = await client.put(f"/api/v1/secrets/{secret_id}", json=body, headers=admin.headers)
    assert r.status_code == 422, r.text
    assert [d["field"] for d in r.json()["errors"]] == ["previous_accepted_seconds"], r.text
    assert message in r.text
    assert (await caller.call(OLD)).status_code == 202, "nothing changed"


async def test_a_secret_that_signs_no_webhook_keeps_no_previous_value(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """Only a webhook's signature check accepts a previous value: a secret that signs none keeps
    nothing (a run's environment, a channel's credential get the new value), and asking for a
    window on it is a 422 saying why."""
    plain = {"name": "DB_PASSWORD", "value": OLD}
    r = await client.post("/api/v1/secrets", json=plain, headers=admin.headers)
    url = f"/api/v1/secrets/{r.json()['id']}"
    r = await client.put(url, json={"value": NEW, "previous_accepted_seconds": 60}, headers=admin.headers)
    assert r.status_code == 422 and "signs no webhook" in r.json()["detail"], r.text
    r = await client.put(url, json={"value": NEW}, headers=admin.headers)
    assert r.status_code == 200 and r.json()["previous_accepted_until"] is None, r.text
    assert await stored_previous(int(r.json()["id"])) is None


async def test_the_previous_value_is_in_no_answer_log_or_stored_form(
    backend: str,
    client: httpx.AsyncClient,
    admin: LoggedIn,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """While it is accepted, the previous value is in no API answer (secret, webhook, audit),
    no log line, and the database holds it encrypted only (the disk files or a dump)."""
    caplog.set_level(logging.DEBUG)
    secret_id, script_id, hook, caller = await signed_hook(client, admin)
    r = await client.put(f"/api/v1/secrets/{secret_id}", json={"value": NEW}, headers=admin.headers)
    answers = [r.text]
    assert (await caller.call(OLD)).status_code == 202
    r = await caller.call("wrong" + OLD)
    assert r.status_code == 401
    answers.append(r.text)
    for path in (
        f"/api/v1/secrets/{secret_id}",
        "/api/v1/secrets",
        f"/api/v1/secrets/{secret_id}/audit-logs",
        f"/api/v1/scripts/{script_id}/webhooks",
        f"/api/v1/scripts/{script_id}/webhooks/{hook['id']}",
        "/api/v1/audit?limit=500",
    ):
        r = await client.get(path, headers=admin.headers)
        assert r.status_code == 200, (path, r.text)
        answers.append(r.text)
    assert "previous" in answers[0] and await accepted_keys() == ["previous"]
    for text in [*answers, caplog.text]:
        assert OLD not in text and NEW not in text
    blobs = await stored_bytes(backend, tmp_path)
    assert any(b"HOOK_KEY" in blob for blob in blobs)
    for blob in blobs:
        for value in (OLD, NEW):
            for form in forms(value):
                assert form not in blob


async def test_a_master_key_rotation_keeps_the_previous_value_accepted(
    client: httpx.AsyncClient, admin: LoggedIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`opscraft secrets rotate-key` re-encrypts the previous value with the secrets: left under
    the old key it would no longer decrypt, and the callers it lets through be refused."""
    secret_id, _, _, caller = await signed_hook(client, admin, "github")
    r = await client.put(f"/api/v1/secrets/{secret_id}", json={"value": NEW}, headers=admin.headers)
    assert r.status_code == 200, r.text
    old = keyring.current_vault()
    async with runtime.current().db.session() as session:
        new, _ = await keyring.rotate(session, old, parse_key(generate_key_text(), "test"))
    monkeypatch.setattr(runtime.current(), "vault", new)  # the restart the rotation asks for
    previous = await stored_previous(secret_id)
    assert previous is not None and previous.key_version == new.key_version
    assert keyring.reveal_previous(new, previous) == OLD
    assert (await caller.call(OLD)).status_code == 202
    assert (await caller.call(NEW)).status_code == 202
    assert await accepted_keys() == ["previous", "current"]
    async with runtime.current().db.session() as session:
        rotated = await session.exec(select(AuditEvent).where(col(AuditEvent.action) == "vault.rotate_key"))
        assert rotated.one().details["previous_values"] == 1


async def test_the_upkeep_deletes_previous_values_whose_window_is_over(
    client: httpx.AsyncClient, admin: LoggedIn, moved_clock: MovedClock
) -> None:
    """A previous value no call uses after its window is deleted by the upkeep's round (it
    was kept until a call came), audited in its secret's log; one still in its window stays."""
    short, _, _, _ = await signed_hook(client, admin, name="SHORT")
    long, _, _, _ = await signed_hook(client, admin, name="LONG")
    for secret_id, seconds in ((short, 60), (long, 3600)):
        body = {"value": NEW, "previous_accepted_seconds": seconds}
        r = await client.put(f"/api/v1/secrets/{secret_id}", json=body, headers=admin.headers)
        assert r.status_code == 200, r.text
    moved_clock.ahead = timedelta(seconds=61)
    assert await secrets.drop_ended_previous_values(runtime.current().db) == 1
    assert await stored_previous(short) is None and await stored_previous(long) is not None
    r = await client.get(f"/api/v1/secrets/{short}/audit-logs", headers=admin.headers)
    assert r.json()["items"][0]["action"] == "secret.previous_removed", r.text
    assert r.json()["items"][0]["actor_name"] == "retention"


@pytest.mark.filterwarnings("error::sqlalchemy.exc.SAWarning")
async def test_calls_at_once_after_the_window_are_each_refused_not_an_error(
    client: httpx.AsyncClient, admin: LoggedIn, moved_clock: MovedClock
) -> None:
    """Calls that come together after the window (and the upkeep's round) each find the
    previous value over and delete it: those that came later found nothing left to delete (an
    ORM delete warned "expected to delete 1 row(s); 0 were matched", an error here). Each round
    rotates again: a new value keeps its own previous value, which the next round outlives."""
    secret_id, _, _, caller = await signed_hook(client, admin)
    old = OLD
    for round_ in range(6):
        new = f"{NEW}-{round_}"
        headers = await sign_in(client, admin)
        r = await client.put(f"/api/v1/secrets/{secret_id}", json={"value": new}, headers=headers)
        assert r.status_code == 200 and r.json()["previous_accepted_until"], r.text
        moved_clock.ahead += timedelta(hours=1, seconds=1)  # no run starts: no heartbeat to wait for
        sweep = secrets.drop_ended_previous_values(runtime.current().db)
        *answers, _ = await asyncio.gather(*(caller.call(old) for _ in range(8)), sweep)
        assert [a.status_code for a in answers] == [401] * 8, [a.text for a in answers]
        assert await stored_previous(secret_id) is None
        old = new
