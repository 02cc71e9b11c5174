"""No process a script starts outlives its run, in either runner: detached children (`setsid`,
double forks, ignored SIGTERM, forking while being killed) do not stretch a run, defeat its
timeout or its cancel, or hold its worker slot.

Each test marks its detached processes with a unique `sleep` duration and looks for them in the
host's /proc (container processes are host processes too) after the run.
"""

from __future__ import annotations

import itertools
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import LoggedIn
from tests.executions.conftest import make_script, run, start, wait_for, wait_output
from tests.waiting import until

RUNNERS = pytest.mark.parametrize("runner_name", ["docker", "local"], indirect=True)
_serial = itertools.count()


@pytest.fixture
def backend() -> str:
    return "sqlite"


def mark() -> str:
    """A `sleep` argument no other process on this machine uses: 600.<unique digits>."""
    return f"600.{time.time_ns() % 10**9:09d}{next(_serial)}"


def alive(token: str) -> list[int]:
    """Processes whose command line holds `token` (zombies excluded)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if token.encode() in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


async def gone(token: str, timeout: float = 5) -> None:
    """Wait (a little, for the kernel to finish the kills) until no process holds `token`."""
    await until(lambda: not alive(token), f"no process of {token} left (outliving the run)", timeout, 0.05)


def seconds(final: dict[str, Any]) -> float:
    """From started_at to finished_at of an execution."""
    started = datetime.fromisoformat(final["started_at"])
    return (datetime.fromisoformat(final["finished_at"]) - started).total_seconds()


@RUNNERS
async def test_a_detached_child_does_not_defeat_the_timeout(
    client: httpx.AsyncClient, admin: LoggedIn, runner_name: str
) -> None:
    token = mark()
    final, text = await run(
        client, admin, f"setsid sleep {token} &\necho started\nsleep 600\n", runner_name, timeout_seconds=3
    )
    assert final["status"] == "timed_out", final
    assert text == "started\n"
    assert seconds(final) < 3 + 2, final
    await gone(token)


@RUNNERS
async def test_cancel_ends_the_run_whatever_its_descendants_do(
    client: httpx.AsyncClient, admin: LoggedIn, runner_name: str
) -> None:
    token = mark()
    script = (
        "trap '' TERM HUP INT\n"
        # a double fork into a new session that ignores SIGTERM and keeps forking
        f"( setsid bash -c \"trap '' TERM; while true; do sleep {token} & sleep 0.05; done\" & )\n"
        f"setsid sleep {token} &\n"
        "echo started\n"
        "sleep 600\n"
    )
    script_id = await make_script(client, admin, script)
    started = await start(client, admin, script_id, runner_name)
    await wait_output(client, admin, started["id"], "started")
    t0 = time.monotonic()
    response = await client.post(f"/api/v1/executions/{started['id']}/cancel", headers=admin.headers)
    assert response.status_code == 200
    final = await wait_for(client, admin, started["id"], timeout=10)
    assert time.monotonic() - t0 < 2, "cancel must end the run within 2 s"
    assert final["status"] == "cancelled", final
    await gone(token)


@RUNNERS
@pytest.mark.parametrize("engine_settings", [{"OPSCRAFT_WORKERS": 1}])
async def test_the_run_ends_when_its_main_process_ends(
    client: httpx.AsyncClient, admin: LoggedIn, runner_name: str
) -> None:
    """With one worker, the second run starts only once the first freed the slot."""
    tokens = [mark(), mark()]
    for token in tokens:
        final, text = await run(client, admin, f"setsid sleep {token} &\necho done\n", runner_name)
        assert final["status"] == "success" and final["exit_code"] == 0, final
        assert text == "done\n"
        assert seconds(final) < 5, f"the run waited for its detached child: {final}"
        await gone(token)


async def test_a_script_that_kills_its_supervisor_still_leaves_nothing(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """The local runner's fallback: the run's processes are found by the mark in their environment."""
    token = mark()
    script = f"setsid sleep {token} &\nkill -9 $PPID\necho still here\nsleep 600\n"
    final, _ = await run(client, admin, script, "local", timeout_seconds=30)
    assert final["status"] == "failed" and final["exit_code"] == 137, final
    assert seconds(final) < 5, final
    await gone(token)


@RUNNERS
async def test_a_script_that_closes_its_output_runs_to_its_end(
    client: httpx.AsyncClient, admin: LoggedIn, runner_name: str
) -> None:
    script = "echo before\nexec >/dev/null 2>&1\nsleep 1\necho after > ./done\nexit 3\n"
    final, text = await run(client, admin, script, runner_name)
    assert final["status"] == "failed" and final["exit_code"] == 3, final
    assert text == "before\n"
