"""Whether code reading text a user controls takes time linear in its length: one helper for the
modules that test a parser against input shaped to make a regular expression backtrack.

The shaped text is timed against ordinary text of the same length built in the same test
(random words: milliseconds for every parser here), so a busy machine slows both alike. A
backtracking pattern takes hundreds to millions of times as long on its shape at the sizes the
product accepts (docs/architecture.md, Protection: "Text a user controls"); a linear one stays within a small
factor of the ordinary text's time.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

FACTOR = 25
"""How many times the ordinary text's time the shaped text may take."""
FLOOR_SECONDS = 1.0
"""What the shaped text may always take (an ordinary time of microseconds is all noise)."""


def ordinary_text(length: int, *, seed: int = 7) -> str:
    """Random hex words separated by blanks, `length` characters (the same for a seed)."""
    rng = random.Random(seed)
    words = " ".join(rng.randbytes(4).hex() for _ in range(length // 9 + 1))
    return words[:length]


def seconds(read: Callable[[str], object], text: str) -> float:
    """The wall-clock seconds `read(text)` took."""
    started = time.perf_counter()
    read(text)
    return time.perf_counter() - started


def assert_linear(read: Callable[[str], object], shaped: str, ordinary: str | None = None) -> None:
    """Fails when `read(shaped)` takes more than `FACTOR` times `read(ordinary)` (random words of
    `shaped`'s length by default) and more than `FLOOR_SECONDS`."""
    baseline = seconds(read, ordinary if ordinary is not None else ordinary_text(len(shaped)))
    took = seconds(read, shaped)
    assert took < max(FLOOR_SECONDS, FACTOR * baseline), (
        f"{took:.2f} s for {len(shaped)} shaped characters against {baseline:.4f} s for ordinary ones"
    )
