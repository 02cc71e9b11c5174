"""Web UI: server CPU per page navigation (Chromium via Playwright), against bare requests.

Starts an `opscraft serve` from this tree and from each other source tree given (baselines,
measured in the same minutes), with 10 scripts and 10 finished runs, signs in once in
Chromium and keeps that session's cookie. Then, round after round (the trees alternating, and
which goes first), each workload is run on each server and the server's CPU time (`utime +
stime` of all its threads, /proc) is counted during that workload only:

- `fresh <page>`: a new browser context (empty cache, signed in) opens the page until NiceGUI's
  socket has shaken hands, then closes: what a first visit, and every browser test, costs;
  `/login` is opened signed out.
- `warm <page>`: the same pages in one context that keeps its cache (the static files are not
  fetched again: `Cache-Control: immutable`).
- bare baselines in the same run: `static set`, the JS/CSS/font files a fresh `/login` fetched,
  each GET once with httpx (`Accept-Encoding: gzip`, as a browser sends it); `health`, one
  `GET /api/v1/health`.

Prints after each round the server CPU per request or navigation (ms, mean so far) of each tree,
and at the end, per tree and workload, that mean, its lowest round, the wall time and the CPU
of the browser side (Playwright's driver and Chromium).
A client's socket disconnect is handled after the context closes; the server deletes its page
state `reconnect_timeout` (10 s) later, inside whatever is measured then (either tree's).

Usage: .venv/bin/python -m bench.bench_ui_pages [BASELINE_TREE ...] [--rounds 6] [--per 4]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psutil
from playwright.sync_api import sync_playwright

from bench.bench_exec_cpu import process_cpu_seconds
from bench.exec_harness import PASSWORD, ROOT, Server, create_script, server
from tests.conftest import CHROMIUM, CHROMIUM_ARGS, CONNECTED_JS

PAGES = ["/login", "/", "/scripts", "/executions", "/secrets"]
VIEWPORT = {"width": 1400, "height": 900}
NAMES = ["health", "static set", *(f"fresh {p}" for p in PAGES), *(f"warm {p}" for p in PAGES[1:])]


def seed(srv: Server) -> None:
    """10 scripts, and 10 runs of the first, each to its end (local runner)."""
    ids = [create_script(srv, f"bench-{i}", f"echo {i}\n", description=f"script {i}") for i in range(10)]
    runs = []
    for _ in range(10):
        answer = httpx.post(
            f"{srv.url}/api/v1/executions", json={"script_id": ids[0], "runner": "local"}, headers=srv.headers
        )
        answer.raise_for_status()
        runs.append(answer.json()["id"])
    for run in runs:
        deadline = time.monotonic() + 60
        while httpx.get(f"{srv.url}/api/v1/executions/{run}", headers=srv.headers).json()["status"] in (
            "pending",
            "queued",
            "running",
        ):
            if time.monotonic() > deadline:
                raise RuntimeError(f"run {run} did not end")
            time.sleep(0.1)


def open_page(page: Any, url: str) -> None:
    page.goto(url)
    page.wait_for_function(CONNECTED_JS)


def client_cpu(servers: list[int]) -> float:
    """CPU seconds of this process's descendants (Playwright's driver, Chromium), the servers
    and their descendants excluded."""
    total = 0.0
    skip = set(servers)
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            if child.pid in skip or child.ppid() in skip:
                continue
            times = child.cpu_times()
            total += times.user + times.system
    return total


def running(trees: list[Path], cpu: dict[tuple[int, str], list[float]]) -> None:
    """Server CPU (ms, mean so far) per workload, one column per tree (the last: this one)."""
    print(f"{'workload':22s}" + "".join(f" {tree.name[-14:]:>14s}" for tree in trees))
    for name in NAMES:
        means = (sum(cpu[i, name]) / len(cpu[i, name]) * 1000 for i in range(len(trees)))
        print(f"{name:22s}" + "".join(f" {mean:14.2f}" for mean in means), flush=True)


def main(trees: list[Path], rounds: int, per: int) -> None:
    cpu: dict[tuple[int, str], list[float]] = defaultdict(list)
    wall: dict[tuple[int, str], list[float]] = defaultdict(list)
    browser_cpu: dict[tuple[int, str], list[float]] = defaultdict(list)
    with contextlib.ExitStack() as stack, sync_playwright() as pw:
        servers = [stack.enter_context(server(root=tree)) for tree in trees]
        for srv in servers:
            seed(srv)
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        signed_in: list[Any] = []
        statics: list[list[str]] = []
        for srv in servers:
            context = browser.new_context(viewport=VIEWPORT)
            page = context.new_page()
            fetched: list[str] = []
            page.on("request", lambda r, f=fetched: f.append(r.url) if "/_nicegui/" in r.url else None)
            open_page(page, f"{srv.url}/login")
            statics.append([u for u in fetched if "/dynamic_resources/" not in u])
            page.get_by_test_id("login-username").fill("bench")
            page.get_by_test_id("login-password").fill(PASSWORD)
            page.get_by_test_id("login-submit").click()
            page.wait_for_url(f"{srv.url}/")
            signed_in.append(context.storage_state())
            context.close()
        warm = [browser.new_context(viewport=VIEWPORT, storage_state=state) for state in signed_in]
        warm_pages = [context.new_page() for context in warm]
        http = httpx.Client(headers={"Accept-Encoding": "gzip"})
        pids = [srv.process.pid for srv in servers]
        print(f"static set: {len(statics[0])} files", flush=True)

        def workloads(i: int) -> list[tuple[str, int, Callable[[], None]]]:
            srv = servers[i]

            def fresh(path: str) -> Callable[[], None]:
                def go() -> None:
                    state = None if path == "/login" else signed_in[i]
                    context = browser.new_context(viewport=VIEWPORT, storage_state=state)
                    open_page(context.new_page(), f"{srv.url}{path}")
                    context.close()

                return go

            def warm_go(path: str) -> Callable[[], None]:
                return lambda: open_page(warm_pages[i], f"{srv.url}{path}")

            def static_set() -> None:
                for url in statics[i]:
                    http.get(url).raise_for_status()

            return [
                ("health", 20 * per, lambda: http.get(f"{srv.url}/api/v1/health").raise_for_status()),
                ("static set", per, static_set),
                *((f"fresh {p}", per, fresh(p)) for p in PAGES),
                *((f"warm {p}", per, warm_go(p)) for p in PAGES if p != "/login"),
            ]

        for i in range(len(servers)):  # warm-up: caches, first imports of each page
            for _, _, go in workloads(i):
                go()
        for round_ in range(rounds):
            order = range(len(servers)) if round_ % 2 == 0 else reversed(range(len(servers)))
            for i in order:
                for name, count, go in workloads(i):
                    c0, b0, t0 = process_cpu_seconds(pids[i])[0], client_cpu(pids), time.perf_counter()
                    for _ in range(count):
                        go()
                    t1, b1, c1 = time.perf_counter(), client_cpu(pids), process_cpu_seconds(pids[i])[0]
                    cpu[i, name].append((c1 - c0) / count)
                    wall[i, name].append((t1 - t0) / count)
                    browser_cpu[i, name].append((b1 - b0) / count)
            print(f"\nafter round {round_ + 1}/{rounds} (load {os.getloadavg()[0]:.1f}):", flush=True)
            running(trees, cpu)
        for context in warm:
            context.close()
        browser.close()
    for i, tree in enumerate(trees):
        print(f"\n{tree}: ms per request/navigation, mean of {rounds} rounds")
        print(f"{'workload':22s} {'server CPU':>10s} {'(min)':>7s} {'wall':>8s} {'browser CPU':>11s}")
        for name in NAMES:
            c = cpu[i, name]
            print(
                f"{name:22s} {sum(c) / len(c) * 1000:10.2f} {min(c) * 1000:7.2f} "
                f"{sum(wall[i, name]) / len(c) * 1000:8.1f} {sum(browser_cpu[i, name]) / len(c) * 1000:11.1f}"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("baseline", type=Path, nargs="*", help="other source trees, measured alongside")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--per", type=int, default=4, help="navigations per page and round")
    args = parser.parse_args()
    trees = [*(tree.resolve() for tree in args.baseline), ROOT]
    main(trees, args.rounds, args.per)
