"""The command line and the shutdown on a really full disk (a tmpfs of a few MB, filled): one
line naming the cause, the directory and what to do. `opscraft user create` said "cannot open
the SQLite database: disk I/O error" (SQLite's words when it cannot write its journal), a
worker's stop logged a traceback ("recording the stop failed"), and a first start cut short by
the full disk left an empty `secret_key` that refused every later start."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import migrated_sqlite
from tests.cli_forks import CommandForks
from tests.cli_runs import cli_env
from tests.conftest import ROOT, require_service
from tests.waiting import wait_until

DB_FULL = (
    "opscraft: the database cannot write: the disk of {} is full; free space there, then run the "
    "command again"
)
DIR_FULL = (
    "opscraft: cannot write to the data directory {}: No space left on device: the disk is full: "
    "free space there, then try again"
)


@pytest.fixture(scope="module")
def opscraft() -> Iterator[CommandForks]:
    """`python -m opscraft ...` in a process of its own, forked from one that imported OpsCraft
    once (tests/cli_forks.py): a start with its imports was about 1 s of CPU for each of the
    module's ten commands. The worker and the desktop, whose process is what their tests watch
    (a log written as it runs, a display), start afresh."""
    forks = CommandForks()
    try:
        yield forks
    finally:
        forks.close()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A file system of 4 MB of its own (tmpfs), unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True)
    require_service(done.returncode == 0, f"a tmpfs mount (root): {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Fill `disk` to its last byte; the file that fills it."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (65536, 1):
            with contextlib.suppress(OSError):
                while os.write(fd, b"\0" * size):
                    pass
    finally:
        os.close(fd)
    assert os.statvfs(disk).f_bavail == 0
    return filler


def test_every_command_on_a_full_disk_is_one_line_naming_it(opscraft: CommandForks, small_disk: Path) -> None:
    data = small_disk / "data"
    migrated_sqlite.seed(data)  # at the head: the first start's migrations are not this test's
    made = opscraft(data, "user", "create", "ann", "--role", "admin", stdin="Ops-Pass-1234\n")
    assert made.returncode == 0, made.stderr
    fill(small_disk)
    commands = [
        (["user", "create", "bob"], DB_FULL),
        (["user", "reset-password", "ann"], DB_FULL),
        (["db", "upgrade"], DB_FULL),
        (["secrets", "rotate-key"], DB_FULL),
        (["serve", "--port", "1"], DIR_FULL),
        (["worker"], DIR_FULL),
    ]
    for args, said in commands:
        done = opscraft(data, *args, stdin="Ops-Pass-1234\n")
        assert (done.returncode, done.stderr.strip().splitlines()) == (1, [said.format(data)]), (
            args,
            done.stderr,
        )


def test_a_first_start_on_a_full_disk_leaves_no_half_written_key(
    opscraft: CommandForks, small_disk: Path
) -> None:
    data = small_disk / "data"
    data.mkdir()
    filler = fill(small_disk)
    refused = opscraft(data, "db", "upgrade")
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        "opscraft: configuration error: OPSCRAFT_DATA_DIR: cannot keep the generated key in "
        f"{data / 'secret_key'}: No space left on device: the disk is full: free space there, then try again"
    ]
    assert sorted(p.name for p in data.iterdir()) == []  # no empty key file, nothing staged
    filler.unlink()  # space freed: the next start goes on
    started = opscraft(data, "db", "upgrade")
    assert started.returncode == 0, started.stderr
    assert len((data / "secret_key").read_text()) >= 32 and len((data / "master.key").read_text()) > 40


def test_a_worker_stopping_on_a_full_disk_says_so_in_one_line(small_disk: Path) -> None:
    data = small_disk / "data"
    log = small_disk.parent / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "opscraft", "worker", "--slots", "1"],
            cwd=ROOT,
            env=cli_env(data, LOG_LEVEL="INFO", OPSCRAFT_WORKER_HEARTBEAT_SECONDS="0.5"),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(
            lambda: " ready: " in log.read_text() or worker.poll() is not None, "the worker's start", 120
        )
        assert worker.poll() is None, log.read_text()
        fill(small_disk)
        # The heartbeats meet the full disk first: once, one line naming it.
        wait_until(lambda: "housekeeping failed" in log.read_text(), "a heartbeat on the full disk", 60)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=90) == 0, log.read_text()
    finally:
        if worker.poll() is None:
            worker.kill()
    text = log.read_text()
    assert "Traceback" not in text, text
    full = f"the database cannot write: the disk of {data} is full; free space there (OperationalError: "
    stopped = [line for line in text.splitlines() if "recording the stop failed" in line]
    assert len(stopped) == 1 and f"recording the stop failed: {full}" in stopped[0], text
    beats = [line for line in text.splitlines() if "housekeeping failed" in line]
    assert len(beats) == 1 and full in beats[0], text


def test_a_full_disk_reason_names_what_to_do() -> None:
    from opscraft.data_dir import write_failure

    assert write_failure(OSError(errno.ENOSPC, "No space left on device")).endswith(
        ": free space there, then try again"
    )
    assert write_failure(OSError(errno.EACCES, "Permission denied")) == "Permission denied"


def test_the_desktop_on_a_full_disk_says_its_log_file_cannot_be_written(
    opscraft: CommandForks, small_disk: Path
) -> None:
    """The desktop's log file (docs/desktop.md) on a full disk: logging's "--- Logging error ---"
    traceback came with the refusal; now one line says the file cannot be written and why, and the
    refusal follows, on standard error only."""
    data = small_disk / "data"
    assert opscraft(data, "db", "upgrade").returncode == 0
    fill(small_disk)
    done = subprocess.run(
        [sys.executable, "-m", "opscraft", "desktop"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        env={k: v for k, v in cli_env(data).items() if k not in {"DISPLAY", "WAYLAND_DISPLAY"}},
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"opscraft: cannot write the desktop log file {data / 'desktop.log'}: No space left on device: "
        "the disk is full: free space there, then try again",
        "opscraft: no display for the desktop window (DISPLAY and WAYLAND_DISPLAY are unset): "
        "start it from a desktop session, or run `opscraft serve` and use a browser",
    ]
