"""The supervisor of one local run: no process the script starts outlives the run.

Started by the local runner as `python -I -S supervisor.py PARENT_PID PROGRAM [ARG...]`; it uses
the standard library only, so it starts in milliseconds without the virtualenv. It

1. becomes a child subreaper (`prctl(PR_SET_CHILD_SUBREAPER)`, Linux 3.4+, see prctl(2)): a
   process orphaned anywhere below it, e.g. by `setsid cmd &` or a double fork, is re-parented to
   it instead of to init, so every process the script starts stays its descendant;
2. asks for SIGTERM when its parent dies (`PR_SET_PDEATHSIG`), so a server killed with SIGKILL
   takes its local runs along;
3. starts PROGRAM in a session of its own, with default signal dispositions and an empty mask;
4. waits until PROGRAM exits, or until it is told to stop (SIGTERM, SIGINT or SIGHUP);
5. kills every descendant with SIGKILL, scan after scan of /proc, until it has no child left: a
   process forked while the others are killed is re-parented to it and found by the next scan;
6. exits with PROGRAM's status: its exit code, or 128 + N when signal N ended it.

It writes to stderr only when PROGRAM cannot be started (exit code 127), or when it may not kill
a descendant.

It starts once per local run, so its start-up is kept small: it uses the C cores `_signal` and
`_ctypes` (the same functions as `signal` and `ctypes`) because importing the public wrappers
(`enum`, ctypes' type zoo) would double its CPU time, about 10 ms more per run.
"""

from __future__ import annotations

import _ctypes
import _signal as signal
import os
import sys
import time

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
# Python ignores these; the program gets the default back.
DEFAULT_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGCHLD, *STOP_SIGNALS)
KILL_PAUSE_SECONDS = 0.002
KILL_DEADLINE_SECONDS = 5
CANNOT_START = 127


class _CInt(_ctypes._SimpleCData):  # ctypes.c_int
    _type_ = "i"


class _CFunction(_ctypes.CFuncPtr):  # ctypes.CFUNCTYPE(c_int, use_errno=True)
    _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
    _restype_ = _CInt


def _prctl(option: int, value: int) -> None:
    """prctl(2) with one argument; OSError when the kernel refuses."""
    prctl = _CFunction(_ctypes.dlsym(_ctypes.dlopen(None), "prctl"))
    if prctl(option, value, 0, 0, 0) != 0:
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


class Supervisor:
    """Starts the program, reaps whatever ends below it, kills the rest at the end."""

    def __init__(self, argv: list[str]) -> None:
        self.argv = argv
        self.main = 0
        self.status: int | None = None

    def run(self) -> int:
        wanted = {signal.SIGCHLD, *STOP_SIGNALS}
        signal.pthread_sigmask(signal.SIG_BLOCK, wanted)
        try:
            self.main = os.posix_spawnp(
                self.argv[0], self.argv, os.environ, setsid=True, setsigmask=(), setsigdef=DEFAULT_SIGNALS
            )
        except OSError as exc:
            sys.stderr.write(f"opscraft: cannot start {self.argv[0]}: {exc.strerror}\n")
            return CANNOT_START
        while self.status is None:
            if signal.sigwaitinfo(wanted).si_signo != signal.SIGCHLD:
                break
            self._reap()
        self.kill_all()
        # None only when the program itself could not be killed (see kill_all).
        return 128 + signal.SIGKILL if self.status is None else self.status

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


def main(args: list[str]) -> int:
    """`PARENT_PID PROGRAM [ARG...]` -> PROGRAM's exit status (see the module docstring)."""
    parent, argv = int(args[0]), args[1:]
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before PR_SET_PDEATHSIG took effect
        return 128 + signal.SIGTERM
    return Supervisor(argv).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
