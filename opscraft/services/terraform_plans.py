"""Terraform plan -> review -> apply: the saved plan of a `plan` run, its summary, and "Apply this plan".

- A successful `plan` run leaves its plan file and `terraform show -json` of it
  (execution/terraform_plan.py); `VaultPlanStore.keep` stores the plan encrypted with the vault
  (like states) with a summary: resources to import / add / change / destroy, counted as
  Terraform's own "Plan: W to import, X to add, Y to change, Z to destroy" line does (a
  replacement counts once to add and once to destroy; an import block's resource once to import,
  whatever else it does), the resources an import or a `moved` block brings in or renames listed
  with the changed ones, and the serial and lineage of the state the plan was made against (the
  `tfstate` entry of the plan file, Terraform's planfile format).
- Anyone who may view runs reads the summary; operators and admins apply a plan (`apply`): a
  new run (action `apply_plan`) of the plan run's script version that runs
  `terraform apply <plan file>`, held for approval like any run when the script requires it
  (services/approvals.py).
- A plan is stale, and its apply refused (409), when the state's current serial or lineage is no
  longer the one it was made against; a run of it that waited meanwhile ends `error` when the
  worker asks for the plan (`VaultPlanStore.plan_file`). Terraform refuses such a plan too
  ("Saved plan is stale"), but before 1.4 not one made with no state.
  A plan is applied once; a new apply is allowed only after the previous one never ran
  (rejected or cancelled before it started).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from opscraft.db import stored_shapes
from opscraft.db.engine import Database
from opscraft.db.models import Execution, TerraformPlan
from opscraft.db.models.executions import ExecutionStatus, Trigger
from opscraft.db.models.scripts import ScriptType
from opscraft.db.turns import take_write_turn
from opscraft.execution import terraform_backend, terraform_plan
from opscraft.execution.ports import PlanUnavailable
from opscraft.security.vault import DecryptError, Vault
from opscraft.services import audit, executions, keyring, terraform_state
from opscraft.services.actor import Actor
from opscraft.services.errors import Conflict, Invalid, NotFound, unreadable
from opscraft.services.permissions import Permission, require

# What a refusal names (services/permissions.require; the routes' early check says the same).
APPLY_PLAN = "apply a reviewed plan"

MAX_LISTED = 1000  # resources and outputs kept in a summary; `truncated` says when more changed
# An apply that never ran leaves the plan free to be applied again.
NEVER_RAN = frozenset({ExecutionStatus.rejected, ExecutionStatus.cancelled})


@dataclass(frozen=True)
class Summary:
    """What a plan changes: counts and the changed resources and outputs (addresses, actions)."""

    to_import: int
    to_add: int
    to_change: int
    to_destroy: int
    detail: dict[str, Any]


def summarize(plan_json: dict[str, Any]) -> Summary:
    """The summary of `terraform show -json <plan>` (Terraform's "JSON Output Format":
    `resource_changes[].change.actions`, `.change.importing`, `.previous_address`,
    `output_changes`). Data sources (`mode: data`) and `no-op`/`read` changes are neither counted
    nor listed, as Terraform's own summary line does not count them, except a resource an
    `import` block brings into the state (counted to import: Terraform's "Plan: 1 to import, ...")
    or a `moved` block renames (listed with its `previous_address`, not counted: Terraform
    prints "has moved to" and counts nothing); either way the apply writes it to the state."""
    return _summary(plan_json.get("resource_changes") or [], (plan_json.get("output_changes") or {}).items())


def summarize_shown(shown: bytes) -> Summary:
    """`summarize` of the JSON text `terraform show -json` wrote, read piece by piece: only one
    resource's change is parsed at a time, and the prior state, planned values and configuration
    (most of the text, about 4 times the state's size) are skipped unparsed (their brackets are
    counted, their content is not checked: Terraform wrote it). Raises `ValueError` for text
    that is not a JSON object, or whose changes are not JSON."""
    text = shown.decode()
    start = _skip_space(text, 0)
    if not text.startswith("{", start):
        raise ValueError("the plan's JSON form is not a JSON object")
    resources: list[dict[str, Any]] = []
    outputs: list[tuple[str, Any]] = []
    for key, at in _members(text, start):
        if key == "resource_changes" and text.startswith("[", at):
            resources = [_brief(_DECODER.raw_decode(text, item)[0]) for _, item in _members(text, at)]
        elif key == "output_changes" and text.startswith("{", at):
            outputs = [(str(name), _DECODER.raw_decode(text, item)[0]) for name, item in _members(text, at)]
    return _summary(resources, outputs)


def _brief(item: Any) -> dict[str, Any]:
    """What the summary reads of one resource change (its `before`/`after` values and the import's
    ID dropped: only whether it is imported is kept)."""
    if not isinstance(item, dict):
        return {}
    change = item.get("change") if isinstance(item.get("change"), dict) else {}
    return {
        "mode": item.get("mode"),
        "address": item.get("address", ""),
        "previous_address": item.get("previous_address"),
        "change": {"actions": change.get("actions"), "importing": change.get("importing")},
    }


def _summary(resource_changes: Iterable[Any], output_changes: Iterable[tuple[str, Any]]) -> Summary:
    imported = add = change = destroy = 0
    resources: list[dict[str, Any]] = []
    for item in resource_changes:
        found = item.get("change") or {}
        actions = list(found.get("actions") or [])
        address = str(item.get("address", ""))
        # Terraform counts a change with an `importing` object as an import (views/json ChangeSummary).
        importing = isinstance(found.get("importing"), dict)
        previous = item.get("previous_address")
        moved = isinstance(previous, str) and previous != address
        if item.get("mode") == "data" or not (set(actions) - {"no-op", "read"} or importing or moved):
            continue
        imported += importing
        add += "create" in actions
        destroy += "delete" in actions
        change += actions == ["update"]
        listed: dict[str, Any] = {"address": address, "actions": actions}
        if importing:
            listed["importing"] = True
        if moved:
            listed["previous_address"] = previous
        resources.append(listed)
    outputs = [
        {"name": str(name), "actions": list(value.get("actions") or [])}
        for name, value in sorted(output_changes)
        if set(value.get("actions") or []) - {"no-op"}
    ]
    detail = {
        "resources": resources[:MAX_LISTED],
        "outputs": outputs[:MAX_LISTED],
        "truncated": len(resources) > MAX_LISTED or len(outputs) > MAX_LISTED,
    }
    return Summary(imported, add, change, destroy, detail)


_DECODER = json.JSONDecoder()
_SPACE = re.compile(r"[ \t\n\r]*")
# A JSON string (skipped whole, escapes included) or a bracket: what finding a value's end needs.
# A string left open is read to the text's end (its value then never ends): a closing quote
# required, each quote inside it started another string read to the end (17 s for 64 KiB of
# `\"`; the file is the run's, up to 256 MiB).
_STRUCTURE = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{}]')


def _skip_space(text: str, at: int) -> int:
    found = _SPACE.match(text, at)
    assert found is not None  # `*` matches the empty string
    return found.end()


def _value_end(text: str, at: int) -> int:
    """Where the JSON value starting at `at` ends, found without building it when it is an
    array or object (brackets counted outside strings); `ValueError` when it never ends."""
    if not text.startswith(("[", "{"), at):
        return int(_DECODER.raw_decode(text, at)[1])
    depth = 0
    for token in _STRUCTURE.finditer(text, at):
        mark = token.group()
        if mark in ("[", "{"):
            depth += 1
        elif mark in ("]", "}"):
            depth -= 1
            if depth == 0:
                return token.end()
    raise ValueError("a JSON value of the plan never ends")


def _members(text: str, at: int) -> Iterator[tuple[str | None, int]]:
    """(key, where its value starts) of each member of the JSON object at `at`, or (None,
    where it starts) of each element of the array there; `ValueError` for malformed JSON."""
    closing = "}" if text.startswith("{", at) else "]"
    at = _skip_space(text, at + 1)
    if text.startswith(closing, at):
        return
    while True:
        key = None
        if closing == "}":
            key, at = _DECODER.raw_decode(text, at)
            if not isinstance(key, str):
                raise ValueError("a JSON object key of the plan is not a string")
            at = _skip_space(text, at)
            if not text.startswith(":", at):
                raise ValueError("a JSON object of the plan lacks a ':'")
            at = _skip_space(text, at + 1)
        yield key, at
        at = _skip_space(text, _value_end(text, at))
        if text.startswith(",", at):
            at = _skip_space(text, at + 1)
        elif text.startswith(closing, at):
            return
        else:
            raise ValueError("a JSON array or object of the plan is malformed")


def prior_state(plan_file: bytes) -> tuple[int, str]:
    """(serial, lineage) of the state a plan was made against: its `tfstate` entry (serial 0 and
    lineage "" when there was no state). Raises `ValueError` for a file that is not a plan."""
    try:
        with zipfile.ZipFile(io.BytesIO(plan_file)) as archive:
            info = archive.getinfo("tfstate")
            if info.file_size > terraform_plan.MAX_FILE_BYTES:
                raise ValueError("the plan's state is too large")
            state = json.loads(archive.read(info))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as exc:
        raise ValueError(f"not a Terraform plan file: {exc}") from None
    serial, lineage = state.get("serial"), state.get("lineage")
    return (
        serial if isinstance(serial, int) and 0 <= serial < 2**31 else 0,
        lineage[:64] if isinstance(lineage, str) else "",
    )


@dataclass(frozen=True)
class VaultPlanStore:
    """`execution.ports.PlanStore` over the vault opened at start (given to the worker)."""

    vault: Vault

    async def keep(self, db: Database, execution_id: int, files: dict[str, bytes]) -> None:
        """Store the plan of plan run `execution_id` (`ValueError` when its files are not a plan)."""
        plan_file = files.get(terraform_plan.PLAN_FILE)
        shown = files.get(terraform_plan.PLAN_JSON_FILE)
        if plan_file is None:  # no plan written: nothing to keep
            return
        if plan_file == terraform_plan.TOO_LARGE or not shown:  # one was too large to read back
            raise terraform_plan.PlanNotKept(
                f"the plan is not kept: its JSON form (terraform show -json) is over "
                f"{terraform_plan.MAX_JSON_BYTES // terraform_plan.MIB} MiB, or the plan file over "
                f"{terraform_plan.MAX_FILE_BYTES // terraform_plan.MIB} MiB; run Apply instead"
            )
        summary = summarize_shown(shown)
        serial, lineage = prior_state(plan_file)
        async with db.session() as session:
            execution = await session.get(Execution, execution_id)
            if execution is None:
                return
            plan = TerraformPlan(
                execution_id=execution_id,
                script_id=execution.script_id,
                workspace=execution.terraform_workspace or terraform_backend.DEFAULT_WORKSPACE,
                script_version=execution.script_version,
                prior_serial=serial,
                prior_lineage=lineage,
                to_import=summary.to_import,
                to_add=summary.to_add,
                to_change=summary.to_change,
                to_destroy=summary.to_destroy,
                summary=summary.detail,
                size_bytes=len(plan_file),
                sha256=hashlib.sha256(plan_file).hexdigest(),
                ciphertext=b"",
                salt=b"",
                nonce=b"",
            )
            session.add(plan)
            await session.flush()
            await keyring.require_current(session, self.vault)
            keyring.seal_plan(self.vault, plan, plan_file)
            await session.commit()

    async def plan_file(self, db: Database, execution_id: int) -> bytes:
        """The plan the `apply_plan` run `execution_id` applies. `PlanUnavailable` when there is
        none, it does not decrypt, or it went stale since the apply was asked for (a run that
        waited in the queue): Terraform before 1.4 applies a plan made with no state over the
        first state another run stored meanwhile (its http backend numbers that state's serial
        0, the plan's too, and Terraform 1.0 compares no lineage then)."""
        async with db.session() as session:
            plan = (
                await session.exec(
                    select(TerraformPlan).where(col(TerraformPlan.apply_execution_id) == execution_id)
                )
            ).first()
            if plan is None:
                raise PlanUnavailable("no saved plan is linked to this run")
            serial, lineage, version = await terraform_state.identity(session, plan.script_id, plan.workspace)
            if (serial, lineage) != (plan.prior_serial, plan.prior_lineage):
                raise PlanUnavailable(_stale(plan, serial, version))
            try:
                return keyring.reveal_plan(self.vault, plan)
            except DecryptError:
                raise PlanUnavailable("the saved plan does not decrypt with the current master key") from None

    async def keep_errored_state(self, db: Database, execution_id: int, content: bytes) -> str:
        """`terraform_state.recover` of run `execution_id`'s `errored.tfstate` (`content`)."""
        async with db.session() as session:
            return await terraform_state.recover(session, execution_id, content)


async def _plan_of(session: AsyncSession, execution_id: int) -> TerraformPlan:
    plan = (
        await session.exec(select(TerraformPlan).where(col(TerraformPlan.execution_id) == execution_id))
    ).first()
    if plan is None:
        raise NotFound("this run has no saved plan (only a successful plan run has one)")
    return plan


def _stale(plan: TerraformPlan, serial: int, version: int) -> str:
    """Why `plan` may not be applied: the state is now `serial`, stored as `version`."""
    return (
        f"the plan is stale: the state changed since it was made (serial {plan.prior_serial} -> "
        f"{serial}, now version {version}); run a new plan and apply that"
    )


async def is_stale(session: AsyncSession, plan: TerraformPlan) -> bool:
    """True when the state changed since the plan was made (serial or lineage differ)."""
    serial, lineage, _ = await terraform_state.identity(session, plan.script_id, plan.workspace)
    return (serial, lineage) != (plan.prior_serial, plan.prior_lineage)


async def get(session: AsyncSession, actor: Actor, execution_id: int) -> tuple[TerraformPlan, bool]:
    """The saved plan of plan run `execution_id` and whether it is stale (anyone who views runs)."""
    require(actor.user, Permission.view_scripts)
    plan = await _plan_of(session, execution_id)
    return plan, await is_stale(session, plan)


async def apply(
    session: AsyncSession,
    actor: Actor,
    execution_id: int,
    runner: str | None = None,
    trigger: Trigger = Trigger.api,
) -> Execution:
    """Start an apply of exactly the plan saved by plan run `execution_id` (operators, admins).

    Returns the new run (`queued`, or `awaiting_approval` when the script requires approval).
    Raises NotFound (no saved plan), Conflict (stale plan, already applied, script not active,
    or the plan run's stored parameters cannot be read: db/stored_shapes.py reads them as `{}`,
    and the apply would silently run without them; the 409 names `parameters`, as a run again
    does), Invalid (bad runner), Forbidden.
    """
    require(actor.user, Permission.edit_scripts, APPLY_PLAN)
    plan = await _plan_of(session, execution_id)
    # One apply per plan, of requests arriving together: each waits for the one before (db.turns).
    await take_write_turn(session, TerraformPlan, col(TerraformPlan.id) == plan.id)
    locked = select(TerraformPlan).where(col(TerraformPlan.id) == plan.id).with_for_update()
    plan = (await session.exec(locked.execution_options(populate_existing=True))).one()
    if plan.apply_execution_id is not None:
        previous = await session.get(Execution, plan.apply_execution_id)
        if previous is not None and previous.status not in NEVER_RAN:
            raise Conflict(
                f"this plan is already applied by execution {previous.id} ({previous.status}): plan again"
            )
    serial, lineage, version = await terraform_state.identity(session, plan.script_id, plan.workspace)
    if (serial, lineage) != (plan.prior_serial, plan.prior_lineage):
        raise Conflict(_stale(plan, serial, version))
    source = await session.get(Execution, execution_id)
    if source is None or source.script_type != ScriptType.terraform:
        raise NotFound("this run has no saved plan (only a successful plan run has one)")
    unread = {k: p for k, p in stored_shapes.problems(source).items() if k == "parameters"}
    if unread:
        raise Conflict(
            f"the stored parameters of plan run {execution_id} cannot be read: "
            f"{stored_shapes.worded(unread)}: run a new plan with the values it needs and apply that",
            details=unreadable(unread),
        )
    if runner is not None and runner not in executions.RUNNERS:
        raise Invalid(
            f"runner must be one of: {', '.join(executions.RUNNERS)}",
            details=[{"field": "runner", "message": f"must be one of: {', '.join(executions.RUNNERS)}"}],
        )
    audit.record(
        session,
        actor,
        "terraform.plan_apply",
        "execution",
        execution_id,
        script_id=plan.script_id,
        plan_sha256=plan.sha256,
        state_serial=serial,
    )
    return await executions.create(
        session,
        actor,
        plan.script_id,
        dict(source.parameters),
        runner=runner or source.runner,
        trigger=trigger,
        saved_plan=plan,
    )
