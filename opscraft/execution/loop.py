"""The worker loop: a private asyncio loop in one thread, with its own database (SQLAlchemy) engine.

The web server's AsyncEngine belongs to the server's event loop; worker threads hand their
database work to this loop instead (`run` waits for the result, `submit` does not). One loop and
one small pool serve every worker, so a worker costs no loop or connection of its own.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

from opscraft.db.engine import Database

T = TypeVar("T")


class WorkerLoop:
    """A private event loop thread and its database, for work that must be async (PostgreSQL, the vault)."""

    def __init__(self, database_url: str, command_timeout: float | None = None) -> None:
        """`command_timeout`: seconds a PostgreSQL statement may go unanswered (`db.engine`)."""
        self.db = Database(database_url, command_timeout=command_timeout)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="opscraft-worker-loop", daemon=True
        )

    def start(self) -> None:
        """Start the loop's thread."""
        self._thread.start()

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        """Schedule `coro` on the loop's thread from any other thread; returns its concurrent Future."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the loop's thread and wait for its result (re-raising its error); never call from
        the loop's own thread.
        """
        return self.submit(coro).result()

    def stop(self) -> None:
        """Dispose the database, stop the loop and join its thread; no-op when it is not running."""
        if not self._thread.is_alive():
            return
        self.run(self.db.dispose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
