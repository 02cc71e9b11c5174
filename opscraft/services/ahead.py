"""Slow checks of a save answered before it takes its write turn, kept by their inputs.

A save that decides on what it reads takes its write turn first (`db.turns`: on SQLite the
database's one write lock, which every other writer waits for: runs storing output,
submissions, other saves; on PostgreSQL a row lock, which edits of that row wait for). No
outside work may run while it is held: an outside tool (`ansible-inventory`, the linters,
`bash -n`), a network call, argon2 hashing, CPU-heavy parsing, each seconds under load.

So a save runs those checks on what it expects to save before it takes its turn
(`Ahead.run`, with the row as read without the turn), and asks again under the turn with
what it read there (`Ahead.answer`): the same inputs get the answer kept, refusals included,
raised at the same point as before, so every rule and the order of the answers stay; other
inputs (the row changed between the two reads) are checked then, under the turn, as before.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from opscraft.services.errors import ServiceError

T = TypeVar("T")


class Ahead:
    """The answers of one save's slow checks, each kept with the check and its arguments.

    An `Ahead` nothing was run on answers every check by running it (a save that takes no turn
    before its checks, such as a create)."""

    def __init__(self) -> None:
        self._kept: list[tuple[Callable[..., Any], tuple[Any, ...], Any]] = []

    async def run(self, check: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Run `check(*args)` now (before the write turn) and keep its answer: its result, or the
        `ServiceError` it raised (a refusal, raised again by `answer`). Other errors propagate."""
        try:
            answer: Any = await check(*args)
        except ServiceError as refused:
            answer = refused
        self._kept.append((check, args, answer))

    async def answer(self, check: Callable[..., Awaitable[T]], *args: Any) -> T:
        """`check(*args)`: the answer kept by `run` for the same check and equal arguments (its
        refusal raised again), else the check run now (the inputs changed since `run`)."""
        for kept_check, kept_args, kept in self._kept:
            if kept_check is check and kept_args == args:
                if isinstance(kept, ServiceError):
                    raise kept
                return kept  # type: ignore[no-any-return]
        return await check(*args)
