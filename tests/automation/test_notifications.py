"""Notification channels, rules and delivery against real receivers on loopback: an HTTP server
(generic webhook, Slack format) and aiosmtpd (plain, STARTTLS, implicit TLS, login)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import col, select, update

from opscraft import runtime
from opscraft.db.models import Execution, ExecutionLog, NotificationChannel, NotificationDelivery, Role
from opscraft.db.models.automation import ChannelKind, DeliveryStatus
from opscraft.db.types import utcnow
from opscraft.services import notification_senders, notifications
from tests.automation.receivers import drip_server, http_receiver, self_signed, smtp_receiver
from tests.conftest import IN_MODULE_LOOP, PASSWORD, LoggedIn, Reader
from tests.waiting import until


async def secret(client: httpx.AsyncClient, admin: LoggedIn, name: str, value: str) -> int:
    r = await client.post("/api/v1/secrets", json={"name": name, "value": value}, headers=admin.headers)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def channel(client: httpx.AsyncClient, admin: LoggedIn, **body: Any) -> dict[str, Any]:
    r = await client.post("/api/v1/notifications/channels", json=body, headers=admin.headers)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def rule(
    client: httpx.AsyncClient,
    admin: LoggedIn,
    channel_id: int,
    events: list[str],
    script_id: int | None = None,
) -> None:
    body = {"channel_id": channel_id, "events": events, "script_id": script_id}
    r = await client.post("/api/v1/notifications/rules", json=body, headers=admin.headers)
    assert r.status_code == 201, r.text


async def script(client: httpx.AsyncClient, admin: LoggedIn, name: str = "deploy") -> int:
    body = {"name": name, "script_type": "bash", "content": "true\n", "status": "active"}
    r = await client.post("/api/v1/scripts", json=body, headers=admin.headers)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def finished_run(
    script_id: int,
    status: str,
    output: str | list[tuple[str, str]] = "",
    exit_code: int | None = 1,
    draft: bool = False,
) -> int:
    """A finished run written directly (what a worker leaves behind), with stored output: one
    chunk of stdout, or the chunks given as (stream, content)."""
    now = utcnow()
    async with runtime.current().db.session() as session:
        row = Execution(
            script_id=script_id,
            script_version=1,
            script_name="deploy",
            script_type="bash",
            status=status,
            exit_code=exit_code,
            triggered_by_name="alice",
            runner="local",
            started_at=now - timedelta(seconds=2),
            finished_at=now,
            draft=draft,
        )
        session.add(row)
        await session.flush()
        assert row.id is not None
        chunks = [("stdout", output)] if isinstance(output, str) and output else output or []
        for seq, (stream, content) in enumerate(chunks, 1):
            session.add(ExecutionLog(execution_id=row.id, seq=seq, stream=stream, content=content))
        await session.commit()
        return row.id


async def deliver_all() -> None:
    db = runtime.current().db
    while await notifications.deliver_due(db):
        pass


async def test_channel_validation(client: httpx.AsyncClient, admin: LoggedIn, operator: LoggedIn) -> None:
    url = "/api/v1/notifications/channels"
    cases = [
        ({"name": "w", "kind": "webhook", "config": {"url": "ftp://x"}}, "config.url"),
        ({"name": "w", "kind": "webhook", "config": {}}, "config.url"),
        ({"name": "w", "kind": "webhook", "config": {"url": "http://h", "extra": 1}}, "config"),
        ({"name": "s", "kind": "slack"}, "secret_id"),
        ({"name": "w", "kind": "webhook", "config": {"url": "http://h"}, "secret_id": 999}, "secret_id"),
        ({"name": "e", "kind": "email", "config": {"from": "a@b.io", "to": ["c@d.io"]}}, "config.host"),
        (
            {"name": "e", "kind": "email", "config": {"host": "h", "from": "x", "to": ["c@d.io"]}},
            "config.from",
        ),
        ({"name": "e", "kind": "email", "config": {"host": "h", "from": "a@b.io", "to": []}}, "config.to"),
        (
            {
                "name": "e",
                "kind": "email",
                "config": {"host": "h", "security": "tls", "from": "a@b.io", "to": "c@d.io"},
            },
            "config.security",
        ),
        (
            {
                "name": "e",
                "kind": "email",
                "config": {"host": "h", "from": "a@b.io", "to": "c@d.io", "username": "u"},
            },
            "secret_id",
        ),
    ]
    for body, field in cases:
        r = await client.post(url, json=body, headers=admin.headers)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["errors"][0]["field"] == field, (body, r.json())
    # Every problem at once: the body's field and each config key, not one per try.
    config = {"host": " ", "security": "tls", "from": "x", "to": [], "username": "u"}
    r = await client.post(url, json={"name": "", "kind": "email", "config": config}, headers=admin.headers)
    assert r.status_code == 422, r.text
    fields = [e["field"] for e in r.json()["errors"]]
    expected = ["name", "config.host", "config.security", "config.to", "secret_id", "config.from"]
    assert fields == expected, r.text
    # A key of another kind is named with the kind (h3: it said "for a email channel")
    config = {"host": "h", "from": "a@b.io", "to": "c@d.io", "url": "http://h"}
    r = await client.post(url, json={"name": "e", "kind": "email", "config": config}, headers=admin.headers)
    unknown = {"field": "config", "message": "unknown keys for email channels: url"}
    assert r.json()["errors"] == [unknown], r.text
    # Which recipient is wrong, and why; a repeated one is kept once.
    config = {"host": "h", "from": "a@b.io", "to": ["c@d.io", "ops@example.com", "bob@", "x"]}
    r = await client.post(url, json={"name": "e", "kind": "email", "config": config}, headers=admin.headers)
    assert r.status_code == 422, r.text
    assert r.json()["errors"] == [
        {
            "field": "config.to",
            "message": "'bob@' is not an email address: There must be something after the @-sign.",
        }
    ], r.text
    # RFC 5321's 64-octet local part, for a recipient and the sender alike (it was taken).
    long_local = {**config, "from": "f" * 65 + "@b.io", "to": ["c@d.io", "t" * 65 + "@d.io"]}
    body = {"name": "e", "kind": "email", "config": long_local}
    r = await client.post(url, json=body, headers=admin.headers)
    assert r.status_code == 422 and [e["field"] for e in r.json()["errors"]] == ["config.from", "config.to"]
    assert "too long before the @-sign" in r.json()["errors"][1]["message"], r.text
    # No header can be smuggled in through an address
    bcc = {**config, "from": "a@b.io\r\nBcc: spy@evil.example", "to": ["c@d.io\nBcc: spy@evil.example"]}
    r = await client.post(url, json={"name": "e", "kind": "email", "config": bcc}, headers=admin.headers)
    assert r.status_code == 422 and [e["field"] for e in r.json()["errors"]] == ["config.from", "config.to"]
    config["to"] = "c@d.io, ops@example.com, c@d.io"
    r = await client.post(url, json={"name": "e", "kind": "email", "config": config}, headers=admin.headers)
    assert r.status_code == 201 and r.json()["config"]["to"] == ["c@d.io", "ops@example.com"], r.text
    ok = {"name": "hook", "kind": "webhook", "config": {"url": "http://127.0.0.1:9/x"}}
    assert (await client.post(url, json=ok, headers=operator.headers)).status_code == 403
    assert (await client.post(url, json=ok, headers=admin.headers)).status_code == 201
    r = await client.post(url, json=ok, headers=admin.headers)
    # The taken name is named, so the channel form shows it under the name field.
    assert r.status_code == 409 and [e["field"] for e in r.json()["errors"]] == ["name"], r.text


# (an email channel's config past a limit, the field named, what the refusal says of it)
PAST_A_LIMIT = [
    ({"username": "u" * 300}, "config.username", "must be at most 255 characters, not 300"),
    ({"username": 7}, "config.username", "must be text (it is a number)"),
    (
        {"to": [f"r{n}@d.io" for n in range(51)]},
        "config.to",
        "must list one to 50 recipient addresses (not 51)",
    ),
    ({"to": 5}, "config.to", "must list one to 50 recipient addresses (it is a number)"),
]


async def test_an_email_channel_past_a_limit_says_what_was_sent(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """The channel dialog said "Must be text of at most 255 characters" of a long SMTP user name
    and "one to 50 recipient addresses": a limit, not what was wrong. Each of `PAST_A_LIMIT` in
    one runtime (one each cost more than the checks: docs/benchmarks.md, session 51; not the
    module's `reader`, whose sender loop, started this early, would run beside those of the
    tests that count the process's sender loops)."""
    for config, field, message in PAST_A_LIMIT:
        body = {"name": "limits", "kind": "email", "config": {**MAIL, **config}}
        r = await client.post("/api/v1/notifications/channels", json=body, headers=admin.headers)
        assert r.status_code == 422, r.text
        said = {e["field"]: e["message"] for e in r.json()["errors"]}
        assert said.get(field) == message, said


async def test_signed_webhook_slack_and_email_on_failure(
    client: httpx.AsyncClient, admin: LoggedIn, no_automation_loops: None
) -> None:
    key_id = await secret(client, admin, "HOOK_KEY", "hmac-key-1")
    with http_receiver() as hook, http_receiver() as slack, smtp_receiver() as smtp:
        slack_url_id = await secret(client, admin, "SLACK_URL", f"{slack.url}/services/T000/B000/XXXX")
        web = await channel(
            client, admin, name="hook", kind="webhook", config={"url": f"{hook.url}/in"}, secret_id=key_id
        )
        sl = await channel(client, admin, name="slack", kind="slack", secret_id=slack_url_id)
        mail = await channel(
            client,
            admin,
            name="mail",
            kind="email",
            config={
                "host": smtp.host,
                "port": smtp.port,
                "security": "none",
                "from": "ops@example.com",
                "to": "oncall@example.com",
            },
        )
        assert "XXXX" not in json.dumps(sl), "the Slack URL stays in the vault"
        sid = await script(client, admin)
        for c in (web, sl, mail):
            await rule(client, admin, c["id"], ["failure"], sid)
        run_id = await finished_run(sid, "failed", "connecting\npassword=***\nboom\n")
        async with runtime.current().db.session() as session:
            assert await notifications.enqueue_for_execution(session, run_id) == 3
            assert await notifications.enqueue_for_execution(session, run_id) == 0, "idempotent"
        await deliver_all()

        received = (await hook.wait_for(1))[0]
        body = json.loads(received.body)
        assert body["event"] == "failure" and body["execution"]["id"] == run_id
        assert body["execution"]["status"] == "failed" and "boom" in body["output_excerpt"]
        timestamp = received.headers["x-opscraft-timestamp"]
        expected = hmac.new(
            b"hmac-key-1", timestamp.encode() + b"." + received.body, hashlib.sha256
        ).hexdigest()
        assert received.headers["x-opscraft-signature"] == f"sha256={expected}"
        assert abs(int(timestamp) - time.time()) < 300

        slack_msg = (await slack.wait_for(1))[0]
        assert slack_msg.path == "/services/T000/B000/XXXX"
        assert set(json.loads(slack_msg.body)) == {"text"}
        assert "deploy failed" in json.loads(slack_msg.body)["text"]

        email = (await smtp.wait_for(1))[0]
        assert email["To"] == "oncall@example.com" and "deploy failed" in email["Subject"]
        text = email.get_content()
        assert "boom" in text and "password=***" in text

    r = await client.get("/api/v1/notifications/deliveries", headers=admin.headers)
    assert r.status_code == 200 and r.json()["total"] == 3
    assert {d["status"] for d in r.json()["items"]} == {"delivered"}
    # The two vault secrets were decrypted to send: each use is in the secret's audit log.
    for secret_id, used_by in ((key_id, web["id"]), (slack_url_id, sl["id"])):
        r = await client.get(f"/api/v1/secrets/{secret_id}/audit-logs", headers=admin.headers)
        uses = [e for e in r.json()["items"] if e["action"] == "secret.use"]
        assert [(e["actor_name"], e["details"]["channel_id"]) for e in uses] == [("notifications", used_by)]


async def test_a_test_run_is_marked_in_its_message(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    """README: test runs are marked "Test run" everywhere; a notification said "deploy failed"."""
    sid = await script(client, admin)
    async with runtime.current().db.session() as session:
        for draft, subject in ((True, "test run of deploy failed"), (False, "deploy failed")):
            run_id = await finished_run(sid, "failed", draft=draft)
            execution = await session.get(Execution, run_id)
            assert execution is not None
            message = await notifications.build_message(session, "failure", execution)
            assert message["subject"] == f"[OpsCraft] {subject} (run #{run_id})"
            assert message["text"].startswith(message["subject"])
            assert message["execution"]["test_run"] is draft


async def test_retry_with_backoff_then_give_up(
    client: httpx.AsyncClient, admin: LoggedIn, no_automation_loops: None
) -> None:
    with http_receiver() as hook:
        c = await channel(client, admin, name="hook", kind="webhook", config={"url": hook.url})
        await rule(client, admin, c["id"], ["failure"])
        sid = await script(client, admin)
        run_id = await finished_run(sid, "timed_out")
        hook.statuses = [500, 503]
        async with runtime.current().db.session() as session:
            await notifications.enqueue_for_execution(session, run_id)
        await deliver_all()
        async with runtime.current().db.session() as session:
            row = (await session.exec(select(NotificationDelivery))).one()
            assert row.status == DeliveryStatus.pending and row.attempts == 1
            assert "HTTP 500" in (row.last_error or "")
            wait = (row.next_attempt_at - utcnow()).total_seconds()
            assert 3 < wait <= 5, "first retry after about five seconds"
            await session.exec(update(NotificationDelivery).values(next_attempt_at=utcnow()))
            await session.commit()
        await deliver_all()  # 503
        async with runtime.current().db.session() as session:
            await session.exec(update(NotificationDelivery).values(next_attempt_at=utcnow()))
            await session.commit()
        await deliver_all()  # 200
        assert len(hook.requests) == 3
        async with runtime.current().db.session() as session:
            row = (await session.exec(select(NotificationDelivery))).one()
            await session.refresh(row)
            assert row.status == DeliveryStatus.delivered and row.attempts == 3

    # a dead receiver: retried until MAX_ATTEMPTS, then failed
    run2 = await finished_run(sid, "error")
    async with runtime.current().db.session() as session:
        await notifications.enqueue_for_execution(session, run2)
    for _ in range(notifications.MAX_ATTEMPTS):
        async with runtime.current().db.session() as session:
            await session.exec(update(NotificationDelivery).values(next_attempt_at=utcnow()))
            await session.commit()
        await deliver_all()
    r = await client.get("/api/v1/notifications/deliveries?status=failed", headers=admin.headers)
    item = r.json()["items"][0]
    assert item["attempts"] == notifications.MAX_ATTEMPTS and "unreachable" in item["last_error"]
    # Delivered and failed ones are tried no more: no next attempt (it showed the last claim's
    # end, a minute ahead, as if a retry were due).
    r = await client.get("/api/v1/notifications/deliveries", headers=admin.headers)
    ended = {d["status"]: d["next_attempt_at"] for d in r.json()["items"]}
    assert ended == {"delivered": None, "failed": None}, ended


def test_backoff_doubles_up_to_an_hour() -> None:
    assert [notifications.retry_delay(n).total_seconds() for n in (1, 2, 3)] == [5, 10, 20]
    assert notifications.retry_delay(30).total_seconds() == 3600


async def test_a_slack_message_escapes_what_slack_would_read_as_a_mention_or_link(
    client: httpx.AsyncClient, admin: LoggedIn, no_automation_loops: None
) -> None:
    """Slack reads `<!channel>`, `<@U123>` and `<url|label>` in a message's text: a run's output
    (which may echo a webhook caller's value) reached Slack as written, so `<!channel>` paged
    the whole channel and a link showed under a made-up label. Slack asks for &, <, > escaped."""
    with http_receiver() as slack:
        slack_url_id = await secret(client, admin, "SLACK_URL", f"{slack.url}/services/T000/B000/XXXX")
        sl = await channel(client, admin, name="slack", kind="slack", secret_id=slack_url_id)
        sid = await script(client, admin)
        await rule(client, admin, sl["id"], ["failure"], sid)
        output = "<!channel> build broke\nsee <https://evil.example|the logs> & fix\n"
        run_id = await finished_run(sid, "failed", output)
        async with runtime.current().db.session() as session:
            assert await notifications.enqueue_for_execution(session, run_id) == 1
        await deliver_all()
        text = json.loads((await slack.wait_for(1))[0].body)["text"]
    assert "&lt;!channel&gt; build broke" in text
    assert "see &lt;https://evil.example|the logs&gt; &amp; fix" in text
    assert "<" not in text and ">" not in text


async def test_the_output_excerpt_is_the_text_a_reader_sees(
    client: httpx.AsyncClient, admin: LoggedIn, no_automation_loops: None
) -> None:
    """Ansible's runs are always in colour: Slack and email showed `[0;31mfatal: ...`, and each
    redraw of a progress bar took one of the 20 lines. The excerpt drops escape sequences and
    keeps a line as its carriage returns leave it."""
    with http_receiver() as hook:
        web = await channel(client, admin, name="web", kind="webhook", config={"url": hook.url})
        sid = await script(client, admin)
        await rule(client, admin, web["id"], ["failure"], sid)
        output = (
            "\x1b[0;32mok: [localhost]\x1b[0m\r\n"
            "\r 10%\r 50%\r100% done\n"
            "\x1b]0;title\x07\x1b[0;31mfatal: [localhost]: FAILED!\x1b[0m\n"
        )
        run_id = await finished_run(sid, "failed", output)
        async with runtime.current().db.session() as session:
            assert await notifications.enqueue_for_execution(session, run_id) == 1
        await deliver_all()
        body = json.loads((await hook.wait_for(1))[0].body)
    assert body["output_excerpt"] == "ok: [localhost]\n100% done\nfatal: [localhost]: FAILED!"


async def test_a_sequence_cut_in_one_stream_keeps_the_other_streams_text_in_the_excerpt(
    client: httpx.AsyncClient, admin: LoggedIn, no_automation_loops: None
) -> None:
    """The excerpt joined the chunks of both streams before removing escape sequences: stdout's
    colour cut after `ESC[3` and stderr's `warning` read as the sequence `ESC[3w`, so the
    message said `arning` and `1mfatal`. A cut sequence is completed from its own stream."""
    with http_receiver() as hook:
        web = await channel(client, admin, name="web", kind="webhook", config={"url": hook.url})
        sid = await script(client, admin)
        await rule(client, admin, web["id"], ["failure"], sid)
        chunks = [("stdout", "deploying\n\x1b[3"), ("stderr", "warning: disk\n")]
        run_id = await finished_run(sid, "failed", [*chunks, ("stdout", "1mfatal\x1b[0m\n")])
        async with runtime.current().db.session() as session:
            assert await notifications.enqueue_for_execution(session, run_id) == 1
        await deliver_all()
        body = json.loads((await hook.wait_for(1))[0].body)
    assert body["output_excerpt"] == "deploying\nwarning: disk\nfatal"


@pytest.mark.parametrize(
    ("kind", "answer", "said"),
    [
        ("slack", b"no_service", "answered HTTP 404 (no_service)"),
        ("slack", b"channel_is_archived\n", "answered HTTP 404 (channel_is_archived)"),
        ("slack", b'{"text": "echoed message"}', "answered HTTP 404"),
        ("webhook", b"no_service", "answered HTTP 404"),
    ],
)
async def test_slacks_error_code_is_named_and_nothing_else_a_receiver_says(
    client: httpx.AsyncClient, admin: LoggedIn, kind: str, answer: bytes, said: str
) -> None:
    """Slack refuses with one error code in the body (`no_service`: the webhook was removed,
    `channel_is_archived`...); Test and the delivery log said only "answered HTTP 404". A body of
    another shape (an echo of the message) is never repeated, nor a generic receiver's body."""
    with http_receiver() as receiver:
        receiver.statuses, receiver.answer = [404], answer
        if kind == "slack":
            url_id = await secret(client, admin, "SLACK_URL", f"{receiver.url}/services/T/B/X")
            c = await channel(client, admin, name="c", kind="slack", secret_id=url_id)
        else:
            c = await channel(client, admin, name="c", kind="webhook", config={"url": receiver.url})
        r = await client.post(f"/api/v1/notifications/channels/{c['id']}/test", headers=admin.headers)
    assert r.status_code == 409, r.text
    detail = r.json()["detail"]
    assert detail.endswith(said), detail
    assert "echoed" not in detail and "/services/" not in detail


@pytest.mark.parametrize(
    ("location", "said"),
    [
        ("https://hooks.example/x/SECRET?token=SECRET", "a redirect to https://hooks.example, not followed"),
        ("/moved/SECRET", "a redirect to http://127.0.0.1:{port}, not followed"),
    ],
)
async def test_a_redirect_is_not_followed_and_says_where_to(
    client: httpx.AsyncClient, admin: LoggedIn, location: str, said: str
) -> None:
    """A receiver that moved (`http://` to `https://`, a new path) was "answered HTTP 301" and no
    more: now where it points, without the path or query that may hold a secret. It is never
    followed: the message, and its signature, would go wherever the receiver says."""
    with http_receiver() as receiver:
        receiver.statuses, receiver.headers = [301], {"Location": location}
        c = await channel(client, admin, name="c", kind="webhook", config={"url": f"{receiver.url}/hook"})
        r = await client.post(f"/api/v1/notifications/channels/{c['id']}/test", headers=admin.headers)
        port = receiver.url.rsplit(":", 1)[1]
        assert len(receiver.requests) == 1, "not followed"
    assert r.status_code == 409, r.text
    detail = r.json()["detail"]
    assert "answered HTTP 301 (" + said.format(port=port) in detail, detail
    assert "SECRET" not in detail


async def test_recovery_and_success_events(
    client: httpx.AsyncClient, admin: LoggedIn, no_automation_loops: None
) -> None:
    with http_receiver() as hook:
        c = await channel(client, admin, name="hook", kind="webhook", config={"url": hook.url})
        await rule(client, admin, c["id"], ["recovery"])
        sid = await script(client, admin)
        ok1 = await finished_run(sid, "success", exit_code=0)
        bad = await finished_run(sid, "failed")
        ok2 = await finished_run(sid, "success", exit_code=0)
        ok3 = await finished_run(sid, "success", exit_code=0)
        async with runtime.current().db.session() as session:
            counts = [await notifications.enqueue_for_execution(session, i) for i in (ok1, bad, ok2, ok3)]
        assert counts == [0, 0, 1, 0], "only the first success after a failure is a recovery"
        await deliver_all()
        assert json.loads((await hook.wait_for(1))[0].body)["event"] == "recovery"


async def test_a_channel_wanting_success_and_recovery_gets_one_message_per_run(
    client: httpx.AsyncClient, admin: LoggedIn, no_automation_loops: None
) -> None:
    """A recovery is also a success: a rule (or two rules of one channel) subscribed to both
    sent two messages for the one run that recovered. The channel gets the recovery alone; a
    channel wanting only successes still gets its success."""
    with http_receiver() as hook, http_receiver() as other:
        c = await channel(client, admin, name="hook", kind="webhook", config={"url": hook.url})
        d = await channel(client, admin, name="other", kind="webhook", config={"url": other.url})
        await rule(client, admin, c["id"], ["success", "recovery"])
        await rule(client, admin, d["id"], ["success"])
        sid = await script(client, admin)
        bad = await finished_run(sid, "failed")
        ok = await finished_run(sid, "success", exit_code=0)
        async with runtime.current().db.session() as session:
            counts = [await notifications.enqueue_for_execution(session, i) for i in (bad, ok)]
        assert counts == [0, 2], "one message to each channel"
        await deliver_all()
        assert [json.loads(r.body)["event"] for r in await hook.wait_for(1)] == ["recovery"]
        assert [json.loads(r.body)["event"] for r in await other.wait_for(1)] == ["success"]


async def test_a_test_run_neither_recovers_nor_hides_a_recovery(
    client: httpx.AsyncClient, admin: LoggedIn, no_automation_loops: None
) -> None:
    """A run fails; an operator test-runs a fix from the editor (unsaved) and it succeeds: that
    sent "test run of deploy recovered" though the saved script still fails, and the next real
    success then recovered from the test run (a success), so no recovery was ever sent for it.
    A failing test run before a real success made that success a "recovery" too."""
    with http_receiver() as hook:
        c = await channel(client, admin, name="hook", kind="webhook", config={"url": hook.url})
        await rule(client, admin, c["id"], ["recovery"])
        sid = await script(client, admin)
        order = [
            ("success", False),
            ("failed", False),
            ("success", True),  # the fix, test-run from the editor
            ("success", False),  # the fix saved and run: the recovery
            ("failed", True),  # a broken edit, test-run
            ("success", False),
        ]
        runs = [await finished_run(sid, status, exit_code=0, draft=draft) for status, draft in order]
        async with runtime.current().db.session() as session:
            counts = [await notifications.enqueue_for_execution(session, i) for i in runs]
        assert counts == [0, 0, 0, 1, 0, 0], counts
        await deliver_all()
        (sent,) = await hook.wait_for(1)
        assert json.loads(sent.body)["execution"]["id"] == runs[3]


async def test_slow_receiver_does_not_hold_up_enqueueing(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    with http_receiver() as hook:
        # Longer than the bound below, so that a send waited for would break it (it was 3 s).
        hook.delay = 1.5
        c = await channel(client, admin, name="hook", kind="webhook", config={"url": hook.url})
        await rule(client, admin, c["id"], ["failure"])
        sid = await script(client, admin)
        run_id = await finished_run(sid, "failed")
        started = time.monotonic()
        async with runtime.current().db.session() as session:
            await notifications.enqueue_for_execution(session, run_id)
        assert time.monotonic() - started < 1, "recording the event never waits for the receiver"
        # the process's sender loop (started with the runtime) delivers it in the background
        await hook.wait_for(1)


async def test_a_sender_loop_ending_leaves_the_other_loops_of_the_process_woken(
    client: httpx.AsyncClient, admin: LoggedIn, no_automation_loops: None
) -> None:
    """A process running two runtimes (the tests' module runtime and a test's own) runs two
    sender loops. They shared one wake-up, which the first loop to end emptied: the other slept
    through every `wake()` until its idle poll, which then failed on None (an AttributeError at
    its runtime's stop, a CI teardown error). Each loop now has its own."""
    db = runtime.current().db
    idle = 3600.0  # only a wake-up can make the loops look again within the test
    staying = asyncio.create_task(notifications.run_sender(db, idle_seconds=idle))
    ending = asyncio.create_task(notifications.run_sender(db, idle_seconds=idle))
    try:
        with http_receiver() as hook:
            c = await channel(client, admin, name="hook", kind="webhook", config={"url": hook.url})
            await rule(client, admin, c["id"], ["failure"])
            sid = await script(client, admin)
            await until(
                lambda: sum(bool(w._waiters) for w in notifications._wakeups) == 2,  # type: ignore[attr-defined]
                "both loops waiting to be woken",
            )
            ending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ending
            async with runtime.current().db.session() as session:
                await notifications.enqueue_for_execution(session, await finished_run(sid, "failed"))
            notifications.wake()
            await hook.wait_for(1)
        assert not staying.done()
    finally:
        staying.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await staying


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # aiosmtpd, implicit TLS
@pytest.mark.parametrize("security", ["starttls", "ssl"])
async def test_email_over_tls_with_login(
    client: httpx.AsyncClient, admin: LoggedIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, security: str
) -> None:
    cert = self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert[0]))  # trust the test's own CA only
    password_id = await secret(client, admin, "SMTP_PASSWORD", "s3cret-pw")
    with smtp_receiver(tls=security, cert=cert, login=("bot", "s3cret-pw")) as smtp:
        c = await channel(
            client,
            admin,
            name="mail",
            kind="email",
            config={
                "host": "127.0.0.1",
                "port": smtp.port,
                "security": security,
                "from": "ops@example.com",
                "to": ["a@example.com", "b@example.com"],
                "username": "bot",
            },
            secret_id=password_id,
        )
        r = await client.post(f"/api/v1/notifications/channels/{c['id']}/test", headers=admin.headers)
        assert r.status_code == 204, r.text
        message = (await smtp.wait_for(1))[0]
        assert message["Subject"] == "[OpsCraft] test notification"
        assert smtp.envelopes[0].rcpt_tos == ["a@example.com", "b@example.com"]
        # a wrong password: 409 saying what failed, never the password
        await client.put(f"/api/v1/secrets/{password_id}", json={"value": "wrong"}, headers=admin.headers)
        r = await client.post(f"/api/v1/notifications/channels/{c['id']}/test", headers=admin.headers)
        assert r.status_code == 409 and "authentication failed" in r.json()["detail"]
        assert "wrong" not in r.text and "line break" not in r.text
        # the right password read from a file with its last line break: the refusal says why
        await client.put(
            f"/api/v1/secrets/{password_id}", json={"value": "s3cret-pw\n"}, headers=admin.headers
        )
        r = await client.post(f"/api/v1/notifications/channels/{c['id']}/test", headers=admin.headers)
        detail = r.json()["detail"]
        assert r.status_code == 409 and "authentication failed" in detail, r.text
        assert "its value begins or ends with a blank or line break" in detail and "s3cret" not in detail


async def test_an_email_carries_the_date_and_message_id_rfc_5322_asks_for(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """smtplib adds neither header: the email had no Date (required by RFC 5322 3.6.1) and no
    Message-ID, which Gmail refuses (550 5.7.1) and spam filters score against."""
    with smtp_receiver() as smtp:  # the sender's domain is sent in its ASCII form
        config = {"host": "127.0.0.1", "port": smtp.port, "security": "none"}
        c = await channel(
            client,
            admin,
            name="mail",
            kind="email",
            config={**config, "from": "ops@Exämple.de", "to": "a@example.com"},
        )
        for _ in range(2):
            r = await client.post(f"/api/v1/notifications/channels/{c['id']}/test", headers=admin.headers)
            assert r.status_code == 204, r.text
        first, second = await smtp.wait_for(2)
    sent = first["Date"].datetime
    assert sent.utcoffset() == timedelta(0) and abs((utcnow() - sent).total_seconds()) < 60
    assert first["Message-ID"].endswith("@xn--exmple-cua.de>"), "the sender's domain, in ASCII"
    assert first["Message-ID"] != second["Message-ID"], "one id per message"


@pytest.mark.parametrize(
    ("to", "data_reply", "said"),
    [
        (
            ["nobody@example.com"],
            None,
            "refused nobody@example.com (550 5.1.1 <nobody@example.com>: Recipient address rejected",
        ),
        (
            ["a@example.com"],
            "554 5.7.1 Message rejected as spam",
            "SMTPDataError: the server answered 554 5.7.1 Message rejected as spam",
        ),
    ],
)
async def test_a_refusal_by_the_smtp_server_says_what_it_answered(
    client: httpx.AsyncClient, admin: LoggedIn, to: list[str], data_reply: str | None, said: str
) -> None:
    """Test said "SMTPRecipientsRefused" or "SMTPDataError" and no more: which address, and the
    server's reason, were left out, so the admin could not tell a typo from a spam filter."""
    with smtp_receiver(refuse=frozenset({"nobody@example.com"}), data_reply=data_reply) as smtp:
        config = {"host": "127.0.0.1", "port": smtp.port, "security": "none", "from": "o@example.com"}
        c = await channel(client, admin, name="mail", kind="email", config={**config, "to": to})
        r = await client.post(f"/api/v1/notifications/channels/{c['id']}/test", headers=admin.headers)
        assert r.status_code == 409 and said in r.json()["detail"], r.text


async def test_a_server_hanging_up_in_the_middle_is_said_and_retried(
    client: httpx.AsyncClient, admin: LoggedIn, no_automation_loops: None
) -> None:
    """A server that closes the connection before answering the message: said in words (it was
    the exception's class name, `SMTPServerDisconnected`), and the delivery is tried again."""
    with smtp_receiver(hang_up_in_data=True) as smtp:
        config = {"host": "127.0.0.1", "port": smtp.port, "security": "none"}
        config |= {"from": "ops@example.com", "to": "oncall@example.com"}
        c = await channel(client, admin, name="mail", kind="email", config=config)
        r = await client.post(f"/api/v1/notifications/channels/{c['id']}/test", headers=admin.headers)
        said = f"SMTP 127.0.0.1:{smtp.port}: the server closed the connection before it answered"
        assert r.status_code == 409 and r.json()["detail"].endswith(said), r.text
        await rule(client, admin, c["id"], ["failure"])
        run_id = await finished_run(await script(client, admin), "failed")
        async with runtime.current().db.session() as session:
            await notifications.enqueue_for_execution(session, run_id)
        await deliver_all()
        async with runtime.current().db.session() as session:
            row = (await session.exec(select(NotificationDelivery))).one()
        assert row.status == DeliveryStatus.pending and row.attempts == 1 and row.last_error == said, row


async def test_an_email_some_recipients_refused_is_delivered_once_and_says_who_missed_it(
    client: httpx.AsyncClient, admin: LoggedIn, no_automation_loops: None
) -> None:
    """smtplib raises only when every recipient is refused: with one of two refused, the message
    went to the other and the delivery log said "delivered", with no word of the refused one.
    It is delivered (not sent again: that would repeat it to the other), with the refusal."""
    with smtp_receiver(refuse=frozenset({"nobody@example.com"})) as smtp:
        config = {"host": "127.0.0.1", "port": smtp.port, "security": "none", "from": "o@example.com"}
        to = ["oncall@example.com", "nobody@example.com"]
        c = await channel(client, admin, name="mail", kind="email", config={**config, "to": to})
        r = await client.post(f"/api/v1/notifications/channels/{c['id']}/test", headers=admin.headers)
        assert r.status_code == 409, r.text
        assert "refused nobody@example.com (550" in r.json()["detail"]
        assert "sent to the other recipients" in r.json()["detail"]
        await rule(client, admin, c["id"], ["failure"])
        run_id = await finished_run(await script(client, admin), "failed")
        async with runtime.current().db.session() as session:
            assert await notifications.enqueue_for_execution(session, run_id) == 1
        await deliver_all()
        (row,) = (
            await client.get(f"/api/v1/notifications/deliveries?execution_id={run_id}", headers=admin.headers)
        ).json()["items"]
        assert row["status"] == "delivered" and row["attempts"] == 1, row
        assert "refused nobody@example.com (550" in row["last_error"], row
        await smtp.wait_for(2)  # the test message and the failure, each once
        assert [e.rcpt_tos for e in smtp.envelopes] == [["oncall@example.com"]] * 2


@pytest.mark.parametrize("smtputf8", [False, True])
async def test_a_non_ascii_address_needs_a_server_offering_smtputf8(
    client: httpx.AsyncClient, admin: LoggedIn, smtputf8: bool
) -> None:
    with smtp_receiver(smtputf8=smtputf8) as smtp:
        c = await channel(
            client,
            admin,
            name="mail",
            kind="email",
            config={
                "host": "127.0.0.1",
                "port": smtp.port,
                "security": "none",
                "from": "ops@example.com",
                "to": "jürgen@exämple.de",
            },
        )
        r = await client.post(f"/api/v1/notifications/channels/{c['id']}/test", headers=admin.headers)
        if smtputf8:
            assert r.status_code == 204, r.text
            await smtp.wait_for(1)
            assert smtp.envelopes[0].rcpt_tos == ["jürgen@exämple.de"]
        else:
            assert r.status_code == 409, r.text
            assert "does not offer" in r.json()["detail"] and "SMTPUTF8" in r.json()["detail"]
            assert smtp.messages == []


async def test_an_address_with_a_non_ascii_domain_goes_to_any_server(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """Stored as people read it (`ops@bücher.example`), such an address made smtplib ask for
    SMTPUTF8, and a server without it (most) refused every message; its domain has an ASCII
    (IDNA) form, which every server takes."""
    with smtp_receiver(smtputf8=False) as smtp:
        config = {"host": "127.0.0.1", "port": smtp.port, "security": "none"}
        config |= {"from": "alerts@bücher.example", "to": ["ops@bücher.example", "b@example.com"]}
        c = await channel(client, admin, name="mail", kind="email", config=config)
        assert c["config"]["to"][0] == "ops@bücher.example", "shown as saved"
        r = await client.post(f"/api/v1/notifications/channels/{c['id']}/test", headers=admin.headers)
        assert r.status_code == 204, r.text
        message = (await smtp.wait_for(1))[0]
        envelope = smtp.envelopes[0]
        assert envelope.mail_from == "alerts@xn--bcher-kva.example"
        assert envelope.rcpt_tos == ["ops@xn--bcher-kva.example", "b@example.com"]
        assert message["To"] == "ops@xn--bcher-kva.example, b@example.com"
        assert message["Message-ID"].endswith("@xn--bcher-kva.example>")


async def test_non_ascii_text_reaches_a_seven_bit_server_intact(
    client: httpx.AsyncClient, admin: LoggedIn, no_automation_loops: None
) -> None:
    """Non-ASCII text arrives as written, in a message of 7-bit bytes only: a message of short
    lines (the test message of a channel named `Équipe`) went out as raw 8-bit UTF-8 without
    BODY=8BITMIME (RFC 6152 forbids it), which a 7-bit relay mangles; a longer one as base64,
    which spam filters score as text disguised (SpamAssassin's MIME_BASE64_TEXT)."""
    output = "Déploiement échoué ✗\n\u041e\u0448\u0438\u0431\u043a\u0430: 失败\n"  # Cyrillic
    with smtp_receiver() as smtp:
        config = {"host": "127.0.0.1", "port": smtp.port, "security": "none"}
        config |= {"from": "ops@example.com", "to": "oncall@example.com"}
        c = await channel(client, admin, name="Équipe", kind="email", config=config)
        r = await client.post(f"/api/v1/notifications/channels/{c['id']}/test", headers=admin.headers)
        assert r.status_code == 204, r.text
        await rule(client, admin, c["id"], ["failure"])
        run_id = await finished_run(await script(client, admin), "failed", output)
        async with runtime.current().db.session() as session:
            await notifications.enqueue_for_execution(session, run_id)
        await deliver_all()
        test, failure = await smtp.wait_for(2)
    assert [e.content.isascii() for e in smtp.envelopes] == [True, True]
    assert test["Content-Transfer-Encoding"] == failure["Content-Transfer-Encoding"] == "quoted-printable"
    assert "for channel 'Équipe'" in test.get_content()
    assert failure["Subject"] == f"[OpsCraft] deploy failed (run #{run_id})"
    assert output in failure.get_content().replace("\r\n", "\n")


@pytest.mark.parametrize(
    ("output", "to", "smtputf8"),
    [
        pytest.param("From the build log:\nFrom here on, green\n", "ops@example.com", False, id="ascii"),
        pytest.param("Déploiement\nFrom here on, échoué\n", "ops@example.com", False, id="quoted-printable"),
        pytest.param("From jürgen's box\n", "jürgen@example.com", True, id="smtputf8"),
    ],
)
async def test_an_output_line_starting_with_from_arrives_as_printed(
    client: httpx.AsyncClient,
    admin: LoggedIn,
    no_automation_loops: None,
    output: str,
    to: str,
    smtputf8: bool,
) -> None:
    """smtplib's `send_message` writes an ASCII message with mbox's "From " quoting: each line
    of the output excerpt starting with `From ` arrived as `>From ` (SMTP needs no such quoting;
    only a mailbox file does). The message is flattened without it, on every path."""
    with smtp_receiver(smtputf8=smtputf8) as smtp:
        config = {"host": "127.0.0.1", "port": smtp.port, "security": "none"}
        config |= {"from": "ops@example.com", "to": to}
        c = await channel(client, admin, name="mail", kind="email", config=config)
        await rule(client, admin, c["id"], ["failure"])
        run_id = await finished_run(await script(client, admin), "failed", output)
        async with runtime.current().db.session() as session:
            await notifications.enqueue_for_execution(session, run_id)
        await deliver_all()
        (failure,) = await smtp.wait_for(1)
    assert smtp.envelopes[0].rcpt_tos == [to]
    text = failure.get_content().replace("\r\n", "\n")
    assert output in text and ">From" not in text, text


# What a receiver too slow to ever finish sends first, then again and again.
DRIP = {
    "webhook": (b"HTTP/1.1 200 OK\r\n", b"X-Still: working\r\n"),
    "email": (b"220-mail.example ESMTP\r\n", b"220-still here\r\n"),
}


@pytest.mark.parametrize(("kind", "security"), [("webhook", None), ("email", "none"), ("email", "ssl")])
async def test_a_receiver_that_never_finishes_is_cut_at_the_deadline(
    client: httpx.AsyncClient,
    admin: LoggedIn,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    no_automation_loops: None,
    kind: str,
    security: str | None,
) -> None:
    """Every read came within the 10 s timeout, so a receiver answering a line at a time held a
    send for ever: **Test** never answered, the sender loop's round (every other channel's
    messages) waited on it, and past the 60 s lease another process sent the message again, each
    minute. The whole send now has a deadline; the delivery is retried later like any failure."""
    # One second: two of the receiver's half-second lines, each well within a read's timeout,
    # and the send cut at the deadline all the same (it was 2 s; the send is waited out twice).
    monkeypatch.setattr(notification_senders, "DEADLINE_SECONDS", 1.0)
    cert = self_signed(tmp_path) if security == "ssl" else None
    if cert is not None:
        monkeypatch.setenv("SSL_CERT_FILE", str(cert[0]))
    with drip_server(*DRIP[kind], cert=cert) as slow:
        if kind == "webhook":
            config: dict[str, Any] = {"url": f"http://127.0.0.1:{slow.port}/hook"}
        else:
            config = {"host": "127.0.0.1", "port": slow.port, "security": security}
            config |= {"from": "ops@example.com", "to": "oncall@example.com"}
        c = await channel(client, admin, name="slow", kind=kind, config=config)
        started = time.monotonic()
        r = await client.post(f"/api/v1/notifications/channels/{c['id']}/test", headers=admin.headers)
        assert r.status_code == 409 and "within 1 s" in r.json()["detail"], r.text
        assert time.monotonic() - started < 6
        await rule(client, admin, c["id"], ["failure"])
        run_id = await finished_run(await script(client, admin), "failed")
        async with runtime.current().db.session() as session:
            await notifications.enqueue_for_execution(session, run_id)
        started = time.monotonic()
        await deliver_all()
        assert time.monotonic() - started < 6, "the round ends"
        async with runtime.current().db.session() as session:
            row = (await session.exec(select(NotificationDelivery))).one()
        assert row.status == DeliveryStatus.pending and row.attempts == 1, row
        assert "within 1 s" in (row.last_error or ""), row
        assert slow.connections == 2, "the test message and one attempt: nothing sent twice"


async def test_slow_mail_servers_do_not_hold_up_sign_ins(
    client: httpx.AsyncClient, admin: LoggedIn, monkeypatch: pytest.MonkeyPatch, no_automation_loops: None
) -> None:
    """Emails were sent on the event loop's default thread pool (min(32, CPUs + 4) threads),
    which sign-ins share to check passwords: a round of emails to a slow server took every
    thread, and signing in waited for them (up to the send deadline). And a send queued behind
    the others started late, perhaps past its claim."""
    monkeypatch.setattr(notification_senders, "DEADLINE_SECONDS", 6.0)
    threads = min(32, (os.cpu_count() or 1) + 4)  # ThreadPoolExecutor's default
    with drip_server(*DRIP["email"]) as slow:
        config = {"host": "127.0.0.1", "port": slow.port, "security": "none"}
        config |= {"from": "ops@example.com", "to": "oncall@example.com"}
        c = await channel(client, admin, name="slow", kind="email", config=config)
        await rule(client, admin, c["id"], ["failure"])
        sid = await script(client, admin)
        async with runtime.current().db.session() as session:
            for _ in range(threads + 2):
                await notifications.enqueue_for_execution(session, await finished_run(sid, "failed"))
        sending = asyncio.create_task(notifications.deliver_due(runtime.current().db))
        while slow.connections < threads:
            await asyncio.sleep(0.05)
        started = time.monotonic()
        login = {"username": admin.username, "password": PASSWORD}
        r = await client.post("/api/v1/auth/login", json=login)
        assert r.status_code == 200, r.text
        assert time.monotonic() - started < 3, "signing in waited for the emails"
        assert await sending == threads + 2
        assert slow.connections == threads + 2, "each sent once, all at once"


async def test_untrusted_certificate_is_refused(
    client: httpx.AsyncClient, admin: LoggedIn, tmp_path: Path
) -> None:
    cert = self_signed(tmp_path)
    with smtp_receiver(tls="ssl", cert=cert) as smtp:
        c = await channel(
            client,
            admin,
            name="mail",
            kind="email",
            config={
                "host": "127.0.0.1",
                "port": smtp.port,
                "security": "ssl",
                "from": "o@example.com",
                "to": "a@example.com",
            },
        )
        r = await client.post(f"/api/v1/notifications/channels/{c['id']}/test", headers=admin.headers)
        assert r.status_code == 409 and "TLS failed" in r.json()["detail"]
        assert smtp.messages == []


def test_a_tls_context_is_reused_until_the_ca_certificates_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each send built its TLS context anew, reading the whole CA bundle (about 40 ms of CPU per
    webhook, Slack message or email, TLS or not). It is built once now, and again when
    `SSL_CERT_FILE` names another file or the file is replaced (`test_untrusted_certificate_is_refused`
    and `test_email_over_tls_with_login` send with the context it gives)."""
    for build in (notification_senders._tls_context, notification_senders._smtp_tls_context):
        monkeypatch.delenv("SSL_CERT_FILE", raising=False)
        default = build()
        assert build() is default, "reused while nothing changed"
        first = tmp_path / build.__name__
        first.mkdir()
        cert, _ = self_signed(first)
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        own = build()
        assert own is not default and build() is own
        assert own.get_ca_certs()[0]["subject"] == ((("commonName", "localhost"),),)
        replaced = cert.stat().st_mtime_ns
        self_signed(first)  # a new certificate in the same file
        os.utime(cert, ns=(replaced + 1_000_000_000, replaced + 1_000_000_000))
        again = build()
        assert again is not own and build() is again
        monkeypatch.delenv("SSL_CERT_FILE")
        assert build() is not again, "the default store once the variable is gone"


TOO_LONG = "is longer than 253 characters (the limit of a DNS name)"
INVISIBLE = "it holds a space, tab, line break or other invisible or control character"


# (a webhook URL no send could use, why: what the refusal says after "must be an http:// or https:// URL: ")
UNUSABLE_URLS = [
    ("http://[::1", "it does not parse (an unclosed [ of an IPv6 address?)"),
    ("http://127.0.0.1:99999/", "its port must be a number in 1-65535"),
    ("http://\u202e.example/", INVISIBLE),
    ("http://h:0/", "its port must be a number in 1-65535"),
    ("http://a\tb.example/x", INVISIBLE),
    ("http://a.example/x\r\nX-Injected: 1", INVISIBLE),
    ("http://exa mple.example/", INVISIBLE),
    ("ftp://files.example/x", "it must start with http:// or https://"),
    ("http:///x", "it names no host"),
    ("http://\u2460\u2461\u2466.0.0.1/", "its host is not a name or address an HTTP client reads"),
    ("http://fd00::1/x", "an IPv6 address must be in brackets (http://[fd00::1]:8080/...)"),
    ("http://fd00::1:8080/x", "an IPv6 address must be in brackets (http://[fd00::1]:8080/...)"),
    ("https://" + "a" * 60 + ".b" * 100 + "/x", f"its host name {TOO_LONG}"),
]


async def test_a_url_no_send_could_use_is_refused_when_saved_and_said_on_test(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """A webhook URL that does not parse, has a port past 65535 or a host with no IDNA form is a
    422 naming `config.url` (saving one was a 500, or saved and made Test a 500); the same URL as
    a Slack channel's vault secret makes Test a 409 saying so, never a 500, and never the URL.
    Both say why (each said only "must be an http:// or https:// URL", a wrong port too). Each
    of `UNUSABLE_URLS` in one runtime (one each cost more than the checks: docs/benchmarks.md,
    session 51), its secret and channel named after it."""
    for n, (bad, why) in enumerate(UNUSABLE_URLS):
        r = await client.post(
            "/api/v1/notifications/channels",
            json={"name": "w", "kind": "webhook", "config": {"url": bad}},
            headers=admin.headers,
        )
        assert r.status_code == 422 and [e["field"] for e in r.json()["errors"]] == ["config.url"], r.text
        assert r.json()["errors"][0]["message"] == f"must be an http:// or https:// URL: {why}", r.text
        body = {"name": f"SLACK_URL_{n}", "value": bad}
        r = await client.post("/api/v1/secrets", json=body, headers=admin.headers)
        assert r.status_code == 201, r.text
        slack = await channel(client, admin, name=f"s{n}", kind="slack", secret_id=r.json()["id"])
        r = await client.post(f"/api/v1/notifications/channels/{slack['id']}/test", headers=admin.headers)
        assert r.status_code == 409 and r.json()["detail"].endswith(
            f"not a valid http:// or https:// webhook URL: {why}"
        ), r.text
        assert bad not in r.text


@pytest.mark.parametrize(
    "url",
    ["https://hook:s3cret@receiver.example/in", "https://token@receiver.example/in", "http://:pw@[::1]:9/"],
)
@IN_MODULE_LOOP
async def test_a_webhook_url_holding_credentials_is_refused(reader: Reader, url: str) -> None:
    """`user:pass@` in a channel's URL would be a credential outside the vault, stored as plain
    text and shown by the API (docs/automation.md): a 422 naming `config.url`, and nothing saved."""
    client, admin = reader.client, await reader.person(Role.admin)
    r = await client.post(
        "/api/v1/notifications/channels",
        json={"name": "creds", "kind": "webhook", "config": {"url": url}},
        headers=admin.headers,
    )
    assert r.status_code == 422 and [e["field"] for e in r.json()["errors"]] == ["config.url"], r.text
    assert "user name or password" in r.text and url not in r.text
    r = await client.get("/api/v1/notifications/channels", headers=admin.headers)
    assert all(c["name"] != "creds" for c in r.json()["items"])


async def test_a_webhook_url_pasted_with_spaces_around_it_is_saved_without_them(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """A URL pasted into the channel form with a space or line break around it was refused as
    "holds a space, tab, line break or other invisible ...", where the SMTP host and recipients
    are trimmed; it is saved trimmed, and one with a space inside is still refused."""
    url = "/api/v1/notifications/channels"
    body = {"name": "pasted", "kind": "webhook", "config": {"url": " \t https://receiver.example/in \r\n"}}
    r = await client.post(url, json=body, headers=admin.headers)
    assert r.status_code == 201 and r.json()["config"]["url"] == "https://receiver.example/…", r.text
    body = {"name": "inside", "kind": "webhook", "config": {"url": " https://receiver.example/a b "}}
    r = await client.post(url, json=body, headers=admin.headers)
    assert r.status_code == 422 and r.json()["errors"][0]["message"].endswith(INVISIBLE), r.text


SMTP_HOST = "must be the SMTP server's host name or address: "


@IN_MODULE_LOOP
async def test_an_smtp_host_that_is_no_host_alone_is_refused_saying_why(reader: Reader) -> None:
    """A user name and password, a port or brackets in `config.host` were saved (the password
    shown in every answer's `config`, outside the vault) and failed only as "does not resolve"
    when sending; a name too long to resolve was saved too, and one holding a space was refused
    as "required". Each is a 422 naming `config.host` and what is wrong, never repeating a
    password, and nothing is saved; an IPv6 address without brackets (with a zone) is saved."""
    client, admin = reader.client, await reader.person(Role.admin)
    mail = {"port": 2525, "security": "none", "from": "a@b.io", "to": "c@d.io"}
    url = "/api/v1/notifications/channels"
    for host, why in [
        ("ops:Pa55word@smtp.example", "it must not hold a user name or password (user:pass@)"),
        ("Pa55word@smtp.example", "it must not hold a user name or password (user:pass@)"),
        ("smtp.example:587", "it must be the host alone: the port goes in port"),
        ("10.1.2.3:25", "it must be the host alone: the port goes in port"),
        ("[fd00::1]", "an IPv6 address goes without brackets here (fd00::1)"),
        ("a" * 60 + ".b" * 100, f"it {TOO_LONG}"),
        ("smtp .example", "it holds a space, tab, line break or other invisible or control character"),
        ("ex..ample", "it has no IDNA (ASCII) form"),
    ]:
        body = {"name": "mail", "kind": "email", "config": {**mail, "host": host}}
        r = await client.post(url, json=body, headers=admin.headers)
        assert r.status_code == 422, (host, r.text)
        assert [e["field"] for e in r.json()["errors"]] == ["config.host"], (host, r.text)
        assert r.json()["errors"][0]["message"].startswith(SMTP_HOST + why), (host, r.text)
        assert "Pa55word" not in r.text
    assert (await client.get(url, headers=admin.headers)).json()["items"] == []
    for host in ("fd00::1", "fd00::1%eth0", " smtp.example "):
        made = await channel(client, admin, name="mail", kind="email", config={**mail, "host": host})
        assert made["config"]["host"] == host.strip()
        r = await client.delete(f"{url}/{made['id']}", headers=admin.headers)
        assert r.status_code == 204, r.text


@pytest.mark.parametrize(
    ("stored", "shown"),
    [
        ("ops:Pa55word@smtp.example", "smtp.example"),
        ("Pa55word@smtp.example", "smtp.example"),
        ("smtp.example:587", "smtp.example:587"),
    ],
)
async def test_an_email_channel_stored_before_the_host_rule_lists_reads_and_is_fixed(
    client: httpx.AsyncClient, admin: LoggedIn, stored: str, shown: str
) -> None:
    """An email channel saved before `config.host` had to be the host alone may hold
    `user:pass@host` or `host:port`: it lists and reads (the host shown without the password),
    a change that keeps the host is a 422 naming `config.host` and saying why, a test message
    fails saying the same (409, nothing sent to a name that cannot resolve), and sending a host
    alone fixes it, also with a `base` of the config as `GET` showed it (the stored one holds the
    login: it is no change made meanwhile). No answer repeats the password."""
    config = {**MAIL, "host": stored}
    async with runtime.current().db.session() as session:
        row = NotificationChannel(name="old-mail", kind=ChannelKind.email, config=config)
        session.add(row)
        await session.commit()
        channel_id = row.id
    url = f"/api/v1/notifications/channels/{channel_id}"
    answers = [await client.get("/api/v1/notifications/channels", headers=admin.headers)]
    assert answers[0].status_code == 200, answers[0].text
    assert [c["config"]["host"] for c in answers[0].json()["items"]] == [shown]
    answers.append(await client.get(url, headers=admin.headers))
    assert answers[-1].status_code == 200 and answers[-1].json()["config"]["host"] == shown
    answers.append(await client.put(url, json={"enabled": False}, headers=admin.headers))
    assert answers[-1].status_code == 422, answers[-1].text
    assert [e["field"] for e in answers[-1].json()["errors"]] == ["config.host"]
    assert answers[-1].json()["errors"][0]["message"].startswith(SMTP_HOST + "it must ")
    answers.append(await client.post(f"{url}/test", headers=admin.headers))
    assert answers[-1].status_code == 409, answers[-1].text
    assert f"refused today (config.host: {SMTP_HOST}it must " in answers[-1].json()["detail"]
    assert answers[-1].json()["detail"].endswith("): edit the channel")
    assert all("Pa55word" not in r.text for r in answers)
    fixed = {"config": {**config, "host": "smtp.example"}, "enabled": False}
    base = {"config": answers[1].json()["config"], "enabled": True}
    r = await client.put(url, json={**fixed, "base": base}, headers=admin.headers)
    assert r.status_code == 200 and r.json()["config"]["host"] == "smtp.example", r.text
    assert r.json()["enabled"] is False


MAIL = {"host": "smtp.example", "port": 25, "security": "none", "from": "a@b.io", "to": ["c@d.io"]}


# (a channel's kind, a config stored before today's rule refusing it, the field the refusal names)
REFUSED_TODAY = [
    ("email", {**MAIL, "to": 5}, "config.to"),
    ("email", {**MAIL, "port": "25"}, "config.port"),
    ("email", {k: v for k, v in MAIL.items() if k != "host"}, "config.host"),  # a KeyError
    ("email", {**MAIL, "security": "tls"}, "config.security"),
    ("email", {**MAIL, "host": "smtp.example:25"}, "config.host"),
    ("webhook", {}, "config.url"),  # no URL, none sealed: a KeyError
]


async def test_a_channel_stored_before_a_config_rule_fails_its_sends_saying_what_to_edit(
    client: httpx.AsyncClient, admin: LoggedIn, no_automation_loops: None
) -> None:
    """A channel whose stored config today's checks refuse (saved before a rule) was sent as
    stored: a test message and every delivery were a 500 (a missing key) or failed only as "does
    not resolve". Both now fail at once, not retried, naming the field to
    edit; the channel still lists. Each of `REFUSED_TODAY` in one runtime (one each cost more
    than the checks: docs/benchmarks.md, session 51): the list holds the earlier ones too."""
    stored: list[int] = []
    for n, (kind, config, named) in enumerate(REFUSED_TODAY):
        async with runtime.current().db.session() as session:
            row = NotificationChannel(name=f"old-{n}", kind=ChannelKind(kind), config=config)
            session.add(row)
            await session.commit()
            channel_id = row.id
        assert channel_id is not None
        stored.append(channel_id)
        await rule(client, admin, channel_id, ["failure"])
        r = await client.get("/api/v1/notifications/channels", headers=admin.headers)
        assert r.status_code == 200 and sorted(c["id"] for c in r.json()["items"]) == stored, r.text
        r = await client.post(f"/api/v1/notifications/channels/{channel_id}/test", headers=admin.headers)
        assert r.status_code == 409, r.text
        said = f"the channel's settings are refused today ({named}: "
        assert said in r.json()["detail"] and r.json()["detail"].endswith("): edit the channel"), r.text
        run_id = await finished_run(await script(client, admin, f"deploy-{n}"), "failed")
        async with runtime.current().db.session() as session:
            await notifications.enqueue_for_execution(session, run_id)
        await deliver_all()
        async with runtime.current().db.session() as session:
            mine = col(NotificationDelivery.channel_id) == channel_id
            (delivery,) = (await session.exec(select(NotificationDelivery).where(mine))).all()
        assert (delivery.status, delivery.attempts) == (DeliveryStatus.failed, 1), delivery
        error = delivery.last_error or ""
        assert said in error and notifications.NOT_RETRIED in error, error


async def test_an_email_channel_stored_with_recipients_as_text_sends_to_each(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """A body may give `config.to` as text (`"a@x.io, b@x.io"`), which a save stores as a list;
    a row holding the text as given (saved before) was read letter by letter when sending, a 500
    at every message. It is read as a save reads it: each recipient gets the message."""
    with smtp_receiver() as smtp:
        config = {"host": "127.0.0.1", "port": smtp.port, "security": "none", "from": "ops@example.com"}
        async with runtime.current().db.session() as session:
            row = NotificationChannel(
                name="old", kind=ChannelKind.email, config={**config, "to": "a@example.com, b@example.com"}
            )
            session.add(row)
            await session.commit()
        r = await client.post(f"/api/v1/notifications/channels/{row.id}/test", headers=admin.headers)
        assert r.status_code == 204, r.text
        (mail,) = await smtp.wait_for(1)
    assert mail["To"] == "a@example.com, b@example.com"


@pytest.mark.parametrize("host", ["smtp\u202e.example", "smtp.example\r\nX-Injected: 1", "smtp .example"])
@IN_MODULE_LOOP
async def test_an_smtp_host_with_no_idna_form_is_refused(reader: Reader, host: str) -> None:
    """A host name holding a bidi control character, CR LF or a space cannot be looked up: 422
    naming `config.host` and saying why, not "required" (it was saved, and Test was a 500:
    UnicodeError is no OSError; CR LF was saved and shown in the delivery log's error)."""
    client, admin = reader.client, await reader.person(Role.admin)
    config = {
        "host": host,
        "port": 2525,
        "security": "none",
        "from": "a@b.io",
        "to": "c@d.io",
    }
    r = await client.post(
        "/api/v1/notifications/channels",
        json={"name": "e", "kind": "email", "config": config},
        headers=admin.headers,
    )
    assert r.status_code == 422 and [e["field"] for e in r.json()["errors"]] == ["config.host"], r.text
    # What is wrong with what was typed: "required" sent the admin looking for an empty field.
    message = r.json()["errors"][0]["message"]
    assert "required" not in message.lower() and "host name" in message, message


async def test_a_second_rule_with_the_same_channel_script_and_events_is_refused(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    hook = await channel(
        client, admin, name="ops hook", kind="webhook", config={"url": "http://127.0.0.1:9/hook"}
    )
    deploy = await script(client, admin)
    await rule(client, admin, hook["id"], ["failure", "success"], deploy)
    await rule(client, admin, hook["id"], ["failure", "success"])  # every script: another rule

    for events, script_id, whose in (
        (["success", "failure", "failure"], deploy, "this script"),  # the same set, another order
        (["success", "failure"], None, "every script"),
    ):
        body = {"channel_id": hook["id"], "events": events, "script_id": script_id}
        r = await client.post("/api/v1/notifications/rules", json=body, headers=admin.headers)
        assert r.status_code == 409, r.text
        assert f"already sends these events of {whose} to this channel" in r.json()["detail"]

    await rule(client, admin, hook["id"], ["failure"], deploy)  # other events: another rule
    r = await client.get("/api/v1/notifications/rules", headers=admin.headers)
    assert sorted((x["script_id"] or 0, tuple(x["events"])) for x in r.json()["items"]) == [
        (0, ("failure", "success")),
        (deploy, ("failure",)),
        (deploy, ("failure", "success")),
    ]


async def test_the_same_rule_added_several_times_at_once_is_stored_once(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """The check for a second rule read the channel's rules before writing: six saves at once of
    one rule (a double-click, a retrying client) each found none and all were stored. They take
    the channel's turn: one 201, the others 409 naming the first, and one rule."""
    hook = await channel(
        client, admin, name="race hook", kind="webhook", config={"url": "http://127.0.0.1:9/h"}
    )
    body = {"channel_id": hook["id"], "events": ["failure"], "script_id": None}
    answers = await asyncio.gather(
        *(client.post("/api/v1/notifications/rules", json=body, headers=admin.headers) for _ in range(6))
    )
    assert sorted(r.status_code for r in answers) == [201] + [409] * 5, [r.text for r in answers]
    first = next(r.json()["id"] for r in answers if r.status_code == 201)
    for r in answers:
        if r.status_code == 409:
            assert r.json()["detail"].startswith(f"notification rule {first} already sends"), r.text
            assert [e["field"] for e in r.json()["errors"]] == ["events"], r.text
    listed = (await client.get("/api/v1/notifications/rules", headers=admin.headers)).json()["items"]
    assert [x["id"] for x in listed if x["channel_id"] == hook["id"]] == [first]
