"""Execution engine 5: a script printing 1,000,000 lines (about 100 MB), every line stored and
delivered to a WebSocket watcher; server RSS sampled throughout.

Targets: >= 50 MB/s end to end (submit -> the watcher has every line and the `end` message),
server RSS below 300 MB throughout. The stored output is read back over the API and checked
line by line. Baseline in the same run: the same script writing into a pipe read by this
process, without OpsCraft. The output cap is raised to 200 MiB for this run (default 50 MiB).

Usage: .venv/bin/python -m bench.bench_exec_output [--lines 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
from websockets.asyncio.client import connect

from bench.exec_harness import Server, create_script, server, submit


def script(lines: int) -> str:
    return (
        'awk \'BEGIN { pad = sprintf("%90s", ""); gsub(/ /, "x", pad); '
        f'for (i = 1; i <= {lines}; i++) printf "%07d %s\\n", i, pad }}\'\n'
    )


class RssSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.peak = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.02):
            self.peak = max(self.peak, self.process.memory_info().rss)


def expected_output(lines: int) -> str:
    pad = "x" * 90
    return "".join(f"{i:07d} {pad}\n" for i in range(1, lines + 1))


async def watch_all(srv: Server, execution_id: int) -> list[dict[str, Any]]:
    """Every message until `end` (checked after the clock stops)."""
    messages = []
    url = f"{srv.ws_url}/ws/executions/{execution_id}?token={srv.token}"
    async with connect(url, compression=None) as ws:
        async for raw in ws:
            messages.append(json.loads(raw))
            if messages[-1]["type"] == "end":
                return messages
    raise RuntimeError("the WebSocket closed before the end")


def check_delivery(messages: list[dict[str, Any]], lines: int) -> int:
    """Every line, in order, exactly once; returns the bytes delivered."""
    logs = [m for m in messages if m["type"] == "log"]
    assert [m["seq"] for m in logs] == list(range(1, len(logs) + 1))
    assert messages[-1]["status"] == "success", messages[-1]
    text = "".join(m["content"] for m in logs)
    assert text == expected_output(lines)
    return len(text.encode())


def stored_lines(srv: Server, execution_id: int) -> tuple[int, int]:
    """Read the stored output back through the API: (bytes, lines)."""
    size, count, offset = 0, 0, 0
    with httpx.Client(base_url=srv.url, timeout=60) as client:
        while True:
            page = client.get(
                f"/api/v1/executions/{execution_id}/logs",
                params={"offset": offset, "limit": 200},
                headers=srv.headers,
            ).json()
            for chunk in page["items"]:
                size += len(chunk["content"].encode())
                count += chunk["content"].count("\n")
            if not page["items"]:
                return size, count
            offset = page["next_offset"]


def bare(lines: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "script.sh"
        path.write_text(script(lines))
        t0 = time.perf_counter()
        proc = subprocess.Popen(["bash", str(path)], stdout=subprocess.PIPE)
        assert proc.stdout is not None
        size = 0
        while data := proc.stdout.read(65536):
            size += len(data)
        proc.wait()
        return size / (time.perf_counter() - t0) / 1e6


async def main(lines: int) -> None:
    with server({"OPSCRAFT_MAX_OUTPUT_BYTES": str(200 * 1024 * 1024)}) as srv:
        script_id = create_script(srv, "million-lines", script(lines))
        sampler = RssSampler(srv.process.pid)
        idle_rss = sampler.process.memory_info().rss
        sampler.start()
        async with httpx.AsyncClient(base_url=srv.url) as client:
            t0 = time.perf_counter()
            execution_id = await submit(client, srv, script_id)
            messages = await watch_all(srv, execution_id)
            elapsed = time.perf_counter() - t0
        sampler.done.set()
        sampler.join()
        size, count = stored_lines(srv, execution_id)
    received = check_delivery(messages, lines)
    assert count == lines and size == received, (count, size, received)
    rate = received / elapsed / 1e6
    print(
        f"{lines} lines, {received / 1e6:.1f} MB: delivered to the WebSocket watcher in {elapsed:.2f} s "
        f"= {rate:.1f} MB/s; stored {size / 1e6:.1f} MB, {count} lines (all checked)"
    )
    print(f"server RSS: {idle_rss / 2**20:.0f} MiB idle, peak {sampler.peak / 2**20:.0f} MiB during the run")
    print(f"bare baseline, the script into a pipe: {bare(lines):.1f} MB/s")
    ok = rate >= 50 and sampler.peak < 300 * 2**20
    print("targets (>= 50 MB/s, RSS < 300 MB):", "met" if ok else "NOT met")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    asyncio.run(main(parser.parse_args().lines))
