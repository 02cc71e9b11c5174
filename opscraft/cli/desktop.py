"""`opscraft desktop`: the app in a native window for one operator (docs/desktop.md)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from opscraft.cli.common import (
    Factory,
    claim_worker,
    port_number,
    require_free_port,
    run_with_database,
    with_data_dir,
)

if TYPE_CHECKING:
    from opscraft.config import Settings


def cmd_desktop(args: argparse.Namespace, settings: Settings) -> None:
    """`opscraft desktop`: open the desktop window on a local server, with a local admin account.

    Logs into the data directory's `desktop.log` too (`desktop/log_file.py`). Exits with a
    one-line message, also written there and naming that file, when the GUI toolkit is missing,
    the data directory is in use by another process, the port given is taken, or the local admin
    cannot be made (a ServiceError).
    """
    from opscraft.desktop import log_file

    log_file.start(settings.data_dir, settings.log_format)
    try:
        _launch(args, settings)
    except SystemExit as refused:
        if isinstance(refused.code, str):
            raise SystemExit(log_file.refusal(refused.code)) from None
        raise


def _launch(args: argparse.Namespace, settings: Settings) -> None:
    from opscraft.desktop import launch, toolkit

    problem = toolkit.problem()
    if problem:
        sys.exit(problem)
    toolkit.prepare_environment()
    claim_worker(settings)  # before the window: a second launch on the same data says so and ends
    if args.port is not None:  # a taken port is one line, not a window left saying "starting"
        require_free_port(launch.HOST, args.port)

    async def ensure_local_admin() -> None:  # before the port opens: no stranger can claim /setup
        from opscraft import runtime
        from opscraft.services import desktop
        from opscraft.services.errors import ServiceError

        async with runtime.current().db.session() as session:
            try:
                await desktop.local_admin(session)
            except ServiceError as exc:
                sys.exit(f"opscraft: {exc.message}")

    launch.open_window(settings, args.port, prepare=lambda: run_with_database(settings, ensure_local_admin))


def register(sub: Factory) -> None:
    """Add `desktop` to the CLI's subparsers (`sub` is their `add_parser`)."""
    desktop = with_data_dir(sub("desktop", help="run in a native desktop window (pywebview)"))
    desktop.add_argument(
        "--port", type=port_number, default=None, help="port on 127.0.0.1 (default: a free one)"
    )
    desktop.set_defaults(func=cmd_desktop)
