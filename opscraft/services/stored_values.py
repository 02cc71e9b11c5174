"""Parameter values stored for later runs that a script's new parameters no longer accept.

A schedule's, a webhook's and an incoming "then run" link's values are checked against the
script's parameters when they are saved (services/schedules.py, webhooks.py, chains.py). A later
change of the parameters (a save or a rollback of the script) can break them: the next fire,
call or chained run would be refused (422). The save still goes through (the author may fix them
next), and returns one `Notice` (code `stored-parameters`) per trigger that no longer fits, naming
it and its first problems, so the API's `notices` and the editor say what to fix.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from opscraft.db.models import Script
from opscraft.db.models.automation import Schedule, WebhookTrigger
from opscraft.db.models.chains import ChainLink
from opscraft.services import parameters
from opscraft.services.errors import Invalid
from opscraft.services.line_endings import Notice

CODE = "stored-parameters"
MAX_PROBLEMS = 3  # named per trigger in its notice; "..." says there are more


def _problems_of_preset(
    schema: list[dict[str, Any]], mapping: dict[str, str], values: dict[str, Any], mapped_from: str
) -> list[str]:
    """What the run-time check will refuse in a webhook's or link's `mapping` and fixed `values`:
    undeclared names, and what `parameters.check_preset` refuses when they are saved (bad values,
    a required parameter without a default that neither maps nor gives, so that every call or
    chained run lacks it; `mapped_from` says where its mapping reads)."""
    declared = {spec["name"] for spec in schema}
    problems = [f"mapping.{n}: no longer declared" for n in mapping if n not in declared]
    problems += [f"parameters.{n}: no longer declared" for n in values if n not in declared]
    try:
        parameters.check_preset(
            schema, mapping, {n: v for n, v in values.items() if n in declared}, mapped_from
        )
    except Invalid as exc:
        problems += [f"{d['field']}: {d['message']}" for d in exc.details]
    return problems


def _problems_of_schedule(
    schema: list[dict[str, Any]], script_type: str, values: dict[str, Any]
) -> list[str]:
    try:
        parameters.resolve(schema, values, script_type)
    except Invalid as exc:
        return [f"{d['field']}: {d['message']}" for d in exc.details]
    return []


def _notice(what: str, problems: list[str], consequence: str) -> Notice:
    listed = "; ".join(problems[:MAX_PROBLEMS]) + ("; ..." if len(problems) > MAX_PROBLEMS else "")
    return Notice(CODE, f"{what} stores parameters the script no longer accepts ({listed}): {consequence}")


async def broken_by(session: AsyncSession, script: Script) -> list[Notice]:
    """One notice per schedule, webhook or incoming link of `script` whose stored values its
    current `parameters` (and `script_type`) refuse; [] when all fit. Reads, writes nothing."""
    schema, script_id = script.parameters, script.id
    notices = []
    for schedule in await session.exec(
        select(Schedule).where(col(Schedule.script_id) == script_id).order_by(col(Schedule.id))
    ):
        problems = _problems_of_schedule(schema, script.script_type, schedule.parameters)
        if problems:
            notices.append(
                _notice(f"schedule {schedule.name!r}", problems, "its next fire will fail; edit or pause it")
            )
    for hook in await session.exec(
        select(WebhookTrigger)
        .where(col(WebhookTrigger.script_id) == script_id)
        .order_by(col(WebhookTrigger.id))
    ):
        problems = _problems_of_preset(schema, hook.mapping, hook.parameters, parameters.FROM_REQUEST_BODY)
        if problems:
            refused = "its calls will be refused; edit or pause it"
            notices.append(_notice(f"webhook {hook.name!r}", problems, refused))
    links = await session.exec(
        select(ChainLink, Script.name)
        .join(Script, col(Script.id) == col(ChainLink.script_id))
        .where(col(ChainLink.target_script_id) == script_id)
        .order_by(col(ChainLink.id))
    )
    for link, source in links:
        problems = _problems_of_preset(schema, link.mapping, link.parameters, parameters.FROM_SOURCE_RUN)
        if problems:
            what = f"the 'then run' link from script {source!r}"
            notices.append(_notice(what, problems, "its chained runs will be refused; edit or pause it"))
    return notices
