"""LocalRunner: the script as a plain process on this machine, for hosts without Docker.

Not isolated: it runs as the OpsCraft user. It gets its own session and process group (the whole
group is killed at the end), rlimits set by `prlimit` before the script starts (CPU time, address
space, processes, file size, no core dumps), a scratch work directory removed afterwards, and a
minimal environment: PATH (plus the directory of OpsCraft's Python, where pip-installed tools such
as ansible-playbook live), HOME and TMPDIR in the scratch directory, a UTF-8 locale.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from opscraft.execution.commands import Command, build
from opscraft.execution.events import Stream
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


def _search_path() -> str:
    parts = os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin").split(os.pathsep)
    tools = str(Path(sys.executable).parent)
    return os.pathsep.join([*parts, tools] if tools not in parts else parts)


class LocalRunner:
    """Runs a `RunSpec` as a limited process group on this machine (not isolated)."""

    name = "local"

    def __init__(self, worker_id: str) -> None:
        self.worker_id = worker_id

    def sweep(self) -> int:
        """Kill processes a previous run of this worker left behind (after a crash).

        Every local run carries `OPSCRAFT_RUN=<worker id>:<execution id>` in its environment; this
        finds them through /proc (Linux), among the processes of the OpsCraft user.
        """
        marker = f"{RUN_MARKER}={self.worker_id}:".encode()
        killed = 0
        proc = Path("/proc")
        for entry in proc.iterdir() if proc.is_dir() else ():
            if not entry.name.isdigit():
                continue
            try:
                environ = (entry / "environ").read_bytes()
            except OSError:
                continue
            if any(item.startswith(marker) for item in environ.split(b"\0")):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(entry.name), signal.SIGKILL)
                    killed += 1
        return killed

    def run(self, spec: RunSpec, output: OutputSink, control: RunControl) -> RunResult:
        command = build(spec)
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
            argv = [prlimit, *_limits(spec), "--", *command.argv]
            env = {
                "PATH": path,
                "HOME": scratch,
                "TMPDIR": scratch,
                "LANG": "C.UTF-8",
                "LC_ALL": "C.UTF-8",
                RUN_MARKER: f"{self.worker_id}:{spec.execution_id}",
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
                control.on_kill(lambda: _kill_group(proc.pid))
                try:
                    _pump(proc, output)
                finally:
                    _kill_group(proc.pid)
        return RunResult(exit_code=_exit_code(proc.returncode))


_found: dict[tuple[str, str], str | None] = {}


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
    """Copy both pipes into `output` until they close; stragglers die with the main process."""
    assert proc.stdout is not None and proc.stderr is not None
    streams: dict[int, Stream] = {proc.stdout.fileno(): "stdout", proc.stderr.fileno(): "stderr"}
    enlarged: set[int] = set()
    with selectors.DefaultSelector() as selector:
        for fd in streams:
            os.set_blocking(fd, False)
            selector.register(fd, selectors.EVENT_READ)
        open_fds = set(streams)
        while open_fds:
            for key, _ in selector.select(output.tick()):
                fd = int(key.fd)
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
            if proc.poll() is not None:
                _kill_group(proc.pid)
    output.tick()


def _enlarge(fd: int) -> None:
    """A chatty script filled the pipe: a larger one (Linux) means fewer reads and wake-ups."""
    if hasattr(fcntl, "F_SETPIPE_SZ"):
        with contextlib.suppress(OSError):
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _exit_code(returncode: int) -> int:
    """Shell convention: killed by signal N -> 128 + N."""
    return 128 - returncode if returncode < 0 else returncode
