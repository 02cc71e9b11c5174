"""`python -m opscraft ...` as a process of its own, without paying Python's start and OpsCraft's
imports for each command (about 1 s of CPU per command, 2-3 s for `serve`).

A fork server: one process (`python -m tests.cli_forks`) imports what the commands import
(`PRELOADED`), starting no thread and opening nothing, then forks a child per command. The child
is a fresh process as far as a command can tell: its own pid, environment, working directory and
standard streams (files: stdin holding what is typed in, stdout and stderr read back as text, as
`subprocess.run(..., text=True)` reads them), and it runs `opscraft/__main__.py` as
`python -m opscraft` does (`runpy`), exiting as the interpreter exits (a traceback and status 1
for an uncaught exception, `sys.exit`'s status or message). What is not the same: the modules are
already imported, so a command's own import-time work happened before its environment was set
(OpsCraft's settings are read when a command runs; but NiceGUI's `Storage` reads `NICEGUI_*`
when imported, so a forked `serve` that got as far as serving pages would keep its session
storages local whatever `REDIS_URL` says). Tests about the process itself (signals, terminals,
the interpreter's start) start real ones instead (`tests.cli_runs.opscraft`).

Protocol, one JSON object a line: the client writes `{"argv", "env", "cwd", "stdin", "stdout",
"stderr"}` (the last three: file paths), and `"code"` for `python -c code *argv`; the server
answers `{"pid": ...}` once the child is forked and `{"returncode": ...}` once it has ended
(`os.waitstatus_to_exitcode`: minus the signal for a child a signal ended).
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import runpy
import select
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

#: The modules `db upgrade`, `user ...`, `secrets ...`, `worker` and `serve` import before they
#: fail or finish in tests/test_cli.py (`python -X importtime -m opscraft ...`).
PRELOADED = (
    "opscraft.cli",
    "opscraft.config",
    "opscraft.logs",
    "opscraft.runtime",
    "opscraft.services.users",
    "opscraft.services.keyring",
    "opscraft.db.engine",
    "opscraft.engine_start",
    "opscraft.lifecycle",
    "opscraft.app",
    "opscraft.api",
    "nicegui",
    "aiosqlite",
)


def _child(request: dict[str, Any], channels: tuple[IO[str], IO[str]]) -> None:
    """In the forked child: the command's directory, environment and streams, then
    `python -m opscraft <argv>` (or `python -c <code> <argv>` for a request with `code`); returns
    only when the command returned (the caller exits 0).
    SIGINT's handling is the server's: Python's own, or ignored when the test run ignores it, as
    for a process the test process starts."""
    for channel in channels:
        channel.close()
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    written = os.O_WRONLY | os.O_APPEND  # stdout and stderr may be one file (a log): both append
    for fd, (key, flags) in enumerate((("stdin", os.O_RDONLY), ("stdout", written), ("stderr", written))):
        opened = os.open(request[key], flags)
        os.dup2(opened, fd)
        os.close(opened)
    if request.get("code") is None:
        sys.argv = ["opscraft", *request["argv"]]
        runpy.run_module("opscraft", run_name="__main__", alter_sys=True)
    else:  # `python -c code *argv`
        sys.argv = ["-c", *request["argv"]]
        exec(compile(request["code"], "<string>", "exec"), {"__name__": "__main__"})  # noqa: S102 (a test's own code)


def serve() -> None:
    """The server's loop: preload, then a forked child per request line until stdin ends."""
    requests, replies = preloaded_channels()
    for line in requests:
        pid = fork_child(json.loads(line), (requests, replies))
        status = os.waitpid(pid, 0)[1]
        replies.write(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}) + "\n")
        replies.flush()


def preloaded_channels() -> tuple[IO[str], IO[str]]:
    """A server's start: its request and reply channels (returned) moved off fds 0 and 1, which
    each child points at its own files; `PRELOADED` imported and frozen; `{"ready"}` answered."""
    requests = os.fdopen(os.dup(0), "r")
    replies = os.fdopen(os.dup(1), "w")
    nothing = os.open(os.devnull, os.O_RDONLY)
    os.dup2(nothing, 0)
    os.close(nothing)
    os.dup2(2, 1)
    for name in PRELOADED:
        importlib.import_module(name)
    assert threading.active_count() == 1, threading.enumerate()  # forking copies no other thread
    # Out of the collector's reach: without it each child's collections and exit touched every
    # preloaded object, copying the pages the fork shared (`opscraft --bogus` forked: 1.0 s of
    # CPU, 0.1 s in a fresh process; `db upgrade` 1.5 s, then 0.4-0.6 s, 1.4-1.8 s afresh).
    gc.freeze()
    replies.write(json.dumps({"ready": True}) + "\n")
    replies.flush()
    return requests, replies


def fork_child(request: dict[str, Any], channels: tuple[IO[str], IO[str]]) -> int:
    """Fork a child that runs `request` (`_child`) and exits; in the server, answer its
    `{"pid"}` on the reply channel (`channels[1]`) and return the pid."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        _child(request, channels)
        sys.exit(0)
    channels[1].write(json.dumps({"pid": pid}) + "\n")
    channels[1].flush()
    return pid


def end_server(server: subprocess.Popen[str]) -> None:
    """End a fork server: its stdin closed (its loop ends), waited for 30 s, then killed."""
    with contextlib.suppress(OSError):
        assert server.stdin is not None
        server.stdin.close()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


class CommandForks:
    """The client: `forks(data_dir, *args, stdin=..., **env)` runs one command as
    `tests.cli_runs.opscraft` does (same environment, same `CompletedProcess`, at most `timeout`
    seconds, then the child is killed and `subprocess.TimeoutExpired` raised), in a child of one
    fork server; with `code=...`, `python -c code *args` instead. One command at a time (a lock);
    `close()` ends the server. `environ(data_dir, **env)`: a command's environment, when a module
    gives its commands another than `tests.cli_runs.cli_env`'s."""

    def __init__(self, timeout: float = 120, environ: Callable[..., dict[str, str]] | None = None) -> None:
        # Imported here: the server (this module run as a program) imports none of the tests'.
        from tests.cli_runs import cli_env
        from tests.conftest import ROOT

        self._environ, self._root = environ or cli_env, ROOT
        self.timeout = timeout
        self._lock = threading.Lock()
        self._files = tempfile.TemporaryDirectory(prefix="cli-forks-")
        self._server = subprocess.Popen(
            [sys.executable, "-m", "tests.cli_forks"],
            cwd=ROOT,
            env=cli_env(Path(self._files.name)),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._reply(self.timeout)  # ready: the imports done

    def _reply(self, timeout: float) -> dict[str, Any]:
        """The server's next line, waiting at most `timeout` seconds (TimeoutError)."""
        assert self._server.stdout is not None
        ready, _, _ = select.select([self._server.stdout], [], [], timeout)
        if not ready:
            raise TimeoutError(f"the fork server said nothing in {timeout} s")
        line = self._server.stdout.readline()
        if not line:
            raise RuntimeError(f"the fork server ended (status {self._server.wait()})")
        return json.loads(line)

    def __call__(
        self, data_dir: Path, *args: str, stdin: str = "", code: str | None = None, **env: str
    ) -> subprocess.CompletedProcess[str]:
        with self._lock, tempfile.TemporaryDirectory(dir=self._files.name) as scratch:
            files = {name: Path(scratch) / name for name in ("stdin", "stdout", "stderr")}
            files["stdin"].write_text(stdin)
            files["stdout"].touch()
            files["stderr"].touch()
            request = {
                "argv": list(args),
                "env": self._environ(data_dir, **env),
                "cwd": str(self._root),
                "code": code,
                **{name: str(path) for name, path in files.items()},
            }
            assert self._server.stdin is not None
            self._server.stdin.write(json.dumps(request) + "\n")
            self._server.stdin.flush()
            pid = self._reply(self.timeout)["pid"]
            try:
                returncode = self._reply(self.timeout)["returncode"]
            except TimeoutError:
                os.kill(pid, signal.SIGKILL)
                self._reply(self.timeout)
                raise subprocess.TimeoutExpired(["opscraft", *args], self.timeout) from None
            return subprocess.CompletedProcess(
                ["opscraft", *args], returncode, files["stdout"].read_text(), files["stderr"].read_text()
            )

    def close(self) -> None:
        """End the server (`end_server`) and remove the files."""
        end_server(self._server)
        assert self._server.stdout is not None
        self._server.stdout.close()
        self._files.cleanup()


if __name__ == "__main__":
    serve()
