"""Building a run's masker (`execution/masking.py`) in the web process keeps its event loop answering.

`opscraft serve` runs a worker in the web process: a run's masker is built on one of its threads.
A build step that held the GIL for its whole length (the Aho-Corasick automaton's, seconds for
large secrets) stopped every page, API request and WebSocket of the server meanwhile.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import httpx

from tests.conftest import start_server, stop_server
from tests.executions.conftest import FINAL, first_admin, make_script, start
from tests.waiting import scale, until

# Secret values as `bench/bench_masker_loop_stall.py` makes them: letters, digits and the
# separators that make the masker read a value's parts (line feeds: a key file's lines).
_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789 =:/@\n"
# Large values near the vault's limit (`services.secrets.MAX_VALUE_BYTES`, 64 KiB), as many as
# a run's environment budget takes (`services.run_environment`: 1 MiB), and short ones.
LARGE = (14, 60 * 1024)
SMALL = (100, 64)
# The longest a health check may wait while the run starts (multiplied by `scale()`): before,
# it waited for the whole build (measured 3.9 s at load 2).
LONGEST_WAIT_SECONDS = 0.5


def _values(count: int, length: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(_ALPHABET) for _ in range(length)) for _ in range(count)]


async def test_the_event_loop_answers_while_a_run_with_many_large_secrets_starts(tmp_path: Path) -> None:
    server = start_server(tmp_path / "server", {"OPSCRAFT_LOCAL_RUNNER": "true"})
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=120) as client:
            who = await first_admin(client)
            script_id = await make_script(client, who, "echo started\n")
            values = _values(*LARGE, seed=1) + _values(*SMALL, seed=2)
            for index, value in enumerate(values):
                body = {"name": f"S{index}", "value": value}
                r = await client.post("/api/v1/secrets", json=body, headers=who.headers)
                assert r.status_code == 201, r.text
                attach = f"/api/v1/scripts/{script_id}/secrets/{r.json()['id']}"
                r = await client.post(attach, headers=who.headers)
                assert r.status_code == 201, r.text
            execution_id = (await start(client, who, script_id, "local"))["id"]
            waits: list[float] = []

            async def finished() -> dict[str, object] | None:
                started = time.perf_counter()
                assert (await client.get("/api/v1/health")).status_code == 200
                waits.append(time.perf_counter() - started)
                run = (await client.get(f"/api/v1/executions/{execution_id}", headers=who.headers)).json()
                return run if run["status"] in FINAL else None

            run = await until(finished, "the run to end", timeout=240, every=0.02)
        assert run["status"] == "success", run
        assert max(waits) < LONGEST_WAIT_SECONDS * scale(), (max(waits), len(waits))
    finally:
        stop_server(server)
