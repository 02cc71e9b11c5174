"""Python's cyclic garbage collector, set for a long-running server once it has started.

A started server holds about 290,000 objects the collector tracks (modules, routes, NiceGUI's
pages, SQLAlchemy's mappers), and they live as long as the process. With CPython's defaults
every full collection walked all of them (160-185 ms each, on the event loop's thread, during
which no request was answered), and a young collection ran every 700 net allocations of tracked
objects: in a burst of 1,000 submissions 2 full collections (about 300 ms) and some 340 young
ones (about 150 ms), about 0.45 ms of the event loop per run (issue 15; measured with
`gc.callbacks`, docs/benchmarks.md session 34).

`settle` moves what start-up left alive out of the collector's reach (`gc.freeze`: those objects
are still freed by reference counting when they die, only never walked again; reference cycles
among them are never collected, so it collects first) and makes young collections rarer
(`YOUNG_THRESHOLD` instead of 700): at that size a burst's objects have mostly died by reference
counting before a collection looks at them, so each one walks about as much as before, ten times
less often.
"""

from __future__ import annotations

import gc

# Net allocations of tracked objects between two young (generation 0) collections; CPython's
# default is 700. The older generations keep their defaults (10, 10).
YOUNG_THRESHOLD = 7000


def settle() -> None:
    """Collect every generation once, freeze what is left (`gc.freeze`) and set the young
    threshold to `YOUNG_THRESHOLD`. For a process that has finished starting and will run long
    (`opscraft serve`, `opscraft worker`); not for a test process that starts runtimes repeatedly
    (what it froze would stay until its exit). Calling it again freezes what was created since."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
