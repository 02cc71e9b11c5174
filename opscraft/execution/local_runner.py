"""LocalRunner: the script as a plain process on this machine, for hosts without Docker.

Not isolated: it runs as the OpsCraft user. The script starts under a supervisor process
(`supervisor.py`), a child subreaper that keeps every process the script starts as its
descendant, `setsid` and double forks included, and kills them all when the script ends, is
cancelled or times out, or when the server dies. The run ends when the script's main process
ends: output is read until then, and for at most `DRAIN_SECONDS` more from pipes a straggler
still holds. The script gets rlimits set by `prlimit` before it starts (CPU time, address
space, processes, file size, no core dumps), a scratch work directory removed afterwards (also
its HOME and TMPDIR), and a minimal environment: PATH (plus the directory of OpsCraft's Python,
where pip-installed tools such as ansible-playbook live), the variables of `run_env` (HOME,
Ansible's directories and interpreter, a UTF-8 locale).

`file` secrets are written into a directory of their own (mode 0700, files 0400) on a tmpfs
(`/dev/shm`, so they never reach a disk; the system temporary directory where there is none), named for
the worker and removed with the run; a sweep after a crash removes what a killed worker left.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from opscraft.execution import terraform_plan
from opscraft.execution.commands import Command, build
from opscraft.execution.events import Stream
from opscraft.execution.run_env import run_env
from opscraft.execution.spec import OutputSink, RunControl, RunnerError, RunResult, RunSpec

READ_SIZE = 1024 * 1024
PIPE_BYTES = 1024 * 1024
DEFAULT_PIPE_BYTES = 65536
RUN_MARKER = "OPSCRAFT_RUN"
MAX_PROCESSES = 1024
MAX_FILE_BYTES = 1024 * 1024 * 1024
CPU_GRACE_SECONDS = 5
# Address space is not resident memory: interpreters reserve far more than they use.
ADDRESS_SPACE_FACTOR = 4
SUPERVISOR = str(Path(__file__).with_name("supervisor.py"))
# After the main process ended (and the supervisor killed the rest): how long to read on from
# pipes that are still open, i.e. held by a process outside the run (fd passing).
DRAIN_SECONDS = 0.5
# How long the supervisor gets to kill the run before it is killed itself.
STOP_GRACE_SECONDS = 5
# How often to check whether the supervisor ended, where the kernel has no pidfd (Linux < 5.3).
POLL_SECONDS = 0.1
SECRET_TMPFS = Path("/dev/shm")  # noqa: S108 (a private mkdtemp directory inside it)


def _search_path() -> str:
    parts = os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin").split(os.pathsep)
    tools = str(Path(sys.executable).parent)
    return os.pathsep.join([*parts, tools] if tools not in parts else parts)


class LocalRunner:
    """Runs a `RunSpec` as a supervised, limited process tree on this machine (not isolated)."""

    name = "local"

    def __init__(self, worker_id: str) -> None:
        self.worker_id = worker_id

    def sweep(self) -> int:
        """Kill processes a previous run of this worker left behind (after a crash).

        Every local run carries `OPSCRAFT_RUN=<worker id>:<execution id>` in its environment; this
        finds them through /proc (Linux), among the processes of the OpsCraft user.
        """
        marker = f"{RUN_MARKER}={self.worker_id}:".encode()
        killed = _kill_marked(lambda item: item.startswith(marker))
        if SECRET_TMPFS.is_dir():
            for left in SECRET_TMPFS.glob(f"{_secret_prefix(self.worker_id)}*"):
                shutil.rmtree(left, ignore_errors=True)
        return killed

    def run(self, spec: RunSpec, output: OutputSink, control: RunControl) -> RunResult:
        with _secret_dir(spec, self.worker_id) as secret_dir:
            return self._run(spec, output, control, secret_dir)

    def _run(self, spec: RunSpec, output: OutputSink, control: RunControl, secret_dir: str) -> RunResult:
        command = build(spec, secret_dir)
        path = _search_path()
        prlimit = _which("prlimit", path)
        if prlimit is None:
            raise RunnerError("the local runner needs prlimit (util-linux): install it or use Docker")
        program = command.argv[0]
        if _which(program, path) is None:
            raise RunnerError(f"{program} is not installed on this machine: install it or use Docker")
        with tempfile.TemporaryDirectory(prefix=f"opscraft-{spec.execution_id}-") as scratch:
            work = Path(scratch)
            _write_files(work, command)
            supervisor = [sys.executable, "-I", "-S", SUPERVISOR, str(os.getpid())]
            argv = [*supervisor, prlimit, *_limits(spec), "--", *command.argv]
            marker = f"{self.worker_id}:{spec.execution_id}"
            env = {
                "PATH": path,
                **run_env(scratch),
                "TMPDIR": scratch,
                "LC_ALL": "C.UTF-8",
                RUN_MARKER: marker,
                **command.env,
            }
            with subprocess.Popen(
                argv,
                cwd=scratch,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                close_fds=True,
            ) as proc:
                control.on_kill(lambda: proc.send_signal(signal.SIGTERM))
                try:
                    _pump(proc, output)
                finally:
                    _end(proc, f"{RUN_MARKER}={marker}".encode())
            return RunResult(exit_code=_exit_code(proc.returncode), files=_collect(work, spec.collect))


def _collect(work: Path, names: tuple[str, ...]) -> dict[str, bytes]:
    """The files `names` of the work directory that exist: regular files (never a link the
    script planted) of at most `terraform_plan.MAX_FILE_BYTES`."""
    found: dict[str, bytes] = {}
    for name in names:
        path = work / name
        try:
            info = path.lstat()
        except FileNotFoundError:
            continue
        if stat.S_ISREG(info.st_mode) and info.st_size <= terraform_plan.MAX_FILE_BYTES:
            found[name] = path.read_bytes()
    return found


_found: dict[tuple[str, str], str | None] = {}


def _secret_prefix(worker_id: str) -> str:
    return f"opscraft-secrets-{worker_id}-"


@contextlib.contextmanager
def _secret_dir(spec: RunSpec, worker_id: str) -> Iterator[str]:
    """A private directory holding the run's `file` secrets (0400), removed afterwards."""
    if not spec.secret_files:
        yield ""
        return
    base = SECRET_TMPFS if SECRET_TMPFS.is_dir() and os.access(SECRET_TMPFS, os.W_OK) else None
    folder = Path(tempfile.mkdtemp(prefix=f"{_secret_prefix(worker_id)}{spec.execution_id}-", dir=base))
    try:
        for name, value in spec.secret_files.items():
            target = folder / name
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
            with os.fdopen(fd, "wb") as file:
                file.write(value.encode())
        yield str(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _which(program: str, path: str) -> str | None:
    """`shutil.which`, remembering where it found a program while the program is there."""
    key = (program, path)
    known = _found.get(key)
    if known is not None and os.access(known, os.X_OK):
        return known
    found = _found[key] = shutil.which(program, path=path)
    return found


def _limits(spec: RunSpec) -> list[str]:
    address_space = spec.memory_mb * 1024 * 1024 * ADDRESS_SPACE_FACTOR
    return [
        f"--cpu={spec.timeout_seconds + CPU_GRACE_SECONDS}",
        f"--as={address_space}",
        f"--nproc={MAX_PROCESSES}",
        f"--fsize={MAX_FILE_BYTES}",
        "--core=0",
    ]


def _write_files(work: Path, command: Command) -> None:
    for name, data in command.files.items():
        target = work / name
        target.write_bytes(data)
        target.chmod(0o600)


def _pump(proc: subprocess.Popen[bytes], output: OutputSink) -> None:
    """Copy both pipes into `output` until the supervisor has ended (it ends when the script's
    main process has ended and the rest is killed), then what is left in them, for at most
    `DRAIN_SECONDS`. A script that closes its output early still runs to its end."""
    assert proc.stdout is not None and proc.stderr is not None
    streams: dict[int, Stream] = {proc.stdout.fileno(): "stdout", proc.stderr.fileno(): "stderr"}
    enlarged: set[int] = set()
    exit_fd = _pidfd(proc.pid)
    drain_until: float | None = None
    with selectors.DefaultSelector() as selector:
        for fd in streams:
            os.set_blocking(fd, False)
            selector.register(fd, selectors.EVENT_READ)
        if exit_fd is not None:
            selector.register(exit_fd, selectors.EVENT_READ)  # readable once the process ended
        open_fds = set(streams)
        while True:
            if drain_until is None and proc.poll() is not None:
                drain_until = time.monotonic() + DRAIN_SECONDS
            wait = output.tick()
            if drain_until is not None:
                wait = min(wait, drain_until - time.monotonic())
                if not open_fds or wait <= 0:
                    break
            elif exit_fd is None:
                wait = min(wait, POLL_SECONDS)
            for key, _ in selector.select(wait):
                fd = int(key.fd)
                if fd == exit_fd:
                    selector.unregister(fd)
                    continue
                with contextlib.suppress(BlockingIOError):
                    data = os.read(fd, READ_SIZE)
                    if data:
                        output.feed(streams[fd], data)
                        if len(data) >= DEFAULT_PIPE_BYTES and fd not in enlarged:
                            enlarged.add(fd)
                            _enlarge(fd)
                    else:
                        selector.unregister(fd)
                        open_fds.discard(fd)
    if exit_fd is not None:
        os.close(exit_fd)
    output.tick()


def _pidfd(pid: int) -> int | None:
    """A descriptor that becomes readable when `pid` ends (Linux 5.3+), or None."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _end(proc: subprocess.Popen[bytes], marker: bytes) -> None:
    """Make sure the run is over: the supervisor stops it (killed after `STOP_GRACE_SECONDS`).

    A supervisor that was killed itself (by the script, or by the OOM killer) could not kill the
    rest: they are found by the run's mark in their environment.
    """
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.returncode < 0:
        _kill_marked(lambda item: item == marker)


def _kill_marked(match: Callable[[bytes], bool]) -> int:
    """SIGKILL the processes with an environment item that `match`es (through /proc); how many."""
    killed = 0
    proc = Path("/proc")
    for entry in proc.iterdir() if proc.is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if any(match(item) for item in environ.split(b"\0")):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.name), signal.SIGKILL)
                killed += 1
    return killed


def _enlarge(fd: int) -> None:
    """A chatty script filled the pipe: a larger one (Linux) means fewer reads and wake-ups."""
    if hasattr(fcntl, "F_SETPIPE_SZ"):
        with contextlib.suppress(OSError):
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)


def _exit_code(returncode: int) -> int:
    """Shell convention: killed by signal N -> 128 + N."""
    return 128 - returncode if returncode < 0 else returncode
