"""The admin users page: search, create, edit role/active, reset password, delete."""

from __future__ import annotations

from typing import Any

from nicegui import ui

from opscraft.db import stored_shapes
from opscraft.db.models import Role, User
from opscraft.services import email_addresses, partial, users
from opscraft.services.actor import Actor
from opscraft.services.permissions import Permission
from opscraft.ui import drafts, labels
from opscraft.ui.layout import close_saved, frame, guard, plain, protected_page
from opscraft.ui.paged import PagedTable
from opscraft.ui.widgets import (
    IDENTIFIER,
    NARROW_HIDDEN,
    STICKY_ACTIONS,
    WRAPPED,
    ErrorLine,
    call,
    dialog_buttons,
    dialog_card,
    form,
    format_time,
    joined,
    longest,
    opens_dialog,
    password_hint,
    password_input,
    text_input,
)

PAGE_SIZE = 20
DRAFTS = "user:"
"""The tab's drafts of the dialogs: `user:new` (creation) and `user:<id>` (an edit); `ui.drafts`.
A password is never kept."""

COLUMNS: list[dict[str, Any]] = [
    {"name": "username", "label": "Username", "field": "username", "align": "left", **IDENTIFIER},
    {
        "name": "full_name",
        "label": "Full name",
        "field": "full_name",
        "align": "left",
        **joined(NARROW_HIDDEN, WRAPPED),
    },
    {
        "name": "email",
        "label": "Email",
        "field": "email",
        "align": "left",
        **joined(NARROW_HIDDEN, IDENTIFIER),
    },
    {"name": "role", "label": "Role", "field": "role", "align": "left"},
    {"name": "is_active", "label": "Status", "field": "is_active", "align": "left"},
    {"name": "last_login", "label": "Last login", "field": "last_login", "align": "left", **NARROW_HIDDEN},
    # Kept in view at the table's right edge (a phone's 375 px showed the buttons only once the
    # table was scrolled sideways).
    {"name": "actions", "label": "", "field": "id", "align": "right", **STICKY_ACTIONS},
]

ROLE_COLORS = "{admin: 'deep-purple', operator: 'teal-9', viewer: 'blue-grey-7'}"
# Under the badge, what a stored role none of today's was (read as viewer: `stored_shapes.note`).
ROLE_CELL = f"""
<q-td :props="props">
  <q-badge :color="{ROLE_COLORS}[props.value]" :label="props.value" />
  <div v-if="props.row.stored" class="text-caption text-negative oc-wrap"
       style="white-space: normal; min-width: 12rem; max-width: 20rem"
       :data-testid="'user-stored-' + props.row.username">{{{{ props.row.stored }}}}</div>
</q-td>"""
# On the acting admin's own row, under the name, why Reset password and Delete are off (in short:
# the buttons' tooltips and labels give the service's `OWN_ACCOUNT_REFUSALS`): said in
# the row, not only in the buttons' tooltips, which a phone (no hover) and a keyboard (a disabled
# button takes no focus) never show. Narrow enough on a phone to stay left of the row's actions,
# which stay in view over the cells (`STICKY_ACTIONS`).
OWN_NOTE = (
    "Your own account: only another admin can delete it or reset its password; "
    "change your password in your profile."
)
USERNAME_CELL = """
<q-td :props="props">
  <span class="oc-username oc-ident" :title="props.value">{{ props.value }}</span>
  <div v-if="props.row.own_note" class="text-caption text-grey-8"
       style="white-space: normal; max-width: min(24rem, calc(100vw - 13rem))"
       :data-testid="'user-own-note-' + props.row.username">{{ props.row.own_note }}</div>
</q-td>"""
STATUS_CELL = """
<q-td :props="props">
  <q-badge :color="props.value ? 'positive' : 'grey-8'" :label="props.value ? 'active' : 'inactive'" />
</q-td>"""
ACTIONS_CELL = """
<q-td :props="props" class="text-right">
  <q-btn flat round dense aria-label="Edit role, status, details"
         icon="edit" color="primary" :data-testid="'edit-' + props.row.username"
         @click="$parent.$emit('edit', props.row)"><q-tooltip>Edit role, status, details</q-tooltip></q-btn>
  <span :title="props.row.own_reset || undefined"><q-btn flat round dense
         :aria-label="props.row.own_reset || 'Reset password'" :disable="!!props.row.own_reset"
         icon="lock_reset" color="primary" :data-testid="'reset-' + props.row.username"
         @click="$parent.$emit('reset', props.row)"></q-btn><q-tooltip
         >{{ props.row.own_reset || 'Reset password' }}</q-tooltip></span>
  <span :data-testid="'delete-why-' + props.row.username"
        :title="props.row.own_delete || undefined"><q-btn flat round dense
         :aria-label="props.row.own_delete || 'Delete'" :disable="!!props.row.own_delete"
         icon="delete" color="negative" :data-testid="'delete-' + props.row.username"
         @click="$parent.$emit('delete', props.row)"></q-btn><q-tooltip
         >{{ props.row.own_delete || 'Delete' }}</q-tooltip></span>
</q-td>"""


def _row(user: User, actor_id: int | None) -> dict[str, Any]:
    """A table row; on the acting admin's own, what the service refuses them (`own_*`: the
    reasons the buttons' tooltips, the note under the name (`own_note`) and the edit form say,
    None on another user's row)."""
    own = users.OWN_ACCOUNT_REFUSALS if user.id == actor_id else {}
    return {
        "own_delete": plain(own["delete"]) if own else None,
        "own_reset": plain(own["reset_password"]) if own else None,
        "own_fixed": f"{plain(own['role'])}. {plain(own['is_active'])}." if own else None,
        "own_note": OWN_NOTE if own else None,
        "id": user.id,
        "username": user.username,
        "full_name": user.full_name,
        "email": user.email,
        "role": str(user.role),
        "is_active": user.is_active,
        "last_login": format_time(user.last_login_at),
        "stored": stored_shapes.note(user),
        "role_unread": "role" in stored_shapes.problems(user),
    }


class UsersView(PagedTable):
    """The table and its dialogs; every change goes through `services.users`."""

    def __init__(self, search: str | None = None, page: int = 1) -> None:
        super().__init__(PAGE_SIZE, page)
        with ui.row().classes("w-full items-center gap-3"):
            self.search_box("Search username, name or email", "user-search", "/users", search)
            ui.space()
            ui.button("New user", icon="person_add", on_click=opens_dialog(self.open_create)).props(
                'unelevated data-testid="new-user"'
            )
        self.make_table(COLUMNS, "users-table", "Users")
        self.table.add_slot("body-cell-username", USERNAME_CELL)
        self.table.add_slot("body-cell-role", ROLE_CELL)
        self.table.add_slot("body-cell-is_active", STATUS_CELL)
        self.table.add_slot("body-cell-actions", ACTIONS_CELL)
        self.table.on("edit", opens_dialog(self.open_edit, with_args=True))
        self.table.on("reset", opens_dialog(self.open_reset, with_args=True))
        self.table.on("delete", opens_dialog(self.open_delete, with_args=True))
        self.make_footer("users-summary")

    async def show_page(self, ticking: bool = False) -> None:
        """Read and show the current page of users (re-checking manage_users; `ticking`: a periodic
        refresh).
        """
        actor = await guard(Permission.manage_users, ticking=ticking)
        if actor is None:
            return

        result = await self.load(
            lambda: call(users.list_users, actor, search=self.search, skip=self.skip, limit=self.page_size),
            ticking,
        )
        if result is None:
            return
        rows, total = result
        self.show_rows([_row(u, actor.user_id) for u in rows])
        self.show_total(total, "user", self.matching())

    async def row_of(self, actor: Actor, user_id: int) -> dict[str, Any]:
        """The table's row of user `user_id`, whatever page it is on (`users.get`, as the API's
        `GET /users/{id}`). Raises NotFound (no such user)."""
        return _row(await call(users.get, actor, user_id), actor.user_id)

    def open_create(self) -> None:
        """Open the dialog creating a user with an initial password."""
        with ui.dialog() as dialog, dialog_card("New user") as card:
            username = text_input(
                "Username", "create-username", autofocus=True, limit=longest(users.Registration, "username")
            )
            email = text_input("Email", "create-email", limit=email_addresses.MAX_LENGTH)
            full_name = text_input(
                "Full name", "create-fullname", limit=longest(users.Registration, "full_name")
            )
            role = ui.select(labels.ROLE, value=Role.viewer.value, label="Role").props(
                'outlined dense data-testid="create-role"'
            )
            role.classes("w-full")
            typed = {"username": username, "email": email, "full_name": full_name, "role": role}
            draft = drafts.dialog_draft(f"{DRAFTS}new", card, typed)
            with form():
                password = password_input("Initial password", "create-password")
                password_hint(users.MIN_PASSWORD)

            def build() -> users.UserCreate:
                return users.UserCreate(
                    username=username.value or "",  # the service trims it (names.trimmed)
                    email=(email.value or "").strip(),
                    full_name=(full_name.value or "").strip(),
                    password=password.value or "",
                    role=Role(role.value),
                )

            dialog_buttons(
                dialog,
                "Create",
                "create-submit",
                lambda: self.apply(
                    dialog,
                    Permission.manage_users,
                    lambda s, a: users.create(s, a, build()),
                    "User created",
                    {"username": username, "email": email, "full_name": full_name, "password": password},
                    draft,
                ),
                on_cancel=draft.clear,
            )
        dialog.open()

    def open_edit(self, row: dict[str, Any]) -> None:
        """Open the dialog editing a user's email, name, role and active flag (role and flag are fixed on
        one's own account).
        """
        with ui.dialog() as dialog, dialog_card(f"Edit {row['username']}") as card:
            email = text_input("Email", "edit-email", value=row["email"], limit=email_addresses.MAX_LENGTH)
            full_name = text_input(
                "Full name",
                "edit-fullname",
                value=row["full_name"],
                limit=longest(users.Registration, "full_name"),
            )
            role = ui.select(labels.ROLE, value=row["role"], label="Role").props(
                'outlined dense data-testid="edit-role"'
            )
            role.classes("w-full")
            active = ui.switch("Active (may log in)", value=row["is_active"]).props(
                'data-testid="edit-active"'
            )
            if row["own_fixed"]:  # the service refuses both on one's own account: not offered
                role.disable()
                active.disable()
                ui.label(row["own_fixed"]).classes("text-caption text-grey-8").props(
                    'data-testid="edit-own-fixed"'
                )
            typed = {"email": email, "full_name": full_name, "role": role, "is_active": active}
            # What the dialog opened with: a field another admin changed since is refused under
            # it (`partial.three_way`), not put back to this copy; kept in the draft, so a dialog
            # restored after a reload still compares with it. A role stored as none of today's
            # is not compared (the dialog shows it as the viewer it reads as).
            started = {key: row[key] for key in ("email", "full_name", "is_active")}
            started |= {} if row["role_unread"] else {"role": row["role"]}
            draft = drafts.dialog_draft(f"{DRAFTS}{row['id']}", card, typed, started)
            active_error = ErrorLine("edit-active-error")
            active.on_value_change(lambda: setattr(active_error, "error", None))
            if not row["own_fixed"]:  # on one's own row Active is disabled: nothing to warn of
                ui.label("Deactivating ends the user's sessions at once.").classes(
                    "text-caption text-grey-7"
                ).props('data-testid="edit-active-note"')

            def edits() -> dict[str, Any]:
                form = {
                    "email": (email.value or "").strip(),
                    "full_name": (full_name.value or "").strip(),
                    "role": Role(role.value),
                    "is_active": bool(active.value),
                }
                # A role stored as none of today's is shown as the viewer it reads as: saved as
                # it is, it is the role sent (it replaces the stored one), not "Nothing changed".
                shown = {**row, "role": None} if row["role_unread"] else row
                return partial.edited(shown, form)

            async def save() -> None:
                if not edits():  # sent, the form as loaded was the API's 422 "nothing to change"
                    await close_saved(dialog, "Nothing changed", draft)
                    return
                await self.apply(
                    dialog,
                    Permission.manage_users,
                    lambda s, a: users.update_user(
                        s, a, row["id"], users.UserUpdate(**edits(), base=users.UserBase(**draft.held_base()))
                    ),
                    "User updated",
                    {"email": email, "full_name": full_name, "role": role, "is_active": active_error},
                    draft,
                )

            dialog_buttons(dialog, "Save", "edit-submit", save, on_cancel=draft.clear)
        dialog.open()

    def open_reset(self, row: dict[str, Any]) -> None:
        """Open the dialog setting a new password for a user."""
        with ui.dialog() as dialog, dialog_card(f"Reset the password of {row['username']}"):
            ui.label("Their sessions end; tell them the new password another way.").classes("text-grey-7")
            with form():
                password = password_input("New password", "reset-password")
                password_hint(users.MIN_PASSWORD)
            dialog_buttons(
                dialog,
                "Reset password",
                "reset-submit",
                lambda: self.apply(
                    dialog,
                    Permission.manage_users,
                    lambda s, a: users.reset_password(s, a, row["id"], password.value or ""),
                    "Password reset",
                    {"password": password, "new_password": password},
                ),
            )
        dialog.open()

    def open_delete(self, row: dict[str, Any]) -> None:
        """Open the dialog confirming a user's deletion."""
        with ui.dialog() as dialog, dialog_card(f"Delete {row['username']}?"):
            ui.label(
                "The account is removed for good. Scripts and runs it created stay, without an author; "
                "the audit log keeps its name. To only stop someone logging in, deactivate them instead."
            ).classes("text-grey-8")
            dialog_buttons(
                dialog,
                "Delete",
                "delete-confirm",
                lambda: self.apply(
                    dialog,
                    Permission.manage_users,
                    lambda s, a: users.delete(s, a, row["id"]),
                    "User deleted",
                ),
                color="negative",
            )
        dialog.open()


@protected_page("/users", Permission.manage_users, title="Users")
async def users_page(actor: Actor, search: str | None = None, page: int = 1) -> None:
    """The list, searched as the address says (`?search=`), on its `page` (past the last: the last)."""
    with frame(actor, "Users"):
        view = UsersView(search, page)
    await view.refresh()
    view.follow()
    view.reopen_drafts(DRAFTS, "user", Permission.manage_users, view.open_create, view.open_edit, view.row_of)
