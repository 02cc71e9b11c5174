"""The warm pool's bookkeeping, with containers stood in for by numbers (the Docker side is in
tests/executions/test_warm_pool.py): a container serves one run, a refill starts at once, a
container that died while it waited is never handed out, `resize` grows and shrinks the pool
while it runs, and an idle profile's pool shrinks to nothing."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator

import pytest

from opscraft.execution import warm_pool
from opscraft.execution.warm_pool import Profile, WarmPool
from tests.waiting import wait_until

PROFILE = Profile("image:1", 512, 0.5, False, "65534:65534")
OTHER = Profile("image:1", 96, 0.5, False, "65534:65534")


class FakeDocker:
    """Counts creations and removals; `create` returns a new number each time."""

    def __init__(self) -> None:
        self._numbers = itertools.count(1)
        self.lock = threading.Lock()
        self.created: list[int] = []
        self.removed: list[int] = []

    def create(self, profile: Profile) -> int:
        with self.lock:
            number = next(self._numbers)
            self.created.append(number)
            return number

    def remove(self, container: int) -> None:
        with self.lock:
            self.removed.append(container)


@pytest.fixture
def docker() -> FakeDocker:
    return FakeDocker()


@pytest.fixture
def pool(docker: FakeDocker) -> Iterator[WarmPool[int]]:
    started = WarmPool(docker.create, docker.remove, size=2, idle_seconds=3600)
    started.start()
    yield started
    started.stop()


def test_each_container_serves_one_run_and_the_pool_refills(pool: WarmPool[int], docker: FakeDocker) -> None:
    assert pool.wait_warm(PROFILE, 2, 10)
    used = []
    for _ in range(5):
        assert pool.wait_warm(PROFILE, 2, 10)
        container = pool.take(PROFILE)
        assert container is not None
        used.append(container)
    assert len(set(used)) == 5, "a container is never handed out twice"
    stats = pool.stats()
    assert stats["warm_starts"] == 5 and stats["cold_starts"] == 0
    wait_until(lambda: pool.stats()["warm"] == 2, 'pool.stats()["warm"] == 2')
    assert not docker.removed


def test_a_refill_starts_at_once_after_a_take(pool: WarmPool[int], docker: FakeDocker) -> None:
    """Beside the run that took the container (waiting for its end left the pool empty more
    often for runs in quick succession: docs/benchmarks.md)."""
    assert pool.wait_warm(PROFILE, 2, 10)
    assert pool.take(PROFILE) is not None  # its run goes on
    wait_until(lambda: pool.stats()["warm"] == 2, 'pool.stats()["warm"] == 2')
    assert len(docker.created) == 3


def test_a_dead_warm_container_is_never_handed_out(docker: FakeDocker) -> None:
    dead: set[int] = set()
    pool = WarmPool(docker.create, docker.remove, size=2, idle_seconds=3600, waiting=lambda c: c not in dead)
    pool.start()
    try:
        assert pool.wait_warm(PROFILE, 2, 10)
        dead.update(docker.created[:2])  # both died while they waited
        assert pool.take(PROFILE) is None  # so the run starts cold
        assert (pool.warm_starts, pool.cold_starts) == (0, 1)
        wait_until(lambda: sorted(docker.removed) == sorted(dead), "sorted(docker.removed) == sorted(dead)")
        assert pool.wait_warm(PROFILE, 2, 10)
        assert pool.take(PROFILE) not in dead
    finally:
        pool.stop()


def test_resize_shrinks_disables_and_grows_the_pool(pool: WarmPool[int], docker: FakeDocker) -> None:
    assert pool.wait_warm(PROFILE, 2, 10)
    pool.resize(1)
    wait_until(
        lambda: len(docker.removed) == 1 and pool.stats()["warm"] == 1,
        'len(docker.removed) == 1 and pool.stats()["warm"] == 1',
    )
    pool.resize(0)
    wait_until(
        lambda: len(docker.removed) == 2 and pool.stats()["warm"] == 0,
        'len(docker.removed) == 2 and pool.stats()["warm"] == 0',
    )
    assert pool.take(PROFILE) is None  # disabled: cold
    assert pool.stats()["cold_starts"] == 1 and pool.stats()["size"] == 0
    pool.resize(3)
    assert pool.wait_warm(PROFILE, 3, 10)
    assert not set(docker.removed) & set(docker.created[-3:]), "the warm containers are new ones"


def test_resize_before_start_creates_nothing(docker: FakeDocker) -> None:
    pool = WarmPool(docker.create, docker.remove, size=0, idle_seconds=3600)
    pool.resize(2)
    assert pool.take(PROFILE) is None
    time.sleep(0.2)  # a pool that refilled before its start would have created by now: none is
    assert not docker.created
    pool.start()
    try:
        assert pool.wait_warm(PROFILE, 2, 10)
    finally:
        pool.stop()
    assert sorted(docker.removed) == sorted(docker.created), "stop removes every warm container"


def test_an_idle_profile_shrinks_to_nothing_and_a_used_one_stays(docker: FakeDocker) -> None:
    pool = WarmPool(docker.create, docker.remove, size=1, idle_seconds=0.5)
    pool.start()
    try:
        assert pool.wait_warm(OTHER, 1, 10)
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:  # PROFILE is used all along, OTHER is not
            pool.take(PROFILE)
            time.sleep(0.05)
        profiles = {(p["memory_mb"], p["warm"]) for p in pool.stats()["profiles"]}  # type: ignore[union-attr]
        assert (96, 1) not in profiles
        assert docker.removed == docker.created[:1], "the idle profile's container is removed"
        wait_until(lambda: pool.stats()["warm"] == 1, 'pool.stats()["warm"] == 1')
    finally:
        pool.stop()


def test_a_run_waits_for_the_container_being_created_rather_than_start_cold(docker: FakeDocker) -> None:
    """The pool empty, its thread creating one of the run's profile: the run gets that one."""
    release = threading.Event()
    creating = threading.Event()

    def slow_create(profile: Profile) -> int:
        if docker.created:  # the first one is warm at once, the second takes its time
            creating.set()
            assert release.wait(10)
        return docker.create(profile)

    pool = WarmPool(slow_create, docker.remove, size=1, idle_seconds=3600)
    pool.start()
    try:
        assert pool.wait_warm(PROFILE, 1, 10)
        assert pool.take(PROFILE) == 1  # the refill starts, and is slow
        assert creating.wait(10)
        threading.Timer(0.2, release.set).start()
        assert pool.take(PROFILE) == 2
        assert (pool.warm_starts, pool.cold_starts) == (2, 0)
        assert pool.take(OTHER) is None  # nothing of that profile is being created: cold at once
    finally:
        release.set()
        pool.stop()


def test_a_failed_creation_sends_the_waiting_run_cold(docker: FakeDocker) -> None:
    failing = threading.Event()

    def create(profile: Profile) -> int:
        if docker.created:
            failing.set()
            time.sleep(0.2)  # the failing creation's own duration, not a wait for a condition
            raise RuntimeError("the image is gone")
        return docker.create(profile)

    pool = WarmPool(create, docker.remove, size=1, idle_seconds=3600)
    pool.start()
    try:
        assert pool.wait_warm(PROFILE, 1, 10)
        assert pool.take(PROFILE) == 1
        assert failing.wait(10)
        t0 = time.monotonic()
        assert pool.take(PROFILE) is None
        assert time.monotonic() - t0 < 4 and pool.cold_starts == 1
    finally:
        pool.stop()


def test_a_creation_failing_again_and_again_is_logged_once_until_it_works(
    docker: FakeDocker, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An image that cannot be had fails every retry for as long as its profile is in use (an
    hour by default): the field report counted two WARNING lines every 5 s, ~1,400 an hour."""
    monkeypatch.setattr(warm_pool, "RETRY_SECONDS", 0.02)
    failures = 0

    def create(profile: Profile) -> int:
        nonlocal failures
        if failures < 12:
            failures += 1
            raise RuntimeError("pull access denied for image")
        return docker.create(profile)

    caplog.set_level("DEBUG", logger=warm_pool.__name__)
    pool = WarmPool(create, docker.remove, size=1, idle_seconds=3600)
    pool.start()
    try:
        pool.take(PROFILE)  # the profile is in use: the pool keeps trying to fill it
        assert pool.wait_warm(PROFILE, 1, 10)
    finally:
        pool.stop()
    failed = [r for r in caplog.records if "failed" in r.getMessage()]
    assert len(failed) == 12
    assert [r.levelname for r in failed].count("WARNING") == 1, [r.levelname for r in failed]
    assert "pull access denied" in failed[0].getMessage()
    assert any(r.levelname == "INFO" and "works again" in r.getMessage() for r in caplog.records)


class BlockedDocker(FakeDocker):
    """Creations after the first `free` ones block until `release` is set; `in_flight` counts
    the creations under way, `most` the most that were under way at once."""

    def __init__(self, free: int) -> None:
        super().__init__()
        self.free = free
        self.release = threading.Event()
        self.in_flight = 0
        self.most = 0
        self._started = 0

    def create(self, profile: Profile) -> int:
        with self.lock:
            self._started += 1
            blocked = self._started > self.free
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
        try:
            if blocked:
                assert self.release.wait(10)
            return super().create(profile)
        finally:
            with self.lock:
                self.in_flight -= 1


def test_refills_of_several_taken_containers_run_at_once() -> None:
    """One creation takes longer than a short run: each taken container's refill starts at once,
    beside the others (up to `CREATORS`), not one after the other."""
    docker = BlockedDocker(free=2)
    pool = WarmPool(docker.create, docker.remove, size=2, idle_seconds=3600)
    pool.start()
    try:
        assert pool.wait_warm(PROFILE, 2, 10)
        assert pool.take(PROFILE) is not None
        assert pool.take(PROFILE) is not None
        wait_until(
            lambda: docker.in_flight == 2, "docker.in_flight == 2"
        )  # both refills under way while neither is done
        docker.release.set()
        assert pool.wait_warm(PROFILE, 2, 10)
        assert docker.most == 2
    finally:
        docker.release.set()
        pool.stop()


def test_a_profile_never_has_more_than_size_containers_warm_and_being_created(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Runs that find their pool empty start cold; they never make the pool create more than
    the admin's setting (`size`) for their profile."""
    monkeypatch.setattr(warm_pool, "CREATION_WAIT_SECONDS", 0.05)
    docker = BlockedDocker(free=2)
    pool = WarmPool(docker.create, docker.remove, size=2, idle_seconds=3600)
    pool.start()
    try:
        assert pool.wait_warm(PROFILE, 2, 10)
        for _ in range(2):
            assert pool.take(PROFILE) is not None
        for _ in range(4):  # the pool is empty, its refills held: these start cold
            assert pool.take(PROFILE) is None
        wait_until(lambda: docker.in_flight == 2, "docker.in_flight == 2")
        time.sleep(0.2)  # a third creation, were the refills not held to two, would be under way
        assert docker.most == 2 and pool.cold_starts == 4
        docker.release.set()
        wait_until(lambda: pool.stats()["warm"] == 2, 'pool.stats()["warm"] == 2')
        time.sleep(0.2)  # a creation or removal beyond the two refills would have come by now
        assert len(docker.created) == 4 and not docker.removed
    finally:
        docker.release.set()
        pool.stop()


def test_creating_says_whether_a_creation_is_under_way() -> None:
    """The runner's deferred removals let creations go first (`removals.py` asks `creating`)."""
    docker = BlockedDocker(free=1)
    pool = WarmPool(docker.create, docker.remove, size=1, idle_seconds=3600)
    pool.start()
    try:
        assert pool.wait_warm(PROFILE, 1, 10)
        assert not pool.creating()
        assert pool.take(PROFILE) is not None
        wait_until(lambda: docker.in_flight == 1, "docker.in_flight == 1")
        assert pool.creating()
        docker.release.set()
        wait_until(lambda: not pool.creating(), "not pool.creating()")
    finally:
        docker.release.set()
        pool.stop()


class SlowDocker(FakeDocker):
    """A creation takes `seconds` (Docker's own time, stood in for), and how many are under
    way at once, and at most, is counted."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self.in_flight = 0
        self.most = 0

    def create(self, profile: Profile) -> int:
        with self.lock:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
        try:
            time.sleep(self.seconds)  # the creation's own duration, not a wait for a condition
            return super().create(profile)
        finally:
            with self.lock:
                self.in_flight -= 1


def target(pool: WarmPool[int], profile: Profile = PROFILE) -> int:
    """The profile's target in the pool's stats (what admins see)."""
    profiles = pool.stats()["profiles"]
    assert isinstance(profiles, list)
    (found,) = [item for item in profiles if item["memory_mb"] == profile.memory_mb]
    return int(found["target"])


def test_a_profile_taken_faster_than_created_grows_up_to_burst_and_shrinks_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Runs in quick succession take containers faster than one is created: the profile's
    target rises above `size` (more creations under way, fewer runs wait), never above `burst`,
    and falls back to `size` once the takes stop, the containers above it removed."""
    monkeypatch.setattr(warm_pool, "DEMAND_WINDOW_SECONDS", 1.0)
    docker = SlowDocker(0.2)
    pool = WarmPool(docker.create, docker.remove, size=1, idle_seconds=3600, burst=3)
    pool.start()
    try:
        assert pool.wait_warm(PROFILE, 1, 10)
        assert target(pool) == 1 and pool.stats()["burst"] == 3
        taken: list[int | None] = []
        most_target = 1
        for _ in range(12):  # a run takes one every 50 ms; a creation takes 200 ms
            taken.append(pool.take(PROFILE))
            most_target = max(most_target, target(pool))
            time.sleep(0.05)  # the runs' pace, not a wait for a condition
        served = [container for container in taken if container is not None]
        assert len(set(served)) == len(served), "a container serves one run only"
        # How far it rises depends on the pace the machine allows; it rises, and not past burst.
        assert 2 <= most_target <= 3 and 2 <= docker.most <= 3, (most_target, docker.most)
        wait_until(
            lambda: target(pool) == 1 and pool.stats()["warm"] == 1 and docker.in_flight == 0,
            'target(pool) == 1 and pool.stats()["warm"] == 1 and docker.in_flight == 0',
        )
        with docker.lock:
            kept = set(docker.created) - set(served) - set(docker.removed)
        assert len(kept) == 1, "the containers above `size` are removed once the takes stop"
    finally:
        pool.stop()


def test_without_burst_above_size_the_target_never_grows() -> None:
    """`burst` at or below `size` (2 here; 0 by default): runs in quick succession keep the pool
    at `size`, warm and being created together."""
    docker = SlowDocker(0.1)
    pool = WarmPool(docker.create, docker.remove, size=2, idle_seconds=3600, burst=2)
    pool.start()
    try:
        assert pool.wait_warm(PROFILE, 2, 10)
        for _ in range(10):
            pool.take(PROFILE)
            assert target(pool) == 2
            time.sleep(0.02)  # the runs' pace
        assert docker.most <= 2
    finally:
        pool.stop()
