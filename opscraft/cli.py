"""The `opscraft` command line: serve, desktop, user create, db upgrade."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from opscraft import __version__, cli_secrets, lifecycle
from opscraft.config import ConfigError, Settings, load_settings


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    if getattr(args, "data_dir", None):
        overrides["OPSCRAFT_DATA_DIR"] = Path(args.data_dir)
    return load_settings(**overrides)


def _database_error(settings: Settings, exc: Exception) -> str:
    """One line for a database that cannot be opened or migrated (no stack trace, no password)."""
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    backend = "SQLite" if settings.is_sqlite else "PostgreSQL"
    return f"opscraft: cannot open the {backend} database: {reason[0] if reason else type(exc).__name__}"


def _run_with_runtime(settings: Settings, body: Callable[[], Awaitable[None]]) -> None:
    async def _main() -> None:
        try:
            await lifecycle.start(settings, engine=False)
        except (OSError, SQLAlchemyError) as exc:
            sys.exit(_database_error(settings, exc))
        except ConfigError as exc:
            sys.exit(f"opscraft: configuration error: {exc}")
        try:
            await body()
        finally:
            await lifecycle.stop()

    asyncio.run(_main())


def _check_database(settings: Settings) -> None:
    """Open and migrate the database and check the master key before serving, so a bad
    DATABASE_URL or a wrong OPSCRAFT_MASTER_KEY is one clear line."""
    from opscraft.db.engine import Database
    from opscraft.db.migrate import upgrade
    from opscraft.services import keyring

    async def _check() -> None:
        db = Database(settings.effective_database_url)
        try:
            await upgrade(db.engine)
            await keyring.open_vault(db, settings)
        finally:
            await db.dispose()

    try:
        asyncio.run(_check())
    except (OSError, SQLAlchemyError) as exc:
        sys.exit(_database_error(settings, exc))
    except ConfigError as exc:
        sys.exit(f"opscraft: configuration error: {exc}")


def cmd_serve(args: argparse.Namespace, settings: Settings) -> None:
    from opscraft.app import serve

    _check_database(settings)
    serve(settings, args.host, args.port)


def cmd_desktop(args: argparse.Namespace, settings: Settings) -> None:
    from opscraft.app import serve

    try:
        import webview  # noqa: F401
    except ImportError:
        sys.exit("opscraft: the desktop window needs pywebview: pip install 'opscraft[desktop]'")
    _check_database(settings)
    serve(settings, "127.0.0.1", args.port, native=True)


def _read_password(confirm: bool = True) -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    password = getpass.getpass("Password: ")
    if confirm and getpass.getpass("Repeat password: ") != password:
        sys.exit("opscraft: passwords do not match")
    return password


def cmd_user_create(args: argparse.Namespace, settings: Settings) -> None:
    from opscraft import runtime
    from opscraft.db.models import Role
    from opscraft.services import users
    from opscraft.services.errors import ServiceError

    password = _read_password()
    try:
        data = users.UserCreate(
            username=args.username,
            email=args.email or f"{args.username}@localhost.localdomain",
            full_name=args.full_name or "",
            password=password,
            role=Role(args.role),
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        sys.exit(f"opscraft: {'.'.join(str(p) for p in err['loc'])}: {err['msg']}")

    async def body() -> None:
        async with runtime.current().db.session() as session:
            try:
                user = await users.bootstrap(session, data)
            except ServiceError as exc:
                sys.exit(f"opscraft: {exc.message}")
            print(f"created {user.role} {user.username!r} (id {user.id})")

    _run_with_runtime(settings, body)


def cmd_db_upgrade(args: argparse.Namespace, settings: Settings) -> None:
    from opscraft import runtime
    from opscraft.db.migrate import current_revision

    async def body() -> None:
        print(f"database is at revision {await current_revision(runtime.current().db.engine)}")

    _run_with_runtime(settings, body)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="opscraft", description="Run infrastructure automation scripts.")
    parser.add_argument("--version", action="version", version=f"opscraft {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_data_dir(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--data-dir", help="data directory (default: OPSCRAFT_DATA_DIR or the user data dir)")
        return p

    serve = with_data_dir(sub.add_parser("serve", help="run the web app and API"))
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port (default: 8080)")
    serve.set_defaults(func=cmd_serve)

    desktop = with_data_dir(sub.add_parser("desktop", help="run in a native desktop window (pywebview)"))
    desktop.add_argument("--port", type=int, default=None, help="port (default: a free one)")
    desktop.set_defaults(func=cmd_desktop)

    user = sub.add_parser("user", help="manage users").add_subparsers(dest="user_command", required=True)
    create = with_data_dir(user.add_parser("create", help="create a user (password from prompt or stdin)"))
    create.add_argument("username")
    create.add_argument("--role", choices=["admin", "operator", "viewer"], default="viewer")
    create.add_argument("--email")
    create.add_argument("--full-name")
    create.set_defaults(func=cmd_user_create)

    db = sub.add_parser("db", help="database maintenance").add_subparsers(dest="db_command", required=True)
    with_data_dir(db.add_parser("upgrade", help="apply schema migrations")).set_defaults(func=cmd_db_upgrade)

    cli_secrets.register(sub.add_parser, with_data_dir)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        settings = _settings(args)
    except ConfigError as exc:
        sys.exit(f"opscraft: configuration error: {exc}")
    level = settings.log_level if args.command in {"serve", "desktop"} else "WARNING"
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args.func(args, settings)
