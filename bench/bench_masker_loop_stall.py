"""How long building a run's masker keeps an event loop of the same process from running.

`opscraft serve` runs a worker in the web process (`OPSCRAFT_WORKERS`, 4 slots by default),
whose consumer threads build each run's `Masker` from its secrets (`execution/executor.py`).
Python runs one thread at a time (the GIL): a step of the build that holds it stops the
server's event loop for as long as it takes. This builds a masker for each secret set on a
thread while an event loop in the main thread sleeps 1 ms at a time, and reports the build's
time and the loop's longest wait (what a request or a WebSocket frame would have waited).
Then, as a control, a thread runs plain Python code for as long: Python hands the GIL over
every 5 ms (`sys.getswitchinterval`), but on a loaded machine each hand-over waits for the
threads to get a CPU, so that wait is the floor any busy thread of the process sets.

Usage: .venv/bin/python bench/bench_masker_loop_stall.py [--small 600] [--large 16]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import threading
import time
from collections.abc import Callable

from opscraft.execution.masking import Masker

_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789 =:/@\n"


def _values(count: int, length: int, seed: int) -> list[str]:
    """`count` random secret values of `length` characters (letters, digits and the separators
    that make the masker read a value's parts)."""
    rng = random.Random(seed)
    return ["".join(rng.choice(_ALPHABET) for _ in range(length)) for _ in range(count)]


async def _stall(work: Callable[[], object]) -> tuple[float, float]:
    """(seconds `work` took on a thread, longest seconds the loop waited meanwhile)."""
    done = threading.Event()
    took = [0.0]

    def run() -> None:
        started = time.perf_counter()
        work()
        took[0] = time.perf_counter() - started
        done.set()

    threading.Thread(target=run).start()
    longest = 0.0
    while not done.is_set():
        started = time.perf_counter()
        await asyncio.sleep(0.001)
        longest = max(longest, time.perf_counter() - started)
    return took[0], longest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=600, help="secrets of 64 characters")
    parser.add_argument("--large", type=int, default=16, help="secrets of 64 KiB (the largest value)")
    args = parser.parse_args()
    sets = {
        f"{args.small} secrets of 64 characters": _values(args.small, 64, 1),
        f"{args.large} secrets of 64 KiB": _values(args.large, 65536, 2),
    }
    for name, values in sets.items():
        took, longest = asyncio.run(_stall(lambda values=values: Masker(values)))
        print(f"{name}: built in {took:.2f} s, the event loop waited up to {longest:.2f} s")
        _, floor = asyncio.run(_stall(lambda took=took: _python_for(took)))
        print(f"  control, plain Python on a thread for as long: the loop waited up to {floor:.2f} s")


def _python_for(seconds: float) -> None:
    """Run Python bytecode (no call that holds the GIL) for `seconds`."""
    end = time.perf_counter() + seconds
    count = 0
    while time.perf_counter() < end:
        count += 1


if __name__ == "__main__":
    main()
