"""`opscraft serve`: the web app and API for a team."""

from __future__ import annotations

import argparse

from opscraft.cli.common import Factory, check_database, with_data_dir
from opscraft.config import Settings


def cmd_serve(args: argparse.Namespace, settings: Settings) -> None:
    from opscraft.app import serve

    check_database(settings)
    serve(settings, args.host, args.port)


def register(sub: Factory) -> None:
    """Add `serve` to the CLI's subparsers (`sub` is their `add_parser`)."""
    serve = with_data_dir(sub("serve", help="run the web app and API"))
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port (default: 8080)")
    serve.set_defaults(func=cmd_serve)
