"""The cancel signal on Redis pub/sub (`ports.CancelSignal` across processes).

`request` publishes the execution id on `<prefix>:cancel`; every worker process listens in one
thread and kills the run if it is one of its own. The database column `cancel_requested` stays
the durable half: a worker also reads it every second, so a cancel published while Redis or the
listener was down still lands. The listener reconnects by itself after a Redis restart.
`request` is called on a web process's event loop: it publishes from a thread of its own, so a
Redis that does not answer (frozen: up to the socket timeout per try) holds no request.
Source of the commands: https://redis.io/docs/latest/develop/interact/pubsub/
"""

from __future__ import annotations

import contextlib
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import redis

from opscraft.execution.cancel import LocalCancelSignal

log = logging.getLogger(__name__)

LISTEN_TIMEOUT_SECONDS = 1.0
RECONNECT_SECONDS = 1.0


class RedisCancelSignal(LocalCancelSignal):
    """Local kill callbacks (as `LocalCancelSignal`) reached from any process through Redis."""

    def __init__(self, url: str, prefix: str) -> None:
        super().__init__()
        self.channel = f"{prefix}:cancel"
        self._client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)
        self._listener: threading.Thread | None = None
        self._stop = threading.Event()
        self._started = threading.Lock()
        self._publisher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="opscraft-cancel-publish")

    def request(self, execution_id: int) -> None:
        """Apply the cancel here at once if the run is one of ours, and publish it from the
        publishing thread (this returns without waiting for Redis)."""
        super().request(execution_id)
        self._publisher.submit(self._publish, execution_id)

    def _publish(self, execution_id: int) -> None:
        try:
            self._client.publish(self.channel, str(execution_id))
        except (redis.RedisError, OSError) as exc:
            log.warning(
                "cancel of execution %s not published (Redis: %s); its worker reads the "
                "database within a second",
                execution_id,
                exc,
            )

    def watch(self, execution_id: int, on_cancel: object) -> None:  # type: ignore[override]
        """Call `on_cancel` when any process asks this run to stop (starts listening on Redis first)."""
        self.listen()
        super().watch(execution_id, on_cancel)  # type: ignore[arg-type]

    def listen(self) -> None:
        """Start the listener thread (once; a worker process calls this at start)."""
        with self._started:
            if self._listener is None:
                self._listener = threading.Thread(target=self._listen, name="opscraft-cancel", daemon=True)
                self._listener.start()

    def _listen(self) -> None:
        while not self._stop.is_set():
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self.channel)
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=LISTEN_TIMEOUT_SECONDS)
                    if message is not None and message.get("type") == "message":
                        self._deliver(message["data"])
            except (redis.RedisError, OSError) as exc:
                log.warning("cancel listener lost Redis (%s); reconnecting", exc)
                self._stop.wait(RECONNECT_SECONDS)
            finally:
                with contextlib.suppress(redis.RedisError, OSError):
                    pubsub.close()

    def _deliver(self, data: bytes) -> None:
        try:
            execution_id = int(data)
        except ValueError:
            return
        LocalCancelSignal.request(self, execution_id)

    def close(self) -> None:
        """Stop listening and close the connections."""
        self._stop.set()
        if self._listener is not None:
            self._listener.join(LISTEN_TIMEOUT_SECONDS + 5)
        self._publisher.shutdown(wait=False, cancel_futures=True)
        self._client.close()
