"""Whether a worker process is provably gone: what lets a cancel of its run end at once.

A stale heartbeat does not prove a worker dead (a busy machine, a paused VM, a network cut
delay it too), so a run of a silent worker ends only once the worker is declared lost
(`OPSCRAFT_WORKER_LOST_SECONDS`). A process can prove more about a worker on its own machine
and in its own PID namespace: no process has the worker's pid any more (or it is a zombie, a
process that ended and was not reaped yet). The *process key* (`process_key`: the kernel's boot
id and this process's PID namespace) tells when a pid recorded in `workers` means the same
process to the reader: a worker in a container (another PID namespace, even with the host's host
name under `network_mode: host`) or on another machine never matches, and a pid reused by
another process reads as alive: both only ever keep a run waiting, never end a live one.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from opscraft.config import Settings

_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
_PID_NAMESPACE = "/proc/self/ns/pid"


def cancel_grace_seconds(settings: Settings) -> float:
    """How long a worker holding a cancelled run may be silent before it counts as not answering
    (two heartbeat periods, `OPSCRAFT_WORKER_HEARTBEAT_SECONDS`): then its run ends at once if its
    process is provably gone (`Worker.end_dead`), and the API says the cancel waits on it otherwise."""
    return 2 * settings.worker_heartbeat_seconds


@functools.cache
def process_key() -> str | None:
    """`<boot id>/<PID namespace>` of this process (e.g. `0f3c...e1/pid:[4026531836]`, at most
    100 characters), or None where /proc does not tell (not Linux): no worker is then proved gone."""
    try:
        key = f"{_BOOT_ID.read_text().strip()}/{os.readlink(_PID_NAMESPACE)}"
    except OSError:
        return None
    return key[:100]


def proven_gone(key: str | None, pid: int) -> bool:
    """Whether the process `pid`, recorded with process key `key`, has ended: only when `key` is
    this process's (same boot, same PID namespace) and no running process has that pid."""
    if key is None or key != process_key() or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # someone else's process holds the pid: alive
        return False
    try:  # an ended process its parent has not reaped yet is gone too
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"
