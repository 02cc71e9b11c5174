"""Timestamps at each hop of a run, written by an `opscraft serve` started with this directory on
its `PYTHONPATH` and `OPSCRAFT_BENCH_HOPS=<file>` (`bench.bench_exec_hops`; nothing else loads it).

Each wrapped function appends `<CLOCK_MONOTONIC ns> <label>` to the file when it is entered
(`label>`) and, for those in `EXITS`, when it returns (`label<`): the same clock as the bench's
client, so both sides line up. The functions are wrapped as their modules are imported (an import
hook), without a change to OpsCraft's code. The writes cost a few microseconds each and add to
what they measure: the figures say where the time goes, not how long a run takes.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.machinery
import importlib.util
import inspect
import os
import sys
import time
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

_PATH = os.environ.get("OPSCRAFT_BENCH_HOPS")

# (module, attribute path, label): the hops of one local run, in the order a run passes them.
# Only functions called through their module or class at run time (a route function is held by
# its router since import: the request's own mark stands for it).
HOPS: tuple[tuple[str, str, str], ...] = (
    ("opscraft.api.executions", "_create", "route"),
    ("opscraft.db.group_commit", "GroupInsert.insert", "group insert"),
    ("opscraft.db.group_commit", "GroupInsert._on_thread", "group transaction"),
    ("opscraft.execution.executor", "Executor.take", "claim in the transaction"),
    ("opscraft.execution.executor", "Executor._hand", "hand-over after COMMIT"),
    ("opscraft.execution.executor", "Executor.start_claimed", "consumer thread"),
    ("opscraft.execution.local_runner", "LocalRunner._run", "runner prepares"),
    ("opscraft.execution.fork_server", "RunSupervisor.start", "job to the supervisor"),
    ("opscraft.execution.output", "OutputPipeline.feed", "output read"),
    ("opscraft.execution.fork_server", "RunSupervisor.read_status", "supervisor's status"),
    ("opscraft.execution.output", "OutputPipeline.close", "output closed"),
    ("opscraft.execution.finisher", "Finisher.put", "end to the finisher"),
    ("opscraft.execution.finisher", "Finisher._write", "end transaction"),
    ("opscraft.api.ws", "_events_or_refusal", "WebSocket auth"),
    ("starlette.websockets", "WebSocket.send_text", "WebSocket send"),
)
EXITS = frozenset({"route", "group insert", "group transaction", "WebSocket auth", "end transaction"})


def mark(label: str) -> None:
    """Append `<monotonic ns> <label>` to the hops file."""
    if _fd is not None:
        os.write(_fd, f"{time.monotonic_ns()} {label}\n".encode())


def _wrapped(function: Callable[..., Any], label: str) -> Callable[..., Any]:
    leave = label in EXITS
    if inspect.iscoroutinefunction(function):

        @functools.wraps(function)
        async def waited(*args: Any, **kwargs: Any) -> Any:
            mark(f"{label}>")
            try:
                return await function(*args, **kwargs)
            finally:
                if leave:
                    mark(f"{label}<")

        return waited

    @functools.wraps(function)
    def called(*args: Any, **kwargs: Any) -> Any:
        mark(f"{label}>")
        try:
            return function(*args, **kwargs)
        finally:
            if leave:
                mark(f"{label}<")

    return called


def _wrap(module: ModuleType) -> None:
    for name, path, label in HOPS:
        if name == module.__name__:
            owner_path, _, attribute = path.rpartition(".")
            owner: Any = module
            for part in filter(None, owner_path.split(".")):
                owner = getattr(owner, part)
            setattr(owner, attribute, _wrapped(getattr(owner, attribute), label))


def _wrap_dispatch(module: ModuleType) -> None:
    """Mark a request under `/api/v1/executions` or `/ws/` as it reaches OpsCraft's own app
    (`request`) and the start of its HTTP answer (`answer starts`)."""
    dispatch = module.PathDispatch.__call__

    async def call(self: Any, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket") or not scope["path"].startswith(
            ("/api/v1/executions", "/ws/")
        ):
            await dispatch(self, scope, receive, send)
            return
        mark(f"request ({scope['type']})>")

        async def sending(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                mark("answer starts>")
            await send(message)

        await dispatch(self, scope, receive, sending)

    module.PathDispatch.__call__ = call


class _Finder(importlib.abc.MetaPathFinder):
    """Wraps the `HOPS` of each module once it has been executed."""

    names = frozenset({name for name, _, _ in HOPS} | {"opscraft.api.lean_path"})

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.names:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        execute = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            execute(module)
            if fullname == "opscraft.api.lean_path":
                _wrap_dispatch(module)
            else:
                _wrap(module)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


_fd = os.open(_PATH, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600) if _PATH else None
if _fd is not None:
    sys.meta_path.insert(0, _Finder())
