"""The job a container's loader reads on stdin (`execution/container_job.py`), decoded by the
same POSIX sh loader on this machine (the containers run it in BusyBox or dash/bash): arguments,
variables (with line breaks, quotes and `$(...)` kept as data), the work files and `file`
secrets written 0400 into the secret directory."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from opscraft.execution import container_job
from tests.waiting import wait_until

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


def test_the_loaders_own_unpacking_never_reads_the_jobs_variables(tmp_path: Path) -> None:
    """GNU tar reads options from TAR_OPTIONS: a run's variable of that name (a viewer's parameter
    value, before the name was refused) made the loader's `tar -x` run a command, before any
    script and with the attached secrets exported. The loader's tools run with an empty
    environment; the script still gets every variable."""
    action = "--checkpoint=1 --checkpoint-action=exec='echo INJECTED >&2'"
    job = container_job.payload(
        ["/bin/sh", "-c", 'printf "%s" "$TAR_OPTIONS"'],
        {"TAR_OPTIONS": action},
        {"run.sh": b"true\n"},
        (os.getuid(), os.getgid()),
    )
    done = _run_loader(tmp_path, job)
    assert done.returncode == 0, done.stderr
    assert b"INJECTED" not in done.stderr and done.stdout.decode() == action


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


def _record(token: str, status: int) -> bytes:
    return b"\x1eopscraft-end " + token.encode() + b" " + str(status).encode() + b"\n"


def test_the_loader_ends_with_an_end_record_on_both_streams(tmp_path: Path) -> None:
    token = container_job.new_end_token()
    script = b'printf "no newline"; printf "err" >&2; exit 3\n'
    job = container_job.payload(["/bin/sh", "run.sh"], {}, {"run.sh": script}, (0, 0), end_token=token)
    done = _run_loader(tmp_path, job)
    assert done.returncode == 3
    assert done.stdout == b"no newline" + _record(token, 3)
    assert done.stderr == b"err" + _record(token, 3)


def test_the_script_never_sees_its_runs_end_token(tmp_path: Path) -> None:
    """Not in its environment, its arguments, or its parent's (the loader's) command line."""
    token = container_job.new_end_token()
    script = b'env; echo "$@"; tr "\\0" " " < /proc/$PPID/cmdline; tr "\\0" " " < /proc/$PPID/environ\n'
    files = {"run.sh": script}
    job = container_job.payload(["/bin/sh", "run.sh"], {"A": "1"}, files, (0, 0), end_token=token)
    done = _run_loader(tmp_path, job)
    assert done.returncode == 0, done.stderr
    out = done.stdout.removesuffix(_record(token, 0))
    assert b"A=1" in out and token.encode() not in out


@pytest.mark.parametrize("name", ["OPSCRAFT_T", "OPSCRAFT_S", "OPSCRAFT_K", "OPSCRAFT_W"])
def test_the_loaders_own_variables_cannot_be_set_by_a_job(name: str) -> None:
    with pytest.raises(ValueError, match="loader uses itself"):
        container_job.payload(["true"], {name: "v"}, {}, (0, 0))


def _scan(token: str, chunks: list[bytes]) -> tuple[bytes, int | None]:
    scanner = container_job.EndScanner(token)
    out = b"".join(scanner.feed(chunk) for chunk in chunks)
    return out + scanner.flush(), scanner.status


def test_the_end_record_is_found_across_reads_and_never_output() -> None:
    token = "ab12"
    record = _record(token, 42)
    whole = b"line 1\nlast, no newline" + record + b"after the record is dropped\n"
    for size in (1, 2, 3, 7, len(whole)):
        chunks = [whole[i : i + size] for i in range(0, len(whole), size)]
        assert _scan(token, chunks) == (b"line 1\nlast, no newline", 42)


def test_a_record_with_another_token_is_ordinary_output() -> None:
    """What the script prints (or a file it cats) cannot end its run: it does not know the token."""
    forged = _record("00000000000000000000000000000000", 0)
    partial = b"\x1eopscraft-end ab1"
    assert _scan("ab12", [b"x" + forged, b"y\n"]) == (b"x" + forged + b"y\n", None)
    assert _scan("ab12", [b"x" + partial]) == (b"x" + partial, None)  # held, then flushed at the end
    malformed = b"\x1eopscraft-end ab12 9999\n"
    assert _scan("ab12", [malformed, _record("ab12", 1)]) == (malformed, 1)


def test_ordinary_output_is_never_held_back() -> None:
    scanner = container_job.EndScanner("ab12")
    assert scanner.feed(b"progress 10%\r") == b"progress 10%\r"
    assert scanner.feed(b"\x1e[not a record]") == b"\x1e[not a record]"


def test_a_script_ended_by_a_signal_leaves_no_message_of_the_loaders(tmp_path: Path) -> None:
    """With `exec` gone, the loader's shell would print `Killed`: the script's stderr stays its own."""
    token = container_job.new_end_token()
    job = container_job.payload(
        ["/bin/sh", "run.sh"], {}, {"run.sh": b"kill -KILL $$\n"}, (0, 0), end_token=token
    )
    done = _run_loader(tmp_path, job)
    assert (done.returncode, done.stdout, done.stderr) == (137, _record(token, 137), _record(token, 137))


def _children(pid: int) -> list[str]:
    """The command names of the processes whose parent is `pid` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)
            if int(fields[1].split()[1]) == pid:
                found.append(fields[0].split("(", 1)[1])
    return found


@pytest.mark.parametrize(("script", "status"), [(b"exit 3\n", 3), (b"kill -KILL $$\n", 137)])
def test_a_loader_asked_to_wait_stays_up_after_its_records_unless_a_signal_ended_the_script(
    tmp_path: Path, script: bytes, status: int
) -> None:
    """`keep_after_end` (a run whose work directory is read afterwards, `docker_runner`): after the
    records of a script that ended by itself the loader waits, so its container runs on until it
    is removed; after a signal it ends at once, for Docker to say how the script ended."""
    token = container_job.new_end_token()
    job = container_job.payload(
        ["/bin/sh", "run.sh"], {}, {"run.sh": script}, (0, 0), end_token=token, keep_after_end=True
    )
    loader = subprocess.Popen(
        ["/bin/sh", "-c", container_job.LOADER, "opscraft-job"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path,
    )
    try:
        assert loader.stdin is not None
        loader.stdin.write(job)
        loader.stdin.close()
        if status >= 128:
            assert loader.wait(timeout=30) == status
        else:
            wait_until(lambda: "sleep" in _children(loader.pid), "the loader waits after its records")
            assert loader.poll() is None
    finally:
        loader.kill()
        loader.wait()


def test_a_job_keeps_its_loader_only_when_asked() -> None:
    job = container_job.payload(["true"], {}, {}, (0, 0), end_token="ab12", keep_after_end=True)
    assert job.startswith(b"t\n\nab12\nw\n\n\n")
    assert b"\nw\n" not in container_job.payload(["true"], {}, {}, (0, 0), end_token="ab12")
