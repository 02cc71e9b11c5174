"""`python -m opscraft.healthcheck`: the container image's HEALTHCHECK (Dockerfile).

A health check runs beside the container's process and does not see its command line, so the
fixed `http://127.0.0.1:8080/api/v1/health` the image checked before called a server started
with `--port 9000` unhealthy, and so was every `opscraft worker` container made from the image,
which has no HTTP port at all (an orchestrator that replaces unhealthy containers would replace
them for ever). This reads what the container runs from its first process (`/proc/1/cmdline`:
the command itself, or behind `docker run --init`): for `opscraft serve`, it asks that server's
`/api/v1/health` at its `--host` and `--port` and is healthy on a 200; for another command
(`worker`, whose liveness is its heartbeat: `GET /api/v1/workers`, the Workers page,
`/metrics`), it is healthy. Exit status 0 (healthy) or 1, with one line.

Standard library only, and nothing else of OpsCraft imported: it runs every 30 s beside the
server, and importing the CLI (pydantic, SQLAlchemy) took seconds on a busy machine, longer
than the check's 5 s timeout.
"""

from __future__ import annotations

import argparse
import http.client
import sys
from pathlib import Path

PROCESS_ONE = Path("/proc/1/cmdline")
#: `opscraft serve`'s defaults (opscraft/cli/serve.py uses these).
SERVE_HOST = "127.0.0.1"
SERVE_PORT = 8080
HEALTH_PATH = "/api/v1/health"
TIMEOUT_SECONDS = 4.0  # below the Dockerfile's `HEALTHCHECK --timeout=5s`
#: A server listening on every address is asked on loopback.
WILDCARDS = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}


def opscraft_arguments(cmdline: list[str]) -> list[str] | None:
    """The arguments after `opscraft` (the console script, or the module of `python -m opscraft`)
    in a command line, or None when it does not run OpsCraft: `['/opt/venv/bin/python',
    '/opt/venv/bin/opscraft', 'serve', '--port', '9000']` -> `['serve', '--port', '9000']`."""
    for index, word in enumerate(cmdline):
        if Path(word).name == "opscraft":
            return cmdline[index + 1 :]
    return None


def served_address(arguments: list[str]) -> tuple[str, int] | None:
    """(host to ask, port) of the `opscraft serve` these arguments start; None for another
    command. Reads `--host` and `--port` as `opscraft serve` does (argparse, abbreviations too)."""
    if not arguments or arguments[0] != "serve":
        return None
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--host", default=SERVE_HOST)
    parser.add_argument("--port", type=int, default=SERVE_PORT)
    options, _ = parser.parse_known_args(arguments[1:])
    return WILDCARDS.get(options.host, options.host), options.port


def check(cmdline: list[str]) -> str:
    """One line saying why the container running `cmdline` is healthy; raises `OSError`,
    `http.client.HTTPException` or `ValueError` saying why it is not."""
    arguments = opscraft_arguments(cmdline)
    if arguments is None:
        raise ValueError(f"the container's first process is not opscraft: {' '.join(cmdline)}")
    address = served_address(arguments)
    if address is None:
        return f"healthy: `opscraft {' '.join(arguments[:1])}` has no HTTP port (a worker: its heartbeat)"
    host, port = address
    connection = http.client.HTTPConnection(host, port, timeout=TIMEOUT_SECONDS)
    try:
        connection.request("GET", HEALTH_PATH)
        status = connection.getresponse().status
    finally:
        connection.close()
    if status != 200:
        raise ValueError(f"http://{host}:{port}{HEALTH_PATH} answered {status}")
    return f"healthy: http://{host}:{port}{HEALTH_PATH}"


def main() -> None:
    """Check the container's first process; exit 0 (healthy) or 1, with one line."""
    try:
        cmdline = [word for word in PROCESS_ONE.read_bytes().decode(errors="replace").split("\0") if word]
        print(f"opscraft: {check(cmdline)}")
    except (OSError, ValueError, http.client.HTTPException) as exc:
        sys.exit(f"opscraft: unhealthy: {exc}")


if __name__ == "__main__":
    main()
