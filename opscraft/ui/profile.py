"""The profile page: who you are, your email and full name (editable), changing your own password."""

from __future__ import annotations

from nicegui import ui

from opscraft import runtime
from opscraft.services import email_addresses, partial, users
from opscraft.services.actor import Actor
from opscraft.services.users import ProfileBase, ProfileUpdate
from opscraft.ui import session
from opscraft.ui.drafts import Draft
from opscraft.ui.layout import frame, guard, notify_ok, protected_page, run_action
from opscraft.ui.widgets import (
    call,
    enter_presses,
    form,
    format_time,
    longest,
    note_submitted,
    one_click,
    one_shot,
    password_hint,
    password_input,
    put_unless_typed,
    text_input,
)


@protected_page("/profile", title="Profile")
async def profile_page(actor: Actor) -> None:
    """Page /profile (any signed-in user): one's own account facts, email and name form, and password
    change.
    """
    user = actor.user
    assert user is not None
    with frame(actor, "Profile"), ui.row().classes("w-full gap-4 items-start"):
        with ui.card().classes("w-96 gap-2") as account:
            ui.label("Account").classes("text-lg font-semibold")
            for label, value in (
                ("Username", user.username),
                ("Role", user.role),
                ("Last login", format_time(user.last_login_at)),
                ("Member since", format_time(user.created_at)),
            ):
                with ui.row().classes("w-full justify-between"):
                    ui.label(label).classes("text-grey-7")
                    ui.label(str(value)).props(f'data-testid="profile-{label.lower().replace(" ", "-")}"')
            email = text_input("Email", "profile-email", value=user.email, limit=email_addresses.MAX_LENGTH)
            full_name = text_input(
                "Full name",
                "profile-full-name",
                value=user.full_name,
                limit=longest(users.Registration, "full_name"),
            )
            # Kept in the tab (drafts.py) under this user's id: a session that ended while typing
            # (signed out elsewhere, password reset, a long idle) lost the edit; another user
            # signing in on the tab gets none of it.
            draft = Draft(f"profile:{user.id}", account)
            draft.field("email", email)
            draft.field("full_name", full_name)

            # What the fields showed when loaded (or last saved): Save sends only the fields edited
            # since (`partial.edited`), so an email an admin or another tab changed meanwhile is
            # not put back to this page's old copy when only the full name was edited here; and
            # sent as `base`, a field edited both here and elsewhere is refused under it.
            shown = {"email": user.email, "full_name": user.full_name}

            async def save() -> None:
                me = await guard()
                if me is None:
                    return
                form_values = {"email": (email.value or "").strip(), "full_name": full_name.value or ""}
                data = partial.edited(shown, form_values)
                if not data:  # sent, the form as loaded was the API's 422 "nothing to change"
                    notify_ok("Nothing changed")
                    return
                saved = await run_action(
                    lambda: call(users.update_profile, me, ProfileUpdate(**data, base=ProfileBase(**shown))),
                    "Profile saved",
                    {"email": email, "full_name": full_name},
                )
                if saved is not None:  # as stored (the email trimmed), in fields not typed into since
                    await put_unless_typed({email: saved.email, full_name: saved.full_name})
                    shown.update(email=saved.email, full_name=saved.full_name)
                    await draft.saved(shown)  # what was typed while saving stays in the tab

            save_button = ui.button("Save", icon="save", on_click=one_click(save)).props(
                'unelevated data-testid="profile-save"'
            )
            note_submitted(save_button, [email, full_name])
            enter_presses(account, save_button)
            one_shot(0, draft.restore)

        with ui.card().classes("w-96 gap-3") as password_card:
            ui.label("Change password").classes("text-lg font-semibold")
            ui.label(
                "All your sessions end: you log in again with the new password. Your API tokens "
                "keep working: revoke any you no longer trust on the API tokens page."
            ).classes("text-caption text-grey-7")
            with form():
                current = password_input(
                    "Current password", "current-password", autocomplete="current-password"
                )
                new = password_input("New password", "new-password")
                repeat = password_input("Repeat new password", "repeat-password")
                password_hint(users.MIN_PASSWORD)

            async def change() -> None:
                me = await guard()
                if me is None:
                    return

                async def do_change() -> bool:
                    async with runtime.current().db.session() as s:
                        await users.change_password(
                            s, me, current.value or "", new.value or "", repeat.value or ""
                        )
                    return True

                fields = {"current_password": current, "new_password": new, "repeat_password": repeat}
                if await run_action(do_change, fields=fields):
                    session.log_out("password")  # the browser's other tabs say so too
                    ui.navigate.to(session.login_url(notice="password"))

            change_button = ui.button("Change password", on_click=one_click(change)).props(
                'unelevated data-testid="change-password"'
            )
            enter_presses(password_card, change_button.classes("w-full"))
