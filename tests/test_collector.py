"""`collector.settle`: start-up's live objects frozen out of the collector, its garbage collected
first, young collections rarer. Run in a fresh interpreter: freezing this test process would
keep what it froze until the suite ends."""

from __future__ import annotations

import json
import subprocess
import sys

from opscraft import collector
from tests.conftest import ROOT

PROBE = """
import gc, json, weakref
from opscraft import collector

class Node:
    pass

kept = [Node() for _ in range(1000)]            # alive at start-up: frozen
cycle = Node(); cycle.me = cycle                 # start-up's garbage: a reference cycle
gone = weakref.ref(cycle); del cycle
gc.disable()                                     # only `settle` may collect it
tracked = len(gc.get_objects())
collector.settle()
gc.enable()
print(json.dumps({
    "tracked_before": tracked,
    "tracked_after": len(gc.get_objects()),
    "frozen": gc.get_freeze_count(),
    "threshold": gc.get_threshold(),
    "cycle_collected": gone() is None,
    "kept_frozen": not any(o is kept[0] for o in gc.get_objects()),
}))
"""


def test_settle_collects_start_up_garbage_then_freezes_the_rest_and_sets_the_young_threshold() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    seen = json.loads(done.stdout)
    assert seen["cycle_collected"], "a cycle left by start-up must be collected before the freeze"
    assert seen["kept_frozen"]
    assert seen["frozen"] >= 1000
    assert seen["tracked_after"] < seen["tracked_before"] // 10
    assert seen["threshold"] == [collector.YOUNG_THRESHOLD, 10, 10]
