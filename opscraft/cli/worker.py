"""`opscraft worker`: a process that runs executions only (no web server, no NiceGUI).

It opens the same database (and Redis, for the job queue, live output and cancels) as the web
processes, registers in `workers`, heartbeats, and runs what the queue hands it until SIGTERM or
SIGINT; then it takes no new job, gives running ones `OPSCRAFT_SHUTDOWN_GRACE_SECONDS`, kills
what is left (those end as `error`) and deregisters.
"""

from __future__ import annotations

import argparse
import logging
import re
import signal
import sys
from typing import TYPE_CHECKING

from opscraft.cli.common import (
    Factory,
    claim_worker,
    end_process,
    one_line_errors,
    require_temp_dir,
    whole_number,
    with_data_dir,
)

if TYPE_CHECKING:
    from opscraft.config import Settings

log = logging.getLogger(__name__)
RUNNERS = ("docker", "local")
MAX_SLOTS = 64
NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")


def worker_settings(args: argparse.Namespace, settings: Settings) -> Settings:
    """`settings` with the command line's `--slots` and `--name` applied (argparse checked them:
    1..MAX_SLOTS, `NAME_RE`); exits with one line when OPSCRAFT_WORKERS, which the configuration
    lets be 0 (a web process running none), gives a worker no slot and `--slots` is not given."""
    slots = settings.workers if args.slots is None else args.slots
    if slots < 1:  # the configuration keeps OPSCRAFT_WORKERS within 0..MAX_SLOTS
        sys.exit("opscraft: OPSCRAFT_WORKERS is 0: a worker needs at least 1 slot (give --slots N)")
    name = settings.worker_id if args.name is None else args.name
    return settings.model_copy(update={"workers": slots, "worker_id": name})


def worker_name(text: str) -> str:
    """`--name`'s type: a worker id as OPSCRAFT_WORKER_ID takes it (argparse names the option
    and exits 2 otherwise)."""
    if not NAME_RE.fullmatch(text):
        raise argparse.ArgumentTypeError("must be 1-64 ASCII letters, digits, '.', '_' or '-'")
    return text


def check_redis(settings: Settings) -> None:
    """Exit with one line when REDIS_URL is set and Redis does not answer: a worker takes every
    run from the job queue there, and one started with a mistyped REDIS_URL used to say "ready",
    show as `alive` with free slots in the Workers page and the API (its runners counted as
    available) and never run anything. Redis going away later is waited for (docs/deployment.md)."""
    if not settings.redis_url:
        return
    import redis

    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=10, socket_timeout=10)
    try:
        client.ping()
    except redis.RedisError as exc:  # the message names host and port, never the password
        sys.exit(
            f"opscraft: cannot reach Redis (REDIS_URL): {exc} A worker takes its runs from the job "
            "queue there: check REDIS_URL, or start Redis first"
        )
    finally:
        client.close()


def cmd_worker(args: argparse.Namespace, settings: Settings) -> None:
    """`opscraft worker`: run a standalone worker taking runs from the Redis queue (optionally only one
    runner); exits with one line when Redis, the temp directory or the data directory cannot be used.
    """
    settings = worker_settings(args, settings)
    check_redis(settings)
    require_temp_dir()
    claim_worker(settings)
    runners = frozenset([args.runner]) if args.runner else None
    import asyncio  # here, as every command's imports: `--help` and `--version` need none

    with one_line_errors(settings):
        asyncio.run(_run(settings, runners))
    end_process()


async def _run(settings: Settings, runners: frozenset[str] | None) -> None:
    import asyncio

    from opscraft import collector, lifecycle

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    rt = await lifecycle.start(settings, worker=True, runners=runners, signing="require")
    assert rt.worker is not None
    from opscraft.execution import transport  # imported by the start, once its checks passed

    missing = transport.limitations(settings, runs_here=True)
    if missing:
        log.warning(missing)
    collector.settle()
    log.info(
        "worker %s ready: %d slot(s), runners %s",
        rt.worker.worker_id,
        settings.workers,
        ", ".join(rt.worker.offered) or "none (it can run nothing: see above)",
    )
    worker_id = rt.worker.worker_id
    try:
        await stop.wait()
        log.info(
            "worker %s stopping: no new jobs; running ones get %.0f s",
            worker_id,
            settings.shutdown_grace_seconds,
        )
    finally:
        await lifecycle.stop()
    # The last line of a clean stop: the runs ended (or were stopped), the worker shows `stopped`.
    log.info("worker %s stopped", worker_id)


def register(sub: Factory) -> None:
    """Add `worker` to the CLI's subparsers (`sub` is their `add_parser`)."""
    worker = with_data_dir(
        sub(
            "worker",
            help="run executions only (no web server): scale out with several of these",
            description=(
                "Runs executions taken from the job queue of the installation (DATABASE_URL and, "
                "for workers on other machines, REDIS_URL). Stops on SIGTERM/SIGINT after a grace "
                "period for running jobs (OPSCRAFT_SHUTDOWN_GRACE_SECONDS)."
            ),
        )
    )
    worker.add_argument(
        "--slots", type=whole_number(1, MAX_SLOTS), help="runs at once (default: OPSCRAFT_WORKERS, 4)"
    )
    worker.add_argument(
        "--runner", choices=RUNNERS, help="offer only this runner (default: every available one)"
    )
    worker.add_argument(
        "--name",
        type=worker_name,
        help="worker id in `workers` (default: OPSCRAFT_WORKER_ID or one kept in the data dir)",
    )
    worker.set_defaults(func=cmd_worker)
