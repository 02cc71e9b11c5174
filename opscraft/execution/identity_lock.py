"""One process per worker id: an exclusive lock on `<data dir>/worker-<id>.lock` while it runs.

A worker's start recovers from its own crash: runs recorded as running under its id become
`error` ("interrupted by server restart") and containers and processes labelled with its id are
removed. The id is kept in the data directory, so a second process started on the same data
directory (`serve` while the desktop window is open, the window launched twice) took the same id
and, starting, ended the first process's runs and removed their containers while they ran.

The lock is a `flock(2)` on a file of the data directory: the kernel lets go of it when the
process ends, however it ends, so a crashed worker never leaves a stale lock behind and its
restart recovers as before. Within one process the claim counts (tests start several runtimes
on one data directory in one process); the file holds the holder's pid for the refusal message.
"""

from __future__ import annotations

import fcntl
import os
import re
import secrets
import socket
import threading
from pathlib import Path

from opscraft.config import Settings

WORKER_ID_FILE = "worker-id"

_held: dict[Path, tuple[int, int]] = {}  # lock file -> (descriptor, claims in this process)
_guard = threading.Lock()


def worker_identity(settings: Settings) -> str:
    """This process's worker id: `OPSCRAFT_WORKER_ID`, else one generated once (host name + random)
    and kept in the data directory, so a restart recovers the runs of the same worker."""
    if settings.worker_id:
        return settings.worker_id
    path = settings.data_dir / WORKER_ID_FILE
    if not path.exists():
        host = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname())[:40] or "worker"
        path.write_text(f"{host}-{secrets.token_hex(4)}\n")
    return path.read_text().strip()


class WorkerIdInUse(RuntimeError):
    """Another process runs a worker with this id on this data directory (message: what to do)."""


def lock_file(data_dir: Path, worker_id: str) -> Path:
    """The lock file of `worker_id` in `data_dir`."""
    return data_dir / f"worker-{worker_id}.lock"


def claim(data_dir: Path, worker_id: str) -> None:
    """Hold the lock of `worker_id` for this process (again: one more claim). `WorkerIdInUse`
    when another process holds it; `OSError` when the lock file cannot be opened."""
    path = lock_file(data_dir, worker_id)
    with _guard:
        if path in _held:
            fd, claims = _held[path]
            _held[path] = (fd, claims + 1)
            return
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise WorkerIdInUse(
                f"another OpsCraft process (pid {holder}) is already running on the data directory "
                f"{data_dir} (worker {worker_id}); starting would end its runs: close or stop it "
                "first, or use another --data-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        _held[path] = (fd, 1)


def release(data_dir: Path, worker_id: str) -> None:
    """Give back one claim of `worker_id`; the last one unlocks (nothing when none is held)."""
    path = lock_file(data_dir, worker_id)
    with _guard:
        if path not in _held:
            return
        fd, claims = _held.pop(path)
        if claims > 1:
            _held[path] = (fd, claims - 1)
        else:
            os.close(fd)
