"""`opscraft user create` and `opscraft user reset-password`: accounts from the command line
(the first admin of a server; the way back in for an admin who lost their password)."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import TYPE_CHECKING

from opscraft.cli.common import Factory, run_with_database, with_data_dir

if TYPE_CHECKING:
    from opscraft.config import Settings


def _read_password(confirm: bool = True) -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    password = getpass.getpass("Password: ")
    if confirm and getpass.getpass("Repeat password: ") != password:
        sys.exit("opscraft: passwords do not match")
    return password


def cmd_user_create(args: argparse.Namespace, settings: Settings) -> None:
    """`opscraft user create`: make a user with the password read from the terminal (or stdin) and print it.

    Exits with the field and message of a refused value (pydantic validation) or a ServiceError's message (a
    taken username or email...).
    """
    from pydantic import ValidationError

    from opscraft import runtime
    from opscraft.db.models import Role
    from opscraft.services import names, users
    from opscraft.services.errors import ServiceError, input_message

    password = _read_password()
    try:
        data = users.UserCreate(
            username=args.username,
            # from the name as the account takes it (` bob ` is `bob`), not as typed
            email=args.email or f"{names.trimmed(args.username)}@localhost.localdomain",
            full_name=args.full_name or "",
            password=password,
            role=Role(args.role),
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        sys.exit(f"opscraft: {'.'.join(str(p) for p in err['loc'])}: {input_message(err)}")

    async def body() -> None:
        async with runtime.current().db.session() as session:
            try:
                user = await users.bootstrap(session, data)
            except ServiceError as exc:
                sys.exit(f"opscraft: {exc.message}")
            print(f"created {user.role} {user.username!r} (id {user.id})")

    run_with_database(settings, body)


def cmd_user_reset_password(args: argparse.Namespace, settings: Settings) -> None:
    """`opscraft user reset-password`: replace a user's password (read from the terminal or stdin), ending
    its sessions and API tokens; exits with the message of a ServiceError (unknown user, refused
    password).
    """
    from opscraft import runtime
    from opscraft.services import users
    from opscraft.services.errors import ServiceError

    password = _read_password()

    async def body() -> None:
        async with runtime.current().db.session() as session:
            try:
                user = await users.recover(session, args.username, password)
            except ServiceError as exc:
                sys.exit(f"opscraft: {exc.message}")
            note = "" if user.is_active else " (the account is deactivated: an admin re-activates it)"
            print(f"password of {user.role} {user.username!r} replaced; its sessions and tokens ended{note}")

    run_with_database(settings, body)


def register(sub: Factory) -> None:
    """Add the `user` command group to the CLI's subparsers (`sub` is their `add_parser`)."""
    user = sub("user", help="manage users").add_subparsers(dest="user_command", required=True)
    create = with_data_dir(user.add_parser("create", help="create a user (password from prompt or stdin)"))
    create.add_argument("username")
    create.add_argument("--role", choices=["admin", "operator", "viewer"], default="viewer")
    create.add_argument("--email")
    create.add_argument("--full-name")
    create.set_defaults(func=cmd_user_create)
    reset = with_data_dir(
        user.add_parser(
            "reset-password",
            help="set a user's password (from prompt or stdin): for an admin who lost theirs",
        )
    )
    reset.add_argument("username")
    reset.set_defaults(func=cmd_user_reset_password)
