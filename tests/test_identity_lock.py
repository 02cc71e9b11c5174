"""One process per worker id (`execution/identity_lock.py`): a second process on the same data
directory is refused before it recovers anything; a holder that dies lets go at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from opscraft.execution import identity_lock
from tests.conftest import ROOT

HOLD = (
    "import sys, time\n"
    "from pathlib import Path\n"
    "from opscraft.execution import identity_lock\n"
    "identity_lock.claim(Path(sys.argv[1]), 'w1')\n"
    "print('held', flush=True)\n"
    "time.sleep(600)\n"
)


def _holder(data_dir: Path) -> subprocess.Popen[str]:
    """Another process holding worker id `w1` of `data_dir` (once it printed `held`)."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(data_dir)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert process.stdout is not None and process.stdout.readline() == "held\n"
    return process


def test_another_process_holding_the_id_is_named_and_a_dead_one_lets_go(tmp_path: Path) -> None:
    holder = _holder(tmp_path)
    try:
        with pytest.raises(identity_lock.WorkerIdInUse) as refused:
            identity_lock.claim(tmp_path, "w1")
        assert f"(pid {holder.pid})" in str(refused.value) and str(tmp_path) in str(refused.value)
        identity_lock.claim(tmp_path, "w2")  # another id on the same data directory is free
        identity_lock.release(tmp_path, "w2")
    finally:
        holder.send_signal(signal.SIGKILL)  # a crash: the kernel releases the lock
        holder.wait()
    identity_lock.claim(tmp_path, "w1")
    identity_lock.release(tmp_path, "w1")


def test_claims_in_one_process_count(tmp_path: Path) -> None:
    """The CLI claims before the worker starts, and the worker claims and releases again."""
    identity_lock.claim(tmp_path, "w1")
    identity_lock.claim(tmp_path, "w1")
    identity_lock.release(tmp_path, "w1")
    with pytest.raises(subprocess.CalledProcessError):  # still held by this process
        subprocess.run(
            [sys.executable, "-c", HOLD, str(tmp_path)],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            check=True,
            timeout=60,
        )
    identity_lock.release(tmp_path, "w1")
    holder = _holder(tmp_path)  # the last release let go
    holder.kill()
    holder.wait()
