"""`opscraft db upgrade`: apply the schema migrations (SQLite or PostgreSQL)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from opscraft.cli.common import Factory, run_with_database, with_data_dir

if TYPE_CHECKING:
    from opscraft.config import Settings


def cmd_db_upgrade(_args: argparse.Namespace, settings: Settings) -> None:
    """`opscraft db upgrade`: migrate the database to the head revision (`run_with_database`'s
    start does it, as every start does) and print the revision it is at.
    """
    from opscraft import runtime
    from opscraft.db.migrate import current_revision

    async def body() -> None:  # the start already migrated to the head
        print(f"database is at revision {await current_revision(runtime.current().db.engine)}")

    run_with_database(settings, body)


def register(sub: Factory) -> None:
    """Add the `db` command group to the CLI's subparsers (`sub` is their `add_parser`)."""
    db = sub("db", help="database maintenance").add_subparsers(dest="db_command", required=True)
    with_data_dir(db.add_parser("upgrade", help="apply schema migrations")).set_defaults(func=cmd_db_upgrade)
