"""A receiver's answer is read bounded: an HTTP receiver answering with an endless body, an SMTP
server with an endless multi-line reply (real loopback servers: `receivers.drip_server`)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from opscraft.services import notification_senders
from tests.automation.receivers import drip_server
from tests.automation.test_notifications import channel, secret
from tests.conftest import LoggedIn

# A deadline the tests can wait out: before the answers were bounded, each of these sends read
# until it (tens of megabytes here; gigabytes in 30 s from a fast receiver).
DEADLINE = 3.0
ENDLESS_BODY = b"HTTP/1.1 {status}\r\nContent-Length: 100000000000\r\n\r\n"
BODY_PART = b"x" * 65536


@pytest.fixture(autouse=True)
def short_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notification_senders, "DEADLINE_SECONDS", DEADLINE)


async def test_a_2xx_with_an_endless_body_is_delivered_without_reading_it(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """A webhook receiver answering 200 whose body never ends: the whole body was read into the
    server's memory until the deadline (6.9 GB at its peak for 3 GB sent within 30 s, 3.8 GB kept
    after, the event loop held 42 s), and the delivery failed "did not answer". The status is
    all a delivery needs: delivered at once."""
    first = ENDLESS_BODY.replace(b"{status}", b"200 OK")
    with drip_server(first, BODY_PART, interval=0.005) as receiver:
        c = await channel(
            client, admin, name="c", kind="webhook", config={"url": f"http://127.0.0.1:{receiver.port}/h"}
        )
        started = time.monotonic()
        r = await client.post(f"/api/v1/notifications/channels/{c['id']}/test", headers=admin.headers)
    assert r.status_code == 204, r.text
    assert time.monotonic() - started < DEADLINE


@pytest.mark.parametrize("kind", ["slack", "webhook"])
async def test_a_refusal_with_an_endless_body_is_said_without_reading_it(
    client: httpx.AsyncClient, admin: LoggedIn, kind: str
) -> None:
    """A 404 whose body never ends: Slack's error code is looked for in the first
    `ANSWER_BODY_BYTES` only (a body longer than that is no code), and the refusal is said at
    once; it was read until the deadline and said "did not answer"."""
    first = ENDLESS_BODY.replace(b"{status}", b"404 Not Found")
    with drip_server(first, BODY_PART, interval=0.005) as receiver:
        url = f"http://127.0.0.1:{receiver.port}/services/T/B/X"
        if kind == "slack":
            url_id = await secret(client, admin, "U", url)
            c = await channel(client, admin, name="c", kind="slack", secret_id=url_id)
        else:
            c = await channel(client, admin, name="c", kind="webhook", config={"url": url})
        started = time.monotonic()
        r = await client.post(f"/api/v1/notifications/channels/{c['id']}/test", headers=admin.headers)
    assert r.status_code == 409, r.text
    assert r.json()["detail"].endswith("answered HTTP 404"), r.text
    assert time.monotonic() - started < DEADLINE


async def test_an_endless_smtp_reply_is_cut_at_its_limit(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    """An SMTP server whose greeting never ends (`220-` line after line, each within smtplib's
    8 KiB line limit): smtplib keeps every line of a reply until its last, so the server process
    grew by gigabytes before the deadline cut the connection (0.65 GB to 8.1 GB in 30 s). A
    reply past `REPLY_BYTES` now ends the send at once, saying so; it is retried like any
    failure of the server."""
    line = b"220-" + b"x" * 8000 + b"\r\n"
    with drip_server(b"220-mail.example ESMTP\r\n", line * 8, interval=0.001) as server:
        config = {"host": "127.0.0.1", "port": server.port, "security": "none"}
        config |= {"from": "ops@example.com", "to": "oncall@example.com"}
        c = await channel(client, admin, name="m", kind="email", config=config)
        started = time.monotonic()
        r = await client.post(f"/api/v1/notifications/channels/{c['id']}/test", headers=admin.headers)
    assert r.status_code == 409, r.text
    limit = notification_senders.REPLY_BYTES
    assert r.json()["detail"].endswith(f"the server's reply was longer than {limit} bytes"), r.text
    assert time.monotonic() - started < DEADLINE


@pytest.fixture
def silent_resolver(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A host name whose look-up answers only after three deadlines (as a name server that does
    not answer: glibc's resolver gives up after its timeouts and attempts), or when the test
    ends. A stand-in: a name server that does not answer would need this machine's resolver
    configuration (/etc/resolv.conf) changed for every process on it, so `socket.getaddrinfo`
    (what the event loop's look-up calls, on a thread) waits here for that name and answers every
    other one itself."""
    name, released = "silent-resolver.test", threading.Event()
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == name and not kwargs.get("flags", 0) & socket.AI_NUMERICHOST:  # a look-up
            released.wait(3 * DEADLINE)
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield name
    released.set()


@pytest.mark.parametrize("kind", ["webhook", "email"])
async def test_a_host_name_whose_look_up_never_answers_ends_the_send_at_its_deadline(
    client: httpx.AsyncClient, admin: LoggedIn, silent_resolver: str, kind: str
) -> None:
    """The look-up of the channel's host name counts in the send's deadline: a name server that
    does not answer held it for the resolver's own timeouts and attempts (glibc: 5 s each, per
    name server and address family: past the 30 s deadline), with the sender's round and the
    Test button waiting."""
    if kind == "webhook":
        config = {"url": f"http://{silent_resolver}:8080/h"}
    else:
        config = {"host": silent_resolver, "port": 25, "security": "none"}
        config |= {"from": "ops@example.com", "to": "oncall@example.com"}
    c = await channel(client, admin, name="c", kind=kind, config=config)
    started = time.monotonic()
    r = await client.post(f"/api/v1/notifications/channels/{c['id']}/test", headers=admin.headers)
    assert r.status_code == 409, r.text
    assert f"did not resolve within {DEADLINE:g} s" in r.json()["detail"], r.text
    assert time.monotonic() - started < DEADLINE + 2
