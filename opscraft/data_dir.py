"""The data directory is private to the account OpsCraft runs as: the directory (and those in
it) mode 0700, every file 0600 (databases, the job queue, UI session storage, keys, logs).

Two parts: `PRIVATE_UMASK`, which the CLI sets when a process starts, so that whatever it creates
(SQLite databases and their -wal/-shm files, NiceGUI's storage JSON) is born private; and
`make_private`, which tightens what an older version or another tool left group- or
world-accessible, once per start. Runs on the local runner do not inherit the umask: their
fork server gets the usual 022 (`execution/fork_server.py`).
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from pathlib import Path

PRIVATE_UMASK = 0o077
DIR_MODE = 0o700
FILE_MODE = 0o600
# Refused rather than tightened: a master key that others could read may have been copied, and
# the vault says so at start (security/vault.py `read_key_file`, `KEY_FILE`).
LEFT_TO_THE_VAULT = frozenset({"master.key"})

log = logging.getLogger(__name__)
#: What a one-line refusal adds to a write's reason when the disk is full (`write_failure`).
FREE_SPACE = "the disk is full: free space there, then try again"


def create_private(path: Path, text: str) -> None:
    """Create `path` (mode 0600) holding `text`, whole or not at all: written and synced under a
    name of its own first, then linked to `path`. Raises FileExistsError when `path` exists (a
    concurrent first start made it: it stays as it was) and OSError when it cannot be written
    (ENOSPC: a full disk), leaving no `path`. Created in place, a key file a full disk cut short
    stayed empty, and every later start was refused: "the key in .../secret_key is shorter than
    32 characters"."""
    staged = path.with_name(f".{path.name}.{os.getpid()}.new")
    try:
        fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(staged, path)
    finally:
        staged.unlink(missing_ok=True)


def write_failure(exc: OSError) -> str:
    """The reason a write in the data directory failed, for a one-line refusal: `exc.strerror`
    (`Permission denied`), and for a full disk (ENOSPC, EDQUOT) what to do, `No space left on
    device: the disk is full: free space there, then try again`."""
    reason = exc.strerror or str(exc)
    return f"{reason}: {FREE_SPACE}" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else reason


def make_private(data_dir: Path) -> list[Path]:
    """Create `data_dir` (0700) if missing and remove group and other access from it and from
    everything below it (symbolic links are not followed; `LEFT_TO_THE_VAULT` excepted).
    Returns the paths whose mode changed; a path that cannot be changed (another owner) is
    logged as a warning and left. `OSError` when the directory cannot be created."""
    data_dir.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    changed = [data_dir] if _tighten(data_dir, DIR_MODE) else []
    for folder, dirs, files in os.walk(data_dir):
        base = Path(folder)
        changed += [base / d for d in dirs if _tighten(base / d, DIR_MODE)]
        changed += [base / f for f in files if f not in LEFT_TO_THE_VAULT and _tighten(base / f, FILE_MODE)]
    return changed


def _tighten(path: Path, mode: int) -> bool:
    try:
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode) or not info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            return False
        path.chmod(stat.S_IMODE(info.st_mode) & ~(stat.S_IRWXG | stat.S_IRWXO) | (mode & stat.S_IRWXU))
    except OSError as exc:
        log.warning("data directory: cannot make %s private (%s)", path, exc.strerror)
        return False
    return True
