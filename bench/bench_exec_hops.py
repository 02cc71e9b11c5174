"""Where one local run's milliseconds go, hop by hop, on a real `opscraft serve` (issue 15).

Each sample: POST /api/v1/executions (`echo hi`), open the WebSocket for the returned id, read
until `end`, as `bench_exec_latency` does. The server runs with `bench/hops_probe` on its
`PYTHONPATH`, which timestamps each hop of the run (the request reaching OpsCraft's app, the
route, the group commit's transaction, the claim, the hand-over to a consumer thread, the
runner, the job sent to the forked supervisor, the first output read, the end's transaction,
the WebSocket's route and sends: `hops_probe/sitecustomize.py`); the client marks when it sent
the POST, had its answer, had the WebSocket open and had each message, on the same clock
(`CLOCK_MONOTONIC`). Prints, for the first occurrence of each hop in a sample, the median time
after the POST was sent (and the step from the hop before), over the samples after a warm-up.

The probe's own writes add to what they measure (a few microseconds each): the figures say
where the time goes, not how fast a run is. Compare hops with each other, or with the Celery
baseline's phases (`bash ../shared/baselines/celery/run latency`), in the same minutes.

Usage: .venv/bin/python -m bench.bench_exec_hops [--samples 200] [--warm-up 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from websockets.asyncio.client import connect

from bench.exec_harness import ROOT, Server, create_script, server, submit

PROBE = ROOT / "bench" / "hops_probe"
POST_SENT = "POST sent"


async def one(client: httpx.AsyncClient, srv: Server, script_id: int, marks: list[tuple[int, str]]) -> None:
    """One sample, its client-side marks appended to `marks` as (monotonic ns, label)."""

    def mark(label: str) -> None:
        marks.append((time.monotonic_ns(), label))

    mark(POST_SENT)
    execution_id = await submit(client, srv, script_id)
    mark("client: POST answered")
    url = f"{srv.ws_url}/ws/executions/{execution_id}?token={srv.token}"
    async with connect(url, compression=None) as ws:
        mark("client: WebSocket open")
        async for raw in ws:
            kind = json.loads(raw)["type"]
            mark(f"client: {kind}")
            if kind == "end":
                return


def hop_table(events: list[tuple[int, str]]) -> list[tuple[float, str, int]]:
    """(median ms after `POST_SENT`, label, samples it occurred in) for each label's first
    occurrence in each sample (the events from one `POST_SENT` to the next), in time order;
    labels seen in fewer than half the samples are left out."""
    after: dict[str, list[float]] = {}
    samples = 0
    sent: int | None = None
    seen: set[str] = set()
    for at, label in sorted(events):
        if label == POST_SENT:
            sent, seen, samples = at, set(), samples + 1
        if sent is None or label in seen:
            continue
        seen.add(label)
        after.setdefault(label, []).append((at - sent) / 1e6)
    rows = [(statistics.median(times), label, len(times)) for label, times in after.items()]
    return sorted(row for row in rows if row[2] * 2 >= samples)


def read_hops(path: Path) -> list[tuple[int, str]]:
    """The server's marks: lines of `<monotonic ns> <label>`."""
    events = []
    for line in path.read_text().splitlines():
        at, _, label = line.partition(" ")
        events.append((int(at), label))
    return events


async def main(samples: int, warm_up: int) -> None:
    with tempfile.TemporaryDirectory(prefix="opscraft-hops-") as tmp:
        hops = Path(tmp) / "hops"
        with server({"PYTHONPATH": str(PROBE), "OPSCRAFT_BENCH_HOPS": str(hops)}) as srv:
            script_id = create_script(srv, "echo-hi", "echo hi\n")
            marks: list[tuple[int, str]] = []
            async with httpx.AsyncClient(base_url=srv.url) as client:
                for _ in range(warm_up):
                    await one(client, srv, script_id, [])
                started = time.monotonic_ns()
                for _ in range(samples):
                    await one(client, srv, script_id, marks)
        events = [event for event in read_hops(hops) if event[0] >= started] + marks
    print(f"hops of `echo hi` over POST + WebSocket, median ms after the POST was sent (n={samples}):")
    previous = 0.0
    for at, label, seen in hop_table(events):
        note = "" if seen == samples else f"  (in {seen} samples)"
        print(f"  {label:32} {at:7.2f}  ({at - previous:+.2f}){note}")
        previous = at


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--warm-up", type=int, default=30)
    args = parser.parse_args()
    asyncio.run(main(args.samples, args.warm_up))
