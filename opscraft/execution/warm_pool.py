"""Warm containers: per isolation profile, a few containers already created and started, each
waiting for its one job on its attached stdin (`container_job.py`).

A profile is everything a container's configuration depends on (image, memory, CPUs, network
on or off, user); a warm container has exactly the limits and hardening a cold one of the same
profile gets, since both are created by the same function. A run takes one (`take`), hands it
its job, and the container is removed after that single run; it is never reused. The pool's
thread refills it in the background, up to `size` containers for every profile used within
`idle_seconds`, and removes the warm containers of profiles unused for longer (idle pools
shrink to nothing). `size` 0 disables the pool: every run starts cold.

Warm containers carry the worker's label (`opscraft.worker`) and `opscraft.warm`, so the
worker's start-up sweep removes those a crash left behind.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

log = logging.getLogger(__name__)

RETRY_SECONDS = 5.0
"""After a failed creation, how long before the pool tries that profile again."""


@dataclass(frozen=True)
class Profile:
    """What a run's container configuration depends on (its job aside)."""

    image: str
    memory_mb: int
    cpus: float
    network_enabled: bool
    user: str


@dataclass
class _Slot:
    warm: list[str]
    last_used: float
    retry_after: float = 0.0


class WarmPool:
    """The warm containers of one worker (see the module docstring).

    `create(profile)` creates and starts a container and returns its id (raising on failure);
    `remove(container_id)` removes one; both are called from the pool's own thread (and
    `remove` from `stop`). `take` is thread-safe.
    """

    def __init__(
        self,
        create: Callable[[Profile], str],
        remove: Callable[[str], None],
        size: int,
        idle_seconds: float,
    ) -> None:
        self.size = size
        self.idle_seconds = idle_seconds
        self._create = create
        self._remove = remove
        self._cond = threading.Condition()
        self._slots: dict[Profile, _Slot] = {}
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.warm_starts = 0
        self.cold_starts = 0

    def start(self) -> None:
        """Start the refilling thread (a no-op when the pool is disabled)."""
        if self.size <= 0 or self._thread is not None:
            return
        self._stopping = False
        self._thread = threading.Thread(target=self._maintain, name="opscraft-warm-pool", daemon=True)
        self._thread.start()

    def take(self, profile: Profile) -> str | None:
        """A warm container of `profile` for one run (it is the caller's to remove), or None:
        start cold. Either way the profile counts as used now, so its pool fills up."""
        with self._cond:
            if self.size <= 0:
                self.cold_starts += 1
                return None
            slot = self._slots.setdefault(profile, _Slot([], 0.0))
            slot.last_used = time.monotonic()
            container = slot.warm.pop(0) if slot.warm else None
            if container is None:
                self.cold_starts += 1
            else:
                self.warm_starts += 1
            self._cond.notify()
            return container

    def stats(self) -> dict[str, object]:
        """What admins see: the size setting, warm and cold start counts since the start, and
        per profile in the pool its fields and how many containers are warm."""
        with self._cond:
            profiles = [{**asdict(profile), "warm": len(slot.warm)} for profile, slot in self._slots.items()]
            return {
                "size": self.size,
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
            slot = self._slots.setdefault(profile, _Slot([], 0.0))
            slot.last_used = time.monotonic()
            self._cond.notify_all()
            while len(slot.warm) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def stop(self) -> None:
        """Stop refilling and remove every warm container."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()
        with self._cond:
            leftover = [container for slot in self._slots.values() for container in slot.warm]
            self._slots.clear()
        for container in leftover:
            self._remove_quietly(container)

    def _maintain(self) -> None:
        while True:
            with self._cond:
                if self._stopping:
                    return
                work = self._next_work()
                if work is None:
                    self._cond.wait(self._wake_in())
                    continue
            action, profile, container = work
            if action == "remove":
                self._remove_quietly(container)
                continue
            try:
                created = self._create(profile)
            except Exception as exc:  # an image missing, Docker gone: try again later
                log.warning("warm pool: creating a container for %s failed: %s", profile.image, exc)
                with self._cond:
                    slot = self._slots.get(profile)
                    if slot is not None:
                        slot.retry_after = time.monotonic() + RETRY_SECONDS
                continue
            with self._cond:
                slot = self._slots.get(profile)
                if slot is not None and not self._stopping:
                    slot.warm.append(created)
                    self._cond.notify_all()
                    created = ""
            if created:  # stopped meanwhile
                self._remove_quietly(created)

    def _next_work(self) -> tuple[str, Profile, str] | None:
        """Under the lock: shrink an idle or oversized pool first, then fill one that is short."""
        now = time.monotonic()
        for profile, slot in list(self._slots.items()):
            idle = now - slot.last_used > self.idle_seconds
            if slot.warm and (idle or len(slot.warm) > self.size):
                return "remove", profile, slot.warm.pop()
            if idle:
                del self._slots[profile]
        for profile, slot in self._slots.items():
            if len(slot.warm) < self.size and slot.retry_after <= now:
                return "create", profile, ""
        return None

    def _wake_in(self) -> float:
        """Under the lock: seconds until a pool goes idle or a retry is due."""
        now = time.monotonic()
        due = [slot.last_used + self.idle_seconds - now for slot in self._slots.values()]
        due += [slot.retry_after - now for slot in self._slots.values() if slot.retry_after > now]
        return max(0.05, min(due, default=self.idle_seconds))

    def _remove_quietly(self, container: str) -> None:
        with contextlib.suppress(Exception):
            self._remove(container)
