"""The layer rules of docs/architecture.md, enforced: import-linter checks the contracts in
pyproject.toml (`[tool.importlinter]`) against the real import graph of `opscraft`; the services'
source is read for outside work under a write turn.

It runs in its own process: import-linter configures logging with `dictConfig`, which disables
every logger already created in the test process (later `caplog` assertions would see nothing)."""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

from tests.conftest import ROOT

LINT = "from importlinter.cli import lint_imports_command; lint_imports_command()"


def test_import_contracts_hold() -> None:
    done = subprocess.run(
        [sys.executable, "-c", LINT, "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"an import breaks a layer rule:\n{done.stdout}\n{done.stderr}"


# --- no outside work under a write turn (docs/architecture.md, `services.ahead`) ------------

#: Calls that run outside work (a process, a thread, the network, argon2): seconds under load.
SLOW_CALLS = frozenset(
    {
        "create_subprocess_exec",
        "create_subprocess_shell",
        "to_thread",
        "run_in_executor",
        "getaddrinfo",
        "AsyncClient",
        "hash_password",
        "verify_password",
        "password_match",
    }
)
#: Calls that take the write turn or a row lock (`db.turns`; a flush or a DML statement writes).
TURN_CALLS = frozenset({"take_write_turn", "read_held", "flush", "with_for_update", "pg_advisory_xact_lock"})
#: SQL statements (from sqlmodel or sqlalchemy) that write, so take the turn when executed.
WRITING_STATEMENTS = frozenset({"update", "delete", "insert"})
#: Calls that end the transaction, and with it the turn.
ENDS = frozenset({"commit", "rollback"})
SERVICES = "opscraft.services"


@dataclass
class _Module:
    """A services module's functions and what its names refer to."""

    functions: dict[str, ast.AST] = field(default_factory=dict)
    modules: dict[str, str] = field(default_factory=dict)  # alias -> services module
    imported: dict[str, tuple[str, str]] = field(default_factory=dict)  # alias -> (module, name)


def _services() -> dict[str, _Module]:
    found: dict[str, _Module] = {}
    for path in sorted((ROOT / "opscraft" / "services").glob("*.py")):
        module = found.setdefault(path.stem, _Module())
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                module.functions[node.name] = node
            elif isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    name = alias.asname or alias.name
                    if node.module == SERVICES:
                        module.modules[name] = alias.name
                    else:
                        module.imported[name] = (node.module, alias.name)
    return found


def _target(
    modules: dict[str, _Module], where: str, call: ast.Call, local: set[str]
) -> tuple[str, str] | str:
    """What `call` in module `where` calls: (module, function) of a services function, else the
    called name ("to_thread", "flush", "sql:update" for a writing statement); a `local` name (a
    parameter or variable of the calling function) is not followed."""
    module, func = modules[where], call.func
    if isinstance(func, ast.Name):
        if func.id in local:
            return func.id
        if func.id in module.functions:
            return (where, func.id)
        source, name = module.imported.get(func.id, ("", func.id))
        if source.startswith(f"{SERVICES}.") and source.removeprefix(f"{SERVICES}.") in modules:
            return (source.removeprefix(f"{SERVICES}."), name)
        if source.split(".")[0] in {"sqlmodel", "sqlalchemy"} and name in WRITING_STATEMENTS:
            return f"sql:{name}"
        return name
    if isinstance(func, ast.Attribute):
        owner = func.value
        if isinstance(owner, ast.Name) and owner.id in module.modules and owner.id not in local:
            return (module.modules[owner.id], func.attr)
        return func.attr
    return ""


def _called(modules: dict[str, _Module], where: str, function: ast.AST) -> list[tuple[str, str] | str]:
    """What `function` (of module `where`) calls, nested functions and lambdas included, in
    source order."""
    local = {
        a.arg
        for n in ast.walk(function)
        if isinstance(n, ast.arguments)
        for a in ast.walk(n)
        if isinstance(a, ast.arg)
    }
    local |= {n.id for n in ast.walk(function) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    calls = sorted(
        (n for n in ast.walk(function) if isinstance(n, ast.Call)), key=lambda c: (c.lineno, c.col_offset)
    )
    return [_target(modules, where, c, local) for c in calls]


def _holding(called: list[tuple[str, str] | str], turn: set[Any], slow: set[Any]) -> tuple[bool, list[str]]:
    """Whether a function calling `called` (in order) still holds a turn when it returns, and
    the slow calls it makes while holding one. `turn`: what leaves the turn held on return."""
    held, under = False, []
    for target in called:
        if target in ENDS or (isinstance(target, tuple) and target[1] in ENDS):  # `conflicts.commit`
            held = False
        elif held and target in slow:
            under.append(str(target))
        if target in turn:
            held = True
    return held, under


def test_no_service_runs_outside_work_under_a_write_turn() -> None:
    """A service function that took the write turn (a flush, a writing statement, a row lock:
    also through a function it calls that returns with the turn held) runs nothing slow (a
    process, a thread, the network, argon2; also through the functions it calls) until it
    commits or rolls back: on SQLite the turn is the database's one write lock, which every
    other writer waits for. Slow checks run before the turn, their answers kept
    (`services.ahead`). Read from the source, in source order: a call through a variable (a
    check handed to `Ahead.answer`) is not followed."""
    modules = _services()
    called = {
        (name, fn): _called(modules, name, node)
        for name, m in modules.items()
        for fn, node in m.functions.items()
    }
    slow: set[Any] = set(SLOW_CALLS)
    turn: set[Any] = set(TURN_CALLS) | {f"sql:{s}" for s in WRITING_STATEMENTS}
    while grown := {k for k, c in called.items() if k not in slow and slow & set(c)}:
        slow |= grown  # through the functions they call, to a fixed point
    while grown := {k for k, c in called.items() if k not in turn and _holding(c, turn, slow)[0]}:
        turn |= grown
    # What the analysis must see, so that a rename cannot make it pass unseen.
    assert {
        ("scripts", "_locked"),
        ("shared_inventories", "_locked"),
        ("users", "_claim_first_admin"),
    } <= turn
    assert {("scripts", "check_content"), ("inventories", "validate"), ("users", "_insert")} <= slow
    held_slow = [
        f"{key[0]}.{key[1]} calls {target} under its turn"
        for key, c in called.items()
        for target in _holding(c, turn, slow)[1]
    ]
    assert not held_slow, "\n".join(held_slow)


# --- the engine only through the execution client (docs/architecture.md, "Layer rules") ----

#: The runtime's fields that are the engine itself, not its client: `worker` (this process's
#: `execution.worker.Worker`). The import contract cannot see them: the layers import only
#: `opscraft.runtime`, whose `current()` hands the object over.
ENGINE_FIELDS = frozenset({"worker"})
LAYERS_OVER_ENGINE = ("services", "api", "ui")


def _is_current(node: ast.AST) -> bool:
    """Whether `node` is a call of `runtime.current()` (or of `current()` imported from it)."""
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    if isinstance(func, ast.Attribute):
        return func.attr == "current" and isinstance(func.value, ast.Name) and func.value.id == "runtime"
    return isinstance(func, ast.Name) and func.id == "current"


def _engine_reads(source: str) -> list[int]:
    """The lines of `source` that read an engine field of the runtime: `runtime.current().worker`,
    or `rt.worker` where `rt = runtime.current()` in the same function or module."""
    tree = ast.parse(source)
    scopes = [tree, *(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef))]
    found: set[int] = set()
    for scope in scopes:
        bound = {
            target.id
            for n in ast.walk(scope)
            if isinstance(n, ast.Assign) and _is_current(n.value)
            for target in n.targets
            if isinstance(target, ast.Name)
        }
        for n in ast.walk(scope):
            if not isinstance(n, ast.Attribute) or n.attr not in ENGINE_FIELDS:
                continue
            if _is_current(n.value) or (isinstance(n.value, ast.Name) and n.value.id in bound):
                found.add(n.lineno)
    return sorted(found)


def test_engine_reads_catch_a_worker_through_the_runtime() -> None:
    """The check below sees both ways a layer reached the worker (app_settings used the second)."""
    assert _engine_reads("def f():\n    runtime.current().worker.advertise()\n") == [2]
    assert _engine_reads("def f():\n    rt = runtime.current()\n    rt.worker.advertise()\n") == [3]
    assert _engine_reads("def f():\n    rt = runtime.current()\n    rt.executions.forget()\n") == []


def test_layers_reach_the_engine_only_through_the_execution_client() -> None:
    """services, api and ui never use the runtime's worker: they ask the execution client
    (`runtime.current().executions`), which behaves the same whether the worker runs in this
    process or another (an admin's change of the local runner: `ExecutionClient.runners_changed`)."""
    reads = [
        f"{path.relative_to(ROOT)}:{line}"
        for layer in LAYERS_OVER_ENGINE
        for path in sorted((ROOT / "opscraft" / layer).rglob("*.py"))
        for line in _engine_reads(path.read_text(encoding="utf-8"))
    ]
    assert not reads, "the runtime's worker read outside the engine:\n" + "\n".join(reads)
