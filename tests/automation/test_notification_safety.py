"""Notification sends that must stop or never start, against real receivers on loopback (an HTTP
server, aiosmtpd): a receiver's permanent refusal is not retried, a 429's Retry-After is
honoured within bounds, receivers in networks OPSCRAFT_NOTIFY_NETWORKS does not allow (loopback,
link-local, the cloud metadata address) are refused at send time, and an SMTP login never
crosses an unencrypted connection unless OPSCRAFT_SMTP_PLAINTEXT_LOGIN allows it."""

from __future__ import annotations

import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import select

from opscraft import runtime
from opscraft.config import Settings
from opscraft.db.models import NotificationDelivery
from opscraft.db.models.automation import DeliveryStatus
from opscraft.db.types import utcnow
from opscraft.services import notification_senders, notifications
from opscraft.services.notification_senders import SendError
from tests.automation.receivers import http_receiver, self_signed, smtp_receiver
from tests.automation.test_notifications import channel, deliver_all, finished_run, rule, script, secret
from tests.conftest import LoggedIn


async def _one_delivery(client: httpx.AsyncClient, admin: LoggedIn, url: str) -> int:
    """A webhook channel to `url`, a rule for failures and one failed run's delivery, sent once."""
    c = await channel(client, admin, name="hook", kind="webhook", config={"url": url})
    await rule(client, admin, c["id"], ["failure"])
    run_id = await finished_run(await script(client, admin), "failed")
    async with runtime.current().db.session() as session:
        await notifications.enqueue_for_execution(session, run_id)
    await deliver_all()
    return run_id


async def _row() -> NotificationDelivery:
    async with runtime.current().db.session() as session:
        return (await session.exec(select(NotificationDelivery))).one()


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 301, 302])
async def test_a_permanent_refusal_fails_the_delivery_at_once(
    client: httpx.AsyncClient, admin: LoggedIn, no_automation_loops: None, status: int
) -> None:
    """A 4xx (but 408 and 429) or a redirect was retried 8 times over about ten minutes, though
    no try could succeed: the delivery fails at the first, saying why."""
    with http_receiver() as hook:
        hook.statuses = [status] * 10
        hook.headers = {"Location": "https://elsewhere.example/x"} if status < 400 else {}
        await _one_delivery(client, admin, f"{hook.url}/in")
        assert len(hook.requests) == 1
    row = await _row()
    assert (row.status, row.attempts) == (DeliveryStatus.failed, 1), row
    assert f"answered HTTP {status}" in (row.last_error or "") and "not retried" in (row.last_error or "")
    r = await client.get("/api/v1/notifications/deliveries?status=failed", headers=admin.headers)
    assert r.json()["items"][0]["last_error"] == row.last_error


@pytest.mark.parametrize("status", [408, 500, 503])
async def test_a_passing_failure_is_retried(
    client: httpx.AsyncClient, admin: LoggedIn, no_automation_loops: None, status: int
) -> None:
    with http_receiver() as hook:
        hook.statuses = [status]
        await _one_delivery(client, admin, hook.url)
    row = await _row()
    assert (row.status, row.attempts) == (DeliveryStatus.pending, 1), row
    assert "not retried" not in (row.last_error or "")


@pytest.mark.parametrize(
    ("retry_after", "low", "high"),
    [("120", 115, 120), (None, 3, 5), ("1", 3, 5), ("999999", 3595, 3600), ("soon", 3, 5)],
)
async def test_a_429_waits_as_long_as_the_receiver_asks_within_bounds(
    client: httpx.AsyncClient,
    admin: LoggedIn,
    no_automation_loops: None,
    retry_after: str | None,
    low: float,
    high: float,
) -> None:
    """A 429 was retried after the backoff's 5 s whatever its Retry-After said; now its wait is
    the receiver's, at least 5 s and at most an hour (an unreadable one: the backoff)."""
    with http_receiver() as hook:
        hook.statuses = [429]
        hook.headers = {"Retry-After": retry_after} if retry_after else {}
        await _one_delivery(client, admin, hook.url)
    row = await _row()
    assert (row.status, row.attempts) == (DeliveryStatus.pending, 1), row
    wait = (row.next_attempt_at - utcnow()).total_seconds()
    assert low < wait <= high, wait


def test_retry_after_reads_seconds_and_http_dates() -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert notification_senders.retry_after_seconds("30", now) == 30
    assert notification_senders.retry_after_seconds("Thu, 01 Jan 2026 12:02:00 GMT", now) == 120
    assert notification_senders.retry_after_seconds("Thu, 01 Jan 2026 11:00:00 GMT", now) == 0
    assert notification_senders.retry_after_seconds("-5", now) is None
    assert notification_senders.retry_after_seconds("", now) is None


# --- where a send may connect -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "network"),
    [
        ("169.254.169.254", "link_local"),
        ("::ffff:169.254.169.254", "link_local"),
        ("fd00:ec2::254", "link_local"),
        ("100.100.100.200", "link_local"),
        ("fe80::1", "link_local"),
        ("127.0.0.1", "loopback"),
        ("127.8.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.1.1", "private"),
        ("100.64.0.1", "private"),
        ("fd12::1", "private"),
        ("0.0.0.0", None),
        ("0.1.2.3", None),
        ("224.0.0.1", None),
        ("8.8.8.8", "public"),
        ("2606:4700::1111", "public"),
    ],
)
def test_the_network_of_an_address(address: str, network: str | None) -> None:
    import ipaddress

    assert notification_senders.network_of(ipaddress.ip_address(address)) == network


def test_every_address_a_name_resolves_to_is_checked() -> None:
    allowed = frozenset({"private"})
    assert notification_senders.check_addresses("h", ["8.8.8.8", "10.0.0.1"], allowed, "w") == "8.8.8.8"
    with pytest.raises(SendError) as refused:
        notification_senders.check_addresses("h", ["8.8.8.8", "169.254.169.254"], allowed, "w")
    assert refused.value.permanent and "h (169.254.169.254): a link-local address" in str(refused.value)
    assert "OPSCRAFT_NOTIFY_NETWORKS allows public and: private" in str(refused.value)
    everything = frozenset({"private", "loopback", "link_local"})
    assert notification_senders.check_addresses("h", ["169.254.169.254"], everything, "w")
    with pytest.raises(SendError):  # never allowed
        notification_senders.check_addresses("h", ["0.0.0.0"], everything, "w")


async def test_a_loopback_or_metadata_receiver_is_refused_by_default(
    client: httpx.AsyncClient, admin: LoggedIn, no_automation_loops: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A channel could point at 127.0.0.1 (the server's own services) or 169.254.169.254 (a
    cloud's metadata service, credentials included): the send connected. Now the address the
    host resolves to at send time is checked, and a refused one fails the delivery at once."""
    default = Settings.model_fields["notify_networks"].default
    assert default == frozenset({"private"})
    monkeypatch.setattr(runtime.current().settings, "notify_networks", default)
    with http_receiver() as hook, smtp_receiver() as smtp:
        # a name, resolved at send time (not only an address literal)
        await _one_delivery(client, admin, f"http://localhost:{hook.url.rsplit(':', 1)[1]}/in")
        row = await _row()
        assert (row.status, row.attempts) == (DeliveryStatus.failed, 1), row
        assert "refused to connect to localhost (127.0.0.1): a loopback address" in (row.last_error or "")
        assert hook.requests == []

        meta = await channel(
            client, admin, name="meta", kind="webhook", config={"url": "http://169.254.169.254/latest"}
        )
        r = await client.post(f"/api/v1/notifications/channels/{meta['id']}/test", headers=admin.headers)
        assert r.status_code == 409 and "169.254.169.254: a link-local address" in r.json()["detail"]

        slack_url = await secret(client, admin, "SLACK_URL", f"{hook.url}/services/T/B/X")
        slack = await channel(client, admin, name="slack", kind="slack", secret_id=slack_url)
        r = await client.post(f"/api/v1/notifications/channels/{slack['id']}/test", headers=admin.headers)
        assert r.status_code == 409 and "127.0.0.1: a loopback address" in r.json()["detail"]

        config = {"host": "127.0.0.1", "port": smtp.port, "security": "none", "from": "o@example.com"}
        mail = await channel(client, admin, name="mail", kind="email", config={**config, "to": ["a@b.io"]})
        r = await client.post(f"/api/v1/notifications/channels/{mail['id']}/test", headers=admin.headers)
        assert r.status_code == 409 and "SMTP 127.0.0.1" in r.json()["detail"], r.text
        assert "loopback address" in r.json()["detail"]
        assert hook.requests == [] and smtp.messages == []

        # Allowed by the setting, the same channels send
        monkeypatch.setattr(runtime.current().settings, "notify_networks", frozenset({"private", "loopback"}))
        r = await client.post(f"/api/v1/notifications/channels/{slack['id']}/test", headers=admin.headers)
        assert r.status_code == 204, r.text
        r = await client.post(f"/api/v1/notifications/channels/{mail['id']}/test", headers=admin.headers)
        assert r.status_code == 204, r.text
        assert len(hook.requests) == 1 and len(smtp.messages) == 1
        # sent to the address checked, under the host's name
        assert hook.requests[0].headers["host"] == f"127.0.0.1:{hook.url.rsplit(':', 1)[1]}"


# --- SMTP login over an unencrypted connection ----------------------------------------------------


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # the point of the test
async def test_an_smtp_login_over_an_unencrypted_connection_is_refused(
    client: httpx.AsyncClient, admin: LoggedIn, monkeypatch: pytest.MonkeyPatch, no_automation_loops: None
) -> None:
    """With security `none` and a username, the password went over the network in clear text
    (AUTH PLAIN/LOGIN is base64): refused when saved (422 naming `config.security`) and when sent
    (a channel saved before), unless OPSCRAFT_SMTP_PLAINTEXT_LOGIN allows it."""
    settings = runtime.current().settings
    password_id = await secret(client, admin, "SMTP_PW", "pl41n-pw")
    with smtp_receiver(login=("bot", "pl41n-pw")) as smtp:
        config = {
            "host": "127.0.0.1",
            "port": smtp.port,
            "security": "none",
            "from": "o@example.com",
            "to": ["a@example.com"],
            "username": "bot",
        }
        body = {"name": "mail", "kind": "email", "config": config, "secret_id": password_id}
        r = await client.post("/api/v1/notifications/channels", json=body, headers=admin.headers)
        assert r.status_code == 422, r.text
        errors = {e["field"]: e["message"] for e in r.json()["errors"]}
        assert "OPSCRAFT_SMTP_PLAINTEXT_LOGIN" in errors["config.security"], errors

        monkeypatch.setattr(settings, "smtp_plaintext_login", True)  # a channel saved while allowed
        c = await channel(client, admin, **body)
        r = await client.post(f"/api/v1/notifications/channels/{c['id']}/test", headers=admin.headers)
        assert r.status_code == 204, r.text
        assert len(smtp.messages) == 1

        monkeypatch.setattr(settings, "smtp_plaintext_login", False)
        r = await client.post(f"/api/v1/notifications/channels/{c['id']}/test", headers=admin.headers)
        assert r.status_code == 409 and "a login needs an encrypted connection" in r.json()["detail"]
        assert len(smtp.messages) == 1, "nothing was sent"
        await rule(client, admin, c["id"], ["failure"])
        run_id = await finished_run(await script(client, admin), "failed")
        async with runtime.current().db.session() as session:
            await notifications.enqueue_for_execution(session, run_id)
        await deliver_all()
        row = await _row()
        assert row.status == DeliveryStatus.failed and row.attempts == 1
        assert "a login needs an encrypted connection" in (row.last_error or "")
        assert "pl41n-pw" not in (row.last_error or "") and len(smtp.messages) == 1


async def test_an_https_receiver_is_reached_at_the_address_checked_and_verified_by_its_name(
    client: httpx.AsyncClient, admin: LoggedIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The send connects to the address it checked, not to a second look-up of the name; TLS
    still verifies the certificate against the URL's host name (SNI), not the address."""
    cert = self_signed(tmp_path)  # for localhost and 127.0.0.1
    monkeypatch.setenv("SSL_CERT_FILE", str(cert[0]))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert[0]), str(cert[1]))
    seen: list[tuple[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            seen.append((self.path, self.headers.get("Host", "")))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        c = await channel(
            client, admin, name="tls", kind="webhook", config={"url": f"https://localhost:{port}/in/x"}
        )
        r = await client.post(f"/api/v1/notifications/channels/{c['id']}/test", headers=admin.headers)
        assert r.status_code == 204, r.text
        assert seen == [("/in/x", f"localhost:{port}")]

        # A name the certificate does not hold, resolving to the same address: refused by TLS
        async def resolved(*_: Any) -> str:  # the name's look-up and check: this address
            return "127.0.0.1"

        monkeypatch.setattr(notification_senders, "_allowed_address", resolved)
        body = {"config": {"url": f"https://opscraft-test.invalid:{port}/in/y"}}
        r = await client.put(f"/api/v1/notifications/channels/{c['id']}", json=body, headers=admin.headers)
        assert r.status_code == 200, r.text
        r = await client.post(f"/api/v1/notifications/channels/{c['id']}/test", headers=admin.headers)
        assert r.status_code == 409 and "unreachable" in r.json()["detail"], r.text
        assert len(seen) == 1
    finally:
        server.shutdown()
        server.server_close()
