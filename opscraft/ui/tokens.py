"""The API tokens page: create a personal access token (shown once), see last use, revoke;
admins can show everyone's tokens. Paged as `GET /api/v1/tokens` pages, newest first."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from nicegui import ui

from opscraft.db.models import ApiToken
from opscraft.db.types import utcnow
from opscraft.services import api_tokens
from opscraft.services.actor import Actor
from opscraft.services.api_tokens import TokenInfo
from opscraft.services.permissions import Permission, can
from opscraft.ui import address, drafts, labels
from opscraft.ui.dialog_submit import submit_dialog
from opscraft.ui.layout import follow, frame, guard, protected_page, reread, run_action
from opscraft.ui.paged import KeptPage
from opscraft.ui.widgets import (
    OneRead,
    Redrawn,
    Rows,
    call,
    confirm,
    dialog_buttons,
    dialog_card,
    format_count,
    format_time,
    one_shot,
    opens_dialog,
    page_dialog,
    shown_once,
    text_input,
)

EXPIRY_CHOICES = {"7": "7 days", "30": "30 days", "90": "90 days", "365": "1 year", "": "No expiry"}
PAGE_SIZE = 20
DRAFTS = "token:"
"""The tab's draft of the creation dialog is `token:new` (`ui.drafts`; a token is never in a form)."""


def _row(info: TokenInfo, revoke: Any) -> None:
    t = info.token
    with ui.card().classes("w-full gap-1").props(f'data-testid="token-{t.id}"'):
        with ui.row().classes("items-center gap-3 w-full"):
            ui.icon("vpn_key", color="primary" if info.active else "grey")
            ui.label(t.name).classes("font-semibold oc-wrap min-w-0")
            ui.label(f"{t.prefix}…").classes("font-mono text-grey-8")
            acting = "" if info.acts_as == t.role else f" (acts as {info.acts_as.value}: owner's role now)"
            ui.label(f"{t.role}{acting}").classes("text-caption").props(f'data-testid="token-role-{t.id}"')
            ui.label(info.username).classes("text-caption text-grey-7 oc-wrap min-w-0")
            ui.space()
            if t.revoked_at is not None:
                ui.label("revoked").classes("text-negative")
            else:
                if not info.active:
                    ui.label("expired").classes("text-negative")
                # An expired token too: it keeps its name until revoked (a new token may not take
                # it), and the page offered no way to revoke it.
                ui.button("Revoke", on_click=opens_dialog(lambda i=info: revoke(i))).props(
                    f'flat dense color=negative data-testid="token-revoke-{t.id}"'
                )
        expires = format_time(t.expires_at, "never")
        used = format_time(t.last_used_at) + (f" from {t.last_used_ip}" if t.last_used_ip else "")
        ui.label(f"Created {format_time(t.created_at)} · expires {expires} · last used {used}").classes(
            "text-caption text-grey-7"
        )


class TokenPages(KeptPage):
    """The page of tokens shown and whether every user's are (`all_users`, an admin's switch),
    kept in the address as the API reads them (`/tokens?all=true&page=2`: `paged.KeptPage`)."""

    def __init__(self, page: int, all_users: bool) -> None:
        super().__init__(PAGE_SIZE, page)
        self.all_users = all_users

    def address(self) -> str:
        """`/tokens`, with `all=true` when every user's tokens are shown."""
        return f"/tokens?{urlencode({'all': 'true'})}" if self.all_users else "/tokens"


@protected_page("/tokens", None, "API tokens")
async def tokens_page(actor: Actor, page: int = 1, all: bool = False) -> None:
    """Page /tokens (any signed-in user): one's API tokens, created, listed and revoked; an admin may show
    every user's (`all`, named as by `GET /api/v1/tokens`; another user's address saying it is
    named and ignored). `page`: the page shown (past the last: the last).
    """
    admin = can(actor.user, Permission.manage_users)
    with frame(actor, "API tokens"):
        if all and not admin:
            address.say_ignored({"all": "is for admins only (your own tokens are listed)"})
        ui.markdown(
            "Personal access tokens let scripts and CI pipelines call the API as you: "
            "send `Authorization: Bearer <token>`. A token's role is never above yours."
        ).classes("text-grey-7")
        paging = TokenPages(page, all and admin)
        reads = OneRead()

        async def turn(event: Any) -> None:
            if event.value and event.value != paging.page:
                paging.page = int(event.value)
                await update()

        async def read(current: Actor) -> tuple[list[TokenInfo], int]:
            """The page of tokens shown (the last when it is past the last: tokens deleted with
            their owner meanwhile, an address's `?page=9`) and the total."""
            while True:
                rows, total = await call(
                    api_tokens.list_tokens,
                    current,
                    all_users=paging.all_users,
                    skip=paging.skip,
                    limit=paging.page_size,
                )
                paging.count(total)
                if not paging.past_last():
                    return rows, total

        def show(listed: tuple[list[TokenInfo], int]) -> None:
            rows.show(listed[0])
            footer.show((listed[1], paging.page))
            paging.keep_page()

        async def update() -> None:
            """Show the tokens as the switch and the pager say now. As the user is now, not as
            they were when the page opened: with "Show every user's tokens" a demoted or
            deactivated admin's open page went on listing everyone's tokens."""
            await reread(read, show, reads=reads)

        def draw_footer(shown: tuple[int, int]) -> None:
            total, page = shown
            pages = max(1, -(-total // PAGE_SIZE))
            with ui.row().classes("w-full items-center justify-between"):
                noun = "token" if total == 1 else "tokens"
                ui.label(f"{format_count(total)} {noun}").classes("text-grey-7").props(
                    'data-testid="tokens-summary"'
                )
                if pages > 1:
                    ui.pagination(1, pages, value=page, direction_links=True, on_change=turn).props(
                        'data-testid="tokens-pager"'
                    )

        async def revoke(info: TokenInfo) -> None:
            whose = "" if info.token.user_id == actor.user_id else f" of {info.username}"
            question = f"Revoke the token {info.token.name}{whose}?"
            consequence = (
                "Whatever uses it (a script, a CI pipeline) gets 401 from then on; this cannot be undone."
                if info.active
                else "It has expired already: revoking it frees its name for a new token."
            )
            if not await confirm(question, consequence, verb="Revoke", testid="confirm-revoke"):
                return
            current = await guard()
            if current is None:
                return
            assert info.token.id is not None
            if await run_action(lambda: call(api_tokens.revoke, current, info.token.id), "Token revoked"):
                await update()

        # Built with the page (not inside the creation dialog, which is gone by then).
        shown, shown_value = shown_once(
            "Your new token", "Copy it now: it is not shown again.", "token-value", "token-done"
        )

        def show_once(value: str) -> None:
            shown_value.set_value(value)
            shown.open()

        async def open_create(_: None = None) -> None:
            with page_dialog() as dialog, dialog_card("Create a token") as card:
                name = text_input("Name", "token-name", autofocus=True, limit=api_tokens.NAME_MAX)
                roles = list(labels.ROLE)
                assert actor.user is not None
                allowed = {r: labels.ROLE[r] for r in roles[: roles.index(actor.user.role) + 1]}
                role = ui.select(allowed, value=actor.user.role, label="Role").props(
                    'outlined dense data-testid="token-role"'
                )
                expiry = ui.select(EXPIRY_CHOICES, value="30", label="Expires").props(
                    'outlined dense data-testid="token-expiry"'
                )
                fields = {"name": name, "role": role, "expires_at": expiry}
                draft = drafts.dialog_draft(f"{DRAFTS}new", card, fields)

                async def create(current: Actor) -> tuple[ApiToken, str]:
                    days = expiry.value
                    expires = utcnow() + timedelta(days=int(days)) if days else None
                    return await call(
                        api_tokens.create, current, name.value or "", role=role.value, expires_at=expires
                    )

                async def submit() -> None:
                    saved = await submit_dialog(dialog, None, create, None, fields, draft=draft)
                    if saved is not None:
                        paging.page = 1  # newest first: the new token heads the first page
                        await update()
                        show_once(saved.result[1])

                dialog_buttons(dialog, "Create", "token-submit", submit, on_cancel=draft.clear)
            dialog.open()

        with ui.row().classes("items-center gap-4"):
            ui.button("Create token", icon="add", on_click=opens_dialog(open_create)).props(
                'unelevated data-testid="token-add"'
            )
            if admin:

                async def toggle(e: Any) -> None:
                    paging.all_users = bool(e.value)
                    paging.page = 1
                    await update()

                ui.switch("Show every user's tokens", value=paging.all_users, on_change=toggle).props(
                    'data-testid="tokens-all"'
                )
        first = await guard()
        listed = await run_action(lambda: read(first)) if first is not None else None
        rows = Rows(
            lambda info: _row(info, revoke),
            listed[0] if listed else [],
            key=lambda info: info.token.id,
            picture=lambda info: (info.token.model_dump(), info.username, info.active, info.acts_as),
            empty=("No tokens yet.", "tokens-empty"),
        )
        footer = Redrawn(draw_footer, (listed[1] if listed else 0, paging.page))
        paging.keep_page()
        follow(read, show, reads=reads)
        # the dialog whose typing a reload interrupted (the tab's draft of it)
        one_shot(0, lambda: drafts.reopen(DRAFTS, open_create))
