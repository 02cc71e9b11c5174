"""Each test module's duration in a full run, read by tests/conftest.py to hand the longest
modules out first.

`tests/run` hands whole modules to its pytest processes (`--dist loadfile`) in collection order;
handed out by test count, the browser modules (few tests, 20-100 s each) came last and one
process ran them alone while the others had finished (a 4-6 minute tail). Handing out the
longest first is the classic longest-processing-time rule for parallel machines (Graham, 1969):
the tail is at most one short module.

Refresh after a full run: `bash tests/run --junitxml=/tmp/junit.xml`, then
`.venv/bin/python -m tests.module_durations /tmp/junit.xml` rewrites `DURATIONS_FILE`
(seconds per module: the sum of its tests' setup, call and teardown). A module not in the file
is estimated from its test count (`estimate`).
"""

from __future__ import annotations

import json
import statistics
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

DURATIONS_FILE = Path(__file__).with_name("module_durations.json")


def load() -> dict[str, float]:
    """Module path (`tests/test_x.py`) -> seconds, from `DURATIONS_FILE` ({} when it is absent)."""
    return json.loads(DURATIONS_FILE.read_text()) if DURATIONS_FILE.exists() else {}


def estimate(durations: dict[str, float], tests: dict[str, int]) -> dict[str, float]:
    """Seconds for each module of `tests` (module path -> number of tests collected): its stored
    duration, or its test count times the median seconds per test of the stored modules."""
    per_test = [durations[m] / n for m, n in tests.items() if m in durations and n]
    rate = statistics.median(per_test) if per_test else 1.0
    return {module: durations.get(module, count * rate) for module, count in tests.items()}


def from_junit(path: Path) -> dict[str, float]:
    """Module path -> seconds, summed over the `testcase` elements of a JUnit XML report
    (pytest's `--junitxml`, whose `classname` is the module's dotted path, then any classes)."""
    seconds: dict[str, float] = {}
    for case in ET.parse(path).iter("testcase"):  # noqa: S314  (pytest's own report, not outside input)
        parts = case.get("classname", "").split(".")
        module = "/".join(part for part in parts if not part[:1].isupper()) + ".py"
        seconds[module] = seconds.get(module, 0.0) + float(case.get("time", 0))
    return {module: round(total, 1) for module, total in sorted(seconds.items())}


if __name__ == "__main__":
    DURATIONS_FILE.write_text(json.dumps(from_junit(Path(sys.argv[1])), indent=1) + "\n")
