"""A webhook notification channel's URL (often a credential: a token in its path or query) is
sealed by the vault like secrets, shown only masked, its every decryption audited, sealed at
start for rows saved in plain text before migration 0031, and re-sealed by a key rotation."""

from __future__ import annotations

import os

import httpx
import pytest
from sqlmodel import col, select

from opscraft import runtime
from opscraft.db.models import AuditEvent, NotificationChannel
from opscraft.security.vault import MasterKey
from opscraft.services import keyring, notifications
from tests.automation.receivers import http_receiver
from tests.automation.test_notifications import channel
from tests.conftest import LoggedIn

TOKEN = "T0KEN-in-the-path-4711"


async def _row(channel_id: int) -> NotificationChannel:
    async with runtime.current().db.session() as session:
        row = await session.get(NotificationChannel, channel_id)
        assert row is not None
        return row


async def _audit(action: str) -> list[AuditEvent]:
    async with runtime.current().db.session() as session:
        rows = await session.exec(select(AuditEvent).where(col(AuditEvent.action) == action))
        return list(rows.all())


async def test_a_webhook_url_is_sealed_shown_masked_and_its_use_audited(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """The URL was stored in `config.url` as plain text and shown back by every GET: a hook
    URL's token was readable in the database, its backups and to every admin."""
    with http_receiver() as hook:
        url = f"{hook.url}/hooks/{TOKEN}?key=s3cr3t-query"
        c = await channel(client, admin, name="hook", kind="webhook", config={"url": url})
        masked = f"{hook.url}/…"
        assert c["config"] == {"url": masked}
        for r in (
            await client.get("/api/v1/notifications/channels", headers=admin.headers),
            await client.get(f"/api/v1/notifications/channels/{c['id']}", headers=admin.headers),
        ):
            assert r.status_code == 200 and TOKEN not in r.text and "s3cr3t-query" not in r.text, r.text
        row = await _row(c["id"])
        assert row.config == {"url": masked} and row.url_ciphertext is not None
        assert TOKEN.encode() not in row.url_ciphertext

        r = await client.post(f"/api/v1/notifications/channels/{c['id']}/test", headers=admin.headers)
        assert r.status_code == 204, r.text
        assert hook.requests[-1].path == f"/hooks/{TOKEN}?key=s3cr3t-query"
        uses = await _audit("notification_channel.url_use")
        assert [(u.target_id, u.actor_name) for u in uses] == [(str(c["id"]), admin.username)]

        # A change of something else (the masked URL sent back, or left out) keeps the URL
        for body in ({"name": "renamed"}, {"config": {"url": masked}}):
            r = await client.put(
                f"/api/v1/notifications/channels/{c['id']}", json=body, headers=admin.headers
            )
            assert r.status_code == 200 and r.json()["config"] == {"url": masked}, r.text
            r = await client.post(f"/api/v1/notifications/channels/{c['id']}/test", headers=admin.headers)
            assert r.status_code == 204 and hook.requests[-1].path == f"/hooks/{TOKEN}?key=s3cr3t-query"
        # A new URL is sealed in its place
        body = {"config": {"url": f"{hook.url}/other/NEW-{TOKEN}"}}
        r = await client.put(f"/api/v1/notifications/channels/{c['id']}", json=body, headers=admin.headers)
        assert r.status_code == 200 and TOKEN not in r.text, r.text
        r = await client.post(f"/api/v1/notifications/channels/{c['id']}/test", headers=admin.headers)
        assert r.status_code == 204 and hook.requests[-1].path == f"/other/NEW-{TOKEN}"
        assert len(await _audit("notification_channel.url_use")) == 4
        r = await client.get("/api/v1/audit", headers=admin.headers, params={"limit": 200})
        assert TOKEN not in r.text


async def test_a_masked_form_edited_or_without_a_saved_url_is_refused_never_saved_as_the_url(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """The masked form with its port (or scheme, or host) edited, or sent for a channel that
    had no saved URL (an email channel made a webhook), was saved as the URL itself: every
    message then went to the path `/…`, the saved path and its token silently dropped."""
    with http_receiver() as hook:
        url = f"{hook.url}/hooks/{TOKEN}"
        c = await channel(client, admin, name="hook", kind="webhook", config={"url": url})
        masked = c["config"]["url"]
        port = int(masked.rsplit(":", 1)[1].split("/")[0])
        edited = [masked.replace(f":{port}/", f":{port + 1}/"), masked.replace("http://", "https://")]
        edited.append(f"{hook.url}/%E2%80%A6")  # the same, percent-encoded
        path = f"/api/v1/notifications/channels/{c['id']}"
        for sent in edited:
            r = await client.put(path, json={"config": {"url": sent}}, headers=admin.headers)
            assert r.status_code == 422, r.text
            (error,) = r.json()["errors"]
            assert error["field"] == "config.url" and f"send {masked} unchanged" in error["message"]
        r = await client.post(f"{path}/test", headers=admin.headers)
        assert r.status_code == 204 and hook.requests[-1].path == f"/hooks/{TOKEN}"  # kept

        email = {"host": "127.0.0.1", "port": 25, "security": "none", "from": "a@example.com", "to": "b@c.io"}
        mail = await channel(client, admin, name="mail", kind="email", config=email)
        made = {"kind": "webhook", "config": {"url": masked}}
        r = await client.put(f"/api/v1/notifications/channels/{mail['id']}", json=made, headers=admin.headers)
        assert r.status_code == 422 and "this channel has no saved URL" in r.text, r.text
        body = {"name": "new", "kind": "webhook", "config": {"url": masked}}
        r = await client.post("/api/v1/notifications/channels", json=body, headers=admin.headers)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "config.url", r.text
        # A path that only holds the character is a URL like any other
        deeper = await channel(client, admin, name="deeper", kind="webhook", config={"url": f"{masked}/x"})
        r = await client.post(f"/api/v1/notifications/channels/{deeper['id']}/test", headers=admin.headers)
        assert r.status_code == 204 and hook.requests[-1].path == "/%E2%80%A6/x"


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("http://[fd00::1]:8080/hooks/T0KEN", "http://[fd00::1]:8080/…"),
        ("https://[FD00::AB]/x?key=k", "https://[fd00::ab]/…"),
        ("http://10.0.0.1:9000/x", "http://10.0.0.1:9000/…"),
    ],
)
async def test_an_ipv6_address_keeps_its_brackets_in_the_masked_url(
    client: httpx.AsyncClient, admin: LoggedIn, url: str, masked: str
) -> None:
    """`http://[fd00::1]:8080/…` was shown as `http://fd00::1:8080/…`, which is no URL (the
    port cannot be told from the address), on the page, in the API and in a failed send's
    error (`http://fd00::1:8080 unreachable`: both say where with the same code)."""
    c = await channel(client, admin, name="v6", kind="webhook", config={"url": url})
    assert c["config"] == {"url": masked}
    r = await client.put(
        f"/api/v1/notifications/channels/{c['id']}", json={"config": {"url": masked}}, headers=admin.headers
    )
    assert r.status_code == 200 and r.json()["config"] == {"url": masked}, r.text
    assert (await _row(c["id"])).url_ciphertext is not None


async def test_a_url_saved_in_plain_text_before_is_sealed_at_start_and_by_a_rotation(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """Rows from before migration 0031 hold the URL in `config.url`: the start seals them
    (`seal_plain_urls`, once the vault is open), and a master key rotation re-seals every URL."""
    rt = runtime.current()
    with http_receiver() as hook:
        url = f"{hook.url}/hooks/{TOKEN}"
        async with rt.db.session() as session:
            old = NotificationChannel(name="legacy", kind="webhook", config={"url": url})
            session.add(old)
            await session.commit()
            channel_id = old.id
            assert channel_id is not None
        assert await notifications.seal_plain_urls(rt.db) == 1
        assert await notifications.seal_plain_urls(rt.db) == 0, "once"
        row = await _row(channel_id)
        assert row.config == {"url": f"{hook.url}/…"} and row.url_ciphertext is not None
        assert [e.target_id for e in await _audit("notification_channel.url_sealed")] == [str(channel_id)]
        r = await client.post(f"/api/v1/notifications/channels/{channel_id}/test", headers=admin.headers)
        assert r.status_code == 204, r.text
        assert hook.requests[-1].path == f"/hooks/{TOKEN}"

    vault = keyring.current_vault()
    async with rt.db.session() as session:
        new, _ = await keyring.rotate(session, vault, MasterKey(os.urandom(32), "test"))
    row = await _row(channel_id)
    assert row.url_key_version == new.key_version
    assert keyring.reveal_channel_url(new, row) == url
