"""The Notifications page (admins): channels (webhook, Slack, email), rules, the delivery log."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from nicegui import ui

from opscraft.db import stored_shapes
from opscraft.db.digits import ascii_int
from opscraft.db.models import NotificationChannel, NotificationDelivery
from opscraft.db.models.automation import ChannelKind, DeliveryStatus
from opscraft.services import chains, email_addresses, notification_senders, notifications, secrets
from opscraft.services.actor import Actor
from opscraft.services.notifications import DeliveryQuery, RuleIn
from opscraft.services.permissions import Permission
from opscraft.ui import drafts, labels
from opscraft.ui.choices import first_choices, script_search, searched_select, secret_search
from opscraft.ui.dialog_submit import submit_dialog
from opscraft.ui.layout import (
    confirmed,
    follow,
    frame,
    guard,
    protected_page,
    reread,
    run_action,
)
from opscraft.ui.plain_words import without_internal_names
from opscraft.ui.widgets import (
    NARROW_HIDDEN,
    OneRead,
    Rows,
    call,
    call_all,
    changed,
    data_table,
    dialog_buttons,
    dialog_card,
    format_time,
    longest,
    once_per_double_click,
    one_shot,
    opens_dialog,
    page_dialog,
    stored_base,
    stored_note,
    text_input,
)

ADMIN = Permission.manage_settings
DELIVERY_COLUMNS = [
    {"name": "created", "label": "Created", "field": "created"},
    {"name": "channel", "label": "Channel", "field": "channel", **NARROW_HIDDEN},
    {"name": "event", "label": "Event", "field": "event", **NARROW_HIDDEN},
    {"name": "run", "label": "Run", "field": "run"},
    {"name": "status", "label": "Status", "field": "status"},
    {"name": "attempts", "label": "Attempts", "field": "attempts", **NARROW_HIDDEN},
    {"name": "error", "label": "Last error", "field": "error"},
    {"name": "retry", "label": "Next attempt", "field": "retry", **NARROW_HIDDEN},
]

DISABLED = "disabled: nothing is sent"

# A rule's id, what its row says and whether it is enabled; the delivery log's count line and
# rows; the whole page.
RuleLine = tuple[int | None, str, bool]
Log = tuple[str, list[dict[str, Any]]]
Shown = tuple[list[NotificationChannel], list[RuleLine], Log]


def _retry(delivery: NotificationDelivery) -> str:
    """`attempt 2 of 8, 2026-01-31 14:05 UTC` for a delivery waiting to be tried again, else ``."""
    if delivery.status != DeliveryStatus.pending or not delivery.attempts:
        return ""
    when = format_time(delivery.next_attempt_at)
    return f"attempt {delivery.attempts + 1} of {notifications.MAX_ATTEMPTS}, {when}"


def _draft_key(noun: str, row_id: int | None) -> str:
    """The tab's draft of a channel's or rule's dialog (`noun` "channel" or "rule"):
    `channel:new`, `channel:<id>`, `rule:new`, `rule:<id>`."""
    return f"{noun}:{'new' if row_id is None else row_id}"


def _describe(channel: NotificationChannel) -> str:
    c = notifications.shown_config(channel)
    if channel.kind == ChannelKind.webhook:
        return c.get("url", "")
    if channel.kind == ChannelKind.slack:
        return "incoming webhook URL from the vault"
    security = labels.SMTP_SECURITY.get(c.get("security", ""), c.get("security"))
    return f"{security} {c.get('host')}:{c.get('port')} → {', '.join(c.get('to', []))}"


class EditSave:
    """The Save of a channel's or rule's dialog (`dialog_submit.submit_dialog`): a new row
    (`loaded` None) gets every value; a stored one only those changed in the dialog
    (`widgets.changed` against `loaded`, what the dialog showed when opened), with the base its
    `draft` holds, the row as stored when the edit started (`drafts.Draft.hold_base`,
    `widgets.stored_base`; a webhook channel's sealed URL as its `url_fingerprint`, never the
    URL). A field someone changed meanwhile is then refused (409 naming it, `partial.three_way`)
    and said under its field or in a notice, the dialog left open with what was typed; a field
    changed elsewhere and not here is kept. Once saved, `redraw` shows the page's lists again
    before the dialog goes."""

    def __init__(
        self,
        dialog: ui.dialog,
        draft: drafts.Draft,
        loaded: dict[str, Any] | None,
        redraw: Callable[[], Awaitable[None]],
    ) -> None:
        self.dialog = dialog
        self.draft = draft
        self.loaded = loaded
        self.redraw = redraw

    async def save(
        self,
        values: dict[str, Any],
        create: Callable[[Actor, dict[str, Any]], Awaitable[Any]],
        change: Callable[[Actor, dict[str, Any], dict[str, Any]], Awaitable[Any]],
        noun: str,
        fields: dict[str, Any],
    ) -> None:
        """Save `values` (the dialog's now) as `noun` ("Channel"): `create(actor, values)` or
        `change(actor, changed values, base)`; once saved the dialog goes, saying "Channel
        added" or "Channel saved" (problems are said under `fields`, the dialog's inputs by
        field name, or in a notice)."""
        loaded = self.loaded

        async def send(current: Actor) -> Any:
            if loaded is None:
                return await create(current, values)
            return await change(current, changed(values, loaded), self.draft.held_base())

        done = f"{noun} added" if loaded is None else f"{noun} saved"
        await submit_dialog(self.dialog, ADMIN, send, done, fields, draft=self.draft, redraw=self.redraw)


@protected_page("/notifications", ADMIN, "Notifications")
async def notifications_page(actor: Actor) -> None:
    """Page /notifications (admins): notification channels, their rules and their recent deliveries."""
    with frame(actor, "Notifications"):
        reads = OneRead()  # the page's reads of its lists, one at a time (`follow`)

        def channel_row(channel: NotificationChannel) -> None:
            # The name is free text: it goes into attributes as values, never into a props
            # string, whose parser would read `" onclick="...` in it as attributes of its own.
            with ui.row().classes("items-center gap-3 w-full") as row:
                row.props["data-testid"] = f"channel-{channel.name}"
                ui.icon(
                    {"webhook": "webhook", "slack": "tag", "email": "mail"}[channel.kind], color="primary"
                )
                ui.label(channel.name).classes("font-semibold oc-wrap min-w-0")
                ui.label(labels.CHANNEL_KIND.get(channel.kind, channel.kind)).classes("text-caption")
                ui.label(_describe(channel)).classes("text-caption text-grey-7 font-mono oc-wrap min-w-0")
                stored_note(channel, f"channel-stored-{channel.name}")
                if not channel.enabled:  # set through the API: the row looked like one that sends
                    ui.label(DISABLED).classes("text-caption text-negative oc-wrap min-w-0").props(
                        f'data-testid="channel-disabled-{channel.name}"'
                    )
                ui.space()
                switch = once_per_double_click(
                    ui.button("Disable" if channel.enabled else "Enable"), lambda c=channel: turn(c)
                ).props("flat dense")
                switch.props["data-testid"] = f"channel-turn-{channel.name}"
                test_button = once_per_double_click(ui.button("Test"), lambda c=channel: test(c))
                test_button.props("flat dense")
                test_button.props["data-testid"] = f"channel-test-{channel.name}"
                edit = ui.button("Edit", on_click=opens_dialog(lambda c=channel: channel_form(c)))
                edit.props("flat dense")
                edit.props["data-testid"] = f"channel-edit-{channel.name}"
                delete = ui.button(icon="delete", on_click=opens_dialog(lambda c=channel: remove(c)))
                delete.props("flat round dense color=negative")
                delete.props["aria-label"] = f"Delete channel {channel.name}"
                delete.props["data-testid"] = f"channel-delete-{channel.name}"

        async def read_rules(reader: Actor, listed: list[NotificationChannel]) -> list[RuleLine]:
            """Each rule's id and what its row says ("Failure of every script → ops"); `listed`:
            the channels, read just before."""
            rows = await call_all(notifications.list_rules, reader)
            channels = {c.id: c.name for c in listed}
            off = {c.id for c in listed if not c.enabled}
            names = await call(chains.script_names, {r.script_id for r in rows if r.script_id})
            said = []
            for rule in rows:
                scope = (
                    f"script {names.get(rule.script_id, rule.script_id)}"
                    if rule.script_id
                    else "every script"
                )
                events = ", ".join(labels.NOTIFY_EVENTS.get(e, e) for e in rule.events)
                line = f"{events or 'no event'} of {scope} → {channels.get(rule.channel_id, '?')}"
                if not rule.enabled:
                    line += f" ({DISABLED})"
                elif rule.channel_id in off:
                    line += f" (its channel is {DISABLED})"
                unread = stored_shapes.note(rule)
                said.append(
                    (rule.id, line if unread is None else f"{line}: nothing sent, {unread}", rule.enabled)
                )
            return said

        def rule_row(rule: RuleLine) -> None:
            rule_id, text, enabled = rule
            with ui.row().classes("items-center gap-3").props(f'data-testid="rule-{rule_id}"'):
                ui.label(text).classes("oc-wrap min-w-0")
                once_per_double_click(
                    ui.button("Disable" if enabled else "Enable"), lambda: turn_rule(rule_id, not enabled)
                ).props(f'flat dense data-testid="rule-turn-{rule_id}"')
                ui.button("Edit", on_click=opens_dialog(lambda: rule_form(rule_id))).props(
                    f'flat dense data-testid="rule-edit-{rule_id}"'
                )
                ui.button(icon="delete", on_click=opens_dialog(lambda: remove_rule(rule_id))).props(
                    'flat round dense color=negative aria-label="Delete rule" '
                    f'data-testid="rule-delete-{rule_id}"'
                )

        def channel_picture(channel: NotificationChannel) -> object:
            return (channel.id, channel.name, channel.kind, _describe(channel), channel.enabled)

        async def read_page(reader: Actor) -> Shown:
            """The channels, the rules and the delivery log, as `reader` may see them now."""
            listed = await call_all(notifications.list_channels, reader)
            return listed, await read_rules(reader, listed), await deliveries(reader, listed)

        def show_page(shown: Shown) -> None:
            """Bring the page to `shown`: rows change only where they changed, and the delivery
            table's rows in place and only when the log changed (its paging and sorting stay)."""
            channels, rules, (count, data) = shown
            channels_view.show(channels)
            rules_view.show(rules)
            count_label.set_text(count)
            if data != table.rows:
                table.rows = data

        async def update() -> None:
            """Show the page as stored now, after a change made here."""
            await reread(read_page, show_page, ADMIN, reads=reads)

        async def deliveries(reader: Actor, listed: list[NotificationChannel]) -> Log:
            """The delivery log's count line and table rows, newest first, as `reader` may see them
            (`listed`: the channels, read just before)."""
            rows, total = await call(notifications.list_deliveries, reader, DeliveryQuery(limit=50))
            # which channel each message went to: with several, the rows were told apart by nothing
            names = {c.id: c.name for c in listed}
            data = [
                {
                    "id": d.id,
                    "created": format_time(d.created_at),
                    "channel": names.get(d.channel_id, "?"),
                    "event": d.event,
                    "run": d.execution_id,
                    "status": d.status,
                    "attempts": d.attempts,
                    "error": without_internal_names(d.last_error or ""),
                    # a failed attempt left for a retry: when, and which of how many (a "pending"
                    # row with an error said neither whether nor when it would be sent again)
                    "retry": _retry(d),
                }
                for d in rows
            ]
            return f"{total} deliveries", data

        async def test(channel: NotificationChannel) -> None:
            current = await guard(ADMIN)
            if current is not None and channel.id is not None:
                await run_action(
                    lambda: call(notifications.send_test, current, channel.id), "Test message sent"
                )

        async def turn(channel: NotificationChannel) -> None:
            """Disable an enabled channel (its deliveries fail, nothing is sent) or enable it:
            only that switch is sent, so another change saved meanwhile is kept."""
            current = await guard(ADMIN)
            if current is not None and channel.id is not None:
                data = {"enabled": not channel.enabled}
                said = "Channel enabled" if data["enabled"] else "Channel disabled"
                await run_action(lambda: call(notifications.update_channel, current, channel.id, data), said)
                await update()

        async def remove(channel: NotificationChannel) -> None:
            if await guard(ADMIN) is None or channel.id is None:
                return
            current = await confirmed(ADMIN, f"Delete the channel {channel.name}?", "Its rules go with it.")
            if current is not None:
                await run_action(
                    lambda: call(notifications.delete_channel, current, channel.id), "Channel deleted"
                )
                await update()

        async def turn_rule(rule_id: int | None, enabled: bool) -> None:
            """Switch a rule off (no delivery is queued for it) or on again: only that switch is
            sent, so another change saved meanwhile is kept."""
            current = await guard(ADMIN)
            if current is not None and rule_id is not None:
                data = {"enabled": enabled}
                said = "Rule enabled" if enabled else "Rule disabled"
                await run_action(lambda: call(notifications.update_rule, current, rule_id, data), said)
                await update()

        async def remove_rule(rule_id: int | None) -> None:
            if await guard(ADMIN) is None or rule_id is None:
                return
            current = await confirmed(ADMIN, "Delete this rule?", "Its events are no longer sent.")
            if current is not None:
                await run_action(lambda: call(notifications.delete_rule, current, rule_id), "Rule deleted")
                await update()

        async def channel_form(stored: NotificationChannel | None = None) -> None:
            """The channel dialog: empty to add one, filled with `stored`'s settings to edit it
            (Save sends only what was changed here, against what it was opened from: `EditSave`)."""
            current = await guard(ADMIN)
            if current is None:
                return
            shown = notifications.shown_config(stored) if stored is not None else {}
            chosen = None
            if stored is not None and stored.secret_id is not None:
                key = await run_action(lambda: call(secrets.get, current, stored.secret_id))
                if key is None:
                    return
                chosen = (stored.secret_id, key.secret.name)
            secrets_first = await first_choices(secret_search(actor))
            title = "Add a channel" if stored is None else f"Edit the channel {stored.name}"
            with page_dialog() as dialog, dialog_card(title) as card:
                name = text_input(
                    "Name",
                    "channel-name",
                    value=stored.name if stored else "",
                    autofocus=True,
                    limit=longest(notifications.ChannelIn, "name"),
                )
                kind = ui.select(
                    labels.CHANNEL_KIND, value=stored.kind if stored else "slack", label="Kind"
                ).props('outlined dense data-testid="channel-kind"')
                url = text_input("Webhook URL", "channel-url", value=shown.get("url", ""))
                host = text_input(
                    "SMTP host",
                    "channel-host",
                    value=shown.get("host", ""),
                    limit=notification_senders.MAX_HOST_NAME_CHARS,
                )
                port = text_input("SMTP port", "channel-port", value=str(shown.get("port", "")))
                security = ui.select(
                    labels.SMTP_SECURITY, value=shown.get("security", "starttls"), label="SMTP security"
                ).props('outlined dense data-testid="channel-security"')
                sender = text_input(
                    "From", "channel-from", value=shown.get("from", ""), limit=email_addresses.MAX_LENGTH
                )
                to = text_input("To (comma-separated)", "channel-to", value=", ".join(shown.get("to", [])))
                username = text_input(
                    "SMTP username (optional)",
                    "channel-username",
                    value=shown.get("username") or "",
                    limit=notifications.MAX_SMTP_USERNAME,
                )
                secret = searched_select(
                    "Vault secret (Slack URL, SMTP password, signing key)",
                    "channel-secret",
                    secrets_first,
                    clearable=True,
                    chosen=chosen,
                )
                # Only the chosen kind's fields: a Slack channel showed a webhook URL and SMTP boxes.
                email_fields = (host, port, security, sender, to, username)
                for element, used_by in ((url, "webhook"), *((e, "email") for e in email_fields)):
                    element.bind_visibility_from(kind, "value", backward=lambda value, k=used_by: value == k)
                # A config problem names `config.url`, `config.host`...: each under its input.
                fields = {"name": name, "kind": kind, "secret_id": secret, "url": url, "host": host}
                fields |= {"port": port, "security": security, "from": sender, "to": to}
                fields |= {"username": username}
                # Not the URL (a generic webhook's may carry a token: it is stored sealed) nor the
                # vault secret (a searched select's label names no option the form holds).
                kept = {key: element for key, element in fields.items() if key not in ("url", "secret_id")}
                base = None
                if stored is not None:  # its sealed URL stands in it as its fingerprint
                    base = stored_base(stored, ("name", "kind", "config", "secret_id"))
                    base["url_fingerprint"] = notifications.url_fingerprint(stored)
                key = _draft_key("channel", stored.id if stored else None)
                draft = drafts.dialog_draft(key, card, kept, base)

                def values() -> dict[str, Any]:
                    config: dict[str, Any] = {}
                    if kind.value == "webhook":
                        config = {"url": url.value}
                    elif kind.value == "email":
                        config = {
                            "host": host.value,
                            "security": security.value,
                            "from": sender.value,
                            "to": to.value,
                            "username": username.value or None,
                        }
                        typed = (port.value or "").strip()
                        if typed:  # empty: the security's usual port; not a number: refused under it
                            number = ascii_int(typed, 5)
                            config["port"] = typed if number is None else number
                    return {
                        "name": name.value or "",
                        "kind": kind.value,
                        "config": config,
                        "secret_id": secret.value,
                    }

                edit = EditSave(dialog, draft, None if stored is None else values(), update)

                async def submit() -> None:
                    await edit.save(
                        values(),
                        lambda current, data: call(notifications.create_channel, current, data),
                        lambda current, data, base: call(
                            notifications.update_channel, current, stored.id, data, base
                        ),
                        "Channel",
                        fields,
                    )

                verb = "Add" if stored is None else "Save"
                dialog_buttons(dialog, verb, "channel-submit", submit, on_cancel=draft.clear)
            dialog.open()

        async def rule_form(rule_id: int | None = None) -> None:
            """The rule dialog: empty to add one, filled with rule `rule_id`'s settings to edit it
            (Save as in `channel_form`)."""
            current = await guard(ADMIN)
            if current is None:
                return
            stored = None
            chosen = None
            if rule_id is not None:
                stored = await run_action(lambda: call(notifications.get_rule, current, rule_id))
                if stored is None:
                    return
                if stored.script_id is not None:
                    names = await call(chains.script_names, {stored.script_id})
                    chosen = (stored.script_id, names.get(stored.script_id, f"script {stored.script_id}"))
            channels = {c.id: c.name for c in await call_all(notifications.list_channels, current)}
            scripts_first = await first_choices(script_search(actor))
            title = "Add a rule" if stored is None else "Edit the rule"
            with page_dialog() as dialog, dialog_card(title) as card:
                channel = ui.select(
                    channels, value=stored.channel_id if stored else None, label="Channel"
                ).props('outlined dense data-testid="rule-channel"')
                events = ui.select(
                    labels.NOTIFY_EVENTS,
                    value=list(stored.events) if stored else ["failure"],
                    multiple=True,
                    label="Events",
                ).props('outlined dense use-chips data-testid="rule-events"')
                script = searched_select(
                    "Script (empty: every script)",
                    "rule-script",
                    scripts_first,
                    clearable=True,
                    chosen=chosen,
                )
                fields = {"channel_id": channel, "events": events, "script_id": script}
                # Not the script: a searched select's label names no option the form holds.
                kept = {"channel_id": channel, "events": events}
                base = None if stored is None else stored_base(stored, ("channel_id", "script_id", "events"))
                draft = drafts.dialog_draft(_draft_key("rule", rule_id), card, kept, base)

                def values() -> dict[str, Any]:
                    return {
                        "channel_id": channel.value or 0,
                        "events": events.value or [],
                        "script_id": script.value or None,
                    }

                edit = EditSave(dialog, draft, None if stored is None else values(), update)

                async def submit() -> None:
                    await edit.save(
                        values(),
                        lambda current, data: call(notifications.create_rule, current, RuleIn(**data)),
                        lambda current, data, base: call(
                            notifications.update_rule, current, rule_id, data, base
                        ),
                        "Rule",
                        fields,
                    )

                verb = "Add" if stored is None else "Save"
                dialog_buttons(dialog, verb, "rule-submit", submit, on_cancel=draft.clear)
            dialog.open()

        ui.label("Channels").classes("text-lg font-semibold")
        # As wide as its label ("self-start"): the page's column stretches what stands in it.
        ui.button("Add channel", icon="add", on_click=opens_dialog(channel_form)).props(
            'unelevated data-testid="channel-add"'
        ).classes("self-start")
        first: Shown = await run_action(lambda: read_page(actor)) or ([], [], ("", []))
        channels_view = Rows(
            channel_row,
            first[0],
            key=lambda channel: channel.id,
            picture=channel_picture,
            empty=("No channels yet.", "channels-empty"),
        )
        ui.label("Rules").classes("text-lg font-semibold mt-4")
        ui.button("Add rule", icon="add", on_click=opens_dialog(rule_form)).props(
            'unelevated data-testid="rule-add"'
        ).classes("self-start")
        rules_view = Rows(
            rule_row,
            first[1],
            key=lambda rule: rule[0],
            empty=("No rules yet: nothing is sent.", "rules-empty"),
        )
        ui.label("Delivery log").classes("text-lg font-semibold mt-4")
        count_label = ui.label(first[2][0]).classes("text-caption")
        table = data_table(DELIVERY_COLUMNS, first[2][1], "id", "Delivery log")
        table.props('flat dense data-testid="deliveries"')
        # Not Quasar's "No data available" beside a warning sign, which read as a failure to load.
        table.props["no-data-label"] = "No deliveries yet: a rule's event sends one"
        # One timer for the page (there was one per list): each part changes only where it changed.
        follow(read_page, show_page, ADMIN, reads=reads)

        async def listed_channels() -> dict[str, NotificationChannel]:
            listed = await call_all(notifications.list_channels, actor)
            return {_draft_key("channel", channel.id): channel for channel in listed}

        async def listed_rules() -> dict[str, int | None]:
            return {_draft_key("rule", r.id): r.id for r in await call_all(notifications.list_rules, actor)}

        async def resume_draft() -> None:
            """Reopen the dialog whose typing a reload interrupted (the tab's draft of it)."""
            if not await drafts.reopen("channel:", channel_form, lambda _: listed_channels()):
                await drafts.reopen("rule:", rule_form, lambda _: listed_rules())

        one_shot(0, resume_draft)
