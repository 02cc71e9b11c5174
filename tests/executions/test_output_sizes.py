"""A run's byte counts at scale, with real runs: a run that writes more than 2 GiB ends (its
count is 64-bit on PostgreSQL too), and output retention's size cap counts the output stored,
not what the scripts wrote past the output cap."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlmodel import select

from opscraft import runtime
from opscraft.db.models import Execution, ExecutionLog
from opscraft.db.types import utcnow
from opscraft.services import retention
from tests.conftest import LoggedIn
from tests.executions.conftest import run

MAX_OUTPUT = 4096


@pytest.fixture
def engine_settings() -> dict[str, Any]:
    return {"OPSCRAFT_MAX_OUTPUT_BYTES": MAX_OUTPUT}


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_a_run_writing_over_2_gib_ends_with_its_size(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """PostgreSQL's INTEGER refused 2,200,000,005 as `output_bytes`: the final state could not
    be written and the run stayed `running` for good."""
    size = 2_200_000_000
    final, shown = await run(client, admin, f"head -c {size} /dev/zero; echo done", "local", timeout=240)

    assert final["status"] == "success", final
    assert final["output_bytes"] == size + len("done\n") and final["output_truncated"] is True
    assert "output truncated" in shown


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"], indirect=True)
async def test_the_size_cap_counts_stored_output_not_what_was_written(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """Three quiet runs, then one that wrote 1 MB of which `MAX_OUTPUT` bytes were stored: a cap
    above everything stored removes nothing (it removed the output of every run before the
    chatty one, counting its megabyte)."""
    quiet = [(await run(client, admin, f"echo quiet {i}", "local"))[0]["id"] for i in range(3)]
    chatty, _ = await run(client, admin, "head -c 1000000 /dev/zero | tr '\\0' x", "local")
    assert chatty["output_bytes"] == 1_000_000 and chatty["output_truncated"] is True
    db = runtime.current().db
    async with db.session() as s:
        stored = {
            execution_id: int(size)
            for execution_id, size in (
                await s.exec(select(Execution.id, Execution.output_stored_bytes))
            ).all()
        }
        really: dict[int, int] = dict.fromkeys(stored, 0)
        chunks = await s.exec(select(ExecutionLog.execution_id, ExecutionLog.content))
        for execution_id, content in chunks.all():
            really[execution_id] += len(content.encode())
    assert stored == really, "the stored size is what the stored chunks take"
    assert MAX_OUTPUT < stored[chatty["id"]] < MAX_OUTPUT + 300, "the cap, and its marker line"
    cap = sum(stored.values()) + 100
    r = await client.put(
        "/api/v1/settings", json={"output_retention_gb": cap / retention.GB}, headers=admin.headers
    )
    assert r.status_code == 200, r.text

    done = await retention.run_once(db, now=utcnow() + timedelta(seconds=1))

    assert (done.outputs_removed, done.bytes_freed) == (0, 0)
    kept = [await client.get(f"/api/v1/executions/{i}", headers=admin.headers) for i in quiet]
    assert [r.json()["output_removed_at"] for r in kept] == [None] * 3

    r = await client.put(
        "/api/v1/settings",
        json={"output_retention_gb": (sum(stored.values()) - stored[quiet[0]] + 1) / retention.GB},
        headers=admin.headers,
    )
    assert r.status_code == 200, r.text
    done = await retention.run_once(db, now=utcnow() + timedelta(seconds=1))
    assert (done.outputs_removed, done.bytes_freed) == (1, stored[quiet[0]]), "the oldest only"
