"""The ports of the execution engine: what moves runs, output, cancels and secrets between processes.

Each is a small interface; the in-process implementations sit beside them (`queue.HueyQueue`,
`bus.LocalLogBus`, `cancel.LocalCancelSignal`, `workers.LiveWorkers`), the vault's
`SecretSource` is passed in by `lifecycle`, and scale-out adds Redis ones behind the same
interfaces. The database row stays the truth: a queue or bus that loses a message delays a
run or a live line, never loses it (claims are conditional updates, output is stored).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Protocol

from opscraft.db.engine import Database
from opscraft.execution.events import Event, LogEvent, StatusEvent

OVERFLOW: Final = object()
"""What `Subscription.get` returns once a watcher fell too far behind: re-read storage, re-subscribe."""


class JobQueue(Protocol):
    """Hands execution ids (nothing else) to workers; the database says what is still to run."""

    def enqueue(self, execution_id: int) -> None:
        """Queue a run (callable from any thread); a duplicate delivery is harmless (claims are atomic)."""
        ...

    def start(self) -> None:
        """Start consuming (only in a process that runs executions)."""
        ...

    def stop(self) -> None:
        """Stop taking jobs; running ones continue (the caller joins them with `join`)."""
        ...

    def join(self, timeout: float) -> bool:
        """Wait for the running jobs; True when all finished within `timeout` seconds."""
        ...

    def clear(self) -> None:
        """Drop every waiting job (on start, when no other worker shares the queue)."""
        ...

    def emptied(self) -> bool:
        """Whether the queue lost its waiting jobs since this was last asked (a Redis restarted
        without persistence, or flushed): the caller then enqueues every `queued` run again.
        True for one caller only when several ask together."""
        ...

    def unreadable(self) -> str | None:
        """Why this process's consumers cannot take jobs now (their last read of the queue failed:
        Redis stopped or not answering), or None while they can and in processes that only enqueue."""
        ...


class Subscription(Protocol):
    """One watcher's view of an execution: the unstored backlog at subscription time, then live events."""

    backlog: list[LogEvent]
    status: StatusEvent | None
    """Set when the bus holds the whole run so far (its `running` event, nothing of its output
    stored yet: `bus.LocalLogBus`): the run's status, and `backlog` is every log event after
    the subscription's `after_seq`, so storage need not be read. None: read storage first."""

    async def get(self, wait_seconds: float | None = None) -> Event | object | None:
        """The next live event; `OVERFLOW` when this watcher fell behind; None when nothing came
        within `wait_seconds` (None: wait as long as it takes) or the bus cannot be read now
        (its Redis does not answer): either way the caller re-reads storage."""
        ...

    def close(self) -> None:
        """End the subscription and free what it holds."""


class LogBus(Protocol):
    """Carries events from the worker running an execution to everyone watching it.

    Resumable: `subscribe(execution_id, after_seq)` gives the events after `after_seq` that the
    bus still holds (`backlog`) and everything published afterwards; what is older comes from
    storage (`execution_logs`), so stored output + backlog + live covers every event, and
    watchers drop duplicates by sequence number.
    """

    def publish(self, execution_id: int, event: Event) -> None:
        """Deliver `event` to the watchers of `execution_id` (callable from any thread)."""
        ...

    def stored(self, execution_id: int, upto_seq: int) -> None:
        """Storage has committed every log event up to `upto_seq` (the bus may forget them)."""
        ...

    def subscribe(self, execution_id: int, after_seq: int = 0) -> Subscription:
        """Watch an execution from `after_seq` on; call from the event loop that reads it."""
        ...


class CancelSignal(Protocol):
    """The immediate half of a cancel (the durable half is `executions.cancel_requested`)."""

    def request(self, execution_id: int) -> None:
        """Ask whoever runs `execution_id` to kill it (a no-op when nobody reachable runs it)."""
        ...

    def watch(self, execution_id: int, on_cancel: Callable[[], None]) -> None:
        """Call `on_cancel` when the run is asked to stop."""

    def unwatch(self, execution_id: int) -> None:
        """Stop watching the run's cancel requests."""


class SecretUnavailable(Exception):
    """An attached secret cannot be decrypted; the execution ends in `error` with this message."""


@dataclass(frozen=True)
class RunSecrets:
    """A run's decrypted secrets: `env` NAME -> value as environment variables, `files` NAME ->
    content written to a file in the run whose path is in the environment variable NAME."""

    env: dict[str, str] = field(default_factory=dict, repr=False)
    files: dict[str, str] = field(default_factory=dict, repr=False)

    def values(self) -> list[str]:
        """Every plaintext value, for the masker."""
        return [*self.env.values(), *self.files.values()]


class SecretSource(Protocol):
    """Decrypts the secrets attached to a run's script (the vault, passed in by `lifecycle`)."""

    async def for_execution(self, db: Database, execution_id: int) -> RunSecrets:
        """The plaintexts for the run `execution_id`, each use audited with the execution id.

        Runs on the worker's own event loop with its own `db`. Raises `SecretUnavailable`.
        """
        ...


class PlanUnavailable(Exception):
    """The saved plan an `apply_plan` run needs cannot be had (gone, or does not decrypt)."""


class PlanStore(Protocol):
    """Keeps Terraform's saved plans (services/terraform_plans.py, encrypted with the vault), and
    the states runs could not store (services/terraform_state.py)."""

    async def keep(self, db: Database, execution_id: int, files: dict[str, bytes]) -> None:
        """Store the plan of the finished `plan` run `execution_id` from the files it left
        (`terraform_plan.COLLECT`); a run that left none stores nothing. Raises
        `terraform_plan.PlanNotKept` when it left one only (the other was too large to read back)."""
        ...

    async def plan_file(self, db: Database, execution_id: int) -> bytes:
        """The plan file the `apply_plan` run `execution_id` applies; raises `PlanUnavailable`."""
        ...

    async def keep_errored_state(self, db: Database, execution_id: int, content: bytes) -> str:
        """Keep the state the ended run `execution_id` could not store, its `errored.tfstate`
        (`terraform_backend.ERRORED_STATE`; `terraform_plan.TOO_LARGE` when too large to read
        back), as a state version (services/terraform_state.recover); the sentence its error
        message ends with, saying where the state went."""
        ...


@dataclass(frozen=True)
class Offer:
    """What the live workers offer now, read together (one answer of `RunnerAvailability.offered`):
    a decision that read `runners` and `queue_error` from two answers could mix a worker's state
    before Redis froze with its state after (refusing a run 409 "no live worker offers" where the
    answer was 503 "no worker can read the job queue")."""

    runners: frozenset[str]
    """The runners (`docker`, `local`) some live worker offers."""
    queue_error: str | None
    """When there are live workers and none can read the job queue (Redis stopped or not
    answering), why (a worker's own words); else None."""


class RunnerAvailability(Protocol):
    """Which runners some live worker offers now (`docker` while its Docker engine answers, `local`)."""

    async def offered(self) -> Offer:
        """What the live workers offer now (runners and why none can read the queue, together)."""

    def forget(self) -> None:
        """Read the offered runners again at the next `offered` (a worker changed what it offers)."""
