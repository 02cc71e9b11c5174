"""The local runner's side of `supervisor.py`: its fork server, and one forked supervisor per run.

`ForkServer` keeps one pre-started fork server per local runner (started by `start()`, or by the
first run); `ForkServer.supervisor()` returns a `RunSupervisor`, a fresh process forked for one
run, which `RunSupervisor.start` hands the run's job. A fork server that died or stopped
answering is replaced by a new one at the next run; a supervisor is never used for two runs.
The wire format is in `supervisor.py`'s docstring.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

from opscraft.execution import supervisor
from opscraft.execution.spec import RunnerError
from opscraft.execution.supervisor import FROZEN_FLAG

SUPERVISOR = str(Path(__file__).with_name("supervisor.py"))
# How long a fork may take before the fork server counts as hung (its first answer includes
# its own start, which a busy machine can stretch to seconds).
FORK_TIMEOUT_SECONDS = 30
STOP_WAIT_SECONDS = 5
STATUS_BYTES = 32
# The most supervisors forked ahead and waiting for a run (`ForkServer.ahead`).
SPARES_MOST = 4
# Supervisors kept forked for runs one at a time: the next run's and the one after
# (`ForkServer` docstring).
SPARES_ONE_AT_A_TIME = 2
# Runs create files with the usual default, not the server's private umask
# (opscraft/data_dir.py).
RUN_UMASK = 0o022


class RunSupervisor:
    """One forked supervisor (process `pid`), for one run.

    `channel` is the runner's end of its stream socket, `pidfd` a pidfd of it (None on kernels
    without pidfd). After `start`, `channel` becomes readable when the run is over: `read_status`
    then gives its status.
    """

    def __init__(self, pid: int, channel: socket.socket, pidfd: int | None) -> None:
        self.pid = pid
        self.channel = channel
        self.pidfd = pidfd
        self.ended = False
        self.status: int | None = None
        self._received = b""
        self._removes = False

    def start(
        self,
        program: str,
        argv: list[str],
        env: dict[str, str],
        cwd: str,
        limits: dict[str, int],
        stdout: int,
        stderr: int,
        files: dict[str, bytes] | None = None,
        *,
        remove: bool = False,
    ) -> None:
        """Hand over the job: run the executable `program` (a path) with `argv`, with exactly
        `env`, in `cwd`, each `resource.RLIMIT_*`
        named in `limits` set to its value, writing to the descriptors `stdout` and `stderr`
        (the supervisor gets copies; the caller still closes its own). With `files` (relative
        name -> content), `cwd` must not exist: the supervisor makes it and writes them there
        first (`supervisor.make_work`; a failure is the run's status 127 and a line on its
        stderr), and with `remove` removes it once the run is over, right after it sent the
        status (`removes_work` then says so). Raises RunnerError when the supervisor is gone."""
        job: dict[str, object] = {"program": program, "argv": argv, "env": env, "cwd": cwd, "limits": limits}
        if files is not None:
            job["files"] = files
            job["remove"] = remove
        self._removes = files is not None and remove
        message = supervisor.job_message(job)
        try:  # in one message with its descriptors: read at once (`supervisor.receive_job`)
            sent = socket.send_fds(self.channel, [message], [stdout, stderr])
            if sent < len(message):  # interrupted part way
                self.channel.sendall(memoryview(message)[sent:])
        except OSError as exc:
            raise RunnerError(f"the run's supervisor ended before it started the script: {exc}") from exc

    def read_status(self) -> bool:
        """Read what the supervisor sent (without blocking); True once the run is over: its
        status was received (`status`), or the supervisor ended without sending one (`status`
        None: it was killed)."""
        try:
            data = self.channel.recv(STATUS_BYTES, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return False
        except OSError:
            data = b""
        self._received += data
        if data and not self._received.endswith(b"\n"):
            return False
        self.ended = True
        if self._received.endswith(b"\n"):
            self.status = int(self._received)
        return True

    @property
    def removes_work(self) -> bool:
        """Whether the supervisor removes the run's work directory: asked to (`start`'s `remove`)
        and it sent its status, after which it removes the directory (a removal under way when
        the status is read: the run's end does not wait for it)."""
        return self._removes and self.status is not None

    def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the run to be over; whether it is."""
        while not self.ended:
            if not select.select([self.channel], [], [], timeout)[0]:
                return False
            self.read_status()
        return True

    def stop(self) -> None:
        """Ask the supervisor to end the run (it kills the whole process tree); callable from any
        thread, a no-op once it is gone."""
        with contextlib.suppress(OSError):
            self.channel.send(b"s")

    def interrupt(self) -> None:
        """Ask the supervisor to SIGINT the run's program (`supervisor.INTERRUPT`), which may
        then end by itself; callable from any thread, a no-op once it is gone."""
        with contextlib.suppress(OSError):
            self.channel.send(supervisor.INTERRUPT)

    def kill(self) -> None:
        """SIGKILL the supervisor itself (it did not stop in time)."""
        with contextlib.suppress(OSError):
            if self.pidfd is not None:
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
            elif not self.ended:  # without a pidfd, only while it is known to be alive
                os.kill(self.pid, signal.SIGKILL)

    def close(self) -> None:
        """Close the channel to the supervised process and its pidfd."""
        self.channel.close()
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None


def fork_server_argv(control_fd: int) -> list[str]:
    """The command that starts the fork server on the control socket `control_fd`: this file run
    by an isolated Python, or the packaged binary (whose `sys.executable` is itself, not Python)
    with `FROZEN_FLAG`."""
    if getattr(sys, "frozen", False):
        return [sys.executable, FROZEN_FLAG, str(control_fd)]
    return [sys.executable, "-I", "-S", SUPERVISOR, str(control_fd)]


class ForkServer:
    """A pre-started `supervisor.py` that forks a `RunSupervisor` per run (thread-safe).

    The fork for the next run is asked for when a run has ended (`ahead`), not when it takes its
    supervisor: the fork then competes with no run's start for the CPUs
    (on a busy machine, waking the fork server at a run's start cost that run about a
    millisecond). The next run finds its supervisor forked already and waiting for its job, so
    the fork server's round trip (its wake-up, the fork, the answer) is off the run's path. That
    spare supervisor has only what any freshly forked one has (nothing of a run: it gets its
    job from the runner), and it exits when the fork server's answer is never read (the
    control socket closed).

    As many spares are kept as runs were in progress when the last one ended, plus one (at
    most `SPARES_MOST`): two for runs one at a time, the next run's and the one after, so the
    next run's supervisor was forked while the run before it ran; in a burst every consumer
    thread that starts a run finds one forked already. With a single spare, the burst's threads
    took their supervisors in turn under the lock, each waiting for the fork server to fork the
    one the thread before it took (docs/benchmarks.md, session 35); and a run that came right
    after another waited for the fork asked for at that run's end whenever the fork took
    longer than the end's commit and the next submission (48 of 440 runs at load 15, p50
    3.1 ms: docs/benchmarks.md, session 53).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None
        self._requested = 0  # forks asked for whose answers were not read yet
        self._running = 0  # supervisors handed out (`supervisor`) whose run has not ended (`ahead`)

    @property
    def pid(self) -> int | None:
        """The fork server's process id while it runs."""
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    def start(self) -> None:
        """Start the fork server now (it would start with the first run otherwise) and ask it
        for the first two runs' supervisors (`SPARES_ONE_AT_A_TIME`); no waiting."""
        with self._lock:
            if self.pid is None:
                self._replace()
                self._request(SPARES_ONE_AT_A_TIME)

    def stop(self) -> None:
        """End the fork server (it exits once its control socket is closed); supervisors still
        running are not affected."""
        with self._lock:
            self._discard(kill=False)

    def supervisor(self) -> RunSupervisor:
        """A new supervisor for one run (forked ahead, see the class docstring); a dead or hung
        fork server is replaced (once). Raises RunnerError when even a new fork server does not
        answer."""
        with self._lock:
            for attempt in range(2):
                try:
                    if self.pid is None or attempt:
                        self._replace()  # its runs in progress go on (see supervisor.py)
                    supervisor = self._fork()
                    break
                except (OSError, ValueError) as exc:
                    failure = exc
            else:
                raise RunnerError(f"the local runner cannot start a supervisor: {failure}")
            self._running += 1
            return supervisor

    def ahead(self) -> None:
        """After the run of a supervisor from `supervisor` ended (once per run): ask for the
        next runs' supervisors now, as many as runs were in progress with this one plus one
        (at least `SPARES_ONE_AT_A_TIME`, at most `SPARES_MOST`, counting those asked for
        already); none when no fork server runs (a fork server gone now is replaced at the next
        run)."""
        with self._lock:
            spares = min(max(self._running + 1, SPARES_ONE_AT_A_TIME), SPARES_MOST)
            self._running = max(self._running - 1, 0)
            if self._control is not None and self.pid is not None:
                with contextlib.suppress(OSError):
                    self._request(spares)

    def _request(self, spares: int) -> None:
        """Ask the fork server for supervisors until `spares` are asked for and not taken yet
        (it answers each request in turn, one message each)."""
        assert self._control is not None
        self._control.settimeout(FORK_TIMEOUT_SECONDS)
        while self._requested < spares:
            self._control.send(b"f")
            self._requested += 1

    def _fork(self) -> RunSupervisor:
        """The supervisor asked for first (asking now when none was)."""
        self._request(1)
        assert self._control is not None
        self._requested -= 1
        message, fds, _, _ = socket.recv_fds(self._control, STATUS_BYTES, 2)
        for fd in fds:  # `recv_fds` does not pass its flags on (MSG_CMSG_CLOEXEC, Python 3.11)
            os.set_inheritable(fd, False)
        if not message or not fds:
            for fd in fds:
                os.close(fd)
            raise ConnectionError("the fork server ended")
        return RunSupervisor(int(message), socket.socket(fileno=fds[0]), fds[1] if len(fds) > 1 else None)

    def _replace(self) -> None:
        self._discard(kill=True)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with theirs:
            self._process = subprocess.Popen(
                fork_server_argv(theirs.fileno()),
                env={},
                cwd="/",
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),),
                start_new_session=True,
                umask=RUN_UMASK,
            )
        self._control = ours

    def _discard(self, kill: bool) -> None:
        """Close the control socket (the fork server then exits) and reap the fork server;
        `kill`: at once (it did not answer), else after `STOP_WAIT_SECONDS`."""
        if self._control is not None:
            self._control.close()
            self._control = None
        self._requested = 0
        if self._process is not None:
            if kill:
                self._process.kill()
            try:
                self._process.wait(STOP_WAIT_SECONDS)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
