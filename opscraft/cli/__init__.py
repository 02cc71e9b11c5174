"""The `opscraft` command line: one module per command group, each with `register(add_parser)`.

`serve` (web app and API), `worker` (runs executions only), `desktop` (native window, the
default without arguments in a desktop session), `user create`, `db upgrade` and `secrets ...`;
a new group is a module here with a `register` function, listed in `GROUPS`.
"""

from __future__ import annotations

import argparse
import os
import sys

from opscraft import __version__, bootstrap, data_dir
from opscraft.cli import db, desktop, secrets, serve, users, worker
from opscraft.cli.common import settings_for

#: Command groups in the order `--help` lists them.
GROUPS = (serve, worker, desktop, users, db, secrets)
#: Long-running commands log at the configured level; one-shot commands only warnings.
SERVER_COMMANDS = frozenset({"serve", "worker", "desktop"})
#: The long options `opscraft` itself takes before a command.
TOP_OPTIONS = ("--help", "--version")
#: Exit status after Ctrl-C: 128 + SIGINT, as shells report a command the signal ended.
INTERRUPTED = 130


class CommandParser(argparse.ArgumentParser):
    """A command's parser (`serve`, `user create`, ...): a word it does not take ends the command
    line here, with this command's usage and `<prog>: error: unrecognized arguments: --bogus`
    (exit 2). argparse hands a subcommand's leftover words up to the top-level parser, which
    printed `opscraft`'s own usage for `opscraft serve --bogus`, naming no command."""

    def parse_known_args(  # type: ignore[override]
        self, args: list[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        """argparse's parse, then `error` (exit 2) for leftover words when this parser has no
        command group below it (a group's leftovers are its chosen command's, refused there); a
        group (`user`, `db`) refuses an option before its command first (`opscraft user --bogus`
        said `the following arguments are required: user_command`)."""
        if self._subparsers is not None:
            refuse_options_before_the_command(self, sys.argv[1:] if args is None else list(args))
        parsed, extras = super().parse_known_args(args, namespace)
        if extras and self._subparsers is None:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras


def build_parser() -> argparse.ArgumentParser:
    """The whole argument parser; each parsed command carries its handler as `func(args, settings)`."""
    parser = CommandParser(prog="opscraft", description="Run infrastructure automation scripts.")
    parser.add_argument("--version", action="version", version=f"opscraft {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=CommandParser)
    for group in GROUPS:
        group.register(sub.add_parser)
    return parser


def refuse_options_before_the_command(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    """Exit 2 with argparse's own wording when an option before the command is none of
    `opscraft`'s own (`-h`, `--help`, `--version`, or a prefix argparse accepts):
    `unrecognized arguments: --bogus`, and for a command's `--data-dir` that it goes after the
    command. argparse itself said `the following arguments are required: command` for
    `opscraft --bogus`, and for `opscraft --data-dir DIR serve` that DIR is no command."""
    for word in argv:
        option = word.split("=", 1)[0]
        if not option.startswith("-") or option in ("-", "--"):
            return
        if option == "-h" or (option.startswith("--") and any(o.startswith(option) for o in TOP_OPTIONS)):
            continue
        if option == "--data-dir":
            parser.error("argument --data-dir: goes after the command, e.g. opscraft serve --data-dir DIR")
        parser.error(f"unrecognized arguments: {word}")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `opscraft` console script (and of the packaged binary): without arguments
    in a desktop session it opens the desktop window. Exits with one line on a configuration error;
    Ctrl-C exits with status 130, a one-shot command saying `opscraft: interrupted` (no traceback).
    `--help`, `--version` and a mistyped argument end in `parse_args`, before the configuration
    (pydantic-settings) and the logging set-up are imported: what they print needs neither."""
    parser = build_parser()
    words = bootstrap.with_default_command(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(words)
    from opscraft import logs
    from opscraft.config import ConfigError

    os.umask(data_dir.PRIVATE_UMASK)  # the data directory's files are born private
    try:
        settings = settings_for(args)
    except ConfigError as exc:
        sys.exit(f"opscraft: configuration error: {exc}")
    server = args.command in SERVER_COMMANDS
    logs.configure(settings.log_level if server else "WARNING", settings.log_format)
    try:
        args.func(args, settings)
    except KeyboardInterrupt:  # Ctrl-C: what was running has stopped (a server has shut down)
        if not server:  # on a new line: the prompt or output the command was at stays whole
            print("\nopscraft: interrupted", file=sys.stderr)
        sys.exit(INTERRUPTED)
