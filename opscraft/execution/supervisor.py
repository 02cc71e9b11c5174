"""The local runner's processes: a fork server, and a fresh supervisor forked from it for each run.

A Python start costs about 12-17 ms of CPU, too much to pay per run. So the local runner starts
this module once (`python -I -S supervisor.py CONTROL_FD`, standard library only, an empty
environment, `/` as its directory) as a *fork server*, and every run gets a supervisor forked
from it: a new process with the interpreter already loaded (about 1 ms), used for one run and
then gone. The fork server never sees a run's data (command, environment, secrets): each forked
supervisor receives its one job directly from the runner, so nothing of a run can be inherited
by the next one. (This is the forkserver idea of Python's multiprocessing.)

The fork server (`serve`) reads one byte per request on its control socket (an AF_UNIX
SOCK_SEQPACKET socket from the runner), forks, and answers with the new supervisor's pid as text,
passing two descriptors along (SCM_RIGHTS): the runner's end of a stream socket to that
supervisor (its *channel*) and a pidfd of it (Linux 5.3+; without it, the pid only). It exits
when the runner closes the control socket (the runner stopped or its process died). It reaps
its children as they end, so their CPU time adds up in its own `/proc/PID/stat` (`cutime`,
`cstime`), where a benchmark finds what the runs' supervisors and scripts cost.

A forked supervisor (`Supervisor`)

1. becomes a child subreaper (`PR_SET_CHILD_SUBREAPER`, Linux 3.4+, see prctl(2)): a process orphaned anywhere
   below it, e.g. by `setsid cmd &` or a double fork, is re-parented to it instead of to init, so
   every process the script starts stays its descendant; leads a new session, the run's (no
   terminal, none of the server's or the fork server's); and readies, while it waits for a job,
   what does not depend on one (see `Supervisor`; and `rehearse`: a job's decoding once), so
   that only the job's own steps are on the run's path;
2. reads its job from the channel: an 8-byte big-endian length, then that many bytes of a
   `marshal`led dict `{"program": "/path", "argv": [...], "env": {...}, "cwd": "...", "limits":
   {"RLIMIT_CPU": n, ...}}` (not JSON: the runner and the fork server are the same Python,
   `sys.executable`, and the channel a private socket pair; decoding JSON cost each forked
   supervisor about 0.2 ms more CPU, most of it copying the pages it touched), with the
   run's stdout and stderr pipes passed alongside the length (SCM_RIGHTS), all in one message
   (`job_message`, read by `receive_job`); they become its fd 1 and 2. With `"files": {name:
   bytes}`, the supervisor makes the directory `cwd` itself (it must not exist) and writes those
   files into it (`make_work`) before anything else of the job: the server's thread then makes
   no directory and writes no file on the run's path, where each of those system calls gave
   the GIL to the event loop and waited to get it back (issue 15, docs/benchmarks.md, session
   50);
3. starts the program with `posix_spawn` (glibc: `clone(CLONE_VM | CLONE_VFORK)`, no copy of
   the supervisor's pages; a fork and exec of this Python process cost 2-3 ms more per run):
   in a process group of its own in the run's session (step 1: a session made at the start,
   on a kernel with autogroup scheduling, sched(7), is a new scheduling group, which a busy
   machine ran 1.5-3 ms later: docs/benchmarks.md, session 57), stdin `/dev/null`, the job's
   directory, the rlimits (soft = hard = n, kept within the current hard limit), default signal
   dispositions, an empty signal mask, no descriptor but 0-2, exactly the job's environment
   (the program's path, found by the runner on the run's PATH). posix_spawn(3) cannot change
   directory or limits in the child, so the supervisor, a process of this run only, takes the
   job's directory and limits itself first and the program inherits them (the supervisor itself
   needs little: no file, a few MiB, no fork, milliseconds of CPU);
4. waits until the program exits, or until it is told to stop: a byte on the channel, the channel
   closed (the runner is gone: stopped, or its process died), or SIGTERM, SIGINT or SIGHUP. The
   byte `i` (`INTERRUPT`) instead sends SIGINT to the program's process group and goes on
   waiting (a graceful stop: `spec.RunControl`);
5. kills every descendant with SIGKILL, scan after scan of /proc, until it has no child left: a
   process forked while the others are killed is re-parented to it and found by the next scan;
6. closes its copies of the run's output pipes, so that the runner reads their end at once,
   not after this process's exit; sends the program's status on the channel as text and a
   newline (its exit code, or 128 + N when signal N ended it); then, with the job's `remove`,
   removes the work directory it made (after the status, so that the run's end does not wait
   for it: on ext4 a removal waits for the file system's journal, 1.1 ms p50 and 3.5 ms p90
   under load, docs/benchmarks.md session 51; one that fails is left to the next start's
   sweep), and exits.

It writes to the run's stderr only when the program cannot be started (status 127), or when it
may not kill a descendant.
"""

from __future__ import annotations

import _ctypes
import _signal
import contextlib
import marshal
import os
import resource
import select
import shutil
import signal
import socket
import stat
import sys
import time
from typing import Any

PR_SET_CHILD_SUBREAPER = 36
STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGHUP})
# Handled (or ignored, by Python) here; the program gets the default back.
DEFAULT_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGCHLD, *STOP_SIGNALS)
# The runner's request to interrupt the program (any other byte, or the channel's end: stop).
INTERRUPT = b"i"
KILL_PAUSE_SECONDS = 0.002
KILL_DEADLINE_SECONDS = 5
CANNOT_START = 127
HEADER_BYTES = 8
# The longest job accepted: far above what execve(2) takes for a command and its environment.
MAX_JOB_BYTES = 64 * 1024 * 1024
# A job's first read (`receive_job`): its header and, but for large files, its body (a buffer
# below malloc's threshold for a mapping of its own, 128 KiB: no mmap and munmap per run).
JOB_READ_BYTES = 64 * 1024
_FD_BYTES = 4  # a descriptor in an SCM_RIGHTS message: a C int
_FDS_SPACE = socket.CMSG_SPACE(2 * _FD_BYTES)
#: The packaged binary has no Python to start this file with: its entry point
#: (packaging/opscraft_main.py) runs `main` when this is its first argument.
FROZEN_FLAG = "--opscraft-fork-server"


class _CInt(_ctypes._SimpleCData):  # ctypes.c_int, without importing ctypes' type zoo
    _type_ = "i"


class _CFunction(_ctypes.CFuncPtr):  # ctypes.CFUNCTYPE(c_int, use_errno=True)
    _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
    _restype_ = _CInt


_prctl_function: _CFunction | None = None


def _prctl_call() -> _CFunction:
    """prctl(2) as a callable, looked up once: by the fork server before it forks (`serve`),
    not again by every supervisor."""
    global _prctl_function
    if _prctl_function is None:
        _prctl_function = _CFunction(_ctypes.dlsym(_ctypes.dlopen(None), "prctl"))
    return _prctl_function


def _prctl(option: int, value: int) -> None:
    """prctl(2) with one argument; OSError when the kernel refuses."""
    if _prctl_call()(option, value, 0, 0, 0) != 0:
        raise OSError(_ctypes.get_errno(), f"prctl({option}) failed")


def _descendants(root: int) -> list[int]:
    """The processes below `root`, found through the parent field of /proc/PID/stat."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as file:
                stat = file.read()
        except OSError:  # it ended meanwhile
            continue
        ppid = int(stat.rpartition(b")")[2].split()[1])  # after "pid (comm) state"
        children.setdefault(ppid, []).append(int(name))
    found, todo = [], [root]
    while todo:
        below = children.get(todo.pop(), [])
        found += below
        todo += below
    return found


def _read_exactly(channel: socket.socket, size: int, data: bytes = b"") -> bytes:
    """`data` and what follows it on `channel` until `size` bytes in all."""
    got = bytearray(data)
    while len(got) < size:
        chunk = channel.recv(min(size - len(got), 1 << 20))
        if not chunk:
            raise EOFError("the runner closed the channel before sending the whole job")
        got += chunk
    return bytes(got)


def receive_job(channel: socket.socket) -> tuple[dict[str, Any], list[int]]:
    """The job and the descriptors sent with it (see the module docstring, step 2).

    One `recvmsg` of up to `JOB_READ_BYTES` takes the header, the descriptors and, for a job
    the runner sent in one message (`fork_server.RunSupervisor.start`), its whole body: a single
    wake-up and system call where the header and the body read apart cost two of each (issue 15,
    docs/benchmarks.md, session 57); the rest of a longer job is read after it, byte for byte.
    That read never takes a stop request sent after the job (`INTERRUPT` or any other byte):
    Linux ends a read of an AF_UNIX stream socket with the message that carried descriptors
    (unix(7): ancillary data is a barrier), and the job's descriptors came with its first
    bytes. Raises EOFError (the channel closed first) or ValueError (not a job: too long, not 2
    descriptors, or more bytes than the job read with it)."""
    data, ancillary, _, _ = channel.recvmsg(JOB_READ_BYTES, _FDS_SPACE)
    fds = [  # inheritable (no MSG_CMSG_CLOEXEC): closed after dup2
        fd
        for level, kind, payload in ancillary
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS
        for fd in memoryview(payload)[: len(payload) - len(payload) % _FD_BYTES].cast("i")
    ]
    if not data:
        raise EOFError("the runner closed the channel without sending a job")
    header = _read_exactly(channel, HEADER_BYTES, data[:HEADER_BYTES])
    size = int.from_bytes(header, "big")
    if size > MAX_JOB_BYTES or len(fds) != 2 or len(data) > HEADER_BYTES + size:
        raise ValueError(f"not a job: {size} bytes, {len(fds)} descriptors, {len(data)} bytes read")
    body = _read_exactly(channel, size, data[HEADER_BYTES:])
    return marshal.loads(body), fds  # noqa: S302 (from our own runner: step 2)


def job_message(job: dict[str, Any]) -> bytes:
    """`job` as the runner sends it (step 2): its length as `HEADER_BYTES` big-endian bytes, then
    the `marshal`led dict."""
    data = marshal.dumps(job)
    return len(data).to_bytes(HEADER_BYTES, "big") + data


# A job of a run's shape, with nothing of any run (`rehearse`): made once, by the fork server.
_REHEARSAL = job_message(
    {
        "program": "/bin/sh",
        "argv": ["sh", "script.sh"],
        "env": {f"VARIABLE_{n}": "value" * n for n in range(12)},
        "cwd": "/nonexistent/opscraft-work-rehearsal",
        "limits": dict.fromkeys(
            ("RLIMIT_CPU", "RLIMIT_AS", "RLIMIT_NPROC", "RLIMIT_FSIZE", "RLIMIT_CORE"), 1
        ),
        "files": {"script.sh": b"true\n"},
        "remove": True,
    }
)


def rehearse() -> None:
    """Receive `_REHEARSAL` (with two copies of descriptor 0, closed at once) through
    `receive_job` on a socket pair of its own, as a waiting supervisor will receive its job. In
    a forked process each page first written is copied from the fork server's (the allocator's
    free lists, the counts of the objects and functions used): done while the supervisor waits,
    those copies are off the run's path, where they were most of its work between the job's
    arrival and its decoded dict (80 minor faults and 0.48 ms of CPU, 28 and 0.29 after this,
    at load 15-18: docs/benchmarks.md, session 57). Nothing of a run is involved."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.sendmsg([_REHEARSAL], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, bytes(2 * _FD_BYTES))])
        for fd in receive_job(theirs)[1]:
            os.close(fd)


def _cannot_make(exc: OSError) -> int:
    sys.stderr.write(f"opscraft: cannot make the run's work directory: {exc.strerror or exc}\n")
    return CANNOT_START


def make_work(work: str, files: dict[str, bytes], *, made: bool = False) -> None:
    """Create the run's work directory `work` (an absolute path that must not exist: `mkdir`
    fails on anything there, a planted link included, as `tempfile.mkdtemp`'s does; mode 0700
    under the umask) and write `files` (relative name -> content) into it, each readable by its
    owner only (0600, whatever the umask), a file in a folder (`connection_plugins/`) with its
    folders (0700 under the umask). Through one descriptor a file (docs/benchmarks.md, session
    49). `made`: the directory was made already (by the caller, the same way). Raises OSError
    (the directory exists, the disk is full, ...)."""
    if not made:
        os.mkdir(work, 0o700)
    for name, data in files.items():
        target = os.path.join(work, name)
        folder = os.path.dirname(target)
        if folder != work:
            os.makedirs(folder, 0o700, exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            os.fchmod(fd, 0o600)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)


def remove_work(work: str) -> None:
    """Remove the run's work directory `work` and all in it, as `tempfile.TemporaryDirectory`
    removes its own: `shutil.rmtree` (links not followed: its walk by descriptors), and on a
    permission refused (a script took the owner's rights away) the rights given back to the
    folder and the entry, never through a link, and the removal retried. A directory or an entry
    gone already is no error; any other OSError is raised.

    Through `shutil`, not `tempfile`, whose import the fork server would pay in every process it
    forks: `tempfile` imports `random`, whose at-fork hook reseeds its generator in each new
    supervisor (a `getrandom` call and, net, about 20 pages copied on write a run), and three
    shared libraries more (`_random`, `_sha512`, `_bisect`: 14 mappings) that every fork copies
    and every exit unmaps (docs/benchmarks.md, session 52)."""

    def given_back(function: object, path: str, error: BaseException) -> None:
        if isinstance(error, FileNotFoundError):
            return
        if not isinstance(error, PermissionError):
            raise error
        with contextlib.suppress(FileNotFoundError):
            if path != work:
                _owner_rights(os.path.dirname(path))
            _owner_rights(path)
            try:
                os.unlink(path)
            except (IsADirectoryError, PermissionError):
                remove_work(path)

    if sys.version_info >= (3, 12):  # `onerror` is deprecated: its warning would be on the run's stderr
        shutil.rmtree(work, onexc=given_back)
    else:
        shutil.rmtree(work, onerror=lambda function, path, info: given_back(function, path, info[1]))


def _owner_rights(path: str) -> None:
    """Give the owner all rights (0700) back on the directory `path`; nothing for anything else
    (a link is not followed: its target may be anyone's)."""
    if stat.S_ISDIR(os.lstat(path).st_mode):
        os.chmod(path, 0o700)


def _spawn(job: dict[str, Any]) -> int:
    """Start the job's program (see the module docstring, step 3); its pid. Raises OSError when
    it cannot be started (no such directory, a limit refused, execve failed)."""
    os.chdir(job["cwd"])
    for name, value in job["limits"].items():
        limit = getattr(resource, name)
        hard = resource.getrlimit(limit)[1]
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(limit, (value, value))
    return os.posix_spawn(
        job["program"], job["argv"], job["env"], setpgroup=0, setsigmask=(), setsigdef=DEFAULT_SIGNALS
    )


def _open_descriptors() -> list[int]:
    """This process's open descriptors (the listing's own is gone by the time it is returned)."""
    return [int(name) for name in os.listdir("/proc/self/fd") if os.path.exists(f"/proc/self/fd/{name}")]


class Supervisor:
    """One run: starts its program, reaps whatever ends below it, kills the rest at the end.

    Made before its job comes: what does not depend on the job (the wake-up pipe of the
    signals, SIGCHLD's handler, the poll set) is done then, off the run's path; that no
    descriptor but 0-2 is inheritable the fork server made sure of once (`serve`). The stop
    signals' handlers are set once the job is there (a stop signal before it ends a waiting
    supervisor as before). Handlers are set through `_signal`, the C module under `signal`:
    `signal.signal`'s enum conversions cost a forked process about 0.07 ms each (the pages
    they touch, copied on write)."""

    def __init__(self, channel: socket.socket) -> None:
        self.channel = channel
        self.main = 0
        self.status: int | None = None
        self.made_work = False
        self._wake, wake_write = os.pipe()
        os.set_blocking(wake_write, False)
        _signal.signal(signal.SIGCHLD, _noted)
        signal.set_wakeup_fd(wake_write)
        self._events = select.poll()
        self._events.register(self._wake, select.POLLIN)
        self._events.register(channel, select.POLLIN)

    def run(self, job: dict[str, Any]) -> int:
        """The program's status (see the module docstring, steps 3-5), once every descendant is
        gone; `made_work` then says whether this supervisor made the job's work directory (the
        job's `files`), which `_supervise` removes after the status when the job says `remove`."""
        for signum in STOP_SIGNALS:
            _signal.signal(signum, _noted)
        if "files" not in job:
            return self._run(job)
        try:  # before the limits: RLIMIT_FSIZE is the script's, not its files'
            os.mkdir(job["cwd"], 0o700)  # a name taken (by anyone) is refused, never removed
        except OSError as exc:
            return _cannot_make(exc)
        self.made_work = True
        try:
            make_work(job["cwd"], job["files"], made=True)
        except OSError as exc:
            return _cannot_make(exc)
        return self._run(job)

    def _run(self, job: dict[str, Any]) -> int:
        try:
            self.main = _spawn(job)
        except (OSError, ValueError) as exc:  # not executable, the user's process limit reached, ...
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            sys.stderr.write(f"opscraft: cannot start {job['argv'][0]}: {reason}\n")
            return CANNOT_START
        stop = False
        while self.status is None and not stop:
            for fd, _ in self._events.poll():
                if fd == self._wake:
                    stop = stop or not STOP_SIGNALS.isdisjoint(os.read(self._wake, 64))
                    self._reap()
                elif self.channel.recv(16).strip(INTERRUPT):  # a stop request, or the runner is gone
                    stop = True
                else:
                    self.interrupt()
        self.kill_all()
        # None only when the program itself could not be killed (see kill_all).
        return 128 + signal.SIGKILL if self.status is None else self.status

    def interrupt(self) -> None:
        """SIGINT to the program's process group (its session: the program and what it started
        in it), as Ctrl-C in a terminal: Terraform then stops gracefully (state written, lock
        released). The supervisor goes on waiting for the program to end."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.main, signal.SIGINT)

    def kill_all(self) -> None:
        """SIGKILL every descendant until none is left and every child is reaped.

        Gives up after `KILL_DEADLINE_SECONDS` on processes it may not kill (a set-user-ID
        program run by a non-root user), naming them on stderr.
        """
        me, deadline = os.getpid(), time.monotonic() + KILL_DEADLINE_SECONDS
        while self._reap():
            refused = []
            for pid in _descendants(me):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                except PermissionError:
                    refused.append(pid)
            if refused and time.monotonic() > deadline:
                sys.stderr.write(f"opscraft: not allowed to kill processes {refused}\n")
                return
            time.sleep(KILL_PAUSE_SECONDS)

    def _reap(self) -> bool:
        """Collect every ended child; False once there is no child at all."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return False
            if pid == 0:
                return True
            if pid == self.main:
                code = os.waitstatus_to_exitcode(status)
                self.status = 128 - code if code < 0 else code


def _noted(signum: int, frame: object) -> None:
    """The signal is seen through the wake-up descriptor; nothing to do here."""


def _supervise(channel: socket.socket) -> None:
    """The forked supervisor's life (see the module docstring); ends in `os._exit`.

    It does not end with the fork server: a fork server that died is replaced while the runs it
    forked go on. It ends with its runner, whose death closes the channel."""
    _signal.signal(signal.SIGCHLD, _signal.SIG_DFL)  # the fork server's handler would reap for it
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    os.setsid()
    supervisor = Supervisor(channel)
    rehearse()
    try:
        job, (stdout, stderr) = receive_job(channel)
    except (OSError, EOFError, ValueError):
        os._exit(CANNOT_START)
    os.dup2(stdout, 1)
    os.dup2(stderr, 2)
    os.close(stdout)
    os.close(stderr)
    report(channel, supervisor.run(job))
    if supervisor.made_work and job.get("remove"):
        with contextlib.suppress(OSError):  # what is left, the next start's sweep removes
            remove_work(job["cwd"])
    os._exit(0)


def report(channel: socket.socket, status: int) -> None:
    """The run is over (see the module docstring, step 6): close the output (descriptors 1 and
    2), then send `status`; a runner that is gone is ignored."""
    os.close(1)  # nothing is buffered: stderr is written line by line, stdout never
    os.close(2)
    with contextlib.suppress(OSError):
        channel.sendall(f"{status}\n".encode())


def serve(control: socket.socket) -> int:
    """The fork server's loop (see the module docstring); returns when the runner is gone.

    Before it forks, what each supervisor would otherwise redo: every descriptor but 0-2 made
    non-inheritable (its control socket came inheritable from the runner; whatever it opens
    afterwards Python opens non-inheritable: the channels' socket pairs; a pidfd is
    close-on-exec), so a supervisor's descriptors are checked already, and prctl(2) looked up."""
    for fd in _open_descriptors():
        if fd > 2:
            os.set_inheritable(fd, False)
    _prctl_call()
    _signal.signal(signal.SIGCHLD, _reap_children)
    while True:
        try:
            request = control.recv(16)
        except ConnectionResetError:
            request = b""
        if not request:
            return 0
        theirs, mine = socket.socketpair()
        pid = os.fork()
        if pid == 0:
            try:
                control.close()
                theirs.close()
                _supervise(mine)
            finally:  # never back into the fork server's loop
                os._exit(CANNOT_START)
        mine.close()
        pidfd = _pidfd(pid)
        try:
            socket.send_fds(control, [str(pid).encode()], [theirs.fileno(), *([pidfd] if pidfd else [])])
        except OSError:  # the runner is gone
            return 0
        finally:
            theirs.close()
            if pidfd is not None:
                os.close(pidfd)


def _reap_children(signum: int, frame: object) -> None:
    """The fork server's SIGCHLD handler: collect every ended supervisor."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def main(argv: list[str]) -> int:
    """The fork server of the control socket whose descriptor is `argv[0]` (decimal text)."""
    return serve(socket.socket(fileno=int(argv[0])))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
