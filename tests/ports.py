"""Ports for the servers the tests start, and whether a health answer came from the one started.

A port is picked free (`free_port`: bound to 0 and released) before the server, seconds later,
binds it. Meanwhile another test process may be given the same port for its own server: the
second to bind exits with "address already in use", and until it does, a readiness probe of
`http://127.0.0.1:PORT/api/v1/health` is answered by the other process's OpsCraft. A whole CI
run lost a module that way: its server was "healthy", and its first registration went to
another test's server, which had its administrator already (403). `listens_on` tells them apart.
"""

from __future__ import annotations

import socket

import psutil

ADDRESS_IN_USE = "address already in use"
"""What a server's log says when its port was taken (errno EADDRINUSE, as uvicorn prints it)."""


def free_port() -> int:
    """A TCP port of 127.0.0.1 free right now (the kernel's pick): free until someone binds it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listens_on(pid: int, port: int) -> bool:
    """Whether process `pid`, or one of its descendants (the packaged binary's bootloader runs the
    server in a child), listens on TCP `port`. False once the process has ended."""
    try:
        parent = psutil.Process(pid)
        processes = [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return False
    for process in processes:
        try:
            connections = process.net_connections(kind="tcp")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in connections):
            return True
    return False
