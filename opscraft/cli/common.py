"""What every CLI command shares: settings, one-line errors, and running a body inside a runtime."""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import os
import socket
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from opscraft.data_dir import write_failure

if TYPE_CHECKING:  # imported where used: `--help`, `--version` and a mistyped argument need none
    from opscraft.config import Settings

#: `add_parser` of the top-level subparsers (or of a command group's subparsers).
Factory = Callable[..., argparse.ArgumentParser]


def with_data_dir(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the `--data-dir` option (overrides OPSCRAFT_DATA_DIR) to a command's parser."""
    parser.add_argument(
        "--data-dir",
        type=directory_path,
        help="data directory (default: OPSCRAFT_DATA_DIR or the user data dir)",
    )
    return parser


def directory_path(text: str) -> Path:
    """`--data-dir`'s type: a path (argparse names the option and exits 2 when it is empty: an
    empty `--data-dir ""` was ignored and the default data directory used, with no word)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must name a directory (it is empty)")
    return Path(text)


def port_number(text: str) -> int:
    """`--port`'s type: a TCP port, 1-65535 (argparse says what is wrong and exits 2). The kernel
    takes a port modulo 65536: `--port 99999` served on 34463 while saying 99999."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1-65535)") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number (1-65535)")
    return port


def whole_number(low: int, high: int) -> Callable[[str], int]:
    """An option's type: a whole number from `low` to `high` (argparse names the option, says
    the range in the words the configuration uses for the variable the option stands for, and
    exits 2). A number out of range was a line in the command's own words, exit 1."""

    def parse(text: str) -> int:
        try:
            number = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"must be a whole number from {low} to {high}; given {text!r}"
            ) from None
        if not low <= number <= high:
            raise argparse.ArgumentTypeError(f"must be from {low} to {high}; given {text!r}")
        return number

    return parse


def listen_address(text: str) -> str:
    """`--host`'s type: an address to listen on (argparse names the option and exits 2 when it
    is empty: `--host ""` was `cannot listen on :8080: Name or service not known`, exit 1)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must name an address to listen on (it is empty)")
    return text


def require_free_port(host: str, port: int) -> None:
    """Exit with one line when `host:port` cannot be listened on (in use, not allowed, no such
    address), before anything else starts; the server binds it moments later, as uvicorn does
    (SO_REUSEADDR), so a port in TIME_WAIT counts as free."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as exc:
        hint = ": choose another --port" if exc.errno == errno.EADDRINUSE else ""
        sys.exit(f"opscraft: cannot listen on {host}:{port}: {exc.strerror or exc}{hint}")


def require_temp_dir() -> None:
    """Exit with one line when no temporary directory is writable (`TMPDIR`, /tmp, /var/tmp,
    /usr/tmp, the working directory: Python's `tempfile` candidates). The script checks (ShellCheck,
    syntax checks) and runs write their files there: without one, every script save answered 500.
    A container started with `--read-only` has none unless given one (`--tmpfs /tmp`)."""
    try:
        tempfile.gettempdir()
    except FileNotFoundError as exc:
        sys.exit(
            f"opscraft: {exc.strerror}: set TMPDIR to a writable directory "
            "(a container started with --read-only: add --tmpfs /tmp)"
        )


def settings_for(args: argparse.Namespace) -> Settings:
    """The settings for a parsed command line; raises ConfigError (one line) when invalid, a
    data directory given with `--data-dir` named as that option."""
    from opscraft.config import load_settings  # pydantic-settings: 0.15 s of CPU `--help` spares

    data_dir = getattr(args, "data_dir", None)
    if data_dir is None:
        return load_settings()
    return load_settings(data_dir_named="--data-dir", OPSCRAFT_DATA_DIR=data_dir)


def database_error(settings: Settings, exc: Exception) -> str:
    """One line for a database that cannot be opened or migrated (no stack trace, no password);
    a full disk under it named with what to do (`unreachable.disk_full`: SQLite said only "disk
    I/O error", naming neither)."""
    from opscraft.db import unreachable

    url = settings.effective_database_url
    if unreachable.is_disk_full(exc, url):
        return f"opscraft: {unreachable.disk_full(url)}, then run the command again"
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    backend = "SQLite" if settings.is_sqlite else "PostgreSQL"
    return f"opscraft: cannot open the {backend} database: {reason[0] if reason else type(exc).__name__}"


@contextlib.contextmanager
def one_line_errors(settings: Settings) -> Iterator[None]:
    """Inside, a database that cannot be opened or migrated (an unreachable server, a bad file, a
    database a newer version migrated: `OSError`, `SQLAlchemyError`, `MigrationError`), a job queue
    file that cannot be opened (`QueueFileError`: damaged, a full disk) or a wrong setting
    (`ConfigError`: a bad master key, a worker id another live worker holds) exits the command
    with status 1 and one line (`database_error`, `opscraft: cannot open the job queue ...`,
    `opscraft: configuration error: ...`)."""
    # Here, not at the module's top: `--version`, `--help` and a mistyped argument end before
    # any command runs, without SQLAlchemy's import (most of a second of CPU).
    from sqlalchemy.exc import SQLAlchemyError

    from opscraft.config import ConfigError
    from opscraft.db.migration_error import MigrationError
    from opscraft.execution.queue_error import QueueFileError

    try:
        yield
    except (OSError, SQLAlchemyError, MigrationError) as exc:
        sys.exit(database_error(settings, exc))
    except QueueFileError as exc:
        sys.exit(f"opscraft: {exc}")
    except ConfigError as exc:
        sys.exit(f"opscraft: configuration error: {exc}")


def end_process(status: int = 0) -> NoReturn:
    """End a server or worker process whose shutdown is complete, now: flush the logs and the
    standard streams, then `os._exit(status)`, skipping the interpreter's teardown. That teardown
    (freeing the modules: NiceGUI, SQLAlchemy, the app) took 3-6 s of CPU on a busy machine after
    "Finished server process" in a container, where the process is PID 1 and uvicorn's re-raised
    SIGTERM is ignored (the kernel applies no default action to PID 1), so `docker stop`'s 10 s
    ran out (exit 137, SIGKILL); an idle `opscraft worker` spent 3.4 s of its stop in it. Nothing
    is left to do by then: the runtime stopped (`lifecycle.stop`) and every thread ended."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(status)


def run_with_database(settings: Settings, body: Callable[[], Awaitable[None]]) -> None:
    """Run a one-shot command's `body()` (`user create`, `db upgrade`, `secrets rotate-key`, the
    desktop's local admin) on the runtime `runtime.opened` gives, installed as `runtime.current()`:
    the database opened and migrated as every start does (a database that cannot be, refused the
    same way) and the vault opened with the master key; then closed. Nothing else starts: no job
    queue (no `queue.db`, no Redis), event bus, worker, run event dispatcher or scheduler, nor are
    their modules imported, which took a one-row command 0.7-0.9 s of CPU (docs/benchmarks.md,
    session 49). Exits with one line (`one_line_errors`) when the database cannot be opened, or
    written by `body`, or the configuration is wrong."""
    import asyncio  # here, as every command's imports: `--help` and `--version` need none

    from opscraft import runtime  # here: the desktop launch starts its window before this import

    async def _main() -> None:
        with one_line_errors(settings):
            rt = await runtime.opened(settings)
            runtime.install(rt)
            try:
                await body()
            finally:
                runtime.install(None)
                await runtime.close(rt)

    asyncio.run(_main())


def check_database(settings: Settings) -> None:
    """Open and migrate the database and check the master key before serving, so a bad
    DATABASE_URL or a wrong OPSCRAFT_MASTER_KEY is one clear line (exits 1)."""
    import asyncio

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

    with one_line_errors(settings):
        asyncio.run(_check())


def claim_worker(settings: Settings) -> None:
    """For a command that runs a worker (`settings.workers` above 0): hold its worker id for this
    process (`execution/identity_lock.py`) before any port or window opens; exits with one line
    when another process runs a worker with it on this data directory, whose runs this start
    would otherwise end."""
    if settings.workers <= 0:
        return
    from opscraft.execution import identity_lock

    try:
        identity_lock.claim(settings.data_dir, identity_lock.worker_identity(settings))
    except identity_lock.WorkerIdInUse as exc:
        sys.exit(f"opscraft: {exc}")
    except OSError as exc:
        sys.exit(f"opscraft: cannot write to the data directory {settings.data_dir}: {write_failure(exc)}")
