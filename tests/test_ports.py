"""`tests.ports.listens_on`: a server's health answer is taken as its own only from the process
that listens (a whole CI run's module talked to another test's server, on a port taken meanwhile)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from tests.ports import free_port, listens_on

# A child that listens on a port of its own and says which, then waits for stdin to close.
LISTENER = """
import socket, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
print(s.getsockname()[1], flush=True)
sys.stdin.read()
"""


def test_a_port_is_told_to_be_the_listening_processs_own_or_its_childs_not_anothers() -> None:
    with socket.socket() as ours:
        ours.bind(("127.0.0.1", 0))
        ours.listen()
        port = ours.getsockname()[1]
        assert listens_on(os.getpid(), port)
        pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE}
        child = subprocess.Popen([sys.executable, "-c", LISTENER], **pipes)
        try:
            assert child.stdout is not None
            childs = int(child.stdout.readline())
            assert listens_on(os.getpid(), childs), "a descendant's listening port counts"
            assert not listens_on(child.pid, port), "another process's port"
        finally:
            child.communicate(b"")
        assert not listens_on(child.pid, childs), "an ended process listens on nothing"
    assert not listens_on(os.getpid(), free_port())
