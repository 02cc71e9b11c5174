"""The `opscraft` command line: one module per command group, each with `register(add_parser)`.

`serve` (web app and API), `desktop` (native window), `user create`, `db upgrade` and `secrets ...`;
a new group is a module here with a `register` function, listed in `GROUPS`.
"""

from __future__ import annotations

import argparse
import logging
import sys

from opscraft import __version__
from opscraft.cli import db, desktop, secrets, serve, users
from opscraft.cli.common import settings_for
from opscraft.config import ConfigError

#: Command groups in the order `--help` lists them.
GROUPS = (serve, desktop, users, db, secrets)
#: Long-running commands log at the configured level; one-shot commands only warnings.
SERVER_COMMANDS = frozenset({"serve", "desktop"})


def build_parser() -> argparse.ArgumentParser:
    """The whole argument parser; each parsed command carries its handler as `func(args, settings)`."""
    parser = argparse.ArgumentParser(prog="opscraft", description="Run infrastructure automation scripts.")
    parser.add_argument("--version", action="version", version=f"opscraft {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.register(sub.add_parser)
    return parser


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `opscraft` console script; exits with one line on a configuration error."""
    args = build_parser().parse_args(argv)
    try:
        settings = settings_for(args)
    except ConfigError as exc:
        sys.exit(f"opscraft: configuration error: {exc}")
    level = settings.log_level if args.command in SERVER_COMMANDS else "WARNING"
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args.func(args, settings)
