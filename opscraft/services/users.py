"""Accounts: registration, administration and self-service password change."""

from __future__ import annotations

import asyncio
import re
import unicodedata
from typing import Annotated, Any

from pydantic import AfterValidator, ConfigDict, Field, ValidationInfo, field_validator
from sqlalchemy import func, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from opscraft.db import stored_shapes
from opscraft.db.models import AppSetting, Role, User
from opscraft.db.types import utcnow
from opscraft.security.passwords import hash_password, normal_form, verify_password
from opscraft.services import (
    api_tokens,
    app_settings,
    approvals,
    audit,
    auth,
    conflicts,
    email_addresses,
    like,
    names,
    partial,
)
from opscraft.services.actor import Actor
from opscraft.services.bodies import Body
from opscraft.services.errors import Conflict, Forbidden, Invalid, NotFound, Problems, Unauthorized
from opscraft.services.invisible import OptionalLabel, check_filters
from opscraft.services.permissions import Permission, require
from opscraft.services.storable import Text, limited

USERNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{2,63}$")
MIN_PASSWORD = 8
MAX_PASSWORD = 256
BLANK_PASSWORD = "must not be only spaces or other blank characters"
# Characters of the list's `search` filter: the longest username (64), full name (200) or email
# (254, email-validator's bound) pasted whole into the search box finds its user (it was 100).
MAX_SEARCH = 254


def _plain_form(email: str) -> str:
    """An address in its NFKC form only: `admin@example.com` typed in full-width letters (U+FF41...)
    was a second account beside `admin@example.com`, the two looking alike in every list. The domain already
    comes back in that form (IDNA); the part before the `@` did not."""
    if unicodedata.normalize("NFKC", email) != email:
        raise ValueError(
            "must be written in plain characters: full-width letters and other compatibility "
            "forms (U+FF41 for a, the ligature U+FB01 for fi) make one address look like another"
        )
    return email


Email = Annotated[
    str,
    AfterValidator(email_addresses.checked),
    AfterValidator(_plain_form),
    Field(json_schema_extra={"format": "email"}),
]
"""An email address as accounts store it: valid and within RFC 5321's lengths, read once
(`email_addresses.checked`: "must be an email address: ..."), in its plain (NFKC) form."""


class Registration(Body):
    """A self-registration (`POST /api/v1/auth/register`, the set-up page): the seed's body. No
    role: the first user becomes admin, later ones viewers (`register`); a `role` key is refused
    like any unknown key."""

    username: str = Field(
        min_length=3,
        max_length=64,
        examples=["john_doe"],
        json_schema_extra={"pattern": USERNAME_RE.pattern},
        description="Unique, ignoring case",
    )
    email: Email = Field(examples=["john@example.com"], description="Unique, ignoring case")
    password: Text = Field(
        min_length=MIN_PASSWORD,
        max_length=MAX_PASSWORD,
        examples=["SecurePass123"],
        description="Must differ from the username",
    )
    full_name: OptionalLabel = Field(default="", max_length=200, examples=["John Doe"])

    @field_validator("username", mode="before")
    @classmethod
    def _trimmed(cls, value: Any) -> Any:
        """Surrounding whitespace is dropped, as from the email and the full name, and as at
        sign-in: ` bob ` is `bob` in the API as in the browser's forms (`names.trimmed`)."""
        return names.trimmed(value)

    @field_validator("username")
    @classmethod
    def _username(cls, value: str) -> str:
        if not USERNAME_RE.fullmatch(value):
            raise ValueError(
                "must be 3-64 characters: ASCII letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
        return value

    @field_validator("password")
    @classmethod
    def _not_the_username(cls, value: str, info: ValidationInfo) -> str:
        """Checked with the other fields (the username when it is valid), so that a form shows it
        with their problems; `check_password_rules` states the same rules for later changes."""
        if value.isspace():
            raise ValueError(BLANK_PASSWORD)
        username = info.data.get("username")
        if username and value.lower() == username.lower():
            raise ValueError("must not be the same as the username")
        return value


class UserCreate(Registration):
    """An account an admin creates (`POST /api/v1/users`), with its role."""

    role: Role = Role.viewer


class ProfileBase(Body):
    """What the email and full name held when an edit started (`ProfileUpdate.base`), as `GET`
    returned them; a field left out is not checked."""

    email: Text = ""
    full_name: Text = ""


class UserBase(ProfileBase):
    """What an account held when an admin's edit started (`UserUpdate.base`), as `GET` returned
    it; a field left out is not checked."""

    role: Role = Role.viewer
    is_active: bool = True


class UserUpdate(Body):
    """An admin's change of a user (at least one field); the email must stay unique ignoring case.
    `base`: what the edit started from, so that two admins changing the same field of one user do
    not silently undo each other."""

    model_config = ConfigDict(json_schema_extra=partial.at_least_one_field)

    email: Email | None = Field(default=None, description="Unique, ignoring case")
    full_name: limited(OptionalLabel, 200) | None = None
    role: Role | None = None
    is_active: bool | None = None
    base: UserBase | None = Field(default=None, description=partial.BASE_DESCRIPTION)


class ProfileUpdate(Body):
    """What users change of their own account (`PUT /api/v1/auth/me`, the Profile page): the seed's
    self-service "profile management". Role and active state stay an admin's (`UserUpdate`).
    `base` as in `UserUpdate`."""

    model_config = ConfigDict(json_schema_extra=partial.at_least_one_field)

    email: Email | None = Field(default=None, description="Unique, ignoring case")
    full_name: limited(OptionalLabel, 200) | None = None
    base: ProfileBase | None = Field(default=None, description=partial.BASE_DESCRIPTION)


def password_problems(password: str, username: str, field: str = "password") -> list[dict[str, str]]:
    """Every rule `password` breaks (length, only blank characters, the username), as error
    details naming `field`. Blank characters are those `str.isspace` knows (spaces, tabs, line
    breaks, no-break spaces): eight spaces met the length rule and were accepted."""
    problems = []
    if len(password) < MIN_PASSWORD:
        problems.append(
            {"field": field, "message": f"must be at least {MIN_PASSWORD} characters, not {len(password)}"}
        )
    elif password.isspace():
        problems.append({"field": field, "message": BLANK_PASSWORD})
    if len(password) > MAX_PASSWORD:
        problems.append(
            {"field": field, "message": f"must be at most {MAX_PASSWORD} characters, not {len(password)}"}
        )
    if password.lower() == username.lower():
        problems.append({"field": field, "message": "must not be the same as the username"})
    return problems


def check_password_rules(password: str, username: str, field: str = "password") -> None:
    """`Invalid` (422) naming `field` (the body's key for the password) with each rule
    `password` breaks (`password_problems`)."""
    problems = password_problems(password, username, field)
    if problems:
        words = "; ".join(p["message"] for p in problems)
        raise Invalid(f"{field}: {words}", details=problems)


async def count_users(session: AsyncSession) -> int:
    """How many user accounts exist (active or not)."""
    return int((await session.exec(select(func.count()).select_from(User))).one())


LAST_ADMIN = "this is the last active admin: make another user admin first"
_ACTIVE_ADMINS = select(User.id).where(User.role == Role.admin, col(User.is_active)).order_by(col(User.id))


async def _count_active_admins(session: AsyncSession) -> int:
    stmt = select(func.count()).select_from(User).where(User.role == Role.admin, col(User.is_active))
    return int((await session.exec(stmt)).one())


async def _lock_admins(session: AsyncSession) -> None:
    """Make changes that may remove an admin take turns, before the caller's first write.

    PostgreSQL: lock the active admins' rows (`FOR UPDATE`, by id: every such change locks in
    one order), so a second change waits for the first to commit and then sees it. SQLite has
    one writer at a time (`db.write_gate`): there the caller's own write is the turn, and
    `_keep_an_admin` reads after it."""
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        await session.exec(_ACTIVE_ADMINS.with_for_update())


async def _keep_an_admin(session: AsyncSession, actor: Actor) -> None:
    """After a flushed change that may remove an admin (in `_lock_admins`'s turn): `Conflict`
    (409) when no active admin would be left, `Forbidden` when the acting admin lost that role
    meanwhile; both roll the change back. Two admins demoting, deactivating or deleting each
    other at once used to both succeed (each counted two admins), leaving none."""
    left = set((await session.exec(_ACTIVE_ADMINS)).all())
    if left and actor.user_id in left:
        return
    await session.rollback()
    if not left:
        raise Conflict(LAST_ADMIN)
    raise Forbidden("your admin role was removed a moment ago: you may no longer manage users")


async def _insert(session: AsyncSession, data: UserCreate) -> User:
    """A new user from `data`, flushed. `Invalid` naming `password` for one the rules refuse,
    `Conflict` (409, field `username`) for a name taken (ignoring case). The password is hashed
    before anything is written: a caller's writes come after this (no outside work under a
    write turn: `services.ahead`)."""
    check_password_rules(data.password, data.username)
    taken = select(User.id).where(func.lower(User.username) == data.username.lower())
    if (await session.exec(taken)).first() is not None:
        raise Conflict(
            "a user with this username already exists (usernames ignore case)",
            details=[{"field": "username", "message": "already taken (usernames ignore case)"}],
        )
    user = User(
        username=data.username,
        email=str(data.email).lower(),
        full_name=data.full_name,
        hashed_password=await asyncio.to_thread(hash_password, data.password),
        role=data.role,
    )
    session.add(user)
    await conflicts.flush(session)
    return user


FIRST_ADMIN_CLAIM = "first_admin_claimed"


async def _claim_first_admin(session: AsyncSession) -> None:
    """Of two registrations racing to be the first, only one may insert this primary key."""
    session.add(AppSetting(key=FIRST_ADMIN_CLAIM, value=True))
    message = "another account became the administrator a moment ago: log in, or ask them for an account"
    await conflicts.flush(session, {"app_settings.key": message})


async def register(session: AsyncSession, actor: Actor, data: Registration) -> User:
    """Self-registration: the first user becomes admin; later ones (viewers) only when an admin
    opened it. Each attempt counts against the auth rate limits (`auth.check_auth_rate`,
    `RateLimited` 429), from the API and the first-administrator page alike."""
    await auth.check_auth_rate(actor.client_ip, data.username)
    first = await count_users(session) == 0
    if not first and not await app_settings.get(session, "registration_open"):
        raise Forbidden("self-registration is closed: ask an administrator to create your account")
    role = Role.admin if first else Role.viewer
    # The password is hashed (argon2, seconds under load) before the first write: the claim
    # after it, in the same transaction, still lets one first registration of two through.
    user = await _insert(session, UserCreate.model_construct(**dict(data), role=role))
    if first:
        await _claim_first_admin(session)
    audit.record(
        session, Actor(user, actor.client_ip), "user.register", "user", user.id, role=user.role, first=first
    )
    await session.commit()
    return user


async def create(session: AsyncSession, actor: Actor, data: UserCreate) -> User:
    """Create a user as an admin (audited as `user.create`, committed); needs manage_users.

    Raises Forbidden (403) without the permission, Invalid (422) for a refused value, Conflict (409) for a
    taken username or email.
    """
    require(actor.user, Permission.manage_users)
    user = await _insert(session, data)
    audit.record(session, actor, "user.create", "user", user.id, username=user.username, role=user.role)
    await session.commit()
    return user


async def bootstrap(session: AsyncSession, data: UserCreate, *, actor_name: str = "cli") -> User:
    """Create a user without an actor (the CLI, the desktop launch): used for local set-up."""
    user = await _insert(session, data)
    audit.record(session, Actor(None), "user.create", "user", user.id, actor_name=actor_name, role=user.role)
    await session.commit()
    return user


async def get(session: AsyncSession, actor: Actor, user_id: int) -> User:
    """A user by id: one's own account, or any with manage_users.

    Raises Forbidden (403) for another user's account without manage_users, NotFound (404) for an unknown
    id.
    """
    if actor.user_id != user_id:
        require(actor.user, Permission.manage_users)
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound.gone("user")
    return user


async def list_users(
    session: AsyncSession, actor: Actor, *, search: str | None = None, skip: int = 0, limit: int = 50
) -> tuple[list[User], int]:
    """A page of users by username (ignoring case) whose username, email or full name holds
    `search` (any case, surrounding blanks dropped), and the total;
    `Invalid` naming `search` when it is too long or holds a control character."""
    require(actor.user, Permission.manage_users)
    check_filters(search=(search, MAX_SEARCH))
    search = like.trimmed(search)
    conditions = []
    if search:
        conditions.append(or_(*(like.holds(c, search) for c in (User.username, User.email, User.full_name))))
    total = (await session.exec(select(func.count()).select_from(User).where(*conditions))).one()
    rows = await session.exec(
        select(User).where(*conditions).order_by(*names.name_order(User.username)).offset(skip).limit(limit)
    )
    return list(rows.all()), int(total)


async def _revoke_sessions(session: AsyncSession, user: User) -> None:
    """End every JWT (access and refresh) and UI session of `user` (password change,
    deactivation, reset): all carry `token_version`, which moves on."""
    user.token_version += 1
    assert user.id is not None
    await auth.end_sign_ins(session, user.id)


# What an admin may not do to their own account (`update_user`, `delete`), by the field or action a
# form offers it under: the Users page disables those controls on the admin's own row with these
# reasons, rather than offer them and refuse (another admin can; the server keeps an admin).
OWN_ACCOUNT_REFUSALS = {
    "delete": "you cannot delete your own account: another admin can",
    "role": "you cannot remove your own admin role: another admin can",
    "is_active": "you cannot deactivate yourself: another admin can",
    "reset_password": (
        "you cannot reset your own password: change it in your profile, which asks for the "
        "current one (POST /api/v1/auth/change-password)"
    ),
}


async def update_user(session: AsyncSession, actor: Actor, user_id: int, data: UserUpdate) -> User:
    """Change a user's email, name, role or active flag as an admin; needs manage_users.

    Raises Invalid (422) when nothing is to change, Conflict (409) naming a field changed since the
    edit's `base` (nothing written), Forbidden (403) for demoting or deactivating one's own
    account, Conflict (409) when it would leave no active admin, NotFound (404) for an unknown id; the
    refusal names the field.
    """
    require(actor.user, Permission.manage_users)
    user = await get(session, actor, user_id)
    changes = data.model_dump(exclude_unset=True, exclude_none=True, exclude={"base"})
    if not changes:
        raise Invalid(
            "nothing to change: send at least one of email, full_name, role, is_active",
            details=[{"field": "body", "message": "send at least one of email, full_name, role, is_active"}],
        )
    changes = _against_base(user, changes, data.base, actor.user.id if actor.user else None)
    losing_admin = (
        user.role == Role.admin
        and user.is_active
        and (changes.get("role", Role.admin) != Role.admin or changes.get("is_active") is False)
    )
    if losing_admin:
        # The field the refusal names (role or is_active), so that a form shows it under that field.
        field = "role" if changes.get("role", Role.admin) != Role.admin else "is_active"
        if user.id == actor.user_id:
            message = OWN_ACCOUNT_REFUSALS[field]
            raise Forbidden(message, details=[{"field": field, "message": message}])
        if await _count_active_admins(session) <= 1:
            raise Conflict(LAST_ADMIN, details=[{"field": field, "message": LAST_ADMIN}])
        await _lock_admins(session)
    return await _apply(session, actor, user, changes, keep_an_admin=losing_admin)


async def update_profile(session: AsyncSession, actor: Actor, data: ProfileUpdate) -> User:
    """Change the acting user's own email and/or full name (any role). 422 when nothing is sent,
    409 naming `email` when another account has it, or a field changed since the edit's `base`;
    audited as `user.update` like an admin's edit."""
    if actor.user is None:
        raise Unauthorized("authentication required")
    user = await session.get(User, actor.user.id)
    if user is None:
        raise NotFound.gone("user")
    changes = data.model_dump(exclude_unset=True, exclude_none=True, exclude={"base"})
    if not changes:
        raise Invalid(
            "nothing to change: send email or full_name",
            details=[{"field": "body", "message": "send email or full_name"}],
        )
    return await _apply(session, actor, user, _against_base(user, changes, data.base, actor.user.id))


def _against_base(
    user: User, changes: dict[str, Any], base: ProfileBase | None, editor: int | None
) -> dict[str, Any]:
    """`changes` (field -> new value) checked against the edit's `base` (`partial.three_way`): a
    field sent as it started is dropped (a change made meanwhile stays), a field changed
    meanwhile to another value is a `Conflict` (409) naming it (`editor`: the id of the user
    editing). Emails compare ignoring case, as they are stored lower-cased (`_apply`)."""
    if base is None:
        return changes
    started = base.model_dump(exclude_unset=True)
    proposed = dict(changes)
    for fields in (started, proposed):
        if isinstance(fields.get("email"), str):
            fields["email"] = fields["email"].lower()
    return partial.three_way(user, proposed, started, "the user", editor)


async def _apply(
    session: AsyncSession, actor: Actor, user: User, changes: dict[str, Any], *, keep_an_admin: bool = False
) -> User:
    """Write checked `changes` (field -> new value) to `user`, audit them, commit. With
    `keep_an_admin` (the change may remove an admin; `_lock_admins` called), the change is
    refused unless an active admin, the actor, is left (`_keep_an_admin`). Values equal to the
    stored ones are no change: when nothing differs, nothing is written or audited (a Save of an
    unchanged form, deactivating an inactive user, were each a `user.update` with `changes: {}`,
    the latter revoking again). A change of role or active flag that lets the user approve again
    queues the waiting runs their approval completes (`approvals.count_again`)."""
    if "email" in changes:
        changes["email"] = str(changes["email"]).lower()
    before = {key: getattr(user, key) for key in changes}
    changes = stored_shapes.changed(user, changes)
    if not changes:
        return user
    for key, value in changes.items():
        setattr(user, key, value)
    user.updated_at = utcnow()
    # Before any other statement, which would autoflush the change outside this translation.
    await conflicts.flush(session)
    if keep_an_admin:
        await _keep_an_admin(session, actor)
    revoked: dict[str, int] = {}
    if changes.get("is_active") is False:
        await _revoke_sessions(session, user)
        assert user.id is not None
        revoked["api_tokens_revoked"] = await api_tokens.revoke_all_of(session, user.id)
    audit.record(
        session,
        actor,
        "user.update",
        "user",
        user.id,
        changes={k: {"from": str(before[k]), "to": str(v)} for k, v in changes.items()},
        **revoked,
    )
    restored = (
        await approvals.count_again(session, actor, user) if {"role", "is_active"} & set(changes) else []
    )
    await session.commit()
    approvals.enqueue(restored)
    return user


async def reset_password(session: AsyncSession, actor: Actor, user_id: int, new_password: str) -> None:
    """Set `user_id`'s password (admins) and end every credential the old one could have
    produced (`_replace_password`). `Invalid` (422) for a password the rules refuse; `Forbidden`
    (403) for the acting admin's own account: a stolen access token must not be enough to take
    the account over, so one's own password is changed with the current one
    (`change_password`)."""
    require(actor.user, Permission.manage_users)
    if user_id == actor.user_id:
        raise Forbidden(OWN_ACCOUNT_REFUSALS["reset_password"])
    user = await get(session, actor, user_id)
    await _replace_password(session, user, new_password, actor)


async def recover(
    session: AsyncSession, username: str, new_password: str, *, actor_name: str = "cli"
) -> User:
    """Set the password of the account `username` (any case) from the machine itself (`opscraft
    user reset-password`): the way back in for an admin who lost theirs, where no admin is left
    to reset it. Audited as `user.reset_password` by `actor_name`. `NotFound` for an unknown
    username, `Invalid` naming `new_password` for a password the rules refuse."""
    by_name = select(User).where(func.lower(User.username) == username.strip().lower())
    user = (await session.exec(by_name)).first()
    if user is None:
        raise NotFound(f"no user named {username.strip()!r}")
    await _replace_password(session, user, new_password, Actor(None), actor_name=actor_name)
    return user


async def _replace_password(
    session: AsyncSession, user: User, new_password: str, actor: Actor, *, actor_name: str | None = None
) -> None:
    """Check `new_password` against the rules, store its hash, end every credential the old one
    could have produced (sessions and JWTs, `_revoke_sessions`; personal API tokens,
    `api_tokens.revoke_all_of`), audit `user.reset_password` and commit."""
    check_password_rules(new_password, user.username, "new_password")
    user.hashed_password = await asyncio.to_thread(hash_password, new_password)
    user.updated_at = utcnow()
    await _revoke_sessions(session, user)
    assert user.id is not None
    revoked = await api_tokens.revoke_all_of(session, user.id)
    audit.record(
        session,
        actor,
        "user.reset_password",
        "user",
        user.id,
        actor_name=actor_name,
        api_tokens_revoked=revoked,
    )
    await session.commit()


async def change_password(
    session: AsyncSession, actor: Actor, current: str, new_password: str, repeated: str | None = None
) -> None:
    """Change the acting user's own password and end all their sessions. Every problem is named
    in one `Invalid` (422), so a form shows them all at once: a wrong `current_password`, each
    rule the `new_password` breaks (`password_problems`), one equal to the current one, and,
    when a form sends it (`repeated`), a `repeat_password` that differs from the new one.

    Checking `current` answers whether a password is right, as a login does: each attempt counts
    against the same limits (`auth.check_auth_rate`: per client IP, per username and IP, per
    username), `RateLimited` (429) past them. Without that, whoever held a signed-in browser or
    an access token could guess the password without limit here (the Profile page had none).
    For the same reason a wrong `current` is audited, as a failed login is: `user.change_password_failed`
    with the reason `bad password` (committed before the 422); the other problems are typing
    mistakes of someone who knows the password and are not."""
    user = actor.user
    if user is None:
        raise Unauthorized("authentication required")
    user = await session.get(User, user.id)
    if user is None:
        raise NotFound.gone("user")
    await auth.check_auth_rate(actor.client_ip, user.username)
    problems = Problems()
    wrong_current = not await asyncio.to_thread(verify_password, current, user.hashed_password)
    if wrong_current:
        problems.add("current_password", "incorrect")
        audit.record(session, actor, "user.change_password_failed", "user", user.id, reason="bad password")
        await session.commit()
    elif normal_form(current) == normal_form(new_password):
        problems.add("new_password", "must differ from the current one")
    problems.details.extend(password_problems(new_password, user.username, "new_password"))
    if repeated is not None and repeated != new_password:
        problems.add("repeat_password", "differs from the new password: type the same password twice")
    problems.raise_if_any()
    user.hashed_password = await asyncio.to_thread(hash_password, new_password)
    user.updated_at = utcnow()
    await _revoke_sessions(session, user)
    audit.record(session, actor, "user.change_password", "user", user.id)
    await session.commit()


async def delete(session: AsyncSession, actor: Actor, user_id: int) -> None:
    """Delete a user as an admin (audited as `user.delete`, committed); their scripts and runs stay, without
    an author.

    Raises Forbidden (403) without manage_users or for one's own account, Conflict (409) for the last active
    admin, NotFound (404) for an unknown id.
    """
    require(actor.user, Permission.manage_users)
    if user_id == actor.user_id:
        raise Forbidden(OWN_ACCOUNT_REFUSALS["delete"])
    user = await get(session, actor, user_id)
    losing_admin = user.role == Role.admin and user.is_active
    if losing_admin:
        if await _count_active_admins(session) <= 1:
            raise Conflict(LAST_ADMIN)
        await _lock_admins(session)
    username = user.username
    await session.delete(user)
    if losing_admin:
        await session.flush()
        await _keep_an_admin(session, actor)
    audit.record(session, actor, "user.delete", "user", user_id, username=username)
    await session.commit()
