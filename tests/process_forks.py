"""Long-running `python -m opscraft worker ...` processes forked from one process that imported
OpsCraft once, as tests/cli_forks.py does for commands that end: a fresh start with its imports
is about 2.5 s of CPU for a worker, of which a fork spares the imports. (Not `serve`: NiceGUI
reads its environment when imported, tests/cli_forks.py.)

The server (`python -m tests.process_forks`) imports `tests.cli_forks.PRELOADED`, starts no
thread, and forks a child per request that runs `cli_forks._child` (the request's argv,
environment, working directory and standard streams, then `python -m opscraft` through `runpy`).
Unlike the command server it does not wait for the child: it answers `{"pid": ...}` at once and
`{"ended": pid, "returncode": ...}` when the child has ended (`os.waitstatus_to_exitcode`: minus
the signal for a child a signal ended), whenever that is; children run side by side. The client
(`ProcessForks`) hands out `Forked` objects that a test uses as it uses a `subprocess.Popen`
(`pid`, `poll`, `wait`, `send_signal`, `terminate`, `kill`, `returncode`).

What a forked process is not: a process whose start is what a test measures or changes
(`LD_PRELOAD`, the interpreter's own start, its imports): such tests start real ones. The server
reads one request at a time (the client waits for each `pid` before the next request).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

from tests.cli_forks import end_server, fork_child, preloaded_channels

#: How often (seconds) the server looks for ended children between requests: the latest a
#: `Forked.wait` learns of an end.
REAP_SECONDS = 0.1


def _reap(replies: IO[str]) -> None:
    """Answer `{"ended", "returncode"}` for every child that has ended since the last call."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:  # no child at all
            return
        if pid == 0:
            return
        replies.write(json.dumps({"ended": pid, "returncode": os.waitstatus_to_exitcode(status)}) + "\n")
        replies.flush()


def serve() -> None:
    """The server's loop: preload, then a forked child per request line, each reaped when it
    ends, until stdin ends (the children still running are left running: the client stops them
    first)."""
    requests, replies = preloaded_channels()
    while True:
        readable, _, _ = select.select([requests], [], [], REAP_SECONDS)
        _reap(replies)
        if not readable:
            continue
        line = requests.readline()
        if not line:
            return
        fork_child(json.loads(line), (requests, replies))


class Forked:
    """One forked process, used as a `subprocess.Popen` is: `returncode` is None while it runs."""

    def __init__(self, forks: ProcessForks, pid: int, args: list[str]) -> None:
        self._forks = forks
        self.pid = pid
        self.args = args
        self.returncode: int | None = None

    def poll(self) -> int | None:
        """The exit status once the process has ended (as the server last said), else None."""
        self.returncode = self._forks.returncode(self.pid)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """The exit status, waiting at most `timeout` seconds (`subprocess.TimeoutExpired`)."""
        ended = self._forks.wait_ended(self.pid, timeout)
        if ended is None:
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        self.returncode = ended
        return ended

    def send_signal(self, sig: int) -> None:
        """Send `sig` unless the process has ended (as `Popen.send_signal`)."""
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class ProcessForks:
    """The client: `forks.start(args, env, log_path)` forks `python -m opscraft *args` with the
    environment `env`, in the source tree, its standard output and error appended to `log_path`,
    and returns its `Forked`. `close()` ends the server (after the caller stopped its processes)."""

    def __init__(self, timeout: float = 120) -> None:
        from tests.conftest import ROOT

        self._root = ROOT
        self.timeout = timeout
        self._lock = threading.Lock()  # one request at a time: its `pid` answer is the next one
        self._changed = threading.Condition()
        self._pids: list[int] = []
        self._ended: dict[int, int] = {}
        self._server = subprocess.Popen(
            [sys.executable, "-m", "tests.process_forks"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, name="process-forks", daemon=True)
        self._ready = False
        self._reader.start()
        with self._changed:
            if not self._changed.wait_for(lambda: self._ready or self._server.poll() is not None, timeout):
                raise TimeoutError(f"the fork server said nothing in {timeout} s")
        if not self._ready:
            raise RuntimeError(f"the fork server ended (status {self._server.wait()})")

    def _read(self) -> None:
        """The server's answers, as they come: ready, each fork's pid, each child's end."""
        assert self._server.stdout is not None
        for line in self._server.stdout:
            reply = json.loads(line)
            with self._changed:
                if "ready" in reply:
                    self._ready = True
                elif "ended" in reply:
                    self._ended[reply["ended"]] = reply["returncode"]
                else:
                    self._pids.append(reply["pid"])
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def start(self, args: list[str], env: dict[str, str], log_path: Path) -> Forked:
        """Fork `python -m opscraft *args` (RuntimeError when the server has ended, TimeoutError
        when it does not answer within `timeout` seconds)."""
        request = {
            "argv": list(args),
            "env": env,
            "cwd": str(self._root),
            "stdin": os.devnull,
            "stdout": str(log_path),
            "stderr": str(log_path),
        }
        log_path.touch()
        with self._lock:
            assert self._server.stdin is not None
            self._server.stdin.write(json.dumps(request) + "\n")
            self._server.stdin.flush()
            with self._changed:
                forked = self._changed.wait_for(
                    lambda: self._pids or self._server.poll() is not None, self.timeout
                )
                if not forked:
                    raise TimeoutError(f"the fork server did not fork in {self.timeout} s")
                if not self._pids:
                    raise RuntimeError(f"the fork server ended (status {self._server.wait()})")
                pid = self._pids.pop(0)
        return Forked(self, pid, ["opscraft", *args])

    def returncode(self, pid: int) -> int | None:
        """The exit status of the child `pid` if the server said it ended, else None."""
        with self._changed:
            return self._ended.get(pid)

    def wait_ended(self, pid: int, timeout: float | None) -> int | None:
        """The exit status of the child `pid`, waiting at most `timeout` seconds (None: no limit)
        for the server to say it ended; None if it did not say so in time."""
        with self._changed:
            self._changed.wait_for(lambda: pid in self._ended or self._server.poll() is not None, timeout)
            return self._ended.get(pid)

    def close(self) -> None:
        """End the server (`tests.cli_forks.end_server`) once its answers are all read."""
        end_server(self._server)
        self._reader.join(timeout=30)
        assert self._server.stdout is not None
        self._server.stdout.close()


if __name__ == "__main__":
    serve()
