"""The job a container's loader reads on stdin (`execution/container_job.py`), decoded by the
same POSIX sh loader on this machine (the containers run it in BusyBox or dash/bash): arguments,
variables (with line breaks, quotes and `$(...)` kept as data), the work files and `file`
secrets written 0400 into the secret directory."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from opscraft.execution import container_job

TRICKY = "two\nlines 'q' $(id) `id` \\ trailing newline\n"


def _run_loader(tmp_path: Path, job: bytes) -> subprocess.CompletedProcess[bytes]:
    """The loader with its secret directory moved under `tmp_path` (only the path differs)."""
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    loader = container_job.LOADER.replace(container_job.SECRET_DIR, str(secrets))
    work = tmp_path / "work"
    work.mkdir()
    return subprocess.run(
        ["/bin/sh", "-c", loader, "opscraft-job"], input=job, cwd=work, capture_output=True, check=False
    )


def test_loader_unpacks_arguments_variables_files_and_file_secrets(tmp_path: Path) -> None:
    owner = (os.getuid(), os.getgid())
    script = b'printf "%s|" "$1" "$VALUE" "$KEY_PATH"; cat script.txt; cat "$KEY_PATH"\n'
    job = container_job.payload(
        ["/bin/sh", "run.sh", TRICKY],
        {"VALUE": TRICKY, "KEY_PATH": f"{tmp_path}/secrets/KEY"},
        {"run.sh": script, "script.txt": b"from the archive\n"},
        owner,
        {"KEY": "-----BEGIN KEY-----\nabc\n-----END KEY-----\n"},
    )
    done = _run_loader(tmp_path, job)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode() == (
        f"{TRICKY}|{TRICKY}|{tmp_path}/secrets/KEY|from the archive\n"
        "-----BEGIN KEY-----\nabc\n-----END KEY-----\n"
    )
    assert (tmp_path / "secrets" / "KEY").stat().st_mode & 0o777 == 0o400


def test_a_job_without_its_archive_is_refused(tmp_path: Path) -> None:
    job = container_job.payload(["true"], {}, {}, (0, 0))
    done = _run_loader(tmp_path, job[: job.index(b"true\n\n") + 6])  # the header only
    assert done.returncode == container_job.FAILED_TO_UNPACK
    assert b"could not be unpacked" in done.stderr


@pytest.mark.parametrize("name", ["../etc/passwd", "A B", "X\nY", "", "1ABC", "A=B"])
def test_names_that_are_not_variable_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="not an environment variable name"):
        container_job.payload(["true"], {}, {}, (0, 0), {name: "v"})
    with pytest.raises(ValueError, match="not an environment variable name"):
        container_job.payload(["true"], {name: "v"}, {}, (0, 0))


def test_archive_files_are_private_to_the_runs_user() -> None:
    job = container_job.payload(["true"], {}, {"script.sh": b"echo hi\n"}, (65534, 65534))
    with tarfile.open(fileobj=io.BytesIO(job[job.index(b"true\n\n") + 6 :])) as tar:
        (member,) = tar.getmembers()
    assert (member.name, member.mode, member.uid, member.gid) == ("script.sh", 0o600, 65534, 65534)
