"""Notification sends that must stop or never start, against real receivers on loopback (an HTTP
server, aiosmtpd): a receiver's permanent refusal is not retried, a 429's Retry-After is
honoured within bounds, receivers in networks OPSCRAFT_NOTIFY_NETWORKS does not allow (loopback,
link-local, the cloud metadata address) are refused at send time, and an SMTP login never
crosses an unencrypted connection unless OPSCRAFT_SMTP_PLAINTEXT_LOGIN allows it."""

from __future__ import annotations

import ssl
import threading
from dataclasses import replace
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
from tests.automation.receivers import POLL_SECONDS, http_receiver, self_signed, smtp_receiver
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


@pytest.mark.parametrize(
    ("security", "to", "lacks"),
    [("none", "jürgen@example.com", "SMTPUTF8"), ("starttls", "ops@example.com", "STARTTLS")],
)
async def test_a_server_lacking_what_the_channel_needs_fails_the_delivery_at_once(
    client: httpx.AsyncClient, admin: LoggedIn, no_automation_loops: None, security: str, to: str, lacks: str
) -> None:
    """A mail server that does not offer SMTPUTF8 (a non-ASCII recipient) or STARTTLS (the
    channel's security) does not start offering it on a retry: the delivery was tried 8 times
    over about 20 minutes. It fails at the first, saying what the server lacks."""
    with smtp_receiver() as smtp:
        config = {"host": "127.0.0.1", "port": smtp.port, "security": security}
        c = await channel(
            client, admin, name="mail", kind="email", config={**config, "from": "o@example.com", "to": to}
        )
        await rule(client, admin, c["id"], ["failure"])
        run_id = await finished_run(await script(client, admin), "failed")
        async with runtime.current().db.session() as session:
            await notifications.enqueue_for_execution(session, run_id)
        await deliver_all()
        assert smtp.messages == []
    row = await _row()
    assert (row.status, row.attempts) == (DeliveryStatus.failed, 1), row
    assert lacks in (row.last_error or "") and (row.last_error or "").endswith("(permanent: not retried)"), (
        row
    )


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
        # IPv6 addresses standing for an IPv4 one are in its network
        ("::ffff:127.0.0.1", "loopback"),
        ("64:ff9b::a9fe:a9fe", "link_local"),  # NAT64 (RFC 6052): was never allowed, as reserved
        ("64:ff9b::7f00:1", "loopback"),
        ("64:ff9b::808:808", "public"),  # DNS64's answer for 8.8.8.8 on an IPv6-only network
        ("2002:a9fe:a9fe::", "link_local"),  # 6to4: was public
        ("2002:7f00:1::1", "loopback"),
        ("2002:a00:1::", "private"),
        ("2001:0:4136:e378:8000:63bf:5601:5601", "link_local"),  # Teredo, client 169.254.169.254
        ("::a9fe:a9fe", None),  # IPv4-compatible, deprecated
        ("::7f00:1", None),
        ("64:ff9b:1::a9fe:a9fe", None),  # local-use NAT64: where the IPv4 address sits varies
        ("fec0::1", "private"),  # site-local, deprecated: was public
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
    assert "OPSCRAFT_NOTIFY_NETWORKS allows: public, private" in str(refused.value)
    everything = frozenset({"private", "loopback", "link_local"})
    assert notification_senders.check_addresses("h", ["169.254.169.254"], everything, "w")
    with pytest.raises(SendError):  # never allowed
        notification_senders.check_addresses("h", ["0.0.0.0"], everything, "w")


async def test_a_loopback_or_metadata_receiver_is_refused_by_default(
    client: httpx.AsyncClient, admin: LoggedIn, no_automation_loops: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A channel could point at 127.0.0.1 (the server's own services) or 169.254.169.254 (a
    cloud's metadata service, credentials included): the send connected. Now the address the
    host resolves to at send time is checked, and a refused one fails the delivery at once: a
    channel saved while the setting allowed more (or whose name's DNS answer changed since, or
    a Slack URL in the vault, which saving does not read) sends nothing."""
    default = Settings.model_fields["notify_networks"].default
    assert default == frozenset({"private"})
    settings = runtime.current().settings
    with http_receiver() as hook, smtp_receiver() as smtp:
        monkeypatch.setattr(settings, "notify_networks", frozenset({"private", "loopback", "link_local"}))
        # a name, resolved at send time (not only an address literal); sent under the default
        hook_url = f"http://localhost:{hook.url.rsplit(':', 1)[1]}/in"
        hook_channel = await channel(client, admin, name="hook", kind="webhook", config={"url": hook_url})
        await rule(client, admin, hook_channel["id"], ["failure"])
        meta = await channel(
            client, admin, name="meta", kind="webhook", config={"url": "http://169.254.169.254/latest"}
        )
        config = {"host": "127.0.0.1", "port": smtp.port, "security": "none", "from": "o@example.com"}
        mail = await channel(client, admin, name="mail", kind="email", config={**config, "to": ["a@b.io"]})
        monkeypatch.setattr(settings, "notify_networks", default)
        run_id = await finished_run(await script(client, admin), "failed")
        async with runtime.current().db.session() as session:
            await notifications.enqueue_for_execution(session, run_id)
        await deliver_all()
        row = await _row()
        assert (row.status, row.attempts) == (DeliveryStatus.failed, 1), row
        assert "refused to connect to localhost (127.0.0.1): a loopback address" in (row.last_error or "")
        assert hook.requests == []

        r = await client.post(f"/api/v1/notifications/channels/{meta['id']}/test", headers=admin.headers)
        assert r.status_code == 409 and "169.254.169.254: a link-local address" in r.json()["detail"]

        slack_url = await secret(client, admin, "SLACK_URL", f"{hook.url}/services/T/B/X")
        slack = await channel(client, admin, name="slack", kind="slack", secret_id=slack_url)
        r = await client.post(f"/api/v1/notifications/channels/{slack['id']}/test", headers=admin.headers)
        assert r.status_code == 409 and "127.0.0.1: a loopback address" in r.json()["detail"]

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
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": POLL_SECONDS}, daemon=True).start()
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


# --- every spelling, refused when saved and when sent --------------------------------------------

# (URL, what it stands for) with OPSCRAFT_NOTIFY_NETWORKS at its default (private)
REFUSED_URLS = [
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254: a link-local address"),
    ("http://2852039166/", "2852039166 (169.254.169.254): a link-local address"),  # decimal
    ("http://0251.0376.0251.0376/", "(169.254.169.254): a link-local address"),  # octal
    ("http://0xa9fea9fe/", "0xa9fea9fe (169.254.169.254): a link-local address"),  # hex
    ("http://0xa9.0xfe.0xa9fe/", "(169.254.169.254): a link-local address"),
    ("http://127.1/", "127.1 (127.0.0.1): a loopback address"),  # short
    ("http://0/", "0 (0.0.0.0): an address notifications never go to"),
    ("http://[::ffff:169.254.169.254]/", "a link-local address (it stands for 169.254.169.254)"),
    ("http://[::ffff:127.0.0.1]:8080/", "a loopback address (it stands for 127.0.0.1)"),
    ("http://[64:ff9b::a9fe:a9fe]/", "a link-local address (it stands for 169.254.169.254)"),  # NAT64
    ("http://[::169.254.169.254]/", "an address notifications never go to"),  # IPv4-compatible
    ("http://[2002:a9fe:a9fe::]/", "a link-local address (it stands for 169.254.169.254)"),  # 6to4
    ("http://[fe80::1%25eth0]/", "(fe80::1): a link-local address"),  # a zone id
    ("http://[::1]/", "::1: a loopback address"),
    ("http://169.254.169.254./", "(169.254.169.254): a link-local address"),  # a trailing dot
    ("http://localhost./x", "(127.0.0.1): a loopback address"),
    ("http://hooks.localhost/x", "(127.0.0.1): a loopback address"),
    ("http://good@169.254.169.254/", "169.254.169.254: a link-local address"),  # userinfo
    ("HTTP://169.254.169.254/", "169.254.169.254: a link-local address"),  # upper-case scheme
    ("http://127\u30020\u30020\u30021/", "127.0.0.1: a loopback address"),  # ideographic full stops
    ("http://\u2460\u2461\u2466.0.0.1/", "(127.0.0.1): a loopback address"),  # circled digits
    ("http://100.100.100.200/", "100.100.100.200: a link-local address"),  # Alibaba's metadata
    ("http://[fd00:ec2::254]/", "fd00:ec2::254: a link-local address"),  # AWS's IPv6 one
]


async def test_a_channel_at_a_refused_address_is_refused_when_saved(
    client: httpx.AsyncClient, admin: LoggedIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A channel whose URL or SMTP host was an address OPSCRAFT_NOTIFY_NETWORKS refuses, in
    whatever spelling, was saved and failed only at its first message: now 422 naming the field
    and the network. Whitespace around a URL is refused as before. A host name, and an address
    the setting allows, are still saved (names are checked when sending)."""
    monkeypatch.setattr(runtime.current().settings, "notify_networks", frozenset({"private"}))
    url = "/api/v1/notifications/channels"
    for bad, said in REFUSED_URLS:
        body = {"name": "hook", "kind": "webhook", "config": {"url": bad}}
        r = await client.post(url, json=body, headers=admin.headers)
        assert r.status_code == 422, (bad, r.text)
        errors = {e["field"]: e["message"] for e in r.json()["errors"]}
        assert said in errors["config.url"] and errors["config.url"].startswith("refused: "), (bad, errors)
        assert "OPSCRAFT_NOTIFY_NETWORKS" in errors["config.url"] or "never go to" in said
    for bad in (
        " http://169.254.169.254/",
        "http://169.254.169.254/\t",
        "http://169.254.169.254/ x",
        "http://1\x00/",
    ):
        body = {"name": "hook", "kind": "webhook", "config": {"url": bad}}
        r = await client.post(url, json=body, headers=admin.headers)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "config.url", (bad, r.text)
    mail = {"port": 25, "security": "none", "from": "o@example.com", "to": ["a@example.com"]}
    for host in (
        "169.254.169.254",
        "0xa9fea9fe",
        "127.1",
        "[::1]",
        "::ffff:127.0.0.1",
        "fe80::1%eth0",
        "localhost",
    ):
        body = {"name": "mail", "kind": "email", "config": {**mail, "host": host}}
        r = await client.post(url, json=body, headers=admin.headers)
        assert r.status_code == 422, (host, r.text)
        errors = {e["field"]: e["message"] for e in r.json()["errors"]}
        assert list(errors) == ["config.host"] and "address" in errors["config.host"], (host, errors)
    assert (await client.get(url, headers=admin.headers)).json()["items"] == []

    hook = await channel(client, admin, name="hook", kind="webhook", config={"url": "http://10.1.2.3/in"})
    await channel(client, admin, name="named", kind="webhook", config={"url": "https://hooks.example.com/in"})
    await channel(client, admin, name="mail", kind="email", config={**mail, "host": "192.168.1.5"})
    r = await client.put(
        f"{url}/{hook['id']}", json={"config": {"url": "http://[::ffff:a9fe:a9fe]/"}}, headers=admin.headers
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "config.url", r.text
    # what the setting allows is saved
    monkeypatch.setattr(runtime.current().settings, "notify_networks", frozenset({"private", "loopback"}))
    await channel(client, admin, name="local", kind="webhook", config={"url": "http://127.1:9/in"})


LOOPBACK_SPELLINGS = ["127.1", "2130706433", "0x7f000001", "0x7f.1", "[::ffff:127.0.0.1]"]


@pytest.mark.parametrize("spelling", LOOPBACK_SPELLINGS)
async def test_every_spelling_of_loopback_is_refused_when_sending(spelling: str) -> None:
    """A channel saved before (or a Slack URL in the vault, read only when sending) at another
    spelling of 127.0.0.1 reaches nothing: the send checks what the host resolves to. Allowed,
    the same spelling reaches the receiver on 127.0.0.1, so the refusal is the check's."""
    with http_receiver() as hook, smtp_receiver() as smtp:
        port = hook.url.rsplit(":", 1)[1]
        url = f"http://{spelling}:{port}/in"
        host = spelling.strip("[]")
        mail = notification_senders.EmailSettings(host, smtp.port, "none", "o@example.com", ["a@example.com"])
        with pytest.raises(SendError) as refused:
            await notification_senders.send_webhook(url, {"m": 1}, frozenset({"private"}))
        assert refused.value.permanent and "a loopback address" in str(refused.value)
        with pytest.raises(SendError) as refused:
            await notification_senders.send_email(mail, "s", "t")
        assert refused.value.permanent and "a loopback address" in str(refused.value)
        assert hook.requests == [] and smtp.messages == []

        allowed = frozenset({"private", "loopback"})
        await notification_senders.send_webhook(url, {"m": 1}, allowed)
        await notification_senders.send_email(replace(mail, networks=allowed), "s", "t")
        assert len(hook.requests) == 1 and len(await smtp.wait_for(1)) == 1


async def test_a_url_httpx_cannot_read_fails_as_a_send_error() -> None:
    """`http://0251.0376.0251.0376/` (octal) passed the URL check and httpx refused it when
    sending: InvalidURL, a 500 on **Test** and an error out of the sender's round. Now it is a
    permanent SendError (and refused when saved)."""
    for url in ("http://0251.0376.0251.0376/", "http://\u2460\u2461\u2466.0.0.1/"):
        assert notification_senders.http_url_problem(url) is not None
        with pytest.raises(SendError) as refused:
            await notification_senders.send_webhook(
                url, {"m": 1}, frozenset({"private", "loopback", "link_local"})
            )
        assert refused.value.permanent and "not a valid http:// or https:// URL" in str(refused.value)


async def test_a_redirect_is_never_followed(
    client: httpx.AsyncClient, admin: LoggedIn, no_automation_loops: None
) -> None:
    """A receiver answering 3xx (to an address the setting allows, to the metadata address, or
    to one of its spellings) is not followed: the message goes nowhere else, and the delivery
    fails at once saying where the redirect pointed (without its path)."""
    with http_receiver() as hook, http_receiver() as elsewhere:
        targets = [
            f"{elsewhere.url}/secret-path",
            "http://169.254.169.254/latest",
            "http://0xa9fea9fe/",
            "//127.1/x",
        ]
        c = await channel(client, admin, name="hook", kind="webhook", config={"url": f"{hook.url}/in"})
        for status in (301, 302, 303, 307, 308):
            for target in targets:
                hook.statuses, hook.headers = [status], {"Location": target}
                r = await client.post(f"/api/v1/notifications/channels/{c['id']}/test", headers=admin.headers)
                assert r.status_code == 409, r.text
                assert f"answered HTTP {status} (a redirect to" in r.json()["detail"]
                assert "not followed" in r.json()["detail"] and "secret-path" not in r.json()["detail"]
        assert len(hook.requests) == 5 * len(targets) and elsewhere.requests == []


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"])
async def test_a_proxy_in_the_environment_is_not_used(monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    """httpx reads HTTP_PROXY, HTTPS_PROXY and ALL_PROXY by default (`trust_env`): a webhook went
    to the proxy, which connected from where it runs to wherever it was asked, out of the
    check's sight. Now the send connects to the receiver itself; the proxy sees nothing."""
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    with http_receiver() as hook, http_receiver() as proxy:
        monkeypatch.setenv(variable, proxy.url)
        await notification_senders.send_webhook(f"{hook.url}/in", {"m": 1}, frozenset({"loopback"}))
        assert len(hook.requests) == 1 and proxy.requests == []
