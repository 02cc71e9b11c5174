"""Chained runs: a script's "then run" links, fired from the run-events outbox.

Rules:
- operators and admins add links to a script: when a run of it ends with the link's `outcome`
  (`success`; `failure` = failed, timed_out or error; `any` = either), start `target_script_id`;
  a cancelled or rejected run starts nothing, nor does a test run of unsaved content (its
  content was never saved, so nothing downstream runs on its result);
- a link that would close a cycle (the target can already reach the source through links,
  or is the source) is refused when saved: 422 naming `target_script_id`; a second link with
  the same source, target and outcome is a 409;
- the target's parameters: `mapping` (target parameter -> RFC 6901 JSON pointer into the source
  run's facts `{"parameters": {...}, "outputs": {...}, "run": {"id", "status", "exit_code"}}`)
  over the fixed `parameters`, then the target's parameter resolver (a bad value stops the
  chain with the resolver's message). Values are data: they reach the script as parameters,
  never as code or a template;
- a link to a Terraform script names the action (`plan` or `apply`) and workspace of the run it
  starts (`executions.automation_terraform`; the link's choice when the run starts), a link to
  an Ansible script may carry its run options (`executions.automation_run_options`), alike;
- outputs are the lines `::set-output name=NAME::VALUE` (GitHub Actions' workflow-command form,
  `%25`, `%0D`, `%0A` escaping `%`, CR and LF in VALUE) that the source printed on stdout, read
  from its STORED output, which passed the masker: a secret value can only be there as `***`,
  and an output holding `***` is never passed on (the chain stops with an error saying so);
- the chained run starts on behalf of the source run's user (the requester, as Rundeck job
  references and AWX workflow nodes run as the user who launched the parent), by the system
  actor `execution:<source id>` (its `trigger_ref`; `trigger` is `chain`), with that user's
  permissions now; the link's author must also still be active. Approvals apply as to any run,
  and the link's author (recorded with the run: `ChainRun.author_id`) may reject it, never
  approve it: they chose its target and values;
- exactly once: the `chains` run-event subscriber writes one `chain_runs` row per (link, source
  run), unique, inside the outbox delivery's transaction; the starter loop in each process claims
  a `pending` row with a conditional update in the same transaction that creates the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, Field
from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from opscraft.db import stored_shapes
from opscraft.db.engine import Database
from opscraft.db.models import ChainLink, ChainRun, Execution, Script, User
from opscraft.db.models.chains import ChainOutcome, ChainRunStatus
from opscraft.db.models.executions import ExecutionStatus, Trigger
from opscraft.db.turns import read_held
from opscraft.db.types import LT, MAX_ID, compared, utcnow
from opscraft.db.unreachable import RoundFailures
from opscraft.execution import log_pages
from opscraft.execution.masking import MASK
from opscraft.execution.run_events import RunEventMessage
from opscraft.services import audit, executions, names, paging, parameters, partial
from opscraft.services.actor import Actor
from opscraft.services.bodies import Body
from opscraft.services.errors import Conflict, Invalid, NotFound, Problems, ServiceError, unreadable
from opscraft.services.executions import AnsibleRunOptions, AutomationAction, TerraformWorkspace
from opscraft.services.invisible import visible
from opscraft.services.parameters import ParameterValues, PointerMapping
from opscraft.services.partial import CHANGES, over_stored, three_way, unchanged
from opscraft.services.permissions import Permission, can, require
from opscraft.services.run_starter import OwnerRefused, start_for
from opscraft.services.storable import Text
from opscraft.services.webhooks import _MISSING, check_saved_pointer, resolve_pointer

log = logging.getLogger(__name__)

SUBSCRIBER = "chains"
FAILURE_STATUSES = frozenset({ExecutionStatus.failed, ExecutionStatus.timed_out, ExecutionStatus.error})
FACT_ROOTS = ("parameters", "outputs", "run")
RUN_FACTS = ("id", "status", "exit_code")
# A chain longer than this stops (a guard; cycles are refused when links are saved).
MAX_DEPTH = 20
MAX_OUTPUTS = 100
# Chunks of stdout `stored_outputs` reads at once (and at most `log_pages.PAGE_CHARS` characters).
STDOUT_PAGE = 1000
BATCH = 20
# A claimed row whose run was committed but whose bookkeeping was not (the process died in
# between) is looked at again after this long.
LOST_AFTER = timedelta(seconds=60)
# A run that ended this long ago has had its links fired (the outbox is delivered within seconds).
SETTLED_AFTER = timedelta(seconds=60)
_PG_LOCK_ID = 0x0C4A1
OUTPUT_LINE = re.compile(r"^::set-output name=([A-Za-z_][A-Za-z0-9_]{0,63})::(.*?)\r?$")


def _chosen(value: Any) -> Any:
    """`target_script_id: null` (a form with no script chosen) said as what to do."""
    if value is None:
        raise ValueError("choose a script to start")
    return value


class LinkIn(Body):
    """A link as submitted (create and replace)."""

    target_script_id: Annotated[int, BeforeValidator(_chosen)] = Field(
        ge=1, le=MAX_ID, description="The script to start"
    )
    outcome: ChainOutcome = Field(
        default=ChainOutcome.success,
        description="success; failure (failed, timed_out, error); any (either)",
    )
    mapping: PointerMapping = Field(
        default_factory=dict,
        description=(
            "Target parameter name -> JSON pointer (RFC 6901) into the source run's facts: "
            "/parameters/NAME, /outputs/NAME (::set-output lines), /run/id, /run/status, /run/exit_code"
        ),
        examples=[{"ENV": "/parameters/ENV", "VERSION": "/outputs/version"}],
    )
    parameters: ParameterValues = Field(
        default_factory=dict, description="Fixed values, under the mapped ones"
    )
    enabled: bool = True
    terraform_action: AutomationAction = None
    terraform_workspace: TerraformWorkspace = None
    run_options: AnsibleRunOptions | None = Field(
        default=None,
        description="Ansible target scripts only: the run options of the run it starts (--limit, "
        "--tags, --skip-tags, --check, --diff), judged as a manual run's",
    )


class LinkBase(partial.TriggerBase):
    """What a link held when an edit started (`LinkChanges.base`), as `GET` returned it."""

    target_script_id: int = 0
    outcome: Text = ""
    mapping: partial.BaseObject = Field(default_factory=dict)


class LinkChanges(LinkIn):
    """`LinkIn` as a `PUT` body, every field optional (`partial.CHANGES`), and what the fields
    held when the edit started (`base`: `partial.three_way`)."""

    model_config = CHANGES

    base: LinkBase | None = Field(
        default=None, description=partial.BASE_DESCRIPTION, examples=[{"outcome": "success"}]
    )


# --- outputs ---------------------------------------------------------------------------------


def _unescape(value: str) -> str:
    """GitHub Actions' command-value escaping (toolkit `escapeData`): %0D, %0A, %25."""
    return value.replace("%0D", "\r").replace("%0A", "\n").replace("%25", "%")


def parse_outputs(stdout: str) -> dict[str, str]:
    """The outputs a run printed: each line `::set-output name=NAME::VALUE` (NAME a letter or
    `_` then up to 63 letters, digits or `_`) at the start of a stdout line; the last line for a
    name wins; at most MAX_OUTPUTS names (later new names are ignored). Never evaluated."""
    found: dict[str, str] = {}
    _collect(stdout.split("\n"), found)
    return found


def _collect(lines: list[str], found: dict[str, str]) -> None:
    """Add the outputs of `lines` (whole lines of stdout, in order) to `found` (`parse_outputs`)."""
    for line in lines:
        match = OUTPUT_LINE.match(line)
        if match is None:
            continue
        name, value = match.group(1), _unescape(match.group(2))
        if name in found or len(found) < MAX_OUTPUTS:
            found[name] = value


_STDOUT_PAGE = log_pages.page_statement(stream=True)


async def stored_outputs(session: AsyncSession, execution_id: int) -> dict[str, str]:
    """`parse_outputs` of the run's stored stdout (already masked: docs/secrets.md), read in pages
    of at most `STDOUT_PAGE` chunks and `log_pages.PAGE_CHARS` characters (the whole stdout, up
    to `OPSCRAFT_MAX_OUTPUT_BYTES`, was read at once); a line cut between two pages is held
    until its end."""
    found: dict[str, str] = {}
    after, rest = 0, ""
    while True:
        params = log_pages.values(execution_id, after, STDOUT_PAGE, stream="stdout")
        rows = await session.exec(_STDOUT_PAGE, params=params)  # type: ignore[call-overload]
        page = log_pages.page_of(list(rows.all()))
        lines = (rest + "".join(chunk.content for chunk in page.chunks)).split("\n")
        rest = lines.pop()
        _collect(lines, found)
        if not page.more:
            _collect([rest], found)
            return found
        after = page.chunks[-1].seq


# --- links -----------------------------------------------------------------------------------


async def _script(
    session: AsyncSession, script_id: int, field: str | None = None, *, held: bool = False
) -> Script:
    """The live script; `held` (a link is saved from or to it): not deleted until the commit
    (`db.turns.read_held`). `Invalid` naming `field`, else `NotFound`, when missing or deleted."""
    script = await read_held(session, Script, script_id) if held else await session.get(Script, script_id)
    if script is None or script.deleted_at is not None:
        if field is not None:
            raise Invalid.at(field, f"no script with id {script_id}")
        raise NotFound.gone("script")
    return script


async def _serialize_link_changes(session: AsyncSession) -> None:
    """One link change at a time, so two saves cannot close a cycle together: a transaction
    lock on PostgreSQL; SQLite serializes writers (the caller writes before it checks)."""
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        await session.exec(text(f"SELECT pg_advisory_xact_lock({_PG_LOCK_ID})"))  # type: ignore[call-overload]


async def _apply(
    session: AsyncSession, link: ChainLink, data: LinkIn | Mapping[str, Any], *, keep_values: bool = False
) -> None:
    """Check the body (its fields, target, every mapping, fixed value and required parameter of
    the target (`parameters.check_preset`; `keep_values`: the stored mapping and values are kept
    unchecked, `parameters.keeps_stored_values`), the Terraform action and
    workspace and the Ansible run options as a manual run of the target's,
    `executions.automation_terraform` and `automation_run_options`: one `Invalid`
    naming all, each check run on the fields the body model accepted), refuse a duplicate link
    (`Conflict`), then set them on `link`."""
    problems = Problems()
    body, sent = problems.body(LinkIn, data)
    refused = problems.fields() & {"body", "mapping", "parameters"}
    if keep_values:
        sent = {k: v for k, v in sent.items() if k not in parameters.PRESET_VALUES}
    target: Script | None = None
    if "target_script_id" in sent:
        with problems.check():
            target = await _script(session, sent["target_script_id"], "target_script_id", held=True)
    declared = {spec["name"] for spec in target.parameters} if target else None
    undeclared = f"unknown parameter: script {target.name!r} does not declare it" if target else ""
    for name, pointer in sent.get("mapping", {}).items():
        if declared is not None and name not in declared:
            problems.add(f"mapping.{visible(name)}", parameters.undeclared(name, undeclared))
            continue
        try:
            tokens = check_saved_pointer(pointer)
        except ValueError as exc:
            problems.add(f"mapping.{name}", str(exc))
            continue
        if (
            len(tokens) != 2
            or tokens[0] not in FACT_ROOTS
            or (tokens[0] == "run" and tokens[1] not in RUN_FACTS)
        ):
            problems.add(
                f"mapping.{name}",
                "must be /parameters/NAME, /outputs/NAME, /run/id, /run/status or /run/exit_code",
            )
    fixed = sent.get("parameters", {})
    for name in fixed:
        if declared is not None and name not in declared:
            problems.add(f"parameters.{visible(name)}", parameters.undeclared(name, undeclared))
    action = workspace = options = None
    if target is not None:
        with problems.check():
            parameters.check_preset(
                target.parameters,
                None if refused or sent.get("enabled") is False else sent.get("mapping", {}),
                fixed,
                parameters.FROM_SOURCE_RUN,
            )
        with problems.check():
            action, workspace = executions.automation_terraform(
                target.script_type, sent.get("terraform_action"), sent.get("terraform_workspace")
            )
        with problems.check():
            options = executions.automation_run_options(target.script_type, sent.get("run_options"))
    problems.raise_if_any()
    assert body is not None and target is not None  # else raised above
    data = body
    duplicate = (
        await session.exec(
            select(ChainLink.id).where(
                col(ChainLink.script_id) == link.script_id,
                col(ChainLink.target_script_id) == data.target_script_id,
                col(ChainLink.outcome) == data.outcome.value,
                col(ChainLink.id) != (link.id or 0),
            )
        )
    ).first()
    if duplicate is not None:
        outcome = data.outcome.value
        raise _duplicate(f"link {duplicate} already starts {target.name!r} on {outcome}: edit it instead")
    link.target_script_id, link.outcome, link.enabled = (
        data.target_script_id,
        data.outcome.value,
        data.enabled,
    )
    link.mapping, link.parameters = dict(data.mapping), dict(data.parameters)
    link.terraform_action, link.terraform_workspace = action, workspace
    link.run_options = options


async def _check_acyclic(session: AsyncSession, link: ChainLink) -> None:
    """After the link is flushed (the write lock on SQLite), under the lock on PostgreSQL."""
    others = await session.exec(
        select(ChainLink.script_id, ChainLink.target_script_id).where(col(ChainLink.id) != link.id)
    )
    edges: dict[int, set[int]] = {}
    for frm, to in others.all():
        edges.setdefault(frm, set()).add(to)
    path = _path(edges, link.target_script_id, link.script_id)
    if path is not None:
        names = {
            s.id: s.name
            for s in (
                await session.exec(select(Script).where(col(Script.id).in_([link.script_id, *path])))
            ).all()
        }
        chain = " -> ".join(repr(names.get(i, i)) for i in [link.script_id, *path])
        raise Invalid.at("target_script_id", f"this link would make a cycle: {chain}")


def _path(edges: dict[int, set[int]], start: int, goal: int) -> list[int] | None:
    """A path start -> ... -> goal through `edges` (breadth first), or None."""
    came_from: dict[int, int | None] = {start: None}
    queue = [start]
    while queue:
        node = queue.pop(0)
        if node == goal:
            path: list[int] = []
            at: int | None = node
            while at is not None:
                path.append(at)
                at = came_from[at]
            return path[::-1]
        for nxt in sorted(edges.get(node, ())):
            if nxt not in came_from:
                came_from[nxt] = node
                queue.append(nxt)
    return None


def _audit_link(session: AsyncSession, actor: Actor, action: str, link: ChainLink) -> None:
    audit.record(
        session,
        actor,
        action,
        "chain_link",
        link.id,
        script_id=link.script_id,
        target_script_id=link.target_script_id,
        outcome=str(link.outcome),
        mapping=dict(link.mapping),
        parameters=sorted(link.parameters),
        enabled=link.enabled,
        terraform_action=link.terraform_action,
        terraform_workspace=link.terraform_workspace,
        run_options=link.run_options,
    )


async def create(
    session: AsyncSession, actor: Actor, script_id: int, data: LinkIn | Mapping[str, Any]
) -> ChainLink:
    """A new link on `script_id`, authored by the caller (operators and admins).

    Raises NotFound (script), Invalid naming the field (target, mapping, parameters, cycle),
    Conflict (same source, target and outcome)."""
    user = require(actor.user, Permission.edit_scripts, 'manage "then run" links')
    # The link lock first, then the scripts' rows: never a share lock waiting on that lock.
    await _serialize_link_changes(session)
    await _script(session, script_id, held=True)
    link = ChainLink(
        script_id=script_id, target_script_id=0, outcome=ChainOutcome.success.value, owner_id=user.id
    )
    await _apply(session, link, data)
    session.add(link)
    await _checked(session, link)
    _audit_link(session, actor, "chain_link.create", link)
    await session.commit()
    return link


def _duplicate(message: str) -> Conflict:
    """The 409 of a link whose source, target and outcome another link has (the unique
    constraint on the three), naming `target_script_id`: the field the form shows it under."""
    return Conflict(message, details=[{"field": "target_script_id", "message": message}])


async def _checked(session: AsyncSession, link: ChainLink) -> None:
    """Flush the link and check it closes no cycle; rolls back on a refusal. A duplicate saved
    at the same moment by someone else (SQLite: the unique constraint decides) is a 409."""
    try:
        await session.flush()
        await _check_acyclic(session, link)
    except IntegrityError:
        await session.rollback()
        raise _duplicate("an identical link was saved at the same moment: reload the links") from None
    except Invalid:
        await session.rollback()
        raise


async def get(session: AsyncSession, actor: Actor, link_id: int, script_id: int | None = None) -> ChainLink:
    """A chain link by id (of `script_id` when given); needs view_scripts.

    Raises NotFound (404) for an unknown link or one of another script.
    """
    require(actor.user, Permission.view_scripts)
    link = await session.get(ChainLink, link_id)
    if link is None or (script_id is not None and link.script_id != script_id):
        raise NotFound.gone('"then run" link')
    return link


async def list_for_script(
    session: AsyncSession, actor: Actor, script_id: int, *, skip: int = 0, limit: int = paging.DEFAULT_PAGE
) -> tuple[list[ChainLink], int]:
    """A page (`paging.page`) of the links leaving `script_id`, oldest first (by id), and how many
    there are; `NotFound` (404) for a missing or deleted script."""
    require(actor.user, Permission.view_scripts)
    await _script(session, script_id)
    query = select(ChainLink).where(col(ChainLink.script_id) == script_id).order_by(col(ChainLink.id))
    return await paging.page(session, query, skip, limit)


async def update_link(
    session: AsyncSession,
    actor: Actor,
    link_id: int,
    data: LinkIn | Mapping[str, Any],
    script_id: int | None = None,
    base: Mapping[str, Any] | None = None,
) -> ChainLink:
    """Change a link's settings (a field `data` leaves out keeps its stored value:
    `partial.over_stored`); the caller becomes its author. Same checks as `create`. A save that
    changes nothing (`partial.unchanged`) writes nothing and is not audited. `base` (field ->
    stored value when the edit started; else the body's `base`: `partial.split_base`): a field
    of `data` changed meanwhile by someone else is a `Conflict` (409 naming it, nothing
    written: `partial.three_way`)."""
    user = require(actor.user, Permission.edit_scripts, 'manage "then run" links')
    await _serialize_link_changes(session)
    link = await get(session, actor, link_id, script_id)
    data, base = partial.split_base(LinkChanges, data, base)
    if base is not None:
        data = three_way(link, data, base, 'the "then run" link', user.id)
    body, data = data, over_stored(LinkIn, data, link)
    keep = parameters.keeps_stored_values(body, data, {"target_script_id"})
    await _apply(session, link, data, keep_values=keep)
    if unchanged(link):
        await session.commit()
        return link
    link.owner_id, link.updated_at = user.id, utcnow()
    await _checked(session, link)
    _audit_link(session, actor, "chain_link.update", link)
    await session.commit()
    return link


async def delete(session: AsyncSession, actor: Actor, link_id: int, script_id: int | None = None) -> None:
    """Delete a chain link (audited as `chain_link.delete`, committed); needs edit_scripts.

    Raises NotFound (404) for an unknown link or one of another script, Forbidden (403) without the
    permission.
    """
    require(actor.user, Permission.edit_scripts, 'manage "then run" links')
    link = await get(session, actor, link_id, script_id)
    _audit_link(session, actor, "chain_link.delete", link)
    await session.delete(link)
    await session.commit()


async def script_names(session: AsyncSession, script_ids: set[int]) -> dict[int, str]:
    """id -> name of the given scripts (for lists)."""
    if not script_ids:
        return {}
    rows = await session.exec(select(Script.id, Script.name).where(col(Script.id).in_(script_ids)))
    return {int(i): n for i, n in rows.all()}


async def owner_name(session: AsyncSession, link: ChainLink) -> str | None:
    """The username of the link's owner, None when it has none (deleted)."""
    owner = await session.get(User, link.owner_id) if link.owner_id else None
    return owner.username if owner else None


# --- firing ----------------------------------------------------------------------------------


def outcome_matches(outcome: ChainOutcome | str, status: str) -> bool:
    """Does a run that ended with `status` fire a link with `outcome`?"""
    succeeded = status == ExecutionStatus.success
    failed = status in FAILURE_STATUSES
    return {
        ChainOutcome.success: succeeded,
        ChainOutcome.failure: failed,
        ChainOutcome.any: succeeded or failed,
    }[ChainOutcome(outcome)]


def map_parameters(link: ChainLink, facts: dict[str, Any]) -> dict[str, Any]:
    """The target's parameter values before its resolver: `parameters`, then each mapped fact
    found (a pointer that finds nothing leaves the parameter to its default). Raises Invalid
    naming `mapping.NAME` when the fact is an output that held a masked secret value."""
    values = dict(link.parameters)
    for name, pointer in link.mapping.items():
        found = resolve_pointer(facts, pointer)
        if found is _MISSING:
            continue
        if pointer.startswith("/outputs/") and isinstance(found, str) and MASK in found:
            raise Invalid.at(
                f"mapping.{name}",
                f"output {pointer[9:]!r} holds a masked secret value ({MASK}): secrets are never "
                "passed on; attach the secret to the target script instead",
            )
        values[name] = found
    return values


async def on_run_events(session: AsyncSession, events: list[RunEventMessage]) -> None:
    """Run-event subscriber (`lifecycle.start` registers it): one `chain_runs` row per enabled
    link whose outcome the finished run matches, written inside the dispatcher's transaction
    (exactly once per event); the starter loop starts them after the commit. The scripts with an
    enabled link are read once per batch: with none (the usual case) a batch costs that query."""
    ended = [e for e in events if outcome_matches(ChainOutcome.any, e.status)]
    said = {e.details["script_id"] for e in ended if "script_id" in e.details}
    linked = await _scripts_with_links(session, said - {None})
    added = False
    for event in ended:  # an event that does not name its script is looked up
        if "script_id" not in event.details or event.details["script_id"] in linked:
            added |= await _fire_links(session, event.execution_id)
    if added:
        asyncio.get_running_loop().call_later(0.2, wake)


# Built once: the run-event delivery runs it for every batch of finished runs (issue 15).
_SCRIPTS_WITH_LINKS = (
    select(ChainLink.script_id)
    .where(col(ChainLink.script_id).in_(bindparam("script_ids", expanding=True)), col(ChainLink.enabled))
    .distinct()
)


async def _scripts_with_links(session: AsyncSession, script_ids: set[Any]) -> set[int]:
    """Those of `script_ids` that have an enabled chain link."""
    if not script_ids:
        return set()
    rows = await (await session.connection()).execute(_SCRIPTS_WITH_LINKS, {"script_ids": sorted(script_ids)})
    return set(rows.scalars().all())


async def _fire_links(session: AsyncSession, execution_id: int) -> bool:
    """One `chain_runs` row per enabled link of run `execution_id`'s script whose outcome it
    matches: `pending`, or `error` saying why it is not started (too deep, the link's settings
    or, for a link that maps the run's parameters, the run's stored parameters cannot be read:
    they read as `{}`, and each mapped value silently fell back to its default). True when any
    row was written."""
    source = await session.get(Execution, execution_id)
    if source is None or source.draft:  # a test run's content was never saved: it starts nothing
        return False
    links = [
        link
        for link in (
            await session.exec(
                select(ChainLink)
                .where(col(ChainLink.script_id) == source.script_id, col(ChainLink.enabled))
                .order_by(col(ChainLink.id))
            )
        ).all()
        if outcome_matches(link.outcome, source.status)
    ]
    if not links:
        return False
    parent = (
        await session.exec(select(ChainRun.depth).where(col(ChainRun.execution_id) == execution_id))
    ).first()
    depth = (parent or 0) + 1
    unread = {k: p for k, p in stored_shapes.problems(source).items() if k == "parameters"}
    facts = {
        "parameters": dict(source.parameters),
        "outputs": await stored_outputs(session, execution_id),
        "run": {"id": source.id, "status": str(source.status), "exit_code": source.exit_code},
    }
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    for link in links:
        status, error, values = ChainRunStatus.pending, None, {}
        if depth > MAX_DEPTH:
            status, error = ChainRunStatus.error, f"the chain is longer than {MAX_DEPTH} runs: stopped"
        elif (stored := stored_shapes.note(link)) is not None:
            status, error = ChainRunStatus.error, f"the link's stored settings cannot be read: {stored}"
            log.warning("chain link %s not fired for run %s: %s", link.id, execution_id, error)
        elif unread and any(str(p).startswith("/parameters") for p in link.mapping.values()):
            status = ChainRunStatus.error
            error = f"the source run's stored parameters cannot be read: {stored_shapes.worded(unread)}"
            log.warning("chain link %s not fired for run %s: %s", link.id, execution_id, error)
        else:
            try:
                values = map_parameters(link, facts)
            except Invalid as exc:
                status, error = ChainRunStatus.error, exc.message
        await session.exec(
            insert(ChainRun)  # type: ignore[call-overload]
            .values(
                link_id=link.id,
                source_execution_id=execution_id,
                target_script_id=link.target_script_id,
                status=status,
                parameters=values,
                depth=depth,
                error=error,
                created_at=utcnow(),
            )
            .on_conflict_do_nothing()
        )
        if error is not None:
            audit.record(
                session,
                Actor(None),
                "chain_run.error",
                "chain_link",
                link.id,
                actor_name=f"execution:{execution_id}",
                source_execution_id=execution_id,
                target_script_id=link.target_script_id,
                reason=error,
            )
    return True


_wakeup: asyncio.Event | None = None


def wake() -> None:
    """Tell this process's starter loop that chained runs are due."""
    if _wakeup is not None:
        _wakeup.set()


async def start_due(db: Database) -> int:
    """Start every pending chained run (any number of processes at once); returns how many
    this call handled. Each row is claimed in the transaction that creates its run."""
    async with db.session() as session:
        due = (
            await session.exec(
                select(ChainRun.id)
                .where(col(ChainRun.status) == ChainRunStatus.pending)
                .order_by(col(ChainRun.id))
                .limit(BATCH)
            )
        ).all()
    handled = 0
    for chain_run_id in due:
        assert chain_run_id is not None
        async with db.session() as session:
            handled += await _start_one(session, chain_run_id)
    return handled


async def _start_one(session: AsyncSession, chain_run_id: int) -> int:
    claimed = await session.exec(
        update(ChainRun)
        .where(col(ChainRun.id) == chain_run_id, col(ChainRun.status) == ChainRunStatus.pending)
        .values(status=ChainRunStatus.starting, started_at=utcnow())
    )
    if claimed.rowcount != 1:  # another process took it
        await session.rollback()
        return 0
    row = await session.get(ChainRun, chain_run_id)
    assert row is not None
    source = await session.get(Execution, row.source_execution_id)
    link = await session.get(ChainLink, row.link_id) if row.link_id is not None else None
    author = await session.get(User, link.owner_id) if link is not None and link.owner_id else None
    ref = f"execution:{row.source_execution_id}"
    try:
        if link is None or source is None:
            raise Invalid.at("link_id", "the link was deleted before the run could start")
        if (stored := stored_shapes.note(link) or stored_shapes.note(row)) is not None:
            found = stored_shapes.problems(link) or stored_shapes.problems(row)
            raise Conflict(f"the link's stored settings cannot be read: {stored}", details=unreadable(found))
        if not can(author, Permission.execute_scripts):
            raise OwnerRefused(
                "the link's author is deactivated or deleted: someone must save the link again"
            )
        assert author is not None
        # Committed with the run: who chose what it runs may not approve it (services/approvals.py).
        row.author_id = author.id
        execution = await start_for(
            session,
            source.triggered_by,
            ref,
            Trigger.chain,
            row.target_script_id,
            dict(row.parameters),
            link.terraform_action,
            link.terraform_workspace,
            link.run_options,
        )
    except (OwnerRefused, ServiceError) as exc:
        refused = isinstance(exc, OwnerRefused)
        message = str(exc) if refused else exc.message  # type: ignore[union-attr]
        await session.rollback()
        return await _end(
            session, chain_run_id, ChainRunStatus.refused if refused else ChainRunStatus.error, message
        )
    row = await session.get(ChainRun, chain_run_id)
    assert row is not None
    row.status, row.execution_id = ChainRunStatus.started, execution.id
    await session.commit()
    return 1


async def _end(session: AsyncSession, chain_run_id: int, status: ChainRunStatus, message: str) -> int:
    """Record a chained run that could not start (from `pending` or `starting`), audited."""
    ended = await session.exec(
        update(ChainRun)
        .where(
            col(ChainRun.id) == chain_run_id,
            col(ChainRun.status).in_([ChainRunStatus.pending, ChainRunStatus.starting]),
        )
        .values(status=status, error=message[:1000])
    )
    if ended.rowcount == 1:
        row = await session.get(ChainRun, chain_run_id)
        assert row is not None
        audit.record(
            session,
            Actor(None),
            "chain_run.refused" if status == ChainRunStatus.refused else "chain_run.error",
            "chain_link",
            row.link_id,
            actor_name=f"execution:{row.source_execution_id}",
            source_execution_id=row.source_execution_id,
            target_script_id=row.target_script_id,
            reason=message[:1000],
        )
    await session.commit()
    return 1


async def recover_lost(db: Database) -> int:
    """Rows left `starting` by a process that died after its run was committed but before the
    bookkeeping: attach the chained run (found by its `trigger_ref`), or mark the row `error`."""
    async with db.session() as session:
        stale = (
            await session.exec(
                select(ChainRun).where(
                    col(ChainRun.status) == ChainRunStatus.starting,
                    compared(col(ChainRun.started_at), LT, utcnow() - LOST_AFTER),
                )
            )
        ).all()
        for row in stale:
            attached = select(ChainRun.execution_id).where(col(ChainRun.execution_id).is_not(None))
            found = (
                await session.exec(
                    select(Execution.id)
                    .where(
                        col(Execution.trigger) == Trigger.chain.value,
                        col(Execution.trigger_ref) == f"execution:{row.source_execution_id}",
                        col(Execution.script_id) == row.target_script_id,
                        col(Execution.id).not_in(attached),
                    )
                    .order_by(col(Execution.id))
                )
            ).first()
            if found is not None:
                row.status, row.execution_id = ChainRunStatus.started, found
            else:
                row.status, row.error = ChainRunStatus.error, "the process starting the run stopped"
        await session.commit()
        return len(stale)


async def run_starter(db: Database, *, idle_seconds: float = 2.0) -> None:
    """Start pending chained runs until cancelled; woken at once by `wake()` in this process,
    else polls every `idle_seconds` (rows written by other processes).

    The first round comes at the first wake-up or after `idle_seconds`, not at the start (as
    `notifications.run_sender`'s): rows left `starting` by a stopped process are only taken back
    `LOST_AFTER` after their start anyway, and pending ones wait at most `idle_seconds`."""
    global _wakeup
    _wakeup = asyncio.Event()
    failures = RoundFailures(log, "starting chained runs")
    while True:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(idle_seconds):
                await _wakeup.wait()
        _wakeup.clear()
        try:
            await recover_lost(db)
            await start_due(db)
            failures.succeeded()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            failures.failed(exc)


# --- reading ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainStep:
    """One firing, seen from either end: the row, the other run's script name."""

    run: ChainRun
    script_name: str | None


@dataclass(frozen=True)
class ExecutionChain:
    """How a run sits in a chain: the firing that started it (None if it was not chained),
    and the firings it caused (started, refused or failed to start). `settled`: the run ended
    over `SETTLED_AFTER` ago and none of its firings is still pending: nothing will change."""

    started_by: ChainStep | None
    started: list[ChainStep]
    settled: bool


async def chain_of(session: AsyncSession, actor: Actor, execution_id: int) -> ExecutionChain:
    """The chain around a run (anyone who may view runs). Raises NotFound."""
    require(actor.user, Permission.view_scripts)
    execution = await session.get(Execution, execution_id)
    if execution is None:
        raise NotFound.gone("execution")
    parent = (await session.exec(select(ChainRun).where(col(ChainRun.execution_id) == execution_id))).first()
    children = list(
        (
            await session.exec(
                select(ChainRun)
                .where(col(ChainRun.source_execution_id) == execution_id)
                .order_by(col(ChainRun.id))
            )
        ).all()
    )
    source = await session.get(Execution, parent.source_execution_id) if parent else None
    names = await script_names(session, {c.target_script_id for c in children})
    ended_long_ago = execution.finished_at is not None and execution.finished_at < utcnow() - SETTLED_AFTER
    pending = any(c.status in (ChainRunStatus.pending, ChainRunStatus.starting) for c in children)
    return ExecutionChain(
        started_by=ChainStep(parent, source.script_name if source else None) if parent else None,
        started=[ChainStep(c, names.get(c.target_script_id)) for c in children],
        settled=ended_long_ago and not pending,
    )


async def target_choices(session: AsyncSession, actor: Actor, script_id: int) -> list[tuple[int, str, str]]:
    """(id, name, script type) of the scripts a link from `script_id` could start (not deleted,
    not itself), by name: the choices a form offers (cycles are still checked when the link is
    saved; the type says which run options apply)."""
    require(actor.user, Permission.view_scripts)
    rows = await session.exec(
        select(Script.id, Script.name, Script.script_type)
        .where(col(Script.deleted_at).is_(None), col(Script.id) != script_id)
        .order_by(*names.name_order(Script.name))
    )
    return [(int(i), n, str(stored_shapes.as_loaded(Script, "script_type", t))) for i, n, t in rows.all()]
