"""The `opscraft` command line, each command a process of its own (forked from one that imported
OpsCraft once, tests/cli_forks.py; a real start where the process is what is tested): version,
user create, db upgrade, errors."""

from __future__ import annotations

import asyncio
import os
import pty
import select
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from opscraft import __version__
from tests import cli_runs, migrated_sqlite
from tests.cli_forks import CommandForks
from tests.conftest import (
    PG_URL,
    ROOT,
    LiveServer,
    free_port,
    postgres_scratch_database,
    require_service,
    start_server,
    stop_server,
)
from tests.waiting import wait_until


@pytest.fixture(scope="module")
def opscraft() -> Iterator[CommandForks]:
    """`python -m opscraft ...` in a process of its own, forked from one that imported OpsCraft
    once (tests/cli_forks.py): a start with its imports is about 1 s of CPU per command. The
    tests of the process itself (Ctrl-C, a terminal, `--version`, no command) start real ones."""
    forks = CommandForks()
    try:
        yield forks
    finally:
        forks.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One `opscraft serve` for the tests of commands run beside a running server (each with its
    own user names), and for the last test of the module, which stops it with Ctrl-C: starting
    one is about 5 s of CPU. Started as a shell starts a foreground command: a test run started
    in the background (`... &`) ignores SIGINT, which the server would inherit across exec and
    re-raise to no effect (it exited 0 after its shutdown)."""
    ignored = signal.signal(signal.SIGINT, signal.default_int_handler)  # exec makes it SIG_DFL
    try:
        server = start_server(tmp_path_factory.mktemp("served") / "data")
    finally:
        signal.signal(signal.SIGINT, ignored)
    try:
        yield server
    finally:
        stop_server(server)


def test_version(tmp_path: Path) -> None:
    result = cli_runs.opscraft(tmp_path, "--version")
    assert result.returncode == 0 and result.stdout.strip() == f"opscraft {__version__}"


def test_a_forked_command_says_what_a_started_one_says(opscraft: CommandForks, tmp_path: Path) -> None:
    """The module's commands run forked (tests/cli_forks.py): a fork and `python -m opscraft`
    started afresh end alike, for argparse's refusal (exit 2), a configuration error (a
    `sys.exit` message, exit 1) and a command's normal end (exit 0)."""
    for args, env in ((("--bogus",), {}), (("db", "upgrade"), {"ENVIRONMENT": "production"})):
        forked = opscraft(tmp_path, *args, **env)
        started = cli_runs.opscraft(tmp_path, *args, **env)
        assert (forked.returncode, forked.stdout, forked.stderr) == (
            started.returncode,
            started.stdout,
            started.stderr,
        ), args
    migrated_sqlite.seed(tmp_path)
    forked, started = opscraft(tmp_path, "db", "upgrade"), cli_runs.opscraft(tmp_path, "db", "upgrade")
    assert forked.returncode == started.returncode == 0, forked.stderr + started.stderr
    assert forked.stdout == started.stdout and forked.stdout.startswith("database is at revision ")


def test_user_create_reads_the_password_from_stdin(opscraft: CommandForks, tmp_path: Path) -> None:
    migrated_sqlite.seed(tmp_path)  # a database at the head, as after a first start
    result = opscraft(tmp_path, "user", "create", "root1", "--role", "admin", stdin="Admin-Pass-123\n")
    assert result.returncode == 0, result.stderr
    assert "created admin 'root1'" in result.stdout
    assert "Admin-Pass-123" not in result.stdout + result.stderr
    again = opscraft(tmp_path, "user", "create", "ROOT1", stdin="Admin-Pass-123\n")
    assert again.returncode == 1 and "already exists" in again.stderr
    short = opscraft(tmp_path, "user", "create", "bob", stdin="short\n")
    assert short.returncode == 1
    assert short.stderr.strip() == "opscraft: password: must be at least 8 characters, not 5"
    bad_role = opscraft(tmp_path, "user", "create", "eve", "--role", "root", stdin="Eve-Pass-123\n")
    assert bad_role.returncode == 2 and "invalid choice" in bad_role.stderr
    # Blanks around the name, as the API and the forms take it: the address made from the name
    # was refused ("The email address contains invalid characters before the @-sign: SPACE.").
    spaced = opscraft(tmp_path, "user", "create", " carol ", stdin="Carol-Pass-123\n")
    assert spaced.returncode == 0 and "created viewer 'carol'" in spaced.stdout, spaced.stderr


def test_created_user_can_log_in(opscraft: CommandForks, served: LiveServer) -> None:
    made = opscraft(
        served.data_dir,
        "user",
        "create",
        "ops",
        "--role",
        "operator",
        stdin="Ops-Pass-1234\n",
        SECRET_KEY=served.env["SECRET_KEY"],
    )
    assert made.returncode == 0, made.stderr
    login = httpx.post(
        f"{served.url}/api/v1/auth/login", json={"username": "ops", "password": "Ops-Pass-1234"}
    )
    assert login.status_code == 200, login.text
    me = httpx.get(
        f"{served.url}/api/v1/auth/me", headers={"Authorization": f"Bearer {login.json()['access_token']}"}
    )
    assert me.json()["role"] == "operator", me.text


def test_db_upgrade_on_sqlite(opscraft: CommandForks, tmp_path: Path) -> None:
    result = opscraft(tmp_path, "db", "upgrade")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("database is at revision ")
    assert (tmp_path / "opscraft.db").exists()


@pytest.mark.postgres
async def test_db_upgrade_on_postgresql(opscraft: CommandForks, tmp_path: Path) -> None:
    require_service(bool(PG_URL), "PostgreSQL (OPSCRAFT_TEST_PG_URL)")
    async with postgres_scratch_database() as url:
        plain = url.replace("postgresql+asyncpg://", "postgresql://")
        result = await asyncio.to_thread(opscraft, tmp_path, "db", "upgrade", DATABASE_URL=plain)
    assert result.returncode == 0, result.stderr
    assert "database is at revision" in result.stdout
    assert not (tmp_path / "opscraft.db").exists()
    assert not (tmp_path / "queue.db").exists(), "a one-shot command starts no job queue"


def test_one_shot_commands_open_the_database_and_vault_only(opscraft: CommandForks, tmp_path: Path) -> None:
    """`db upgrade`, `user create`, `user reset-password` and `secrets rotate-key` started the
    whole runtime (job queue, event bus, execution client, clock measure) to write a row or two:
    0.7-0.9 s of CPU each, and a `queue.db` made in the data directory by the first of them. Now
    they open the database (migrated as every start does: here from nothing) and the vault only,
    and do their one thing through the services: same lines, same audit events."""
    steps = [
        (("db", "upgrade"), "", "database is at revision "),
        (("user", "create", "ada", "--role", "admin"), "Ada-Pass-1234\n", "created admin 'ada' (id 1)"),
        (("user", "reset-password", "ADA"), "Ada-Pass-5678\n", "password of admin 'ada' replaced;"),
        (("secrets", "rotate-key"), "", "re-encrypted 0 secret(s) under key version 2;"),
    ]
    for args, typed, said in steps:
        done = opscraft(tmp_path, *args, stdin=typed)
        assert (done.returncode, done.stderr) == (0, ""), (args, done.stderr)
        assert done.stdout.startswith(said), (args, done.stdout)
        assert not (tmp_path / "queue.db").exists(), f"{args} started the job queue"
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("opscraft.db")) == [
        "master.key",
        "secret_key",
    ]
    with sqlite3.connect(tmp_path / "opscraft.db") as conn:
        events = conn.execute("SELECT action, actor_name FROM audit_events ORDER BY id").fetchall()
    assert events == [("user.create", "cli"), ("user.reset_password", "cli"), ("vault.rotate_key", "cli")]


def test_configuration_error_exits_with_one_line(opscraft: CommandForks, tmp_path: Path) -> None:
    result = opscraft(tmp_path, "db", "upgrade", ENVIRONMENT="production")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "opscraft: configuration error: SECRET_KEY: required when ENVIRONMENT=production"
        " (at least 32 characters)"
    ]
    serve = opscraft(tmp_path, "serve", "--port", "1", OPSCRAFT_RATE_LIMIT_API="lots")
    assert serve.returncode == 1
    assert serve.stderr.strip().splitlines() == [
        "opscraft: configuration error: OPSCRAFT_RATE_LIMIT_API: "
        "must be a whole number more than 0; given 'lots'"
    ]


# One setting of each kind, a value it refuses, and the one line `opscraft serve` exits with:
# which setting, what is accepted, what was given (a secret's length only, never its value).
SETTING_FAULTS = [
    ("OPSCRAFT_WORKERS", "lots", "must be a whole number from 0 to 64; given 'lots'"),
    ("OPSCRAFT_WORKERS", "65", "must be from 0 to 64; given '65'"),
    (
        "OPSCRAFT_LIVE_SECONDS",
        "fast",
        "must be a number more than 0 and at most 3600 (a decimal point is allowed: 2.5); given 'fast'",
    ),
    ("OPSCRAFT_LOCAL_RUNNER", "maybe", "must be true or false (also 1/0, yes/no, on/off); given 'maybe'"),
    ("OPSCRAFT_PUBLIC_URL", "ops.example", "must look like https://host[:port][/path]; given 'ops.example'"),
    (
        "DATABASE_URL",
        "mysql://admin:hunter2-pw@db/x",
        "must start with postgresql://, postgresql+asyncpg:// or sqlite://; "
        "given 29 characters (not shown: the value is secret)",
    ),
    ("ENVIRONMENT", "prod", "must be one of 'dev', 'staging' or 'production'; given 'prod'"),
    ("LOG_FORMAT", "xml", "must be one of 'text' or 'json'; given 'xml'"),
    (
        "SECRET_KEY",
        "hunter2-short",
        "must be at least 32 characters; given 13 characters (not shown: the value is secret)",
    ),
    (
        "OPSCRAFT_MASTER_KEY",
        "hunter2-not-base64",
        "must be the base64 encoding of exactly 32 bytes; given 18 characters (not shown: the "
        "value is secret); generate one with: opscraft secrets generate-key",
    ),
    (
        "OPSCRAFT_METRICS_TOKEN",
        "hunter2",
        "must be at least 16 characters; given 7 characters (not shown: the value is secret)",
    ),
]


@pytest.mark.parametrize(("variable", "value", "said"), SETTING_FAULTS)
def test_a_refused_setting_stops_serve_saying_what_is_wrong_given_and_accepted(
    opscraft: CommandForks, tmp_path: Path, variable: str, value: str, said: str
) -> None:
    """`opscraft serve` with a setting it refuses exits 1 with one line in OpsCraft's words (no
    "Input should be a valid integer"), naming the variable, what it accepts and what was
    given, a secret's value never. On a database at the head: the master key is read after the
    migrations, which a first start would run in full for each case."""
    migrated_sqlite.seed(tmp_path)
    result = opscraft(tmp_path, "serve", "--port", "1", **{variable: value})
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()  # the master key is read after the migrations' log
    assert lines[-1] == f"opscraft: configuration error: {variable}: {said}", result.stderr
    assert "configuration error" not in "".join(lines[:-1]) and "hunter2" not in result.stderr


def test_a_data_directory_that_cannot_be_made_stops_serve_saying_so(
    opscraft: CommandForks, tmp_path: Path
) -> None:
    """A path setting: OPSCRAFT_DATA_DIR under a regular file cannot be created."""
    (tmp_path / "file").write_text("x")
    result = opscraft(tmp_path, "serve", "--port", "1", OPSCRAFT_DATA_DIR=str(tmp_path / "file" / "data"))
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines() == [
        "opscraft: configuration error: OPSCRAFT_DATA_DIR: must be a directory this user can create "
        f"and write; given '{tmp_path / 'file' / 'data'}', which cannot be created: Not a directory"
    ]


def test_a_data_directory_given_with_the_option_is_named_as_the_option(
    opscraft: CommandForks, tmp_path: Path
) -> None:
    """`--data-dir` that cannot be made was said as OPSCRAFT_DATA_DIR, a variable nobody set."""
    (tmp_path / "file").write_text("x")
    result = opscraft(tmp_path, "db", "upgrade", "--data-dir", str(tmp_path / "file"))
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines() == [
        "opscraft: configuration error: --data-dir: must be a directory this user can create "
        f"and write; given '{tmp_path / 'file'}', which cannot be created: File exists"
    ]


# A command line argparse refuses, and the last line of what it says (exit status 2).
MISUSED = [
    (["--bogus"], "opscraft: error: unrecognized arguments: --bogus"),
    (["--bogus", "serve"], "opscraft: error: unrecognized arguments: --bogus"),
    (["serve", "--bogus"], "opscraft serve: error: unrecognized arguments: --bogus"),
    (["serve", "--port", "1", "stray"], "opscraft serve: error: unrecognized arguments: stray"),
    (["worker", "--bogus"], "opscraft worker: error: unrecognized arguments: --bogus"),
    (["desktop", "--bogus"], "opscraft desktop: error: unrecognized arguments: --bogus"),
    (["user", "create", "ann", "--bogus"], "opscraft user create: error: unrecognized arguments: --bogus"),
    (["user", "--bogus", "create"], "opscraft user: error: unrecognized arguments: --bogus"),
    (["db", "upgrade", "--bogus"], "opscraft db upgrade: error: unrecognized arguments: --bogus"),
    (["secrets", "generate-key", "-x"], "opscraft secrets generate-key: error: unrecognized arguments: -x"),
    (
        ["--data-dir", "/tmp/x", "serve"],
        "opscraft: error: argument --data-dir: goes after the command, e.g. opscraft serve --data-dir DIR",
    ),
    (
        ["serve", "--data-dir", ""],
        "opscraft serve: error: argument --data-dir: must name a directory (it is empty)",
    ),
    (
        ["serve", "--host", ""],
        "opscraft serve: error: argument --host: must name an address to listen on (it is empty)",
    ),
    (
        ["serve", "--workers", "65"],
        "opscraft serve: error: argument --workers: must be from 0 to 64; given '65'",
    ),
    (
        ["serve", "--workers", "x"],
        "opscraft serve: error: argument --workers: must be a whole number from 0 to 64; given 'x'",
    ),
    (
        ["worker", "--slots", "0"],
        "opscraft worker: error: argument --slots: must be from 1 to 64; given '0'",
    ),
    (
        ["worker", "--name", "a b"],
        "opscraft worker: error: argument --name: must be 1-64 ASCII letters, digits, '.', '_' or '-'",
    ),
]


def test_a_misused_option_is_named(opscraft: CommandForks, tmp_path: Path) -> None:
    """`opscraft --bogus` said `the following arguments are required: command`, `--data-dir DIR`
    before the command that DIR is no command, and an empty `--data-dir` was ignored (the default
    data directory served); an empty `--host`, `--workers`/`--slots` out of range and a bad
    `--name` were a line in the command's words with exit status 1; `opscraft serve --bogus`
    printed `opscraft`'s own usage, not serve's. One test: each case is a process start."""
    for argv, said in MISUSED:
        result = opscraft(tmp_path, *argv)
        assert (result.returncode, result.stderr.strip().splitlines()[-1]) == (2, said), (argv, result.stderr)
        command = said.split(": error:")[0]  # a command's bad word shows that command's usage
        assert result.stderr.startswith(f"usage: {command} "), (argv, result.stderr)


def test_unreachable_database_is_one_line(opscraft: CommandForks, tmp_path: Path) -> None:
    url = "postgresql://nobody:secret-pw@127.0.0.1:1/none"
    for args in (("db", "upgrade"), ("serve", "--port", "1")):
        result = opscraft(tmp_path, *args, DATABASE_URL=url)
        assert result.returncode == 1, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("opscraft: cannot open the PostgreSQL database: ")
        assert "secret-pw" not in result.stderr


def test_a_database_from_a_newer_version_is_one_line(opscraft: CommandForks, tmp_path: Path) -> None:
    """An older OpsCraft started on a database a newer one upgraded: one line saying so (it was
    Alembic's traceback, "Can't locate revision identified by '0099'"), from every command."""
    migrated_sqlite.seed(tmp_path)  # at the head (`db upgrade` of an empty one: test_db_upgrade_on_sqlite)
    with sqlite3.connect(tmp_path / "opscraft.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0099'")
    for args in (("db", "upgrade"), ("serve", "--port", "1"), ("worker",)):
        result = opscraft(tmp_path, *args)
        assert result.returncode == 1, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith(
            "opscraft: cannot open the SQLite database: the database is at schema revision 0099, "
            "which this version of OpsCraft"
        ), lines


def test_a_damaged_database_file_is_one_line(opscraft: CommandForks, tmp_path: Path) -> None:
    """A damaged SQLite file whose damage Python cannot decode (not UTF-8) was a traceback
    (UnicodeDecodeError) from every command; it is now SQLite's kind of error, one line, and the
    file is left as it was."""
    damaged = migrated_sqlite.seed_damaged(tmp_path)
    for args in (("db", "upgrade"), ("serve", "--port", str(free_port())), ("worker",)):
        result = opscraft(tmp_path, *args)
        assert result.returncode == 1, result.stderr
        assert result.stderr.strip().splitlines() == [
            "opscraft: cannot open the SQLite database: database disk image is malformed "
            "(text that is not UTF-8: invalid start byte)"
        ], result.stderr
    assert (tmp_path / migrated_sqlite.DATABASE_FILE).read_bytes() == damaged


def test_a_damaged_job_queue_file_is_one_line(opscraft: CommandForks, tmp_path: Path) -> None:
    """A `queue.db` that is not an SQLite database (damaged; a full disk fails the same way, as
    SQLite's "disk I/O error") stopped `serve` and `worker` with Huey's traceback. Now one last
    line names the file and SQLite's reason, and the file is left as it was."""
    migrated_sqlite.seed(tmp_path)
    damaged = b"not a queue " * 700
    (tmp_path / "queue.db").write_bytes(damaged)
    for args in (("serve", "--port", str(free_port())), ("worker",)):
        result = opscraft(tmp_path, *args)
        assert result.returncode == 1, result.stderr
        assert "Traceback" not in result.stderr, result.stderr
        assert result.stderr.strip().splitlines()[-1] == (
            f"opscraft: cannot open the job queue {tmp_path / 'queue.db'}: file is not a database"
        )
    assert (tmp_path / "queue.db").read_bytes() == damaged


def _chunk(fd: int) -> bytes:
    """The next output of a pseudo-terminal's program; b"" at its end (EOF or EIO)."""
    try:
        return os.read(fd, 4096)
    except OSError:  # EIO: the program ended and closed the terminal
        return b""


def _read_until(fd: int, marker: bytes) -> bytes:
    """What a pseudo-terminal's program wrote, up to `marker` or its end (EOF or EIO)."""
    seen = b""
    while marker not in seen and (chunk := _chunk(fd)):
        seen += chunk
    return seen


# read(2)'s number on this machine, as /proc/<pid>/syscall shows it (None: not known here).
_READ_SYSCALL = {"x86_64": "0", "aarch64": "63"}.get(os.uname().machine)


def _blocked_reading(pid: int) -> bool:
    """Whether process `pid` sits in read(2) now (/proc/<pid>/syscall; False when unknown)."""
    try:
        return Path(f"/proc/{pid}/syscall").read_text().split()[0] == _READ_SYSCALL
    except (OSError, IndexError):
        return False


def _interrupted(fd: int, pid: int) -> str:
    """Type Ctrl-C on the pseudo-terminal `fd` of the command `pid` waiting at a prompt; what it
    wrote until it ended (EOF or EIO). A SIGINT arriving after Python last checked for signals
    and before it entered read(2) only sets a flag the blocked read never returns to check
    (seen once at load 30: the test waited until a hand sent another): Ctrl-C is typed again
    while the command still sits in read(2) a second later, never while it handles the first
    (a second KeyboardInterrupt there would be a traceback of the test's making)."""
    os.write(fd, b"\x03")  # the terminal turns it into SIGINT for the command
    seen = b""
    while True:
        if select.select([fd], [], [], 1.0)[0]:
            if not (chunk := _chunk(fd)):
                break
            seen += chunk
        elif _blocked_reading(pid):
            os.write(fd, b"\x03")
    return seen.decode(errors="replace")


def test_ctrl_c_at_the_password_prompt_is_one_line(tmp_path: Path) -> None:
    """Ctrl-C at `user create`'s password prompt ends the command with one line and status 130
    (128 + SIGINT), as shells expect: it printed a KeyboardInterrupt traceback from getpass."""
    env = {**os.environ, "OPSCRAFT_NO_BOOTSTRAP": "1", "OPSCRAFT_DATA_DIR": str(tmp_path)}
    pid, fd = pty.fork()
    if pid == 0:  # the child: the command on the terminal's other end
        os.chdir(ROOT)
        # As a shell starts a foreground command: a test run started in the background (`... &`)
        # ignores SIGINT, and an ignored SIGINT stays ignored across exec (the command waited).
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.execve(sys.executable, [sys.executable, "-m", "opscraft", "user", "create", "bob"], env)
    try:
        assert b"Password: " in _read_until(fd, b"Password: ")
        rest = _interrupted(fd, pid)
    finally:
        status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        os.close(fd)
    assert status == 130, rest
    assert "Traceback" not in rest and rest.strip().splitlines()[-1:] == ["opscraft: interrupted"], rest


def test_no_command_without_a_display_prints_the_usage(tmp_path: Path) -> None:
    # With a display, no command means the desktop window (tests/test_binary.py starts it that way).
    env = {k: v for k, v in os.environ.items() if k not in {"DISPLAY", "WAYLAND_DISPLAY"}}
    result = subprocess.run(
        [sys.executable, "-m", "opscraft"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        env={**env, "OPSCRAFT_NO_BOOTSTRAP": "1", "OPSCRAFT_DATA_DIR": str(tmp_path)},
    )
    assert result.returncode == 2
    assert "the following arguments are required: command" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_second_serve_on_the_same_data_directory_is_refused(
    opscraft: CommandForks, served: LiveServer
) -> None:
    """Both would be the same worker (its id is kept in the data directory): the second one's
    start recovered "its" crash, ending the first one's runs as "interrupted by server restart"
    and removing their containers while they ran. It now stops with one line instead."""
    second = opscraft(
        served.data_dir, "serve", "--port", str(free_port()), SECRET_KEY=served.env["SECRET_KEY"]
    )
    assert second.returncode == 1, second.stderr
    worker = (served.data_dir / "worker-id").read_text().strip()
    assert second.stderr.strip().splitlines() == [
        f"opscraft: another OpsCraft process (pid {served.process.pid}) is already running on the "
        f"data directory {served.data_dir} (worker {worker}); "
        "starting would end its runs: close or stop it first, or use another --data-dir"
    ]
    assert served.log().count("recovered") == 1 and served.process.poll() is None


def test_a_port_out_of_range_or_taken_is_one_line(opscraft: CommandForks, tmp_path: Path) -> None:
    """The kernel takes a port modulo 65536: `--port 99999` served on 34463 while saying 99999.
    A taken port was found only after the whole start (migrations, runtime), in uvicorn's words."""
    for port in ("99999", "0", "http"):
        result = opscraft(tmp_path, "serve", "--port", port)
        assert result.returncode == 2 and "is not a port number (1-65535)" in result.stderr, result.stderr
    migrated_sqlite.seed(tmp_path)  # the port is checked after the migrations: none to run
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = opscraft(tmp_path, "serve", "--port", str(port))
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines()[-1:] == [
        f"opscraft: cannot listen on 127.0.0.1:{port}: Address already in use: choose another --port"
    ]


def test_user_reset_password_lets_a_locked_out_admin_back_in(
    opscraft: CommandForks, served: LiveServer
) -> None:
    """The only admin lost their password: no admin is left to reset it in the app. `opscraft
    user reset-password` sets it from the machine, beside the running server, ends the old
    password's sessions, and is audited; the password rules hold there too."""
    key = served.env["SECRET_KEY"]
    made = opscraft(
        served.data_dir,
        "user",
        "create",
        "boss",
        "--role",
        "admin",
        stdin="Old-Pass-1234\n",
        SECRET_KEY=key,
    )
    assert made.returncode == 0, made.stderr
    login = httpx.post(
        f"{served.url}/api/v1/auth/login", json={"username": "boss", "password": "Old-Pass-1234"}
    )
    old_token = {"Authorization": f"Bearer {login.json()['access_token']}"}

    refused = opscraft(
        served.data_dir, "user", "reset-password", "boss", stdin=" " * 9 + "\n", SECRET_KEY=key
    )
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        "opscraft: new_password: must not be only spaces or other blank characters"
    ), refused.stderr
    unknown = opscraft(
        served.data_dir, "user", "reset-password", "nobody", stdin="New-Pass-5678\n", SECRET_KEY=key
    )
    assert unknown.returncode == 1 and unknown.stderr.strip() == "opscraft: no user named 'nobody'"

    reset = opscraft(
        served.data_dir, "user", "reset-password", "BOSS", stdin="New-Pass-5678\n", SECRET_KEY=key
    )
    assert reset.returncode == 0, reset.stderr
    assert reset.stdout.strip() == "password of admin 'boss' replaced; its sessions and tokens ended"
    assert "New-Pass-5678" not in reset.stdout + reset.stderr
    old = httpx.post(
        f"{served.url}/api/v1/auth/login", json={"username": "boss", "password": "Old-Pass-1234"}
    )
    assert old.status_code == 401, old.text
    new = httpx.post(
        f"{served.url}/api/v1/auth/login", json={"username": "boss", "password": "New-Pass-5678"}
    )
    assert new.status_code == 200, new.text
    headers = {"Authorization": f"Bearer {new.json()['access_token']}"}
    wait_until(  # the server may hold the account for a moment
        lambda: httpx.get(f"{served.url}/api/v1/auth/me", headers=old_token).status_code == 401,
        "the old password's token to stop working",
        timeout=30,
        every=0.2,
    )
    events = httpx.get(
        f"{served.url}/api/v1/audit", params={"action": "user.reset_password"}, headers=headers
    ).json()["items"]
    user_id = made.stdout.strip().removesuffix(")").rsplit(" ", 1)[1]
    assert [(e["actor_name"], e["target_id"]) for e in events] == [("cli", user_id)], events


def test_ctrl_c_stops_serve_without_a_traceback(served: LiveServer) -> None:
    """Ctrl-C (SIGINT) on `opscraft serve`: the server shuts down and the command exits 130 with
    its shutdown lines only; uvicorn re-raises the signal after its shutdown, which ended in a
    KeyboardInterrupt traceback and death by the signal. The module's shared server (started
    with SIGINT at its default, `served`): this test comes last, as it ends that server."""
    served.process.send_signal(signal.SIGINT)
    status = served.process.wait(timeout=60)
    log = served.log()
    assert status == 130, log
    assert "Application shutdown complete" in log and "Traceback" not in log, log
