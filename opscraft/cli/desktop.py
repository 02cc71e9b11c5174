"""`opscraft desktop`: the app in a native window for one operator."""

from __future__ import annotations

import argparse
import sys

from opscraft.cli.common import Factory, check_database, with_data_dir
from opscraft.config import Settings


def cmd_desktop(args: argparse.Namespace, settings: Settings) -> None:
    from opscraft.app import serve

    try:
        import webview  # noqa: F401
    except ImportError:
        sys.exit("opscraft: the desktop window needs pywebview: pip install 'opscraft[desktop]'")
    check_database(settings)
    serve(settings, "127.0.0.1", args.port, native=True)


def register(sub: Factory) -> None:
    """Add `desktop` to the CLI's subparsers (`sub` is their `add_parser`)."""
    desktop = with_data_dir(sub("desktop", help="run in a native desktop window (pywebview)"))
    desktop.add_argument("--port", type=int, default=None, help="port (default: a free one)")
    desktop.set_defaults(func=cmd_desktop)
