"""The cost of the `SaidPaths` wrapper on a run's output that has no path to say (every Bash,
Python and Terraform run): each read fed through `SaidPaths(output, {})` against fed to the
sink itself (`said_paths.saying`'s choice since h3), in one process, same reads, best of 5.

    python bench/bench_said_paths.py [reads]
"""

from __future__ import annotations

import sys
import time

from opscraft.execution.events import Stream
from opscraft.execution.said_paths import SaidPaths


class Sink:
    """An `OutputSink` that counts bytes (the cheapest real sink)."""

    def __init__(self) -> None:
        self.size = 0

    def feed(self, stream: Stream, data: bytes) -> None:
        self.size += len(data)

    def tick(self) -> float:
        return 1.0


def per_read(reads: int, wrapped: bool) -> float:
    """Best of 5: nanoseconds per 4 KiB read fed."""
    chunk = b"x" * 4095 + b"\n"
    best = float("inf")
    for _ in range(5):
        sink = Sink()
        fed = SaidPaths(sink, {}) if wrapped else sink
        start = time.perf_counter_ns()
        for _ in range(reads):
            fed.feed("stdout", chunk)
        best = min(best, (time.perf_counter_ns() - start) / reads)
    return best


def main() -> None:
    reads = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    direct, wrapped = per_read(reads, False), per_read(reads, True)
    print(f"reads: {reads} of 4 KiB, best of 5")
    print(f"sink itself (baseline): {direct:.0f} ns/read")
    print(f"through SaidPaths(output, {{}}): {wrapped:.0f} ns/read (+{wrapped - direct:.0f} ns)")


if __name__ == "__main__":
    main()
