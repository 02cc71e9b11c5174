"""Warm containers follow their image: one created from an image that was since retagged,
pulled anew or deleted is removed, never handed a run.

A warm container (`warm_pool.py`) is created from what its profile's image name meant then. When
an operator pushes a fixed image and pulls it (or builds and tags it) on the Docker host, the
name points to another image, and the containers already warm would run the next runs on the old
one (with the default of 2 per profile, the next 2 runs, or more while demand grows the pool);
one whose image was deleted (`docker rmi -f`) would run a deleted image, where a cold start
says the image is not available. So the runner's `ImageWatch` follows the engine's image events
(`GET /events`, type `image`: tag, untag, pull, load, import, delete) on a thread of its own
and, at each (and at each (re)connection, for the events it could not see: the engine
restarted), compares every pooled profile's image name with the image each warm container was
created from (`WarmPool.discard`); those that differ go to be removed, and the pool refills from
the image the name means now. A creation under way when the change came is checked the same way
when it is ready. Between a change and its event being read (milliseconds) a run may still take
a container of the old image. Costs: one `inspect` per pooled image name per image event.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any, Protocol

from docker.errors import NotFound

from opscraft.execution.warm_pool import Profile, WarmPool

log = logging.getLogger(__name__)

RECONNECT_SECONDS = (1.0, 10.0)
"""After the event stream broke (the engine restarted, unreachable), how long before the watch
connects again: the first, doubled at each failed connection up to the second (a machine
without Docker is asked every 10 s, not every second)."""

THREAD_NAME = "opscraft-image-watch"


class FromImage(Protocol):
    """A warm container that knows the id of the image it was created from."""

    image: str


class ImageWatch:
    """Follows image events for `pool` (see the module docstring); `connect()` returns a new
    Docker client (`docker.DockerClient`), one per connection. `start`/`stop`; thread-safe."""

    def __init__(self, pool: WarmPool[Any], connect: Callable[[], Any]) -> None:
        self._pool = pool
        self._connect = connect
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._stream: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start following events (no-op while already following)."""
        with self._lock:
            if self._thread is not None:
                return
            self._stopping.clear()
            self._thread = threading.Thread(target=self._follow, name=THREAD_NAME, daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop following events (the stream is closed, the thread ended)."""
        with self._lock:
            thread, self._thread = self._thread, None
            self._stopping.set()
            stream, self._stream = self._stream, None
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.close()
        if thread is not None:
            thread.join()

    def check(self, api: Any) -> int:
        """Compare every pooled profile's image name with the image its warm containers were
        created from, and have those that differ removed; returns how many. Raises
        DockerException when the engine cannot tell (the caller connects again)."""
        now: dict[str, str | None] = {}
        for profile in self._pool.profiles():
            if profile.image not in now:
                try:
                    now[profile.image] = str(api.inspect_image(profile.image)["Id"])
                except NotFound:  # deleted: a cold start would say it is not available
                    now[profile.image] = None

        def stale(profile: Profile, warm: FromImage) -> bool:
            return profile.image in now and warm.image != now[profile.image]

        dropped = self._pool.discard(stale)
        if dropped:
            log.info("warm pool: %d warm container(s) of an image since changed are removed", dropped)
        return dropped

    def _follow(self) -> None:
        pause = RECONNECT_SECONDS[0]
        while not self._stopping.is_set():
            client = None
            try:
                client = self._connect()
                stream = client.api.events(filters={"type": "image"}, decode=True)
                pause = RECONNECT_SECONDS[0]
                with self._lock:
                    if self._stopping.is_set():
                        stream.close()
                        return
                    self._stream = stream
                self.check(client.api)  # what changed while no stream was open
                for _event in stream:
                    self.check(client.api)
            except Exception as exc:  # the engine went away, or the stream was closed by `stop`
                if not self._stopping.is_set():
                    log.debug("warm pool: image events interrupted (%s), reconnecting", exc)
            finally:
                with self._lock:
                    self._stream = None
                if client is not None:
                    with contextlib.suppress(Exception):
                        client.close()
            self._stopping.wait(pause)
            pause = min(pause * 2, RECONNECT_SECONDS[1])
