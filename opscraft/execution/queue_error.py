"""`QueueFileError`, in a module of its own: the command line catches it without importing Huey
for commands that open no job queue."""

from __future__ import annotations

from pathlib import Path


class QueueFileError(RuntimeError):
    """The SQLite job queue's file (`<data dir>/queue.db`) cannot be opened: it is not an SQLite
    database (damaged), or the disk is full or failing. The message names the file and SQLite's
    reason; the file is left as it is."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"cannot open the job queue {path}: {reason}")
