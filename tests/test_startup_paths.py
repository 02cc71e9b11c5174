"""Start-up shortcuts stay correct: the migration head read without Alembic, and a database at
the head upgraded without importing Alembic (docs/benchmarks.md, "Start-up")."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from alembic.script import ScriptDirectory

from opscraft.db.migrate import alembic_config, head_revisions
from tests.conftest import ROOT


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
