"""Start-up shortcuts stay correct: the migration head read without Alembic, and a database at
the head upgraded without importing Alembic (docs/benchmarks.md, "Start-up"); a real start keeps
the data directory private."""

from __future__ import annotations

import ast
import base64
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
from alembic.script import ScriptDirectory

from opscraft.db.migrate import alembic_config, head_revisions
from tests import migrated_sqlite
from tests.conftest import ROOT, start_server, stop_server


def test_head_revisions_agree_with_alembic() -> None:
    assert head_revisions() == set(ScriptDirectory.from_config(alembic_config()).get_heads())


def test_head_revisions_of_a_branch_and_its_merge(tmp_path: Path) -> None:
    scripts = {
        "a.py": 'revision = "a"\ndown_revision = None\n',
        "b.py": 'revision: str = "b"\ndown_revision: str | None = "a"\n',
        "c.py": 'revision = "c"\ndown_revision = "a"\n',
    }
    for name, text in scripts.items():
        (tmp_path / name).write_text(text)
    assert head_revisions(tmp_path) == {"b", "c"}  # two branches: two heads
    (tmp_path / "m.py").write_text('revision = "m"\ndown_revision = ("b", "c")\n')
    assert head_revisions(tmp_path) == {"m"}


def test_head_revisions_read_past_a_header_that_is_not_the_whole_story(tmp_path: Path) -> None:
    """Only a script's header (up to its first top-level definition) is parsed; a header that
    does not parse alone, or that leaves `revision` unassigned or assigned again later, is read
    from the whole script, as Alembic's import of it would."""
    scripts = {
        # its docstring has a line starting with `def `: the header alone is no Python
        "a.py": '"""Adds x.\ndef upgrade() was empty\n"""\nrevision = "a"\ndown_revision = None\n',
        # assigned only after a definition
        "b.py": 'def upgrade() -> None:\n    pass\n\n\nrevision = "b"\ndown_revision = "a"\n',
        # assigned again after a definition: the last one counts
        "c.py": 'revision = "x"\ndown_revision = "a"\n\n\nclass K:\n    pass\n\n\nrevision = "c"\n',
        "d.py": 'revision = "d"\ndown_revision = ("b", "c")\n\n\n@decorated\ndef upgrade():\n    pass\n',
    }
    for name, text in scripts.items():
        (tmp_path / name).write_text(text)
    assert head_revisions(tmp_path) == {"d"}
    (tmp_path / "d.py").unlink()
    assert head_revisions(tmp_path) == {"b", "c"}


def test_upgrade_at_head_does_not_load_alembic(tmp_path: Path) -> None:
    program = textwrap.dedent(
        """
        import asyncio, sys
        from opscraft.db.engine import Database
        from opscraft.db.migrate import upgrade

        async def main():
            db = Database(sys.argv[1])
            await upgrade(db.engine)
            await db.dispose()
            print("alembic" in sys.modules)

        asyncio.run(main())
        """
    )
    url = f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}"
    env = {**os.environ, "OPSCRAFT_NO_BOOTSTRAP": "1"}
    runs = [
        subprocess.run(
            [sys.executable, "-c", program, url],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        for _ in range(2)
    ]
    assert [run.stdout.strip() for run in runs] == ["True", "False"], [run.stderr for run in runs]


def test_db_upgrade_at_the_head_says_its_revision_without_loading_alembic(tmp_path: Path) -> None:
    """`opscraft db upgrade` on a database at the head: the revision it prints is read without
    importing Alembic (that import was 0.3 s of the command's CPU; tests and deployments run the
    command at every start)."""
    migrated_sqlite.seed(tmp_path)
    program = "import sys\nfrom opscraft.cli import main\ntry:\n    main(['db', 'upgrade'])\n"
    program += "finally:\n    print('alembic' in sys.modules)\n"
    env = {**os.environ, "OPSCRAFT_NO_BOOTSTRAP": "1", "OPSCRAFT_DATA_DIR": str(tmp_path)}
    env.pop("DATABASE_URL", None)
    run = subprocess.run(
        [sys.executable, "-c", program], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert run.stdout.splitlines() == [f"database is at revision {head}", "False"], run.stderr


def test_a_real_start_keeps_the_data_directory_private(tmp_path: Path) -> None:
    """The data directory is 0700 and every file in it 0600: those a start creates (databases,
    queue, keys, UI storage; umask) and those an older version left readable (fixed at start)."""
    data = tmp_path / "data"
    (data / "ui-storage").mkdir(parents=True)
    data.chmod(0o755)
    (data / "ui-storage").chmod(0o755)
    old = data / "ui-storage" / "storage-general.json"
    old.write_text("{}")
    old.chmod(0o644)
    server = start_server(data, migrated=False)
    try:
        r = httpx.post(
            f"{server.url}/api/v1/auth/register",
            json={"username": "admin", "email": "a@example.com", "password": "SecurePass123"},
        )
        assert r.status_code == 201, r.text
        assert httpx.get(f"{server.url}/login").status_code == 200
        found = {p.relative_to(data).as_posix(): stat.S_IMODE(p.lstat().st_mode) for p in data.rglob("*")}
        found["."] = stat.S_IMODE(data.stat().st_mode)
    finally:
        stop_server(server)
    assert {"opscraft.db", "queue.db", "master.key", "server.log", "ui-storage/storage-general.json"} <= set(
        found
    ), sorted(found)
    loose = {name: oct(mode) for name, mode in found.items() if mode & 0o077}
    assert loose == {}, f"group/other access in the data directory: {loose}"
    assert found["."] == 0o700 and found["ui-storage"] == 0o700


def _loaded_after(
    argv: list[str], modules: tuple[str, ...], data_dir: Path, stdin: str = "", **extra: str
) -> tuple[list[str], list[str]]:
    """Which of `modules` a fresh interpreter running `opscraft *argv` (the CLI's `main`, on
    `data_dir`, with the environment variables `extra`) had imported by its end, whatever the
    command's outcome; and the other lines of its standard error."""
    program = textwrap.dedent(
        f"""
        import sys
        from opscraft.cli import main
        try:
            main({argv!r})
        finally:
            print("loaded:", sorted(m for m in {modules!r} if m in sys.modules), file=sys.stderr)
        """
    )
    env = {**os.environ, "OPSCRAFT_NO_BOOTSTRAP": "1", "OPSCRAFT_DATA_DIR": str(data_dir)}
    for name in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "OPSCRAFT_MASTER_KEY"):
        env.pop(name, None)
    command = [sys.executable, "-c", program]
    run = subprocess.run(
        command, cwd=ROOT, env={**env, **extra}, input=stdin, capture_output=True, text=True, timeout=120
    )
    lines = run.stderr.strip().splitlines()
    [loaded] = [line.removeprefix("loaded: ") for line in lines if line.startswith("loaded: ")]
    return ast.literal_eval(loaded), [line for line in lines if not line.startswith("loaded: ")]


def test_help_version_and_a_mistyped_argument_import_no_configuration(tmp_path: Path) -> None:
    """`--help`, `--version` and an argument argparse refuses end before the configuration is
    read: they imported pydantic-settings, pydantic and asyncio first (0.2 s of CPU where the
    answer needs 0.05 s; docs/benchmarks.md, session 49)."""
    heavy = ("opscraft.config", "pydantic", "pydantic_settings", "sqlalchemy", "asyncio")
    for argv in (["--version"], ["--help"], ["user", "create", "--help"], ["serve", "--port", "0"], ["db"]):
        assert _loaded_after(argv, heavy, tmp_path)[0] == [], argv


#: The execution engine's modules: the worker, the scheduler, the job queue (Huey), the Docker SDK.
ENGINE = ("opscraft.engine_start", "opscraft.execution.worker", "opscraft.services.automation")
ENGINE += ("huey", "docker")


def test_a_one_shot_command_imports_no_execution_engine(tmp_path: Path) -> None:
    """`opscraft user create` writes its row through the services on the database alone: the
    runtime's start (`opscraft.lifecycle`: the worker, the job queue's Huey, the Docker SDK, the
    run event dispatcher, the automation loops) is neither imported nor started."""
    migrated_sqlite.seed(tmp_path)
    engine = ("opscraft.lifecycle", *ENGINE)
    assert _loaded_after(["user", "create", "ada"], engine, tmp_path, stdin="Ada-Pass-1234\n") == (
        [],
        [],
    )
    assert not (tmp_path / "queue.db").exists()


def test_a_worker_with_a_wrong_key_is_refused_before_the_engine_is_imported(tmp_path: Path) -> None:
    """A worker whose master key (or database, SECRET_KEY, job queue) does not fit is refused by
    the first checks of its start, before the execution engine's modules are imported: it was
    refused only after importing them all (2-2.5 s of its start on a busy machine)."""
    migrated_sqlite.seed(tmp_path)
    own = base64.b64encode(os.urandom(32)).decode()
    assert _loaded_after(["db", "upgrade"], (), tmp_path, OPSCRAFT_MASTER_KEY=own)[1] == []
    wrong = base64.b64encode(os.urandom(32)).decode()
    loaded, said = _loaded_after(["worker"], ENGINE, tmp_path, OPSCRAFT_MASTER_KEY=wrong)
    assert said == [
        "opscraft: configuration error: OPSCRAFT_MASTER_KEY: this is not the master key the secrets in "
        "the database were encrypted with (key check failed); set the original key (after `opscraft "
        "secrets rotate-key`, the new one)"
    ]
    assert loaded == []
