"""The local runner's fork server and per-run supervisors (`supervisor.py`, `fork_server.py`).

These drive `LocalRunner` directly (no server, no database) with real processes: consecutive
runs on the same fork server share nothing, a fork server that dies or hangs is replaced without
harming the runs in progress, cancel kills the whole tree, and exit codes and output order are
those of a plain process.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opscraft import runtime
from opscraft.execution import fork_server, local_runner, supervisor
from opscraft.execution.local_runner import LocalRunner
from opscraft.execution.spec import RunControl, RunnerError, RunResult, RunSpec, StopReason
from tests.conftest import ROOT
from tests.executions.test_process_tree import alive, mark
from tests.waiting import wait_until

SERVER_ONLY = "server-only-7d2e1"
SPARES = fork_server.SPARES_ONE_AT_A_TIME


@pytest.fixture
def backend() -> str:
    return "sqlite"


class Output:
    """An output sink keeping every chunk (thread-safe reads of the text so far)."""

    def __init__(self) -> None:
        self.chunks: list[tuple[str, bytes]] = []

    def feed(self, stream: str, data: bytes) -> None:
        self.chunks.append((stream, data))

    def tick(self) -> float:
        return 0.5

    def text(self, stream: str = "stdout") -> str:
        return b"".join(data for name, data in list(self.chunks) if name == stream).decode()


def spec(content: str, script_type: str = "bash", execution_id: int = 1, **fields: Any) -> RunSpec:
    values: dict[str, Any] = {
        "parameters": {},
        "env": {},
        "timeout_seconds": 60,
        "memory_mb": 256,
        "cpus": 1.0,
        "network_enabled": False,
        **fields,
    }
    return RunSpec(execution_id=execution_id, script_type=script_type, content=content, **values)


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalRunner]:
    """A started local runner, in a server process whose environment holds a variable of its own."""
    monkeypatch.setenv("OPSCRAFT_TEST_SERVER_ONLY", SERVER_ONLY)
    made = LocalRunner(f"test-{uuid.uuid4().hex[:8]}")
    made.start()
    yield made
    made.stop()
    made.sweep()


def run(
    runner: LocalRunner, run_spec: RunSpec, control: RunControl | None = None
) -> tuple[RunResult, Output]:
    output = Output()
    return runner.run(run_spec, output, control or RunControl()), output


def _work_left(runner: LocalRunner) -> list[Path]:
    """The work directories of `runner`'s runs still on disk (found as its sweep finds them)."""
    owners = local_runner.swept_owners(runner.worker_id, "")
    return local_runner._left_behind(Path(tempfile.gettempdir()), local_runner.SCRATCH_PREFIX, owners)


def process_gone(pid: int) -> bool:
    """Whether `pid` ended (a zombie counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return True
    return state == "Z"


# Run A changes every piece of process state it can, and prints its secret.
DIRTY = """export LEFT_BEHIND=from-run-a
umask 0077
ulimit -S -n 64
trap '' TERM INT
cd /
echo "secret $SECRET_A supervisor $PPID"
"""

# Run B describes what it got: bash prints the environment it was started with (exactly what
# the supervisor gave it, before bash adds variables of its own), then the test's Python (not a
# version manager's `python3` shim, which would change the environment) describes the rest.
PROBE = f"""echo "ENV $(base64 -w0 < /proc/$$/environ)"
exec {sys.executable} -I -S - <<'EOF'
import json, os, resource
supervisor = os.getppid()
def read(path):
    try:
        with open(path, "rb") as file:
            return file.read().decode(errors="replace")
    except OSError as exc:
        return f"unreadable: {{exc}}"
limits = {{name: resource.getrlimit(getattr(resource, name)) for name in
          ("RLIMIT_CPU", "RLIMIT_AS", "RLIMIT_NPROC", "RLIMIT_FSIZE", "RLIMIT_CORE", "RLIMIT_NOFILE")}}
umask = os.umask(0)
print(json.dumps({{
    "umask": umask,
    "limits": limits,
    "cwd": os.getcwd(),
    "fds": [fd for fd in sorted(int(n) for n in os.listdir("/proc/self/fd"))
            if os.path.exists(f"/proc/self/fd/{{fd}}")],  # the listing's own descriptor is gone
    "supervisor": supervisor,
    "supervisor_environ": read(f"/proc/{{supervisor}}/environ"),
    "supervisor_cmdline": read(f"/proc/{{supervisor}}/cmdline"),
    "mask": read("/proc/self/status"),
}}))
EOF
"""


def test_consecutive_runs_on_one_fork_server_share_nothing(runner: LocalRunner) -> None:
    secret_a, secret_b = f"s3cret-a-{uuid.uuid4().hex}", f"s3cret-b-{uuid.uuid4().hex}"
    server_pid = runner.forks.pid
    first, output = run(runner, spec(DIRTY, env={"SECRET_A": secret_a}, execution_id=101))
    assert first.exit_code == 0, output.chunks
    supervisor_a = int(output.text().split()[-1])
    assert output.text().startswith(f"secret {secret_a} ")

    second, output = run(
        runner, spec(PROBE, env={"SECRET_B": secret_b}, parameters={"NAME": "b"}, execution_id=102)
    )
    assert second.exit_code == 0, output.chunks
    first_line, rest = output.text().split("\n", 1)
    seen = json.loads(rest)
    initial = base64.b64decode(first_line.removeprefix("ENV ")).decode().split("\0")
    env = dict(item.split("=", 1) for item in initial if item)
    assert runner.forks.pid == server_pid, "the fork server is reused"
    assert seen["supervisor"] != supervisor_a, "each run has a supervisor of its own"

    assert env.pop("SECRET_B") == secret_b and env.pop("NAME") == "b"
    assert env.pop("OPSCRAFT_RUN") == f"{runner.worker_id}:102"
    assert env.pop("OPSCRAFT_EXECUTION_ID") == "102"
    assert env.pop("HOME") == env.pop("TMPDIR") == seen["cwd"] != "/"
    assert env.pop("PATH") == local_runner._search_path()
    assert env == {
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "ANSIBLE_LOCAL_TEMP": f"{seen['cwd']}/.ansible/tmp",
        "ANSIBLE_REMOTE_TEMP": f"{seen['cwd']}/.ansible/tmp",
        "ANSIBLE_PYTHON_INTERPRETER": "{{ ansible_playbook_python }}",
    }, "nothing of the server's or of run A's environment"
    wait_until(lambda: not Path(seen["cwd"]).exists(), "the scratch directory removed with the run")

    # Run A's umask, soft limit and ignored signals did not carry over; the run's own limits apply.
    assert seen["umask"] == os.umask(os.umask(0o022))
    limits = {name: tuple(value) for name, value in seen["limits"].items()}
    assert limits.pop("RLIMIT_NOFILE") == resource.getrlimit(resource.RLIMIT_NOFILE)
    assert limits == {
        "RLIMIT_CPU": (65, 65),
        "RLIMIT_AS": (256 * 1024 * 1024 * 4,) * 2,
        "RLIMIT_NPROC": (1024, 1024),
        "RLIMIT_FSIZE": (1024**3, 1024**3),
        "RLIMIT_CORE": (0, 0),
    }
    status = dict(line.split(":\t", 1) for line in seen["mask"].splitlines() if ":\t" in line)
    ignored = {n for n in range(1, 65) if int(status["SigIgn"], 16) >> (n - 1) & 1}
    assert int(status["SigBlk"], 16) == 0, status
    # glibc's posix_spawn leaves its own reserved signals (32 and 33: no program can set them
    # through glibc, `signal.valid_signals()` omits them) ignored; glibc installs their handlers
    # in a program that needs them.
    reserved = set(range(1, signal.NSIG)) - set(signal.valid_signals())
    assert ignored - reserved <= {signal.SIGPIPE, signal.SIGXFSZ}, "only what Python itself ignores"
    assert seen["fds"] == [0, 1, 2]

    # The supervisor got nothing of a run through its command line or its environment.
    for text in (seen["supervisor_environ"], seen["supervisor_cmdline"]):
        assert secret_a not in text and secret_b not in text and SERVER_ONLY not in text, text
    assert seen["supervisor_environ"] == "", "the fork server starts with an empty environment"
    assert secret_b not in Path(f"/proc/{server_pid}/cmdline").read_text()


def test_a_script_leads_a_process_group_of_its_own_in_the_session_its_supervisor_made(
    runner: LocalRunner,
) -> None:
    """The script leads its own process group (what an interrupt signals: `Supervisor.interrupt`)
    in the session its supervisor made for the run (none of the server's or the fork server's),
    and makes no session of its own at its start: on a kernel with autogroup scheduling a new
    session is a new scheduling group, which a busy machine ran 1.5-3 ms later (docs/benchmarks.md,
    session 57)."""
    # /proc/PID/stat after the command's name: state, parent, process group, session
    fields = 'read -r stat < /proc/$$/stat; set -- ${stat##*) }; echo "$$ $2 $3 $4"\n'
    result, output = run(runner, spec(fields))
    assert result.exit_code == 0, output.chunks
    pid, parent, group, session = (int(field) for field in output.text().split())
    assert group == pid, "a process group of its own"
    assert session == parent != pid, "in the session its supervisor made, not one of its own"
    fork_server_pid = runner.forks.pid
    assert fork_server_pid is not None
    assert session not in (os.getsid(0), os.getsid(fork_server_pid)), "not the server's or the fork server's"


def test_a_dead_fork_server_is_replaced_and_its_runs_go_on(runner: LocalRunner, tmp_path: Path) -> None:
    go = tmp_path / "go"
    waiting = f"echo waiting\nwhile [ ! -e {go} ]; do sleep 0.02; done\necho 'went on' >&2\nexit 7\n"
    output = Output()
    results: list[RunResult] = []
    thread = threading.Thread(target=lambda: results.append(runner.run(spec(waiting), output, RunControl())))
    thread.start()
    wait_until(lambda: "waiting" in output.text(), "the first run to start")
    old = runner.forks.pid
    assert old is not None
    os.kill(old, signal.SIGKILL)
    wait_until(lambda: runner.forks.pid is None, "the fork server to die")

    result, text = run(runner, spec("echo fresh\n", execution_id=2))
    assert result.exit_code == 0 and text.text() == "fresh\n"
    assert runner.forks.pid not in (None, old)

    go.touch()
    thread.join(20)
    assert not thread.is_alive()
    assert results[0].exit_code == 7 and output.text("stderr") == "went on\n", output.chunks


def test_a_hung_fork_server_is_replaced(runner: LocalRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    # Before the first run: the fork asked for ahead after it takes the timeout in force when it
    # is asked for (set after it, the hung server's answer was awaited the default 30 s). 5 s,
    # not less: the replacing fork server must start and answer within it on a busy machine.
    monkeypatch.setattr(fork_server, "FORK_TIMEOUT_SECONDS", 5.0)
    run(runner, spec("true\n"))  # the fork server has started and answered
    old = runner.forks.pid
    assert old is not None
    os.kill(old, signal.SIGSTOP)
    try:
        # The first runs may take the supervisors forked for them before the hang (forked ahead:
        # as many as `SPARES_ONE_AT_A_TIME`); the next needs a fork from the hung server, which
        # is then replaced.
        for number in range(fork_server.SPARES_ONE_AT_A_TIME + 1):
            result, output = run(runner, spec(f"echo run {number}\n"))
            assert result.exit_code == 0 and output.text() == f"run {number}\n"
        assert runner.forks.pid not in (None, old)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(old, signal.SIGKILL)
    wait_until(lambda: process_gone(old), "the hung fork server to be killed")


def test_cancel_kills_children_and_grandchildren(runner: LocalRunner) -> None:
    token = mark()
    script = (
        "trap '' TERM INT HUP\n"
        f"bash -c \"trap '' TERM; sleep {token} & sleep {token}\" &\n"  # a child with a child
        f"( setsid bash -c \"trap '' TERM; sleep {token}\" & )\n"  # a grandchild, detached
        "echo started\n"
        "sleep 600\n"
    )
    control, output = RunControl(), Output()
    results: list[RunResult] = []
    thread = threading.Thread(target=lambda: results.append(runner.run(spec(script), output, control)))
    thread.start()
    wait_until(lambda: "started" in output.text() and len(alive(token)) >= 3, "the run's sleepers")
    t0 = time.monotonic()
    control.stop(StopReason.cancelled)
    thread.join(10)
    assert not thread.is_alive() and time.monotonic() - t0 < 2, "cancel ends the run within 2 s"
    assert results[0].exit_code == 128 + signal.SIGKILL
    wait_until(lambda: not alive(token), "no process of the run left", timeout=5)


def test_a_killed_run_supervisor_leaves_nothing(runner: LocalRunner) -> None:
    token = mark()
    script = f"setsid sleep {token} &\nkill -9 $PPID\necho still here\nsleep {token}\n"
    t0 = time.monotonic()
    result, _ = run(runner, spec(script))
    assert result.exit_code == 128 + signal.SIGKILL
    assert time.monotonic() - t0 < 5
    wait_until(lambda: not alive(token), "no process of the run left", timeout=5)
    result, output = run(runner, spec("echo next\n"))  # the fork server is unaffected
    assert result.exit_code == 0 and output.text() == "next\n"


@pytest.mark.parametrize(
    ("script", "exit_code"),
    [("exit 3\n", 3), ("kill -TERM $$\n", 128 + signal.SIGTERM), ("kill -KILL $$\n", 128 + signal.SIGKILL)],
)
def test_exit_codes_are_those_of_the_script(runner: LocalRunner, script: str, exit_code: int) -> None:
    result, _ = run(runner, spec(script))
    assert result.exit_code == exit_code


def test_output_keeps_its_order_within_each_stream(runner: LocalRunner) -> None:
    script = "for i in $(seq 1 2000); do echo out $i; echo err $i >&2; done\n"
    result, output = run(runner, spec(script))
    assert result.exit_code == 0
    assert output.text() == "".join(f"out {i}\n" for i in range(1, 2001))
    assert output.text("stderr") == "".join(f"err {i}\n" for i in range(1, 2001))


def test_a_cancel_before_the_start_ends_the_run_at_once(runner: LocalRunner) -> None:
    control = RunControl()
    control.stop(StopReason.cancelled)
    t0 = time.monotonic()
    result, _ = run(runner, spec("sleep 600\n"), control)
    assert result.exit_code == 128 + signal.SIGKILL and time.monotonic() - t0 < 5


def test_a_runner_without_start_starts_its_fork_server_with_the_first_run() -> None:
    lazy = LocalRunner(f"test-{uuid.uuid4().hex[:8]}")
    assert lazy.forks.pid is None
    try:
        result, output = run(lazy, spec("echo lazy\n"))
        assert result.exit_code == 0 and output.text() == "lazy\n"
        pid = lazy.forks.pid
        assert pid is not None
    finally:
        lazy.stop()
    wait_until(lambda: process_gone(pid), "the stopped fork server to exit")


def test_the_packaged_binary_is_its_own_fork_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In the PyInstaller binary `sys.executable` is the binary, which has no `-I -S file.py`:
    it is started with `FROZEN_FLAG` and its entry point (packaging/opscraft_main.py) becomes the
    fork server. Here a stand-in for the binary runs that entry point (every local run of the
    binary ended in `error` before: "the local runner cannot start a supervisor")."""
    binary = tmp_path / "opscraft"
    entry = ROOT / "packaging" / "opscraft_main.py"
    binary.write_text(f'#!/bin/sh\nPYTHONPATH="{ROOT}" exec "{sys.executable}" "{entry}" "$@"\n')
    binary.chmod(0o755)
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(binary))
    frozen = LocalRunner(f"test-{uuid.uuid4().hex[:8]}")
    try:
        result, output = run(frozen, spec("echo from-the-binary\n"))
        assert (result.exit_code, output.text()) == (0, "from-the-binary\n"), output.text("stderr")
        pid = frozen.forks.pid
        assert pid is not None and f"{supervisor.FROZEN_FLAG}\0" in Path(f"/proc/{pid}/cmdline").read_text()
    finally:
        frozen.stop()


def test_a_program_that_cannot_be_executed_ends_with_127(
    runner: LocalRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found on PATH but not executable by the kernel: the supervisor says so on stderr."""
    (tmp_path / "bash").write_bytes(b"\x00not a program\n")
    (tmp_path / "bash").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    result, output = run(runner, spec("true\n"))
    assert result.exit_code == 127
    assert output.text("stderr") == "opscraft: cannot start bash: Exec format error\n"


async def test_the_worker_pre_starts_its_fork_server_and_stops_it(rt: runtime.Runtime) -> None:
    """Started with the worker (the first run does not wait for a Python start), ended with it."""
    assert rt.worker is not None
    pid = rt.worker.local.forks.pid
    assert pid is not None and not process_gone(pid)
    await asyncio.to_thread(rt.worker.local.stop)
    wait_until(lambda: process_gone(pid), "the fork server to exit")


def _live_children(pid: int) -> list[int]:
    """The processes whose parent is `pid`, zombies left out."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
                if int(fields[1]) == pid and fields[0] != "Z":
                    found.append(int(entry.name))
    return found


@contextlib.contextmanager
def _forked_ahead() -> Iterator[tuple[LocalRunner, int, list[int]]]:
    """A started runner, its fork server's pid and the supervisors forked for its first runs
    (`fork_server.SPARES_ONE_AT_A_TIME`); the runner is stopped afterwards."""
    ahead = LocalRunner(f"test-{uuid.uuid4().hex[:8]}")
    ahead.start()
    server = ahead.forks.pid
    assert server is not None
    try:
        wait_until(lambda: len(_live_children(server)) == SPARES, "the first supervisors to be forked")
        yield ahead, server, _live_children(server)
    finally:
        ahead.stop()


def test_the_next_runs_supervisors_are_forked_ahead_and_exit_with_their_fork_server() -> None:
    """The fork server's round trip is off a run's path: supervisors wait, forked, for the next
    runs' jobs (the next run's and the one after); each runs exactly one run, in the order
    forked, and those never used exit with the fork server."""
    with _forked_ahead() as (ahead, server, waiting):
        blank = all(Path(f"/proc/{pid}/environ").read_bytes() == b"" for pid in waiting)
        assert blank, "nothing of any run yet"
        result, output = run(ahead, spec("echo $PPID\n"))
        used = int(output.text())
        assert result.exit_code == 0 and used in waiting, "the run used one"
        wait_until(lambda: process_gone(used), "the used supervisor to exit")
        # Once the used one is gone, the fork server's only children are the waiting ones (read
        # before, the count could be the used one's, which then exited: a CI failure).
        wait_until(lambda: len(_live_children(server)) == SPARES, "the next supervisor to be forked")
        result, output = run(ahead, spec("echo $PPID\n", execution_id=2))
        second = int(output.text())
        assert result.exit_code == 0 and second != used, "a supervisor per run"
        assert second in waiting, "forked before the run before it"
        wait_until(lambda: process_gone(second), "the second used supervisor to exit")
        wait_until(lambda: len(_live_children(server)) == SPARES, "the next supervisor to be forked")
        unused = _live_children(server)
    wait_until(lambda: process_gone(server), "the stopped fork server to exit")
    wait_until(lambda: all(process_gone(pid) for pid in unused), "the supervisors no run took to exit")


def test_runs_get_the_usual_umask_not_the_servers_private_one() -> None:
    """The CLI sets umask 077 so the data directory's files are private (opscraft/data_dir.py);
    a run's fork server starts with 022, so scripts create files as they would anywhere else."""
    old = os.umask(0o077)
    fresh = LocalRunner(f"test-{uuid.uuid4().hex[:8]}")
    try:
        result, output = run(fresh, spec("umask\n"))
    finally:
        os.umask(old)
        fresh.stop()
    assert result.exit_code == 0 and output.text() == "0022\n", output.text("stderr")


def test_the_output_is_closed_before_the_status_is_sent() -> None:
    """A run's end waits for no process exit: the supervisor closes its copies of the output
    pipes before it sends the status, so the runner finds the end of the output with the status
    (here the supervisor's side stays alive, and the pipes are already at their end)."""
    out_read, out_write = os.pipe()
    err_read, err_write = os.pipe()
    ours, theirs = socket.socketpair()
    child = os.fork()
    if child == 0:  # the supervisor's side: the pipes as its output, then the report
        try:
            os.dup2(out_write, 1)
            os.dup2(err_write, 2)
            for fd in (out_read, err_read, out_write, err_write):
                os.close(fd)
            supervisor.report(theirs, 3)
            time.sleep(60)  # alive: only the report can have closed the output
        finally:
            os._exit(0)
    try:
        for fd in (out_write, err_write):
            os.close(fd)
        theirs.close()
        ours.settimeout(20)
        assert ours.recv(16) == b"3\n"
        for fd in (out_read, err_read):
            os.set_blocking(fd, False)
            assert os.read(fd, 16) == b"", "the output ended with the status"
        assert not process_gone(child), "the supervisor's side was still running"
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
        for fd in (out_read, err_read):
            os.close(fd)
        ours.close()


def test_the_next_supervisor_is_forked_when_a_run_ends_not_while_one_starts(tmp_path: Path) -> None:
    """Waking the fork server at a run's start would compete with that start for the CPUs: the
    supervisor for the run after next is forked once a run has ended."""
    ahead = LocalRunner(f"test-{uuid.uuid4().hex[:8]}")
    ahead.start()
    server = ahead.forks.pid
    assert server is not None
    go = tmp_path / "go"
    results: list[RunResult] = []
    try:
        wait_until(lambda: len(_live_children(server)) == SPARES, "the first supervisors to be forked")
        first = _live_children(server)
        script = f"echo started\nwhile [ ! -e {go} ]; do sleep 0.01; done\n"
        output = Output()
        thread = threading.Thread(
            target=lambda: results.append(ahead.run(spec(script), output, RunControl()))
        )
        thread.start()
        wait_until(lambda: output.text() == "started\n", "the run to start")
        time.sleep(0.3)  # a fork asked for at the start would be done by now
        assert set(_live_children(server)) == set(first), "no spare is forked while a run is in progress"
        go.touch()
        thread.join(30)
        assert results and results[0].exit_code == 0
        wait_until(lambda: len(set(_live_children(server)) - set(first)) == 1, "the spare after the run")
    finally:
        go.touch()
        ahead.stop()


def test_a_run_that_follows_another_finds_its_supervisor_forked_already(tmp_path: Path) -> None:
    """Runs one after another keep two supervisors forked: the next run's and the one after, so
    the next run's was forked while the run before it ran and a run that comes right after
    another never waits for the fork server (with one spare, asked for at the previous run's
    end, 48 of 440 runs at load 15 waited for that fork, p50 3.1 ms: docs/benchmarks.md, session
    53). Here the fork server is stopped (SIGSTOP) while a run is in progress: the run after it
    still starts at once, on a supervisor forked before."""
    ahead = LocalRunner(f"test-{uuid.uuid4().hex[:8]}")
    ahead.start()
    server = ahead.forks.pid
    assert server is not None
    go = tmp_path / "go"
    stopped = False
    try:
        output = Output()
        script = f"echo $PPID\nwhile [ ! -e {go} ]; do sleep 0.01; done\n"
        first = threading.Thread(target=lambda: ahead.run(spec(script), output, RunControl()))
        first.start()
        wait_until(lambda: output.text().endswith("\n"), "the first run to start")
        running = int(output.text())
        wait_until(
            lambda: set(_live_children(server)) - {running},
            "the next run's supervisor forked while this one runs",
            timeout=10,
        )
        os.kill(server, signal.SIGSTOP)
        stopped = True
        go.touch()
        first.join(30)
        results: list[tuple[RunResult, Output]] = []
        next_run = spec("echo $PPID\n", execution_id=2)
        second = threading.Thread(target=lambda: results.append(run(ahead, next_run)))
        second.start()
        second.join(fork_server.FORK_TIMEOUT_SECONDS / 3)
        assert results, "the next run waited for the stopped fork server"
        result, after = results[0]
        assert result.exit_code == 0 and int(after.text()) not in (running, server), "a supervisor of its own"
    finally:
        go.touch()
        if stopped:
            os.kill(server, signal.SIGCONT)
        ahead.stop()


def test_runs_in_progress_together_leave_as_many_spares_each_used_by_one_run(tmp_path: Path) -> None:
    """In a burst every consumer thread that starts a run should find its supervisor forked
    (docs/benchmarks.md, session 35): the runs in progress when one ends leave that many spares
    (at most `SPARES_MOST`); each spare runs exactly one run, in the order forked, and runs
    one at a time leave one spare again."""
    most = fork_server.SPARES_MOST
    ahead = LocalRunner(f"test-{uuid.uuid4().hex[:8]}")
    ahead.start()
    server = ahead.forks.pid
    assert server is not None
    go = tmp_path / "go"
    count = most + 2
    outputs = [Output() for _ in range(count)]
    results: dict[int, RunResult] = {}
    script = f"echo $PPID\nwhile [ ! -e {go} ]; do sleep 0.01; done\n"

    def one(i: int) -> None:
        results[i] = ahead.run(spec(script, execution_id=i + 1), outputs[i], RunControl())

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    try:
        for thread in threads:
            thread.start()
        wait_until(lambda: all(o.text().endswith("\n") for o in outputs), "every run to start")
        burst = {int(o.text()) for o in outputs}
        assert len(burst) == count, "a supervisor per run"
        go.touch()
        for thread in threads:
            thread.join(30)
        assert sorted(results) == list(range(count)) and all(r.exit_code == 0 for r in results.values())
        wait_until(lambda: burst.isdisjoint(_live_children(server)), "the used supervisors to exit")
        wait_until(lambda: len(_live_children(server)) >= most, "the spares to be forked")
        time.sleep(0.3)  # a spare beyond the most would be forked by now
        spares = _live_children(server)
        assert len(spares) == most, "no more spares than the most"
        used = [int(run(ahead, spec("echo $PPID\n", execution_id=100 + i))[1].text()) for i in range(most)]
        assert len(set(used)) == most and set(used) == set(spares), "each spare runs one run"
        wait_until(lambda: set(spares).isdisjoint(_live_children(server)), "the used spares to exit")
        wait_until(lambda: len(_live_children(server)) == SPARES, "two spares for runs one at a time")
    finally:
        go.touch()
        ahead.stop()


def _caught(pid: int) -> set[int]:
    """The signals process `pid` has a handler for (`SigCgt` of /proc/PID/status)."""
    status = dict(line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    mask = int(status["SigCgt"], 16)
    return {signum for signum in range(1, signal.NSIG) if mask >> (signum - 1) & 1}


def test_a_waiting_supervisor_is_ready_before_its_job_and_a_stop_signal_still_ends_it() -> None:
    """What does not depend on the job is done while the supervisor waits for it (off the run's
    path): SIGCHLD is caught already. SIGTERM and SIGHUP are not caught before the job: a waiting
    supervisor that gets one ends, as a freshly forked one did."""
    with _forked_ahead() as (_, _, [waiting, *_]):
        wait_until(lambda: signal.SIGCHLD in _caught(waiting), "SIGCHLD caught before the job")
        assert _caught(waiting).isdisjoint({signal.SIGTERM, signal.SIGHUP})  # SIGINT: Python's own
        os.kill(waiting, signal.SIGTERM)
        wait_until(lambda: process_gone(waiting), "the waiting supervisor to end")


def _minor_faults(pid: int) -> int:
    """The minor page faults of process `pid` so far (proc(5): `minflt`, field 10 of its stat)."""
    return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[7])


def test_a_waiting_supervisor_rehearses_its_job_so_few_pages_are_copied_on_the_runs_path() -> None:
    """A supervisor forked ahead decodes a job of a run's shape while it waits
    (`supervisor.rehearse`), so the pages of the fork server that decoding writes are copied
    then: from its job's arrival to the script's start it copies about 62 (session 57, Python
    3.11; `main` 108-115: docs/benchmarks.md). The script reads its supervisor's count."""
    with _forked_ahead() as (ahead, _, waiting):
        counts: dict[int, int] = {}
        sums: list[int] = []

        def settled() -> bool:  # the waiting supervisors' counts no longer grow
            counts.update({pid: _minor_faults(pid) for pid in waiting})
            sums.append(sum(counts.values()))
            return len(sums) > 1 and sums[-1] == sums[-2]

        wait_until(settled, "the waiting supervisors to be idle")
        faults = 'read -r stat < /proc/$PPID/stat; set -- ${stat##*) }; echo "$PPID $8"\n'
        result, output = run(ahead, spec(faults))
        used, at_start = (int(field) for field in output.text().split())
        assert result.exit_code == 0 and used in waiting
        assert at_start - counts[used] <= 85, f"{at_start - counts[used]} pages copied on the run's path"


def test_the_runners_ends_of_a_supervisor_are_not_inherited_by_its_other_children() -> None:
    """The channel and the pidfd the fork server passes (SCM_RIGHTS) are close-on-exec in the
    server, as every descriptor Python opens: a process the server starts gets neither."""
    with _forked_ahead() as (ahead, _, _):
        told = ahead.forks.supervisor()
        try:
            fds = [told.channel.fileno(), *([told.pidfd] if told.pidfd is not None else [])]
            assert not any(os.get_inheritable(fd) for fd in fds)
        finally:
            told.close()


@contextlib.contextmanager
def _channel() -> Iterator[tuple[fork_server.RunSupervisor, socket.socket, list[int]]]:
    """A `RunSupervisor` on one end of a socket pair (no process: the test reads its other end as
    the supervisor does) and the two ends of a pipe for its job's output, closed afterwards."""
    ours, theirs = socket.socketpair()
    pipe = list(os.pipe())
    try:
        yield fork_server.RunSupervisor(0, ours, None), theirs, pipe
    finally:
        for end in (ours, theirs):
            end.close()
        for fd in pipe:
            os.close(fd)


def _send(told: fork_server.RunSupervisor, pipe: list[int], files: dict[str, bytes]) -> None:
    """`told.start` of `true` in /tmp with `files` and a run's limits."""
    told.start("/bin/true", ["true"], {"A": "b"}, "/tmp", local_runner._limits(spec("true")), *pipe, files)


def test_a_job_comes_in_one_message_read_at_once() -> None:
    """`RunSupervisor.start` sends the job's header, body and descriptors in one message, which
    one `recvmsg` reads whole (docs/benchmarks.md, session 57: one wake-up of the supervisor and
    one system call, where a header sent apart from its body cost two of each)."""
    with _channel() as (told, theirs, pipe):
        _send(told, pipe, {"script.sh": b"echo hi\n"})
        data, ancillary, _, _ = theirs.recvmsg(1 << 16, socket.CMSG_SPACE(8))
        fds = [fd for _, _, payload in ancillary for fd in memoryview(payload).cast("i")]
        for fd in fds:
            os.close(fd)
        size = int.from_bytes(data[: supervisor.HEADER_BYTES], "big")
        assert len(data) == supervisor.HEADER_BYTES + size, "the header and the whole body at once"
        assert len(fds) == 2


def test_a_stop_sent_right_after_a_job_is_left_for_the_supervisor() -> None:
    """The job's read (`supervisor.receive_job`, one `recvmsg` of up to `JOB_READ_BYTES`) never
    takes a stop request the runner sent right after the job: the supervisor reads it once it
    started the script, and stops the run at once."""
    with _channel() as (told, theirs, pipe):
        files = {"script.sh": b"true\n"}
        _send(told, pipe, files)
        told.stop()
        job, fds = supervisor.receive_job(theirs)
        for fd in fds:
            os.close(fd)
        assert job["files"] == files and len(fds) == 2
        assert theirs.recv(16) == b"s"


@pytest.mark.parametrize("size", [300 * 1024, 6 * 1024 * 1024])
def test_a_long_job_is_read_whole(size: int) -> None:
    """A job longer than a socket's buffer and than `JOB_READ_BYTES` (a script's files up to
    `local_runner.FILES_IN_JOB_MOST`) is sent and read whole, its descriptors with it."""
    with _channel() as (told, theirs, pipe):
        files = {"script.sh": os.urandom(size)}
        sender = threading.Thread(target=_send, args=(told, pipe, files))  # it waits for the reads
        sender.start()
        job, fds = supervisor.receive_job(theirs)
        sender.join()
        for fd in fds:
            os.close(fd)
        assert job["files"] == files and len(fds) == 2


def test_a_runs_work_directory_is_named_for_its_worker_and_removed_when_it_ends(runner: LocalRunner) -> None:
    result, output = run(runner, spec('pwd; echo kept > "$HOME/note"', execution_id=41))
    work = Path(output.text().splitlines()[0])
    assert result.exit_code == 0
    assert work.parent == Path(tempfile.gettempdir())
    assert work.name.startswith(f"opscraft-work-{runner.worker_id}-41-")
    wait_until(lambda: not work.exists(), "the work directory removed after the run's status")


def test_the_sweep_removes_the_run_directories_a_crashed_worker_left_and_only_its_own() -> None:
    """A worker killed mid-run (SIGKILL: no `finally`) leaves its runs' scratch work directories
    (the script's files, a Terraform plan with its sensitive values, what the script wrote) and
    secret directories; its next start's sweep removes them, not those of a worker whose id
    starts with its own, and with `started_before` only those written before it."""
    worker = f"test-{uuid.uuid4().hex[:8]}"
    tmp, shm = Path(tempfile.gettempdir()), local_runner.SECRET_TMPFS
    shm = shm if shm.is_dir() and os.access(shm, os.W_OK) else tmp

    def left(base: Path, kind: str, owner: str) -> Path:
        folder = Path(tempfile.mkdtemp(prefix=f"opscraft-{kind}-{owner}-7-", dir=base))
        (folder / "plan.tfplan").write_text("sensitive")
        return folder

    mine = [left(tmp, "work", worker), left(shm, "secrets", worker)]
    others = [left(tmp, "work", f"{worker}-2"), left(shm, "secrets", f"{worker}-2")]
    try:
        LocalRunner(worker).sweep(started_before=time.time() - 3600)  # a lost worker's: older only
        assert all(folder.exists() for folder in mine + others)
        LocalRunner(worker).sweep()
        assert not any(folder.exists() for folder in mine)
        assert all(folder.exists() for folder in others)
    finally:
        for folder in mine + others:
            shutil.rmtree(folder, ignore_errors=True)


def test_the_sweep_spares_the_runs_of_another_installations_worker_of_the_same_id() -> None:
    """Two installations on one machine, each with a worker `<worker>` (two compose projects'
    `worker-1`): the sweep of one used to kill the other's running scripts (`OPSCRAFT_RUN`) and
    remove their scratch and secret directories. Now it takes its own installation's and those
    named before the installation was part of the name (`local_runner.swept_owners`)."""
    worker = f"test-{uuid.uuid4().hex[:8]}"
    ours, theirs = uuid.uuid4().hex, uuid.uuid4().hex
    tmp = Path(tempfile.gettempdir())
    owners = {
        "ours": local_runner.owner_name(worker, ours),
        "theirs": local_runner.owner_name(worker, theirs),
        "unnamed": worker,
    }
    folders = {k: Path(tempfile.mkdtemp(prefix=f"opscraft-work-{o}-7-", dir=tmp)) for k, o in owners.items()}
    path = os.environ["PATH"]
    sleepers = {
        key: subprocess.Popen(["sleep", "300"], env={"PATH": path, local_runner.RUN_MARKER: f"{owner}:7"})
        for key, owner in owners.items()
    }
    try:
        assert LocalRunner(worker, ours).sweep() == 2
        for sleeper in (sleepers["ours"], sleepers["unnamed"]):
            assert sleeper.wait(30) == -signal.SIGKILL
        assert sleepers["theirs"].poll() is None
        assert [key for key, folder in folders.items() if folder.exists()] == ["theirs"]
    finally:
        for sleeper in sleepers.values():
            sleeper.kill()
            sleeper.wait()
        for folder in folders.values():
            shutil.rmtree(folder, ignore_errors=True)


def test_a_terraform_run_without_terraform_says_what_to_install(
    runner: LocalRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Terraform's steps run under `/bin/sh -c`, and only `/bin/sh` was looked for: a machine
    without `terraform` ended the run "the script exited with code 127" (`terraform: not found`
    in its output), where a missing `ansible-playbook` says what to install. Now both say so,
    before anything starts."""
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "sh").symlink_to("/bin/sh")
    monkeypatch.setenv("PATH", str(tools))
    assert shutil.which("terraform", path=local_runner._search_path()) is None
    with pytest.raises(RunnerError) as refused:
        run(runner, spec('output "x" { value = 1 }', "terraform", terraform_action="plan"))
    assert str(refused.value) == "terraform is not installed on this machine: install it or use Docker"


@pytest.mark.parametrize("umask", [0o000, 0o077, 0o277])
def test_a_runs_files_are_its_owners_only_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    """The work directory's files (`supervisor.make_work`) hold the whole content, 0600 under
    a umask that would widen or narrow that; a file in a folder gets its folders (0700 under the
    server's umask, 077)."""
    big = os.urandom(3 * 1024 * 1024)  # more than one write may take
    files = {"script.sh": b"echo hi\n", "plugins/x/y.py": big}
    work = tmp_path / "work"
    old = os.umask(umask)
    try:
        supervisor.make_work(str(work), files)
    finally:
        os.umask(old)
    assert (work / "script.sh").read_bytes() == b"echo hi\n"
    assert (work / "plugins/x/y.py").read_bytes() == big
    for name in ("script.sh", "plugins/x/y.py"):
        assert (work / name).stat().st_mode & 0o777 == 0o600, name
    if umask == 0o077:
        assert (work / "plugins/x").stat().st_mode & 0o777 == 0o700
        assert work.stat().st_mode & 0o777 == 0o700


def test_a_work_directory_that_exists_is_refused(tmp_path: Path) -> None:
    """`make_work` makes the directory itself: a name taken first (a directory, a planted link)
    is an error, nothing is written through it."""
    (tmp_path / "taken").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "taken")
    for name in ("taken", "link"):
        with pytest.raises(FileExistsError):
            supervisor.make_work(str(tmp_path / name), {"script.sh": b"echo hi\n"})
    assert list((tmp_path / "taken").iterdir()) == []


SHOW_WORK = 'printf "%s|%s|%s|" "$(pwd)" "$(stat -c %a .)" "$(stat -c %a script.sh)"; cat script.sh'


@pytest.mark.parametrize("large", [False, True], ids=["by the supervisor", "by the runner"])
def test_a_runs_work_directory_and_files_are_made_off_the_servers_thread(
    runner: LocalRunner, monkeypatch: pytest.MonkeyPatch, large: bool
) -> None:
    """The run's work directory and its files are made by its supervisor (issue 15: no directory
    made, no file written by the server's thread on the run's path), named as before (what the
    sweep finds), 0700 / 0600, holding the script, and gone after the run; files too large for
    the job (`FILES_IN_JOB_MOST`) are written by the runner as before."""
    made: list[str] = []
    real_mkdir = os.mkdir

    def mkdir(path: Any, *args: Any, **kwargs: Any) -> None:
        made.append(os.fspath(path))
        real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)
    if large:
        monkeypatch.setattr(local_runner, "FILES_IN_JOB_MOST", 10)
    result, output = run(runner, spec(SHOW_WORK, execution_id=41))
    assert result.exit_code == 0, output.text("stderr")
    work, directory_mode, file_mode, content = output.text().split("|", 3)
    assert (directory_mode, file_mode, content) == ("700", "600", SHOW_WORK)
    assert Path(work).parent == Path(tempfile.gettempdir())
    wait_until(lambda: _work_left(runner) == [], "removed after the run")
    named = f"{local_runner.SCRATCH_PREFIX}{runner.owner}-{local_runner._LEFT_NAME}"
    assert re.fullmatch(named, Path(work).name), "named as the sweep finds a run's directory"
    assert Path(work).name.startswith(f"{local_runner.SCRATCH_PREFIX}{runner.owner}-41-")
    assert made == ([work] if large else [])


def test_a_work_directory_the_supervisor_cannot_make_is_the_runs_failure(
    runner: LocalRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A work directory that cannot be made (its name taken) fails the run with status 127 and
    says why on its stderr; nothing of the script runs."""
    taken = tempfile.mkdtemp(prefix="opscraft-taken-")
    monkeypatch.setattr(local_runner, "_scratch_name", lambda owner, execution_id: taken)
    try:
        result, output = run(runner, spec("echo ran"))
        assert result.exit_code == supervisor.CANNOT_START
        assert output.text() == ""
        assert output.text("stderr") == "opscraft: cannot make the run's work directory: File exists\n"
        assert Path(taken).is_dir(), "a directory the run did not make is not removed"
    finally:
        shutil.rmtree(taken, ignore_errors=True)


@pytest.mark.parametrize(
    ("script", "collect", "removed_by"),
    [
        ("echo hi", (), "the supervisor"),
        ("echo plan > tfplan", ("tfplan",), "the runner, after reading the files back"),
        ("kill -9 $PPID; sleep 0.2", (), "the runner: the supervisor was killed"),
    ],
    ids=["plain", "files read back", "supervisor killed"],
)
def test_a_runs_work_directory_is_removed_by_its_supervisor_unless_files_are_read_back(
    runner: LocalRunner,
    monkeypatch: pytest.MonkeyPatch,
    script: str,
    collect: tuple[str, ...],
    removed_by: str,
) -> None:
    """The supervisor removes the work directory it made once the run is over, right after it
    says so (off the server's thread and off the run's end, issue 15); the runner removes it when
    it reads files back from it first (`RunSpec.collect`: a Terraform plan) or when the
    supervisor could not (killed)."""
    removals: list[str] = []
    real = local_runner._remove_scratch
    monkeypatch.setattr(local_runner, "_remove_scratch", lambda path: (removals.append(path), real(path)))
    result, output = run(runner, spec(script, execution_id=43, collect=collect))
    if collect:
        assert result.files == {"tfplan": b"plan\n"}, output.text("stderr")
    wait_until(lambda: _work_left(runner) == [], "removed after the run")
    assert len(removals) == (0 if removed_by == "the supervisor" else 1), removed_by


# A work directory whose removal takes long (tens of milliseconds and more on ext4): the files
# made by the script, in folders of a thousand.
MANY_FILES = """import os
for folder in range(20):
    os.mkdir(f"many-{folder}")
    for name in range(1000):
        open(f"many-{folder}/{name}", "wb").close()
print(os.getcwd())
"""


def test_a_runs_end_does_not_wait_for_its_work_directorys_removal(
    runner: LocalRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The supervisor says the run is over before it removes the work directory, and removes it
    afterwards: the removal (on ext4 under load 0.2-3.5 ms for a plain run's directory,
    docs/benchmarks.md session 51) is off the path from the script's exit to the run's end.
    Seen here as the work directory still there, with the script's files, when the runner
    receives the status, and gone soon after, with no removal by the runner."""
    at_status: list[bool] = []
    real_read_status = fork_server.RunSupervisor.read_status

    def read_status(self: fork_server.RunSupervisor) -> bool:
        over = real_read_status(self)
        if over:
            at_status.append(any(Path(tempfile.gettempdir()).glob(f"*-{runner.owner}-44-*/many-0")))
        return over

    removals: list[str] = []
    monkeypatch.setattr(fork_server.RunSupervisor, "read_status", read_status)
    monkeypatch.setattr(local_runner, "_remove_scratch", removals.append)
    result, output = run(runner, spec(MANY_FILES, "python", execution_id=44))
    assert result.exit_code == 0, output.text("stderr")
    work = Path(output.text().strip())
    assert at_status == [True], "the status came before the removal"
    wait_until(lambda: not work.exists(), "the supervisor removes the work directory after its status")
    assert removals == []


def _leave_a_locked_work_directory_and_remove_it(work: Path, outside: Path) -> None:
    """In this process: build a work directory as a script could leave it (folders unreadable or
    read-only, the directory itself included; links to a folder and a file outside), then remove
    it with `supervisor.remove_work`, twice."""
    (work / "locked" / "deeper").mkdir(parents=True)
    (work / "locked" / "deeper" / "file").write_text("")
    (work / "read-only").mkdir()
    (work / "read-only" / "file").write_text("")
    (work / "read-only" / "link-to-a-folder").symlink_to(outside)
    (work / "link-to-a-file").symlink_to(outside / "kept")
    for folder, mode in (("locked/deeper", 0), ("locked", 0), ("read-only", 0o500), (".", 0o500)):
        (work / folder).chmod(mode)
    supervisor.remove_work(str(work))
    supervisor.remove_work(str(work))


def test_a_work_directory_a_script_took_its_rights_from_is_removed_through_no_link() -> None:
    """`supervisor.remove_work`, by an unprivileged user (a forked child of this process that
    became `nobody`: root ignores rights): folders a script made unreadable and read-only (the
    work directory itself included) are removed all the same, the rights given back on the
    way; links to a folder and to a file outside are removed, not followed (what they point to
    keeps its content and its rights); a directory gone already is no error."""
    nobody = 65534
    base = Path(tempfile.mkdtemp(prefix="opscraft-test-removal-"))
    outside = base / "outside"
    try:
        outside.mkdir(mode=0o500)
        (outside / "kept").write_text("kept")
        for path in (base, outside):
            os.chown(path, nobody, nobody)
        pid = os.fork()
        if pid == 0:  # the child: never back into pytest
            code = 1
            try:
                os.setgid(nobody)
                os.setuid(nobody)
                _leave_a_locked_work_directory_and_remove_it(base / "work", outside)
                code = 0
            finally:
                os._exit(code)
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
        assert not (base / "work").exists()
        assert (outside / "kept").read_text() == "kept"
        assert outside.stat().st_mode & 0o777 == 0o500, "the rights of what a link points to are untouched"
    finally:
        with contextlib.suppress(FileNotFoundError):
            outside.chmod(0o700)
        shutil.rmtree(base)


def test_the_fork_server_imports_no_module_whose_fork_hook_every_supervisor_runs() -> None:
    """`random` (which `tempfile` imports) reseeds its generator in every forked process
    (`os.register_at_fork`): in each supervisor, pages copied on write and a `getrandom` call a
    run, for nothing (issue 15, docs/benchmarks.md session 52). Seen from outside: the fork
    server maps no `_random` (nor `hashlib`'s `_sha512`, which `random` brings)."""
    fresh = LocalRunner(f"test-{uuid.uuid4().hex[:8]}")
    fresh.start()
    try:
        pid = fresh.forks.pid
        assert pid is not None
        wait_until(lambda: "supervisor" in Path(f"/proc/{pid}/cmdline").read_text(), "the fork server")
        wait_until(lambda: "_socket" in Path(f"/proc/{pid}/maps").read_text(), "its imports")
        mapped = Path(f"/proc/{pid}/maps").read_text()
        assert "_random." not in mapped and "_sha512." not in mapped
    finally:
        fresh.stop()
