"""Shared set-up of the execution-engine benchmarks: a real `opscraft serve` process on a scratch
data directory, an admin token, scripts, and a client that submits over HTTP and watches over
the WebSocket exactly as an API user would.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from websockets.asyncio.client import connect

from opscraft.api import install_api
from opscraft.app import WS_PROTOCOL
from opscraft.config import Settings
from tests.conftest import free_port, start_server, stop_server

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "Bench-Password-9"
RUNNER_IMAGE = "opscraft-test/runner:1"
# The local runner passes the server's PATH on: keep version-manager shims (pyenv's python3 is a
# shell script that costs ~100 ms a start) out of it, for the server and the baselines alike.
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def bare_env(home: str) -> dict[str, str]:
    """The environment the local runner gives a script, for the baselines."""
    return {"PATH": SYSTEM_PATH, "HOME": home, "TMPDIR": home, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}


@dataclass
class Server:
    url: str
    ws_url: str
    process: subprocess.Popen[bytes]
    headers: dict[str, str]
    token: str
    data_dir: Path


@contextmanager
def server(extra_env: dict[str, str] | None = None, root: Path = ROOT) -> Iterator[Server]:
    """`opscraft serve` (tests' launcher) with the local runner allowed and generous API rate limits,
    from the source tree `root` (default: this one)."""
    with tempfile.TemporaryDirectory(prefix="opscraft-bench-") as tmp:
        env = {
            "OPSCRAFT_LOCAL_RUNNER": "1",
            "OPSCRAFT_RATE_LIMIT_API": "1000000",
            "LOG_LEVEL": "WARNING",
            "PATH": SYSTEM_PATH,
            **(extra_env or {}),
        }
        # A database already at this tree's head only for this tree: another tree (a paired
        # bench's baseline) may be at an older schema, which it creates itself at start.
        live = start_server(Path(tmp), env, root=root, migrated=root.resolve() == ROOT.resolve())
        try:
            httpx.post(
                f"{live.url}/api/v1/auth/register",
                json={"username": "bench", "email": "bench@example.com", "password": PASSWORD},
            ).raise_for_status()
            token = httpx.post(
                f"{live.url}/api/v1/auth/login", json={"username": "bench", "password": PASSWORD}
            ).json()["access_token"]
            ws_url = live.url.replace("http://", "ws://", 1)
            yield Server(
                live.url, ws_url, live.process, {"Authorization": f"Bearer {token}"}, token, Path(tmp)
            )
        finally:
            stop_server(live)


def pair_parser(doc: str) -> argparse.ArgumentParser:
    """The command line of a paired bench (`bench_exec_*_pair`): BASELINE_TREE [TREE]; read the
    two trees with `pair_trees`."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("baseline", type=Path, help="the other source tree (e.g. a worktree of main)")
    parser.add_argument("tree", type=Path, nargs="?", default=ROOT, help="default: this tree")
    return parser


def pair_trees(args: argparse.Namespace) -> list[Path]:
    """[the baseline tree, the tree measured], resolved, from `pair_parser`'s arguments."""
    return [args.baseline.resolve(), args.tree.resolve()]


def print_ways(
    ways: Sequence[str],
    trees: list[Path],
    times: list[list[list[float]]],
    figure: Callable[[list[float]], float],
    describe_tree: Callable[[float, list[float]], str],
    ratio: str,
) -> None:
    """Print a paired bench's result, one line per way (`ways[w]`): for each tree its
    `describe_tree(figure(samples), samples)`, where `times[tree][w]` are its samples, then
    "ratio of `ratio`": the second tree's figure over the first's."""
    for w, name in enumerate(ways):
        figures = [figure(times[i][w]) for i in range(len(trees))]
        described = ", ".join(
            f"{tree}: {describe_tree(value, times[i][w])}"
            for i, (tree, value) in enumerate(zip(trees, figures, strict=True))
        )
        print(f"{name}: {described}; ratio of {ratio} {figures[1] / figures[0]:.3f}")


def turns(round_: int, trees: int) -> list[int]:
    """The order the `trees` trees of a paired bench take turns in round `round_` (from 0): as
    given in even rounds, reversed in odd ones, so neither always goes first."""
    order = list(range(trees))
    return order if round_ % 2 == 0 else order[::-1]


@asynccontextmanager
async def paired_servers(
    trees: list[Path], extra_env: dict[str, str] | None = None
) -> AsyncIterator[tuple[list[Server], list[httpx.AsyncClient]]]:
    """An `opscraft serve` from each of `trees` (see `server`) and an HTTP client of each."""
    with ExitStack() as stack:
        servers = [stack.enter_context(server(extra_env, root=tree)) for tree in trees]
        async with AsyncExitStack() as open_clients:
            clients = [
                await open_clients.enter_async_context(httpx.AsyncClient(base_url=s.url, timeout=60))
                for s in servers
            ]
            yield servers, clients


def create_script(srv: Server, name: str, content: str, script_type: str = "bash", **fields: Any) -> int:
    body = {"name": name, "script_type": script_type, "content": content, "status": "active", **fields}
    # Saving runs the linters, which take seconds on a busy machine.
    response = httpx.post(f"{srv.url}/api/v1/scripts", json=body, headers=srv.headers, timeout=120)
    response.raise_for_status()
    return int(response.json()["id"])


async def submit(client: httpx.AsyncClient, srv: Server, script_id: int, runner: str = "local") -> int:
    response = await client.post(
        "/api/v1/executions", json={"script_id": script_id, "runner": runner}, headers=srv.headers
    )
    if response.status_code != 202:
        raise RuntimeError(response.text)
    return int(response.json()["id"])


async def watch(srv: Server, execution_id: int, *, until: str = "end") -> tuple[dict[str, Any], int]:
    """Follow one execution over the WebSocket until its first log (`until="log"`) or its end.

    Returns (the last message, bytes of log content received).
    """
    received = 0
    async with connect(
        f"{srv.ws_url}/ws/executions/{execution_id}?token={srv.token}", compression=None
    ) as ws:
        async for raw in ws:
            message = json.loads(raw)
            if message["type"] == "log":
                received += len(message["content"].encode())
                if until == "log":
                    return message, received
            elif message["type"] == "end":
                return message, received
    raise RuntimeError(f"execution {execution_id}: the WebSocket closed before its end")


async def stream_run(
    client: httpx.AsyncClient, srv: Server, script_id: int, *, until: str = "end", runner: str = "local"
) -> tuple[dict[str, Any], int]:
    """Start and follow one execution in one request (`POST /api/v1/executions/stream`, Server-Sent
    Events) until its first log (`until="log"`) or its end, as `watch` does over the WebSocket.

    Returns (the last message, bytes of log content received)."""
    received = 0
    end: dict[str, Any] | None = None
    body = {"script_id": script_id, "runner": runner}
    async with client.stream("POST", "/api/v1/executions/stream", json=body, headers=srv.headers) as response:
        if response.status_code != 200:
            raise RuntimeError((await response.aread()).decode())
        async for line in response.aiter_lines():
            if not line.startswith("data: "):
                continue
            message = json.loads(line[6:])
            if message.get("type") == "log":
                received += len(message["content"].encode())
                if until == "log":
                    return message, received  # leaves mid-answer: the connection is closed
            elif message.get("type") == "end":
                end = message  # read on to the answer's end, so the connection is kept alive
    if end is None:
        raise RuntimeError(f"script {script_id}: the stream closed before the run's end")
    return end, received


class RawPoster:
    """A load generator's HTTP/1.1 client: keep-alive connections sending one prebuilt POST
    each in turn. It costs the machine far less CPU than a general client, so the server, not
    the client, is what a throughput run measures."""

    def __init__(self, srv: Server, path: str, body: dict[str, Any]) -> None:
        self._host, port = srv.url.removeprefix("http://").split(":")
        self._port = int(port)
        payload = json.dumps(body).encode()
        self._request = (
            f"POST {path} HTTP/1.1\r\nHost: {self._host}\r\nAuthorization: Bearer {srv.token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
        ).encode() + payload

    async def post_many(self, count: int, connections: int) -> list[dict[str, Any]]:
        """Send `count` requests over `connections` connections; the parsed JSON responses."""
        per_connection = [count // connections + (i < count % connections) for i in range(connections)]
        batches = await asyncio.gather(*(self._connection(n) for n in per_connection))
        return [response for batch in batches for response in batch]

    async def _connection(self, count: int) -> list[dict[str, Any]]:
        reader, writer = await asyncio.open_connection(self._host, self._port)
        responses = []
        try:
            for _ in range(count):
                writer.write(self._request)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                body = json.loads(await reader.readexactly(length))
                if status != 202:
                    raise RuntimeError(f"{status}: {body}")
                responses.append(body)
        finally:
            writer.close()
        return responses


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def describe(values: list[float], unit: str = "ms") -> str:
    return (
        f"p50 {percentile(values, 50):.1f} {unit}, p99 {percentile(values, 99):.1f} {unit}, "
        f"mean {statistics.mean(values):.1f} {unit}, n={len(values)}"
    )


@dataclass
class InProcessApi:
    """The API served by uvicorn in this process (see `serve_api`); `url` is its base URL."""

    server: uvicorn.Server
    task: asyncio.Task[None]
    url: str

    async def stop(self) -> None:
        """Stop serving and wait for uvicorn to finish."""
        self.server.should_exit = True
        await self.task


async def serve_api(settings: Settings) -> InProcessApi:
    """Serve the API of a started runtime (`settings`) on a free loopback port in this process,
    over real HTTP and WebSocket (the implementation `opscraft serve` uses); returns once it listens."""
    app = FastAPI()
    install_api(app, settings)
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", ws=WS_PROTOCOL
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    return InProcessApi(server, task, f"http://127.0.0.1:{port}")
