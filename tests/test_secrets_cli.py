"""`opscraft secrets generate-key|rotate-key` and the one-line refusal of a wrong key, each command
a process of its own (forked from one that imported OpsCraft once: tests/cli_forks.py)."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import col, select

from opscraft import lifecycle, runtime
from opscraft.config import ConfigError
from opscraft.db.models import Role, User
from opscraft.security.vault import DecryptError
from opscraft.services import keyring, secrets, users
from opscraft.services.actor import Actor
from opscraft.services.errors import Conflict
from opscraft.services.users import UserCreate
from tests.cli_forks import CommandForks
from tests.conftest import PASSWORD, make_settings

VALUES = {"DB_PASSWORD": "cli-rotation-value-1", "API_TOKEN": "cli-rotation-value-2"}


def command_env(data_dir: Path, **env: str) -> dict[str, str]:
    """A command's environment: the test process's without its `OPSCRAFT_*` settings, on
    `data_dir`, with a `SECRET_KEY` of the module's, plus `env`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("OPSCRAFT_")}
    return {
        **base,
        "OPSCRAFT_NO_BOOTSTRAP": "1",
        "OPSCRAFT_DATA_DIR": str(data_dir),
        "SECRET_KEY": "cli-test-secret-key-" + "z" * 32,
        **env,
    }


@pytest.fixture(scope="module")
def opscraft() -> Iterator[CommandForks]:
    """`python -m opscraft ...` (or `python -c`) in a process of its own, forked from one that
    imported OpsCraft once (tests/cli_forks.py; tests/test_cli.py shows a forked command saying
    what a started one says): a start with its imports was about 1 s of CPU for each of the
    module's 13 commands. What they check is what a command does and says, not its start."""
    forks = CommandForks(environ=command_env)
    try:
        yield forks
    finally:
        forks.close()


async def seed(data_dir: Path, **env: str) -> None:
    """Two secrets in a fresh data directory, created through the service."""
    await lifecycle.start(make_settings(data_dir, **env), worker=False)
    try:
        async with runtime.current().db.session() as session:
            admin = await users.bootstrap(
                session,
                UserCreate(username="admin", email="a@example.com", password=PASSWORD, role=Role.admin),
            )
            for name, value in VALUES.items():
                await secrets.create(session, Actor(admin), {"name": name, "value": value})
    finally:
        await lifecycle.stop()


async def readable_with(data_dir: Path, **env: str) -> dict[str, str]:
    """Start with `env` (ConfigError if the key does not fit) and decrypt every secret."""
    rt = await lifecycle.start(make_settings(data_dir, **env), worker=False)
    try:
        async with rt.db.session() as session:
            admin = (await session.exec(select(User).where(col(User.username) == "admin"))).one()
            rows, _ = await secrets.list_secrets(session, Actor(admin))
            return {i.secret.name: keyring.reveal(keyring.current_vault(), i.secret) for i in rows}
    finally:
        await lifecycle.stop()


def test_generate_key_prints_a_fresh_key(opscraft: CommandForks, tmp_path: Path) -> None:
    first, second = (opscraft(tmp_path, "secrets", "generate-key") for _ in range(2))
    assert first.returncode == 0 and len(base64.b64decode(first.stdout.strip())) == 32
    assert first.stdout != second.stdout


async def test_wrong_key_refuses_to_serve_with_one_line(opscraft: CommandForks, tmp_path: Path) -> None:
    await seed(tmp_path)
    wrong = base64.b64encode(os.urandom(32)).decode()
    done = opscraft(tmp_path, "serve", "--port", "1", OPSCRAFT_MASTER_KEY=wrong)
    assert done.returncode == 1
    # Start-up log lines may come first; the refusal is one line, with no stack trace.
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1:] == [
        "opscraft: configuration error: OPSCRAFT_MASTER_KEY: this is not the master key the secrets in the "
        "database were encrypted with (key check failed); set the original key (after `opscraft secrets "
        "rotate-key`, the new one)"
    ]
    bad = opscraft(tmp_path, "serve", "--port", "1", OPSCRAFT_MASTER_KEY="too-short")
    assert bad.returncode == 1 and "must be the base64 encoding of exactly 32 bytes" in bad.stderr


async def test_rotate_key_file_setup(opscraft: CommandForks, tmp_path: Path) -> None:
    await seed(tmp_path)
    key_file = tmp_path / "master.key"
    old = key_file.read_text().strip()
    done = opscraft(tmp_path, "secrets", "rotate-key")
    assert done.returncode == 0, done.stderr
    assert f"re-encrypted 2 secret(s) under key version 2; the new key replaced {key_file}" in done.stdout
    new = key_file.read_text().strip()
    assert new != old and key_file.stat().st_mode & 0o777 == 0o600
    assert not (tmp_path / "master.key.new").exists()
    assert await readable_with(tmp_path) == VALUES
    with pytest.raises(ConfigError, match="not the master key"):
        await readable_with(tmp_path, OPSCRAFT_MASTER_KEY=old)


# `opscraft secrets rotate-key`, killed (SIGKILL) at the moment it renames master.key.new over
# master.key: after the database's commit, before the file is replaced.
_ROTATE_KILLED_AT_RENAME = """
import os, signal, sys
os.replace = lambda *args, **kwargs: os.kill(os.getpid(), signal.SIGKILL)
from opscraft.cli import main
main(["secrets", "rotate-key"])
"""


async def test_a_rotation_killed_before_renaming_its_key_is_finished_by_the_next_command(
    tmp_path: Path,
    opscraft: CommandForks,
) -> None:
    """`rotate-key` killed between its commit and the rename of master.key.new: every start and
    the rotation's re-run said "this is not the master key ... set the original key", with the
    original key in master.key, until the admin renamed the file by hand. The next command now
    finishes the rename, says so on one line, and works."""
    await seed(tmp_path)
    key_file, staged = tmp_path / "master.key", tmp_path / "master.key.new"
    old = key_file.read_text()
    killed = opscraft(tmp_path, code=_ROTATE_KILLED_AT_RENAME, SECRET_KEY="k" * 40)
    assert killed.returncode == -9, killed.stderr
    assert key_file.read_text() == old and staged.exists()  # the database needs the staged key
    new = staged.read_text()

    done = opscraft(tmp_path, "db", "upgrade")
    assert done.returncode == 0, done.stderr
    [said] = done.stderr.strip().splitlines()  # one log line (time, level, logger first)
    assert said.endswith(
        f" WARNING opscraft.services.keyring: {key_file}: a key rotation was interrupted after the "
        "database was re-encrypted: its new key (master.key.new) now replaces the old one"
    ), said
    assert key_file.read_text() == new and not staged.exists()
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert await readable_with(tmp_path) == VALUES
    again = opscraft(tmp_path, "secrets", "rotate-key")  # the rotation re-run as usual
    assert again.returncode == 0 and again.stderr == "", again.stderr
    assert await readable_with(tmp_path) == VALUES


async def test_rotate_key_environment_setup(opscraft: CommandForks, tmp_path: Path) -> None:
    old = base64.b64encode(os.urandom(32)).decode()
    await seed(tmp_path, OPSCRAFT_MASTER_KEY=old)
    refused = opscraft(tmp_path, "secrets", "rotate-key", OPSCRAFT_MASTER_KEY=old)
    assert (
        refused.returncode == 1 and "OPSCRAFT_NEW_MASTER_KEY=<key> or --new-key-file PATH" in refused.stderr
    )
    new = base64.b64encode(os.urandom(32)).decode()
    done = opscraft(tmp_path, "secrets", "rotate-key", OPSCRAFT_MASTER_KEY=old, OPSCRAFT_NEW_MASTER_KEY=new)
    assert done.returncode == 0, done.stderr
    assert "now set OPSCRAFT_MASTER_KEY to the new key" in done.stdout
    assert not (tmp_path / "master.key").exists()
    assert await readable_with(tmp_path, OPSCRAFT_MASTER_KEY=new) == VALUES
    with pytest.raises(ConfigError, match="not the master key"):
        await readable_with(tmp_path, OPSCRAFT_MASTER_KEY=old)


async def test_rotate_key_from_a_key_file(
    opscraft: CommandForks, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    old = base64.b64encode(os.urandom(32)).decode()
    await seed(tmp_path, OPSCRAFT_MASTER_KEY=old)
    # Outside the data directory: every start makes what is in there private (data_dir.py), which
    # would tighten a loose key file before the refusal under test could see it.
    new_file = tmp_path_factory.mktemp("keys") / "new.key"
    new_file.write_text(base64.b64encode(os.urandom(32)).decode())
    new_file.chmod(0o644)
    loose = opscraft(
        tmp_path, "secrets", "rotate-key", "--new-key-file", str(new_file), OPSCRAFT_MASTER_KEY=old
    )
    assert loose.returncode == 1 and "chmod 600" in loose.stderr
    new_file.chmod(0o600)
    done = opscraft(
        tmp_path, "secrets", "rotate-key", "--new-key-file", str(new_file), OPSCRAFT_MASTER_KEY=old
    )
    assert done.returncode == 0, done.stderr
    assert await readable_with(tmp_path, OPSCRAFT_MASTER_KEY=new_file.read_text().strip()) == VALUES


async def test_a_process_started_before_a_rotation_writes_no_secret_under_the_old_key(
    opscraft: CommandForks, tmp_path: Path
) -> None:
    """`rotate-key` run beside a server (its help says to stop OpsCraft first; nothing stops it):
    the server still holds the old key, and a secret it saved afterwards was sealed under it.
    The old key file is replaced, so after the restart that secret never decrypted again. Such a
    write is now refused with what to do, and nothing is saved."""
    await seed(tmp_path)
    rt = await lifecycle.start(make_settings(tmp_path), worker=False)
    try:
        done = opscraft(tmp_path, "secrets", "rotate-key")
        assert done.returncode == 0, done.stderr
        async with rt.db.session() as session:
            admin = Actor((await session.exec(select(User).where(col(User.username) == "admin"))).one())
            with pytest.raises(Conflict) as refused:
                await secrets.create(session, admin, {"name": "AFTER", "value": "written-after"})
            first = (await secrets.list_secrets(session, admin))[0][0].secret
            with pytest.raises(Conflict):
                await secrets.update(session, admin, first.id, {"value": "changed-after"})
            with pytest.raises(DecryptError) as unreadable:  # its runs say why, and what to do
                keyring.reveal(keyring.current_vault(), first)
    finally:
        await lifecycle.stop()
    assert str(unreadable.value) == (
        f"secret {first.name} could not be decrypted: it is under master key version 2, this "
        "process has version 1 (the key was rotated since it started: restart it)"
    )
    assert refused.value.message == (
        "the master key was rotated (key version 2) after this process started with key version 1: "
        "restart it so that it reads the new key; nothing was saved"
    )
    assert await readable_with(tmp_path) == VALUES
