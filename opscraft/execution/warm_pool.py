"""Warm containers: per isolation profile, a few containers already created and started, each
waiting for its one job on its attached stdin (`container_job.py`).

A profile is everything a container's configuration depends on (image, memory, CPUs, network
on or off, user); a warm container has exactly the limits and hardening a cold one of the same
profile gets, since both are created by the same function. A run takes one (`take`), hands it
its job, and the container is removed after that single run; it is never reused. The pool's
threads refill it in the background, up to `size` containers for every profile used within
`idle_seconds`, and remove the warm containers of profiles unused for longer (idle pools
shrink to nothing). `size` 0 disables the pool: every run starts cold; `resize` changes it
while the pool runs (an admin setting, read at each heartbeat).

A refill starts as soon as a container is taken, beside the run that took it: waiting for the
run's end was measured to leave the pool empty more often for runs in quick succession (more
cold starts, a later first byte; docs/benchmarks.md). Up to `CREATORS` containers are created
at once (one thread each), so a refill per taken container runs beside the others: one
creation (create, attach, start: 90-170 ms on a quiet machine) takes longer than a short run,
and one creation at a time left every run of a sequence waiting for it. A profile never has
more than its target of containers, warm and being created together. A run that finds its pool
empty while the pool's threads are creating containers of its profile waits for the first one
ready (at most `CREATION_WAIT_SECONDS`) instead of starting cold.

A profile's target is `size`, raised while its runs take containers faster than the pool
creates them (runs in quick succession): by Little's law, keeping up with `r` takes per second
when a creation takes `c` seconds needs about `r * c` creations under way, so the target is
`size + round(r * c)` (`r` from the takes of the last `DEMAND_WINDOW_SECONDS`, `c` a moving
average of the profile's own creations), never above `burst` (a setting: a laptop is not
flooded with containers). It falls back to `size` once the takes stop for `DEMAND_WINDOW_SECONDS`,
and the containers above it are removed. Measured with 40 sequential python runs
(docs/benchmarks.md, "Docker: a pool that grows with demand"): with two containers at most in
flight 18-34 of 43 takes waited for a creation, with the growth 8-17, and the sequence took
0.75-1.00 x as long on a loaded machine with CPU to spare (1.03-1.12 x on a saturated one: the
creations under way slow the runs; set `burst` to `size` there).

Warm containers carry the worker's label (`opscraft.worker`) and `opscraft.warm`, so the
worker's start-up sweep removes those a crash left behind.

The engine may go away (stopped, restarted): the pool's threads look at their warm containers
every `DEAD_CHECK_SECONDS` (`waiting`, no Docker call) and replace those that died; before,
only a run taking one found it dead, so after an engine restart the pool counted dead
containers as warm, refilled nothing and every run of its profiles started cold. While
creations fail, `stats()["error"]` says why (they are retried every `RETRY_SECONDS`).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

RETRY_SECONDS = 5.0
"""After a failed creation, how long before the pool tries that profile again."""

CREATION_WAIT_SECONDS = 5.0
"""How long a run with no warm container waits for one of its profile that the pool is creating
right now, before it starts cold. That creation is already under way, so it is ready before a
cold start (the same create, attach and start, from the beginning) would be."""

CREATORS = 3
"""How many containers the pool creates at once (one thread each). Measured with 40 sequential
python runs (docs/benchmarks.md, "Docker warm and cold, session 11"): one creator left every run
waiting for the refill its predecessor started."""

DEMAND_WINDOW_SECONDS = 3.0
"""The takes of the last this many seconds set a profile's take rate (its demand); a profile
with no take for that long is back to `size`."""

CREATION_AVERAGE_WEIGHT = 0.3

DEAD_CHECK_SECONDS = 1.0
"""How often the pool's threads look for warm containers that died (the engine restarted)."""
"""Weight of the newest creation in a profile's moving average of creation times."""

W = TypeVar("W")


@dataclass(frozen=True)
class Profile:
    """What a run's container configuration depends on (its job aside)."""

    image: str
    memory_mb: int
    cpus: float
    network_enabled: bool
    user: str


@dataclass
class _Slot(Generic[W]):
    """One profile's pool: its warm containers and how many are being created."""

    warm: list[W] = field(default_factory=list)
    creating: int = 0
    last_used: float = 0.0
    retry_after: float = 0.0
    takes: collections.deque[float] = field(default_factory=lambda: collections.deque(maxlen=32))
    """When the latest takes happened (monotonic seconds): the profile's demand."""
    creation_seconds: float = 0.0
    """Moving average of this profile's creations (0: none measured yet)."""
    failing: bool = False
    """The latest creation failed: the next failures are logged at DEBUG, not WARNING again."""
    error: str | None = None
    """Why the latest creation failed, while it is the latest."""


class WarmPool(Generic[W]):
    """The warm containers of one worker (see the module docstring).

    `create(profile)` creates and starts a container and returns its handle `W` (raising on
    failure); `remove(handle)` removes one; both are called from the pool's own threads (up to
    `CREATORS` at once, and `remove` from `stop`). `burst` bounds a profile's target under
    demand (at or below `size`: the target stays `size`). `waiting(handle)` tells, quickly and without
    blocking, whether a warm container still waits for its job: one that died meanwhile is never
    handed to a run (it is removed and the next one is tried). `take` and `resize` are
    thread-safe.
    """

    def __init__(
        self,
        create: Callable[[Profile], W],
        remove: Callable[[W], None],
        size: int,
        idle_seconds: float,
        waiting: Callable[[W], bool] = lambda _: True,
        burst: int = 0,
    ) -> None:
        self.size = size
        self.burst = burst
        self.idle_seconds = idle_seconds
        self._create = create
        self._remove = remove
        self._waiting = waiting
        self._dead: list[W] = []
        self._cond = threading.Condition()
        self._slots: dict[Profile, _Slot[W]] = {}
        self._threads: set[threading.Thread] = set()
        self._started = False
        self._stopping = False
        self._stale: Callable[[Profile, W], bool] | None = None
        self._stale_at = float("-inf")
        self._dead_check_at = 0.0  # monotonic: when `_next_work` next looks for dead containers
        self.warm_starts = 0
        self.cold_starts = 0

    def start(self) -> None:
        """Start keeping containers warm: the refilling threads run while `size` is above 0."""
        with self._cond:
            self._started = True
            self._stopping = False
            self._ensure_threads()

    def resize(self, size: int) -> None:
        """Keep `size` containers per profile in use from now on (0: none, every run starts
        cold); the pool's threads remove the ones above it."""
        with self._cond:
            if size == self.size:
                return
            self.size = size
            self._ensure_threads()
            self._cond.notify_all()

    def take(self, profile: Profile) -> W | None:
        """A warm container of `profile` for one run (it is the caller's to remove), or None:
        start cold. When none is warm but the pool's threads are creating some of `profile`,
        waits for the first one ready (at most `CREATION_WAIT_SECONDS`). Either way the profile
        counts as used now, so its pool fills up."""
        with self._cond:
            # A disabled pool keeps no profiles: the run counts in a slot of its own.
            slot = self._slots.setdefault(profile, _Slot()) if self.size > 0 else _Slot[W]()
            slot.last_used = time.monotonic()
            slot.takes.append(slot.last_used)
            deadline = slot.last_used + CREATION_WAIT_SECONDS
            container = self._pop_waiting(slot)
            while container is None:
                left = deadline - time.monotonic()
                if not slot.creating or self._stopping or left <= 0:
                    break
                self._cond.wait(left)
                container = self._pop_waiting(slot)
            if container is None:
                self.cold_starts += 1
            else:
                self.warm_starts += 1
            self._cond.notify_all()
            return container

    def stats(self) -> dict[str, object]:
        """What admins see: the size setting and the most under demand (`burst`), warm and cold
        start counts since the start, per profile in the pool its fields, how many containers
        are warm and its target now (`size`, more under demand), and `error`: why creating
        containers fails now (None while it works)."""
        with self._cond:
            now = time.monotonic()
            profiles = [
                {**asdict(profile), "warm": len(slot.warm), "target": self._target(slot, now)}
                for profile, slot in self._slots.items()
            ]
            errors = [f"{p.image}: {slot.error}" for p, slot in self._slots.items() if slot.error]
            return {
                "error": f"creating warm containers fails ({'; '.join(errors)})" if errors else None,
                "size": self.size,
                "burst": max(self.size, self.burst) if self.size > 0 else 0,
                "warm": sum(len(slot.warm) for slot in self._slots.values()),
                "warm_starts": self.warm_starts,
                "cold_starts": self.cold_starts,
                "profiles": profiles,
            }

    def wait_warm(self, profile: Profile, count: int, timeout: float) -> bool:
        """Mark `profile` used and wait until `count` of its containers are warm (True) or
        `timeout` seconds passed (False). For tests and benchmarks that need a warm start."""
        deadline = time.monotonic() + timeout
        with self._cond:
            slot = self._slots.setdefault(profile, _Slot())
            slot.last_used = time.monotonic()
            self._cond.notify_all()
            while len(slot.warm) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def profiles(self) -> list[Profile]:
        """The profiles the pool keeps containers for now."""
        with self._cond:
            return list(self._slots)

    def discard(self, stale: Callable[[Profile, W], bool]) -> int:
        """Have the warm containers for which `stale(profile, container)` holds removed (what
        they were created from changed: `image_watch.py`), and so a container being created now
        when it is ready; returns how many warm ones. `stale` runs under the pool's lock: it
        must not block."""
        with self._cond:
            self._stale, self._stale_at = stale, time.monotonic()
            dropped = 0
            for profile, slot in self._slots.items():
                doomed = [container for container in slot.warm if stale(profile, container)]
                if doomed:
                    slot.warm = [container for container in slot.warm if container not in doomed]
                    self._dead += doomed
                    dropped += len(doomed)
            if dropped:
                self._cond.notify_all()
            return dropped

    def creating(self) -> bool:
        """Whether a container is being created right now (without blocking on the pool's
        threads): the runner's deferred removals let the creations, on the path of the next
        runs, go first (`removals.py`)."""
        with self._cond:
            return any(slot.creating for slot in self._slots.values())

    def stop(self) -> None:
        """Stop refilling and remove every warm container (a creation under way is removed by
        its thread, which this waits for)."""
        with self._cond:
            self._started = False
            self._stopping = True
            self._cond.notify_all()
            threads, self._threads = self._threads, set()
        for thread in threads:
            thread.join()
        with self._cond:
            leftover = [container for slot in self._slots.values() for container in slot.warm]
            leftover += self._dead
            self._slots.clear()
            self._dead = []
        for container in leftover:
            self._remove_quietly(container)

    def _pop_waiting(self, slot: _Slot[W]) -> W | None:
        """Under the lock: the oldest warm container of `slot` that still waits for its job (the
        dead ones before it go to be removed), or None."""
        while slot.warm:
            container = slot.warm.pop(0)
            if self._waiting(container):
                return container
            self._dead.append(container)
            self._cond.notify_all()
        return None

    def _ensure_threads(self) -> None:
        """Under the lock: `CREATORS` refilling threads run when started and `size` is above 0
        (each ends by itself once the pool is disabled and empty)."""
        if not self._started or self.size <= 0:
            return
        while len(self._threads) < CREATORS:
            thread = threading.Thread(target=self._maintain, name="opscraft-warm-pool", daemon=True)
            self._threads.add(thread)
            thread.start()

    def _maintain(self) -> None:
        me = threading.current_thread()
        while True:
            with self._cond:
                if self._stopping:
                    return
                work = self._next_work()
                if work is None:
                    if self.size <= 0:  # disabled and empty: `resize` starts new threads
                        self._threads.discard(me)
                        return
                    self._cond.wait(self._wake_in())
                    continue
            doomed, profile = work
            if profile is None:
                self._remove_quietly(doomed)
                continue
            self._fill(profile)

    def _fill(self, profile: Profile) -> None:
        """Create one container of `profile` (counted in its slot's `creating` by `_next_work`)
        and pool it, or remove it when the pool no longer wants it."""
        began = time.monotonic()
        try:
            created = self._create(profile)
        except Exception as exc:  # an image missing, Docker gone: try again later
            with self._cond:
                slot = self._slots.get(profile)
                repeated = slot is not None and slot.failing
                if slot is not None:
                    slot.creating -= 1
                    slot.retry_after = time.monotonic() + RETRY_SECONDS
                    slot.failing = True
                    slot.error = str(exc) or type(exc).__name__
                self._cond.notify_all()  # a run waiting for it starts cold now
            # Once per failing streak: the pool retries every RETRY_SECONDS for as long as the
            # profile is in use (up to `idle_seconds`), which at WARNING filled the log.
            log.log(
                logging.DEBUG if repeated else logging.WARNING,
                "warm pool: creating a container for %s failed (retried every %.0f s%s): %s",
                profile.image,
                RETRY_SECONDS,
                "" if repeated else ", logged again once it works",
                exc,
            )
            return
        with self._cond:
            now = time.monotonic()
            slot = self._slots.get(profile)
            if slot is not None and slot.failing:
                slot.failing, slot.error = False, None
                log.info("warm pool: creating a container for %s works again", profile.image)
            if slot is not None:
                slot.creating -= 1
                took, weight = now - began, CREATION_AVERAGE_WEIGHT if slot.creation_seconds else 1.0
                slot.creation_seconds += weight * (took - slot.creation_seconds)
            self._cond.notify_all()
            # Created from what changed while it was being created (`discard`): not pooled.
            stale = self._stale is not None and self._stale_at >= began and self._stale(profile, created)
            wanted = slot is not None and not self._stopping and len(slot.warm) < self._target(slot, now)
            if slot is not None and wanted and not stale:
                slot.warm.append(created)
                return
        self._remove_quietly(created)  # stopped, shrunk, gone idle or stale meanwhile

    def _next_work(self) -> tuple[W, None] | tuple[None, Profile] | None:
        """Under the lock: (a container to remove, None) or (None, a profile to fill, counted
        in its `creating`). Dead containers go first, then those of idle or oversized pools;
        then a pool that is short is filled."""
        now = time.monotonic()
        if now >= self._dead_check_at:
            self._dead_check_at = now + DEAD_CHECK_SECONDS
            for slot in self._slots.values():
                alive = [container for container in slot.warm if self._waiting(container)]
                if len(alive) < len(slot.warm):
                    self._dead += [container for container in slot.warm if container not in alive]
                    slot.warm = alive
        if self._dead:
            return self._dead.pop(), None
        for profile, slot in list(self._slots.items()):
            idle = now - slot.last_used > self.idle_seconds
            if slot.warm and (idle or len(slot.warm) > self._target(slot, now)):
                return slot.warm.pop(), None
            if (idle or self.size <= 0) and not slot.warm and not slot.creating:
                del self._slots[profile]
        for profile, slot in self._slots.items():
            short = len(slot.warm) + slot.creating < self._target(slot, now)
            if short and now - slot.last_used <= self.idle_seconds and slot.retry_after <= now:
                slot.creating += 1
                return None, profile
        return None

    def _target(self, slot: _Slot[W], now: float) -> int:
        """Under the lock: how many containers `slot` keeps, warm and being created together:
        `size`, plus about the creations needed under way to keep up with its recent takes,
        at most `burst` (the module docstring)."""
        if self.size <= 0 or self.burst <= self.size or not slot.creation_seconds:
            return max(self.size, 0)
        recent = [taken for taken in slot.takes if now - taken <= DEMAND_WINDOW_SECONDS]
        if len(recent) < 2:
            return self.size
        rate = (len(recent) - 1) / max(recent[-1] - recent[0], 1e-3)  # takes per second
        return min(self.burst, self.size + round(rate * slot.creation_seconds))

    def _wake_in(self) -> float:
        """Under the lock: seconds until a pool goes idle, a retry is due or a raised target
        may fall back (its takes leave the demand window)."""
        now = time.monotonic()
        due = [slot.last_used + self.idle_seconds - now for slot in self._slots.values()]
        due += [slot.retry_after - now for slot in self._slots.values() if slot.retry_after > now]
        for slot in self._slots.values():
            recent = [taken for taken in slot.takes if now - taken <= DEMAND_WINDOW_SECONDS]
            if recent and len(slot.warm) > self.size:
                due.append(recent[0] + DEMAND_WINDOW_SECONDS - now)
        if any(slot.warm for slot in self._slots.values()):
            due.append(self._dead_check_at - now)
        return max(0.05, min(due, default=self.idle_seconds))

    def _remove_quietly(self, container: W | None) -> None:
        if container is None:
            return
        with contextlib.suppress(Exception):
            self._remove(container)
