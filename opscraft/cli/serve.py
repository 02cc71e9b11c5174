"""`opscraft serve`: the web app and API for a team."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from opscraft.cli.common import (
    Factory,
    check_database,
    claim_worker,
    end_process,
    listen_address,
    one_line_errors,
    port_number,
    require_free_port,
    require_temp_dir,
    whole_number,
    with_data_dir,
)
from opscraft.healthcheck import SERVE_HOST, SERVE_PORT

if TYPE_CHECKING:
    from opscraft.config import Settings

MAX_SLOTS = 64


def cmd_serve(args: argparse.Namespace, settings: Settings) -> None:
    """`opscraft serve`: run the web server (UI and API) with `--workers` in-process run slots.

    Exits with one line when the temp directory is unusable, the data directory is claimed by another
    process, the database cannot be used, or the port is taken; these checks run before the app is
    imported. `--host`, `--port` and `--workers` (0..MAX_SLOTS) were checked by argparse.
    """
    if args.workers is not None:
        settings = settings.model_copy(update={"workers": args.workers})
    require_temp_dir()
    claim_worker(settings)
    check_database(settings)
    require_free_port(args.host, args.port)
    # Imported once the checks above passed: the app (NiceGUI, FastAPI, every route) is most of
    # the start's CPU, which a refused start (a taken port, a data directory in use, a database
    # that cannot be used) does not need to spend before its one line.
    from opscraft.app import serve

    with one_line_errors(settings):
        serve(settings, args.host, args.port)
    end_process()


def register(sub: Factory) -> None:
    """Add `serve` to the CLI's subparsers (`sub` is their `add_parser`)."""
    serve = with_data_dir(sub("serve", help="run the web app and API"))
    serve.add_argument(
        "--host",
        type=listen_address,
        default=SERVE_HOST,
        help=f"address to listen on (default: {SERVE_HOST})",
    )
    serve.add_argument("--port", type=port_number, default=SERVE_PORT, help=f"port (default: {SERVE_PORT})")
    serve.add_argument(
        "--workers",
        type=whole_number(0, MAX_SLOTS),
        help="execution slots of the worker in this process (default: OPSCRAFT_WORKERS, 4); "
        "0 serves the web app and API only, for `opscraft worker` processes",
    )
    serve.set_defaults(func=cmd_serve)
