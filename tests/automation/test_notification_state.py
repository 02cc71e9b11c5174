"""A notification says the run's state when it is delivered, not only when it was queued.

Field report (session 52): a run held for approval and cancelled right after (before the
sender's next round) was announced by e-mail as "is waiting for approval": the message was
built when the event was queued and sent as built. At delivery the run is read again; when its
status changed meanwhile, the message is built anew and says so ("was waiting for approval, now
cancelled", `status cancelled`, `status_at_event` in the JSON), and the delivery log keeps what
was sent. With the real SMTP server of the notification tests (aiosmtpd), on SQLite and
PostgreSQL (the `backend` behind `client`).
"""

from __future__ import annotations

import httpx
from sqlmodel import select

from opscraft import runtime
from opscraft.db.models import NotificationDelivery
from opscraft.services import notifications
from tests.automation.receivers import SmtpReceiver, smtp_receiver
from tests.automation.test_approvals import held_run
from tests.automation.test_notifications import channel
from tests.conftest import LoggedIn


async def mail_on_approval(client: httpx.AsyncClient, admin: LoggedIn, smtp: SmtpReceiver) -> None:
    """An e-mail channel to `smtp` and a rule sending it every run's `approval_pending`."""
    config = {"host": "127.0.0.1", "port": smtp.port, "security": "none"}
    mail = await channel(
        client,
        admin,
        name="mail",
        kind="email",
        config={**config, "from": "ops@example.com", "to": "a@example.com"},
    )
    rule = {"channel_id": mail["id"], "events": ["approval_pending"]}
    r = await client.post("/api/v1/notifications/rules", json=rule, headers=admin.headers)
    assert r.status_code == 201, r.text


async def test_an_approval_notice_of_a_run_cancelled_before_delivery_says_it_was_cancelled(
    client: httpx.AsyncClient, admin: LoggedIn, viewer: LoggedIn, no_automation_loops: None
) -> None:
    with smtp_receiver() as smtp:
        await mail_on_approval(client, admin, smtp)
        _, run_id = await held_run(client, viewer, admin)
        r = await client.post(f"/api/v1/executions/{run_id}/cancel", headers=viewer.headers)
        assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text
        script_name = r.json()["script_name"]
        db = runtime.current().db
        assert await notifications.deliver_due(db) == 1
        (sent,) = await smtp.wait_for(1)
    subject = f"[OpsCraft] {script_name} was waiting for approval, now cancelled (run #{run_id})"
    assert sent["Subject"].strip() == subject  # a long one is folded after "Subject:"
    body = sent.get_content()
    assert "status cancelled" in body and "is waiting for approval" not in body, body
    async with db.session() as session:
        (delivery,) = (await session.exec(select(NotificationDelivery))).all()
    assert delivery.status == "delivered" and delivery.event == "approval_pending"
    assert delivery.payload["subject"] == subject, "the log keeps what was sent"
    assert delivery.payload["execution"]["status"] == "cancelled"
    assert delivery.payload["status_at_event"] == "awaiting_approval"


async def test_an_approval_notice_of_a_run_still_waiting_says_it_is_waiting(
    client: httpx.AsyncClient, admin: LoggedIn, viewer: LoggedIn, no_automation_loops: None
) -> None:
    with smtp_receiver() as smtp:
        await mail_on_approval(client, admin, smtp)
        _, run_id = await held_run(client, viewer, admin)
        assert await notifications.deliver_due(runtime.current().db) == 1
        (sent,) = await smtp.wait_for(1)
    assert sent["Subject"].endswith(f"is waiting for approval (run #{run_id})"), sent["Subject"]
    assert "status awaiting_approval" in sent.get_content()
