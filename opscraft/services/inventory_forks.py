"""Inventory checks forked from one pre-started Python that holds ansible-core's imports.

Each inventory check (`services/inventories.py`) started the tool's Python anew
(`inventory_listing.command`): about 0.45 s of CPU, nearly all of it ansible-core's imports (its
configuration is read at import), for a parse of a few milliseconds. Every save of a new
inventory text and every run form's check paid it. Now each Python that checks keeps a fork
server (`FORK_SERVER_CODE`, run by the tool's Python once per process and Python): it imports
what `inventory_listing.LISTINGS_CODE` runs, under the one environment every check has (the
caller's, with a home and Ansible directories of the server's own: ansible-core reads its
configuration at import), then forks one child per check. The child is the old check's process:
a session of its own, the check's folder as its directory, the tool's stdout and stderr written
to `OUT_FILE` and `ERR_FILE` there, its exit code the tool's; a check over its time
(`ForkServer.check`) kills that session as before. The server costs its memory (some 45 MB resident)
while the process lives. A child shares nothing with the next one (each is forked from
the state after the imports), and the server reads nothing but the folder it is sent.

Wire: the caller sends the folder's path (UTF-8) with one end of a fresh socket pair
(SCM_RIGHTS) on the server's control socket (SOCK_SEQPACKET: one message per check, never two
read as one); the child writes its pid, then its exit code, each on a line, to that end. The
server ends when its control socket closes (this process ended), and a server that died is
started again by the next check.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from opscraft.services.inventory_listing import LISTINGS_CLASS

OUT_FILE = ".listing.out"
ERR_FILE = ".listing.err"
# What the tool's Python runs (`python -I -c FORK_SERVER_CODE <control fd>`); the module docstring.
FORK_SERVER_CODE = (
    """\
import os, signal, socket, sys, tempfile
home = tempfile.mkdtemp(prefix="opscraft-inventory-checks-")
os.environ.update(HOME=home, ANSIBLE_HOME=home + "/.ansible", ANSIBLE_LOCAL_TEMP=home + "/.ansible/tmp",
                  ANSIBLE_CONFIG=home + "/ansible.cfg")
"""
    + LISTINGS_CLASS
    + f"""
OUT_FILE, ERR_FILE = {OUT_FILE!r}, {ERR_FILE!r}
"""
    + """\
def check(conn, folder):
    os.setsid()
    os.chdir(folder)
    for fd, name in ((1, OUT_FILE), (2, ERR_FILE)):
        os.dup2(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), fd)
    conn.sendall(b"%d\\n" % os.getpid())
    code = 1
    try:
        Both.cli_executor(["ansible-inventory", "-i", sys.argv[2], "--list", "--export"])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        conn.sendall(b"%d\\n" % code)
        os._exit(code)

control = socket.socket(fileno=int(sys.argv[1]))
signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the children
try:
    while True:
        message, fds, _, _ = socket.recv_fds(control, 4096, 1)
        if not message:
            break
        if os.fork() == 0:
            control.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            check(socket.socket(fileno=fds[0]), message.decode())
        for fd in fds:
            os.close(fd)
finally:
    import shutil
    shutil.rmtree(home, ignore_errors=True)
"""
)


@dataclass(frozen=True)
class Checked:
    """One forked check's end: the tool's exit code (negative: killed by that signal, or the
    child ended without one), its stdout and stderr."""

    code: int
    out: str
    err: str


class CheckTimeout(Exception):
    """The check did not end within its time (its session was killed)."""


class ForkServer:
    """The fork server of one Python (`python`: the interpreter words of the tool's `#!` line,
    `inventory_listing.command`), started at the first check; thread-safe, any event loop."""

    def __init__(self, python: list[str], inventory: str, environment: dict[str, str]) -> None:
        self._argv = [*python, "-I", "-c", FORK_SERVER_CODE]
        self._inventory = inventory
        self._environment = environment
        self._lock = threading.Lock()
        self._control: socket.socket | None = None
        self._process: subprocess.Popen[bytes] | None = None

    def _send(self, folder: Path, end: socket.socket) -> None:
        """Hand `folder` and `end` to the server, starting it first when it is not running
        (OSError when it cannot be started or taken)."""
        with self._lock:
            for attempt in range(2):
                if self._control is None or self._process is None or self._process.poll() is not None:
                    self._start()
                assert self._control is not None
                try:
                    socket.send_fds(self._control, [os.fsencode(folder)], [end.fileno()])
                    return
                except OSError:
                    self._stop()
                    if attempt:
                        raise

    def _start(self) -> None:
        self._stop()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)  # one message per check
        try:
            self._process = subprocess.Popen(
                [*self._argv, str(theirs.fileno()), self._inventory],
                pass_fds=[theirs.fileno()],
                env=self._environment,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._control = ours

    def _stop(self) -> None:
        if self._control is not None:
            self._control.close()  # the server's loop ends: its control socket closed
            self._control = None
        if self._process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(0 if self._process.poll() is not None else 5)
            if self._process.poll() is None:
                self._process.kill()
                self._process.wait()
            self._process = None

    async def check(self, folder: Path, seconds: float) -> Checked:
        """The listing of the inventory file in `folder`, by a child forked for it. Raises
        CheckTimeout after `seconds` (its session killed), OSError when no server
        could take the check."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            await asyncio.to_thread(self._send, folder, theirs)
        finally:
            theirs.close()
        reader, writer = await asyncio.open_unix_connection(sock=ours)
        pid: int | None = None
        try:
            async with asyncio.timeout(seconds):
                first = await reader.readline()
                if not first:
                    raise OSError("the inventory checks' fork server ended before the check")
                pid = int(first)
                said = await reader.readline()
        except TimeoutError:
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
            raise CheckTimeout from None
        finally:
            writer.close()
        code = int(said) if said else -signal.SIGKILL  # killed before it could say
        return Checked(code, _read(folder / OUT_FILE), _read(folder / ERR_FILE))


def _read(path: Path) -> str:
    try:
        return path.read_bytes().decode(errors="replace")
    except FileNotFoundError:
        return ""


_servers: dict[tuple[str, ...], ForkServer] = {}
_servers_lock = threading.Lock()


def server(python: list[str], inventory: str, environment: dict[str, str]) -> ForkServer:
    """The process's fork server for `python` (one per interpreter and inventory file name)."""
    key = (*python, inventory)
    with _servers_lock:
        if key not in _servers:
            _servers[key] = ForkServer(python, inventory, environment)
        return _servers[key]
