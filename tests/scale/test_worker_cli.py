"""`opscraft worker` and `opscraft serve --workers` refuse bad values with one line."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests import migrated_sqlite
from tests.conftest import ROOT, free_port
from tests.waiting import wait_until


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["worker", "--slots", "0"], "argument --slots: must be from 1 to 64; given '0'"),
        (["worker", "--slots", "65"], "argument --slots: must be from 1 to 64; given '65'"),
        (["worker", "--name", "no spaces"], "argument --name: must be 1-64 ASCII letters, digits"),
        (["worker", "--runner", "ssh"], "invalid choice: 'ssh'"),
        (["serve", "--workers", "-1"], "argument --workers: must be from 0 to 64; given '-1'"),
    ],
)
def test_bad_values_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    env = {"OPSCRAFT_DATA_DIR": str(tmp_path), "OPSCRAFT_NO_BOOTSTRAP": "1", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "opscraft", *args, "--data-dir", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr  # a usage error, as argparse's own
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_a_worker_named_like_a_live_one_elsewhere_is_refused(tmp_path: Path) -> None:
    """`opscraft worker --name build-1` while a worker of that name heartbeats on another host:
    one line saying so (it used to start, end that worker's running runs as interrupted and
    remove its containers)."""
    env = {"OPSCRAFT_DATA_DIR": str(tmp_path), "OPSCRAFT_NO_BOOTSTRAP": "1", "PATH": "/usr/bin:/bin"}

    def opscraft(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "opscraft", *args, "--data-dir", str(tmp_path)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    migrated_sqlite.seed(tmp_path)  # a database at the head, as after a first start
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    with sqlite3.connect(tmp_path / "opscraft.db") as db:
        db.execute(
            "INSERT INTO workers (id, host_name, pid, runners, slots, started_at, heartbeat_at, lost)"
            " VALUES ('build-1', 'other-host', 4242, '[]', 2, ?, ?, 0)",
            (now, now),
        )
    done = opscraft("worker", "--name", "build-1")
    assert done.returncode != 0
    assert "worker id 'build-1' is in use by a live worker on other-host (pid 4242" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_worker_that_cannot_reach_redis_is_refused(tmp_path: Path) -> None:
    """A mistyped REDIS_URL: one line (it used to start, say "ready" and show as `alive` with free
    slots while it could never take a run from the queue)."""
    port = free_port()  # nothing listens there
    env = {
        "OPSCRAFT_DATA_DIR": str(tmp_path),
        "OPSCRAFT_NO_BOOTSTRAP": "1",
        "PATH": "/usr/bin:/bin",
        "REDIS_URL": f"redis://:hunter2secret@127.0.0.1:{port}/0",
    }
    done = subprocess.run(
        [sys.executable, "-m", "opscraft", "worker", "--data-dir", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert done.stderr.startswith("opscraft: cannot reach Redis (REDIS_URL): "), done.stderr
    assert f"127.0.0.1:{port}" in done.stderr and "check REDIS_URL" in done.stderr
    assert "hunter2secret" not in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "opscraft.db").exists()  # nothing was set up


def test_a_worker_that_can_run_nothing_says_why_and_offers_nothing(tmp_path: Path) -> None:
    """No Docker engine and the local runner off: the worker said "runners local", listed `local`
    in `workers` (the Workers page, the runners a submission is checked against) and could run
    nothing. It now says it can run nothing and why, offers nothing, and offers `local` at its
    next heartbeat once an admin enables the local runner."""
    env = {
        "OPSCRAFT_DATA_DIR": str(tmp_path),
        "OPSCRAFT_NO_BOOTSTRAP": "1",
        "PATH": "/usr/bin:/bin",
        "LOG_LEVEL": "INFO",
        "DOCKER_HOST": f"unix://{tmp_path / 'no-docker.sock'}",
        "OPSCRAFT_WORKER_HEARTBEAT_SECONDS": "0.5",
    }
    migrated_sqlite.seed(tmp_path)
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "opscraft", "worker", "--name", "idle-1", "--slots", "1"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )

    def runners() -> list[str]:
        with sqlite3.connect(tmp_path / "opscraft.db") as db:
            row = db.execute("SELECT runners FROM workers WHERE id = 'idle-1'").fetchone()
        return json.loads(row[0]) if row else []

    try:
        wait_until(
            lambda: " ready: " in log.read_text() or worker.poll() is not None, "the worker's start", 120
        )
        text = log.read_text()
        assert worker.poll() is None, text
        assert "worker idle-1 can run nothing: the Docker engine does not answer: " in text, text
        assert (
            "; the local runner is off (OPSCRAFT_LOCAL_RUNNER=true, or an admin enables it under Settings)"
            in text
        )
        assert "worker idle-1 ready: 1 slot(s), runners none (it can run nothing: see above)" in text
        assert runners() == []
        with sqlite3.connect(tmp_path / "opscraft.db") as db:
            db.execute(
                "INSERT INTO app_settings (key, value, updated_at) "
                "VALUES ('local_runner_enabled', 'true', CURRENT_TIMESTAMP)"
            )
        wait_until(lambda: runners() == ["local"], "the heartbeat to offer the local runner", 60)
        wait_until(lambda: "worker idle-1 offers runners again: local" in log.read_text(), "its log line", 30)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=90)
