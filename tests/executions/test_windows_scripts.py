"""Scripts edited on Windows run as written once saved: the field reports' inputs, for real.

Saving normalises CRLF / CR line endings and removes a leading byte order mark (see
`services.line_endings`); these runs check the stored script behaves, in a container and with
the local runner.
"""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import LoggedIn
from tests.executions.conftest import run

RUNNERS = pytest.mark.parametrize("runner_name", ["docker", "local"], indirect=True)


@pytest.fixture
def backend() -> str:
    """Runner behaviour does not depend on the database: SQLite (the API tests cover PostgreSQL)."""
    return "sqlite"


@RUNNERS
async def test_crlf_bash_runs_as_written(
    client: httpx.AsyncClient, admin: LoggedIn, runner_name: str
) -> None:
    final, text = await run(client, admin, 'echo one\r\nX=5\r\necho "x is $X."\r\n', runner_name)
    assert final["status"] == "success", final
    assert text == "one\nx is 5.\n"


@RUNNERS
async def test_bom_before_the_shebang_runs(
    client: httpx.AsyncClient, admin: LoggedIn, runner_name: str
) -> None:
    content = '\ufeff#!/bin/bash\r\nif [ "$((2 + 3))" = 5 ]; then\r\n  echo "five"\r\nfi\r\n'
    final, text = await run(client, admin, content, runner_name)
    assert final["status"] == "success", final
    assert text == "five\n"


async def test_old_mac_python_runs(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    content = "\ufeffvalues = [1, 2]\rprint('sum', sum(values))\r"
    final, text = await run(client, admin, content, "local", script_type="python")
    assert final["status"] == "success", final
    assert text == "sum 3\n"
