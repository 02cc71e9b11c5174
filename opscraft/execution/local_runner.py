"""LocalRunner: the script as a plain process on this machine, for hosts without Docker.

Not isolated: it runs as the OpsCraft user. The script starts under a supervisor process, a
child subreaper that keeps every process the script starts as its descendant, `setsid` and
double forks included, and kills them all when the script ends, is cancelled or times out, or
when the server dies. Each run gets a fresh supervisor, forked from the runner's pre-started fork
server (`supervisor.py`, `fork_server.py`), so a run pays no interpreter start. The run ends when
the script's main process ends: output is read until then, and for at most `DRAIN_SECONDS` more
from pipes a straggler still holds. The script gets rlimits before it starts (CPU time, address
space, processes, file size, no core dumps), a scratch work directory removed afterwards (also
its HOME and TMPDIR; made, filled and, unless files are read back from it, removed by the run's
supervisor, off the server's threads: `supervisor.make_work`; removed after the supervisor said the
run is over, so the run's end does not wait for it), and a minimal environment:
PATH (plus the directory of OpsCraft's Python, where pip-installed tools such as
ansible-playbook live), the variables of `run_env` (HOME, Ansible's directories and
interpreter, a UTF-8 locale). Nothing else of the server's
environment: the fork server starts with an empty one, and the script's is built per run.

`file` secrets are written into a directory of their own (mode 0700, files 0400) on a tmpfs
(`/dev/shm`, so they never reach a disk; the system temporary directory where there is none), named for
the worker and its installation (`owner_name`) and removed with the run; a sweep after a crash
removes what a killed worker left, and so its scratch work directories (named the same way): they
hold the script's files (a Terraform plan carries its sensitive values) and whatever the script
wrote there.
Other secrets reach the script's environment through the supervisor's socket, never through a
command line.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import os
import re
import selectors
import shutil
import signal
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from opscraft.execution import terraform_plan
from opscraft.execution.commands import build, said_paths
from opscraft.execution.events import Stream
from opscraft.execution.fork_server import ForkServer, RunSupervisor
from opscraft.execution.run_env import run_env
from opscraft.execution.said_paths import saying
from opscraft.execution.spec import OutputSink, RunControl, RunnerError, RunResult, RunSpec
from opscraft.execution.supervisor import make_work, remove_work

READ_SIZE = 1024 * 1024
PIPE_BYTES = 1024 * 1024
DEFAULT_PIPE_BYTES = 65536
RUN_MARKER = "OPSCRAFT_RUN"
MAX_PROCESSES = 1024
MAX_FILE_BYTES = 1024 * 1024 * 1024
# A run's files up to this many bytes in all go to its supervisor with the job, which writes them
# (`supervisor.make_work`); larger ones (a Terraform plan of many MiB) the runner writes itself.
FILES_IN_JOB_MOST = 8 * 1024 * 1024
CPU_GRACE_SECONDS = 5
# Address space is not resident memory: interpreters reserve far more than they use.
ADDRESS_SPACE_FACTOR = 4
# After the main process ended (and the supervisor killed the rest): how long to read on from
# pipes that are still open, i.e. held by a process outside the run (fd passing).
DRAIN_SECONDS = 0.5
# How long the supervisor gets to kill the run before it is killed itself.
STOP_GRACE_SECONDS = 5
# The status of a run whose supervisor was killed (it could not say how the script ended).
KILLED = 128 + signal.SIGKILL
SECRET_PREFIX = "opscraft-secrets-"  # a run's secret directory: <prefix><owner>-<execution id>-...
SCRATCH_PREFIX = "opscraft-work-"  # its scratch work directory, named the same way
SECRET_TMPFS = Path("/dev/shm")  # noqa: S108 (a private mkdtemp directory inside it)


def _search_path() -> str:
    parts = os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin").split(os.pathsep)
    tools = str(Path(sys.executable).parent)
    return os.pathsep.join([*parts, tools] if tools not in parts else parts)


class LocalRunner:
    """Runs a `RunSpec` as a supervised, limited process tree on this machine (not isolated).

    Thread-safe: the worker's consumer threads share one runner and its fork server.
    """

    name = "local"

    def __init__(self, worker_id: str, installation: str = "") -> None:
        self.worker_id = worker_id
        self.installation = installation
        """The id of the worker's database (`installation.stored_id`; set by `Worker.start`
        before any run or sweep): `owner` names it, so that a worker of another installation on
        this machine under the same id (two deployments' `worker-1`) never sweeps this one's runs."""
        self.forks = ForkServer()

    @property
    def owner(self) -> str:
        """Whose runs these are on this machine: `owner_name(worker_id, installation)`."""
        return owner_name(self.worker_id, self.installation)

    def start(self) -> None:
        """Pre-start the fork server, so that the first run does not wait for its start."""
        self.forks.start()

    def stop(self) -> None:
        """Stop the fork server (after the runs ended; a later run would start a new one)."""
        self.forks.stop()

    def sweep(self, started_before: float | None = None) -> int:
        """Kill processes a previous run of this worker left behind (after a crash); how many.

        Every local run carries `OPSCRAFT_RUN=<owner>:<execution id>` in its environment
        (`owner_name`); this finds them through /proc (Linux), among the processes of the
        OpsCraft user: this installation's and those named without one (before the installation
        was part of the name), never another installation's (`swept_owners`). With
        `started_before` (Unix time, seconds), only the processes started and the secret
        directories written before it: a lost worker that came back under the same id keeps
        what it started since (proc(5): `starttime`, in clock ticks after boot). The runs'
        secret directories and scratch work directories it left are removed too (a scratch
        directory holds the script's files, e.g. a Terraform plan with its sensitive values,
        and whatever the script wrote there).
        """
        owners = swept_owners(self.worker_id, self.installation)
        marker = re.compile(f"{RUN_MARKER}={owners}:[0-9]+".encode())
        killed = _kill_marked(lambda item: marker.fullmatch(item) is not None, started_before)
        for base, prefix in ((SECRET_TMPFS, SECRET_PREFIX), (Path(tempfile.gettempdir()), SCRATCH_PREFIX)):
            for left in _left_behind(base, prefix, owners):
                with contextlib.suppress(OSError):
                    if started_before is None or left.stat().st_mtime < started_before:
                        shutil.rmtree(left, ignore_errors=True)
        return killed

    def run(self, spec: RunSpec, output: OutputSink, control: RunControl) -> RunResult:
        """Run `spec` as a local process on the worker's host, with its secret files in a private temporary
        directory removed afterwards.
        """
        with _secret_dir(spec, self.owner) as secret_dir:
            return self._run(spec, output, control, secret_dir)

    def _run(self, spec: RunSpec, output: OutputSink, control: RunControl, secret_dir: str) -> RunResult:
        command = build(spec, secret_dir)
        path = _search_path()
        found = {name: _which(name, path) for name in command.programs}
        missing = [name for name, where in found.items() if where is None]
        if missing:  # Terraform runs under /bin/sh: without this, "the script exited with code 127"
            raise RunnerError(f"{missing[0]} is not installed on this machine: install it or use Docker")
        program = found[command.argv[0]]
        assert program is not None
        scratch = _scratch_name(self.owner, spec.execution_id)
        work = Path(scratch)
        files: dict[str, bytes] | None = command.files
        if sum(len(data) for data in command.files.values()) > FILES_IN_JOB_MOST:
            make_work(scratch, command.files)  # too large to copy through the job
            files = None
        supervisor: RunSupervisor | None = None
        try:
            marker = f"{self.owner}:{spec.execution_id}"
            env = {
                "PATH": path,
                **run_env(scratch),
                "TMPDIR": scratch,
                "LC_ALL": "C.UTF-8",
                RUN_MARKER: marker,
                **command.env,
            }
            supervisor = self.forks.supervisor()
            try:
                with saying(output, said_paths(spec.script_type, scratch, secret_dir)) as said:
                    status = _supervise(
                        supervisor,
                        program,
                        command.argv,
                        env,
                        scratch,
                        _limits(spec),
                        said,
                        control,
                        spec.stop_grace_seconds,
                        files,
                        remove=files is not None and not spec.collect,
                    )
            finally:
                _end(supervisor, f"{RUN_MARKER}={marker}".encode())
                supervisor.close()
                self.forks.ahead()  # the next run's supervisor, forked while none is starting
            return RunResult(exit_code=status, files=_collect(work, spec.collect))
        finally:
            if supervisor is None or not supervisor.removes_work:
                _remove_scratch(scratch)


def _supervise(
    supervisor: RunSupervisor,
    program: str,
    argv: list[str],
    env: dict[str, str],
    cwd: str,
    limits: dict[str, int],
    output: OutputSink,
    control: RunControl,
    grace_seconds: float,
    files: dict[str, bytes] | None = None,
    *,
    remove: bool = False,
) -> int:
    """Hand the run to `supervisor`, copy its output into `output` until it is over; its status.
    A stop interrupts the program first when `grace_seconds` > 0 (`RunControl`). With `files`,
    the supervisor makes `cwd` and writes them there, and with `remove` removes it at the end
    (`RunSupervisor.start`)."""
    out_read, out_write = os.pipe()
    err_read, err_write = os.pipe()
    try:
        try:
            supervisor.start(program, argv, env, cwd, limits, out_write, err_write, files, remove=remove)
        finally:
            os.close(out_write)
            os.close(err_write)
        control.on_kill(supervisor.stop, supervisor.interrupt, grace_seconds)
        _pump({out_read: "stdout", err_read: "stderr"}, supervisor, output)
    finally:
        os.close(out_read)
        os.close(err_read)
    return KILLED if supervisor.status is None else supervisor.status


def _collect(work: Path, names: tuple[str, ...]) -> dict[str, bytes]:
    """The files `names` of the work directory that exist: regular files (never a link the
    script planted); one over `terraform_plan.max_bytes` as `terraform_plan.TOO_LARGE`."""
    found: dict[str, bytes] = {}
    for name in names:
        path = work / name
        try:
            info = path.lstat()
        except FileNotFoundError:
            continue
        if stat.S_ISREG(info.st_mode):
            too_large = info.st_size > terraform_plan.max_bytes(name)
            found[name] = terraform_plan.TOO_LARGE if too_large else path.read_bytes()
    return found


_found: dict[tuple[str, str], str | None] = {}


def owner_name(worker_id: str, installation: str) -> str:
    """How a worker's local runs are named on its machine (their `OPSCRAFT_RUN` mark, secret and
    scratch directories): `<worker id>@<first 12 characters of the installation id>`, or the bare
    worker id without one. `@` is not in any worker id (`config.Settings.worker_id`), so no
    worker's name is a prefix of another installation's."""
    return f"{worker_id}@{installation[:12]}" if installation else worker_id


def swept_owners(worker_id: str, installation: str) -> str:
    """A regular expression of the `owner_name`s a sweep for `worker_id` takes as its own: with
    `installation`, that installation's and the bare worker id (runs named before the installation
    was part of the name); without one, the worker id in every installation (a test's cleanup)."""
    suffix = re.escape(installation[:12]) if installation else "[0-9a-f]{12}"
    return f"{re.escape(worker_id)}(?:@{suffix})?"


def _secret_prefix(owner: str) -> str:
    return f"{SECRET_PREFIX}{owner}-"


def _scratch_prefix(owner: str) -> str:
    return f"{SCRATCH_PREFIX}{owner}-"


# What `tempfile.mkdtemp` appends to a run's prefix (`<prefix><execution id>-`): 8 of these.
_LEFT_NAME = "[0-9]+-[a-z0-9_]{8}"


def _left_behind(base: Path, prefix: str, owners: str) -> list[Path]:
    """The run directories of `base` named `<prefix><owner>-<execution id>-<mkdtemp's 8
    characters>` for an owner `owners` (`swept_owners`) matches: exactly those, not those of a
    worker whose id merely starts with this one's (worker `a` and worker `a-1`)."""
    if not base.is_dir():
        return []
    name = re.compile(f"{re.escape(prefix)}{owners}-{_LEFT_NAME}")
    return [path for path in base.glob(f"{glob.escape(prefix)}*") if name.fullmatch(path.name)]


@contextlib.contextmanager
def _secret_dir(spec: RunSpec, owner: str) -> Iterator[str]:
    """A private directory holding the run's `file` secrets (0400), removed afterwards."""
    if not spec.secret_files:
        yield ""
        return
    base = SECRET_TMPFS if SECRET_TMPFS.is_dir() and os.access(SECRET_TMPFS, os.W_OK) else None
    folder = Path(tempfile.mkdtemp(prefix=f"{_secret_prefix(owner)}{spec.execution_id}-", dir=base))
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


def _limits(spec: RunSpec) -> dict[str, int]:
    """The script's rlimits, by `resource` name (soft = hard)."""
    return {
        "RLIMIT_CPU": spec.timeout_seconds + CPU_GRACE_SECONDS,
        "RLIMIT_AS": spec.memory_mb * 1024 * 1024 * ADDRESS_SPACE_FACTOR,
        "RLIMIT_NPROC": MAX_PROCESSES,
        "RLIMIT_FSIZE": MAX_FILE_BYTES,
        "RLIMIT_CORE": 0,
    }


def _scratch_name(owner: str, execution_id: int) -> str:
    """A new run's work directory, not made yet: `<temporary directory>/<prefix><owner>-<execution
    id>-<8 random characters>`, named as `tempfile.mkdtemp` names (what `_left_behind` finds),
    the random part from `os.urandom` so that no other user of the machine can guess it and
    take the name first (`supervisor.make_work` refuses a name that exists)."""
    suffix = "".join(_NAME_CHARACTERS[byte % len(_NAME_CHARACTERS)] for byte in os.urandom(8))
    return os.path.join(tempfile.gettempdir(), f"{_scratch_prefix(owner)}{execution_id}-{suffix}")


_NAME_CHARACTERS = "abcdefghijklmnopqrstuvwxyz0123456789"


def _remove_scratch(scratch: str) -> None:
    """Remove a run's work directory and all in it (`supervisor.remove_work`: permissions a
    script took away given back first, links not followed); one never made is no error."""
    remove_work(scratch)


def _pump(streams: dict[int, Stream], supervisor: RunSupervisor, output: OutputSink) -> None:
    """Copy both pipes into `output` until the supervisor says the run is over (the script's main
    process ended and the rest is killed), then what is left in them, for at most
    `DRAIN_SECONDS`. A script that closes its output early still runs to its end."""
    enlarged: set[int] = set()
    drain_until: float | None = None
    with selectors.DefaultSelector() as selector:
        for fd in streams:
            os.set_blocking(fd, False)
            selector.register(fd, selectors.EVENT_READ)
        selector.register(supervisor.channel, selectors.EVENT_READ)
        open_fds = set(streams)
        while True:
            wait = output.tick()
            if drain_until is not None:
                wait = min(wait, drain_until - time.monotonic())
                if not open_fds or wait <= 0:
                    break
            for key, _ in selector.select(wait):
                if key.fileobj is supervisor.channel:
                    if supervisor.read_status():
                        selector.unregister(supervisor.channel)
                        drain_until = time.monotonic() + DRAIN_SECONDS
                    continue
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
    output.tick()


def _end(supervisor: RunSupervisor, marker: bytes) -> None:
    """Make sure the run is over: the supervisor stops it (killed after `STOP_GRACE_SECONDS`).

    A supervisor that was killed itself (by the script, or by the OOM killer) could not kill the
    rest: they are found by the run's mark in their environment.
    """
    if not supervisor.ended:
        supervisor.stop()
        if not supervisor.wait(STOP_GRACE_SECONDS):
            supervisor.kill()
            supervisor.wait(STOP_GRACE_SECONDS)
    if supervisor.status is None:
        _kill_marked(lambda item: item == marker)


def _kill_marked(match: Callable[[bytes], bool], started_before: float | None = None) -> int:
    """SIGKILL the processes with an environment item that `match`es (through /proc), only those
    started before `started_before` (Unix time, seconds) when given; how many."""
    killed = 0
    proc = Path("/proc")
    for entry in proc.iterdir() if proc.is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            started = _start_time(entry) if started_before is not None else None
        except (OSError, ValueError, IndexError):
            continue
        if started is not None and started_before is not None and started >= started_before:
            continue
        if any(match(item) for item in environ.split(b"\0")):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.name), signal.SIGKILL)
                killed += 1
    return killed


def _start_time(entry: Path) -> float:
    """When the process `/proc/<pid>` started, as Unix time (seconds): its `starttime` (field 22
    of proc(5)'s `stat`, clock ticks after boot) against the boot clock now. Raises OSError
    (the process ended), ValueError or IndexError (an unreadable line)."""
    stat_line = (entry / "stat").read_bytes()
    fields = stat_line[stat_line.rindex(b")") + 2 :].split()  # after the command name, field 3 on
    started_after_boot = int(fields[22 - 3]) / os.sysconf("SC_CLK_TCK")
    return time.time() - (time.clock_gettime(time.CLOCK_BOOTTIME) - started_after_boot)


def _enlarge(fd: int) -> None:
    """A chatty script filled the pipe: a larger one (Linux) means fewer reads and wake-ups."""
    if hasattr(fcntl, "F_SETPIPE_SZ"):
        with contextlib.suppress(OSError):
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
