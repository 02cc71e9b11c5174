"""Schedules: run a script on a cron expression, on behalf of its owner, exactly once per fire time.

Rules:
- a schedule has a 5-field cron expression (minute hour day-of-month month day-of-week, iterated
  by croniter; saved only when croniter reads it as written: `check_cron`) evaluated in an IANA
  time zone (zoneinfo, `check_timezone`), so "0 9 * * 1-5" in
  Europe/Paris stays 09:00 local across daylight-saving changes (a wall-clock time the fall-back
  repeats fires once, as in cronie: `fire_times`); parameters are checked by the
  script's parameter resolver when saved and again when it fires;
- creating or editing needs `edit_scripts`; the runs start on behalf of the user who last saved
  it (the owner), whose permission is checked at each fire: a deactivated or deleted owner
  pauses the schedule (audited `schedule.paused`), until someone saves it again;
- exactly once per fire time with any number of processes: a fire is claimed in one transaction
  by advancing `next_fire_at` with a conditional update and inserting the (schedule, fire time)
  row whose primary key forbids a second claim. A process that crashes right after the claim
  loses that one fire (never runs it twice);
- missed fires (the server was down past `MISSED_GRACE`): policy `run_once` runs once now for
  the latest missed time, `skip` records it as skipped and waits for the next;
- overlap, when the schedule's previous run is still queued or running: `skip` records the fire
  as skipped, `queue` keeps it waiting and starts it when the previous run ends (fires beyond
  one waiting are skipped; a schedule paused meanwhile skips it), `allow` starts it anyway;
- a Terraform script's schedule names the action (`plan` or `apply`) and workspace of its runs,
  checked as a manual run's when saved (`executions.automation_terraform`) and again at each
  fire; a choice the script refuses by then (its type changed) is an `error` fire, no run;
- an Ansible script's schedule may carry the run options of its runs (`limit`, `tags`,
  `skip_tags`, `check`, `diff`), judged as a manual run's when saved
  (`executions.automation_run_options`) and again at each fire, alike.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import re
import socket
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import CroniterError, croniter
from pydantic import Field, field_validator
from sqlalchemy import Table, bindparam, func
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from opscraft.db import stored_shapes
from opscraft.db.engine import Database
from opscraft.db.models import Execution, Schedule, ScheduleFire, Script, User
from opscraft.db.models.automation import MissedPolicy, OverlapPolicy
from opscraft.db.models.executions import FINAL_STATUSES, Trigger
from opscraft.db.turns import read_held
from opscraft.db.types import LE, compared, earlier, utcnow
from opscraft.db.unreachable import RoundFailures
from opscraft.services import approvals, audit, conflicts, executions, names, paging, parameters, partial
from opscraft.services.actor import Actor
from opscraft.services.bodies import Body
from opscraft.services.errors import Invalid, NotFound, Problems, ServiceError
from opscraft.services.executions import AnsibleRunOptions, AutomationAction, TerraformWorkspace
from opscraft.services.fire_times import day_halves, next_times, previous_time
from opscraft.services.invisible import Label
from opscraft.services.parameters import ParameterValues
from opscraft.services.partial import CHANGES, over_stored, three_way, unchanged
from opscraft.services.permissions import Permission, require
from opscraft.services.run_starter import OwnerRefused, start_for
from opscraft.services.scripts import SCRIPT_DELETED
from opscraft.services.storable import Text

# What a refusal names (services/permissions.require; the routes' early check says the same).
MANAGE = "manage schedules"

log = logging.getLogger(__name__)

MISSED_GRACE = timedelta(seconds=60)
BATCH = 200
MIN_IDLE_SECONDS = 0.2
PREVIEW = 5


T = TypeVar("T")


class ScheduleIn(Body):
    """A schedule as created or replaced: a cron expression (5 fields, or a macro such as @daily) read in
    an IANA time zone, and the parameters and policies of its runs.
    """

    name: Label = Field(min_length=1, max_length=64, examples=["nightly"])
    cron: str = Field(min_length=1, max_length=128, examples=["30 2 * * *"])
    timezone: str = Field(default="UTC", max_length=64, examples=["Europe/Paris"])
    parameters: ParameterValues = Field(default_factory=dict)
    enabled: bool = True
    missed_policy: MissedPolicy = MissedPolicy.run_once
    overlap_policy: OverlapPolicy = OverlapPolicy.skip
    terraform_action: AutomationAction = None
    terraform_workspace: TerraformWorkspace = None
    run_options: AnsibleRunOptions | None = Field(
        default=None,
        description="Ansible scripts only: the run options of the runs it starts (--limit, --tags, "
        "--skip-tags, --check, --diff), judged as a manual run's",
    )

    # Checked with the other fields, so that a form shows every field's problem at once.
    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        """Normalised by `check_cron` (its message when it refuses)."""
        return _as_value_error(check_cron, value)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        """Trimmed, like the cron expression (" Europe/Paris " pasted with its spaces is the zone),
        and spelled as IANA does (`check_timezone`). Empty or blank is `UTC`, the zone of a body
        that leaves the field out, for the API and the schedule form alike (its label says
        "empty: UTC"; the API refused `""` as an unknown time zone)."""
        return _as_value_error(check_timezone, value.strip() or "UTC").key


class ScheduleBase(partial.TriggerBase):
    """What a schedule held when an edit started (`ScheduleChanges.base`), as `GET` returned it."""

    name: Text = ""
    cron: Text = ""
    timezone: Text = ""
    missed_policy: MissedPolicy = MissedPolicy.run_once
    overlap_policy: OverlapPolicy = OverlapPolicy.skip


class ScheduleChanges(ScheduleIn):
    """`ScheduleIn` as a `PUT` body, every field optional (`partial.CHANGES`), and what the
    fields held when the edit started (`base`: `partial.three_way`)."""

    model_config = CHANGES

    base: ScheduleBase | None = Field(
        default=None, description=partial.BASE_DESCRIPTION, examples=[{"cron": "30 2 * * *"}]
    )


def _as_value_error(check: Callable[[str], T], value: str) -> T:
    """`check(value)`, its `Invalid` turned into the `ValueError` a pydantic validator raises."""
    try:
        return check(value)
    except Invalid as exc:
        raise ValueError(exc.details[0]["message"]) from None


# The five fields (name, lowest, highest, the names it also takes), as croniter reads them.
CRON_FIELDS = (
    ("minute", 0, 59, ""),
    ("hour", 0, 23, ""),
    ("day-of-month", 1, 31, ""),
    ("month", 1, 12, " or JAN-DEC"),
    ("day-of-week", 0, 7, " (0 and 7 are Sunday) or SUN-SAT"),
)
_CRON_FORMS = "numbers, * for every value, lists (1,15), ranges (1-5) and steps (*/15)"
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_DAY_NAMES = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
_NAMES: tuple[dict[str, int], ...] = (
    {},
    {},
    {},
    {name: number for number, name in enumerate(_MONTHS, 1)},
    {name: number for number, name in enumerate(_DAYS)},
)
# cron's macros, each the 5 fields it stands for (`@reboot` has no time: refused).
CRON_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_ITEM = re.compile(r"(?P<base>\*|[A-Za-z0-9]+(?:-[A-Za-z0-9]+)?)(?:/(?P<step>[0-9]+))?")
_SPECIAL = (  # croniter's extensions, in the fields that take them (values checked below; any case)
    (),
    (),
    (re.compile(r"L", re.IGNORECASE), re.compile(r"(?P<value>[0-9]+)W", re.IGNORECASE)),
    (),
    (
        re.compile(r"(?P<value>[A-Za-z0-9]+)#(?P<nth>[0-9]+)", re.IGNORECASE),
        re.compile(r"L(?P<value>[0-9]+)", re.IGNORECASE),
    ),
)
# Quartz's and other crons' last-day forms croniter does not read, each (field index, pattern,
# what to write instead): told as such rather than as "not valid".
_OTHER_LAST_FORMS = (
    (
        4,
        re.compile(r"(?P<day>[A-Za-z0-9]+)L", re.IGNORECASE),
        "{item} is Quartz's form: write L{number} for the last {name}",
    ),
    (
        4,
        re.compile(r"L(?P<day>[A-Za-z]+)", re.IGNORECASE),
        "write L{number} for the last {name} (a number after L, not a name)",
    ),
    (
        4,
        re.compile(r"L", re.IGNORECASE),
        "L alone is for the day-of-month field (the month's last day); L5 here is the last Friday",
    ),
    (
        2,
        re.compile(r"LW", re.IGNORECASE),
        "LW (the month's last weekday) is not read here: use L (the month's last day) or 15W",
    ),
    (
        2,
        re.compile(r"L-[0-9]+", re.IGNORECASE),
        "{item} (days before the month's last) is not read here: use L (the last day)",
    ),
    (
        2,
        re.compile(r"L[0-9]+", re.IGNORECASE),
        "L stands alone here (the month's last day); L5 in the day-of-week field is the last Friday",
    ),
)


class _Refused(Exception):
    """What is wrong with one field (the message, without the field's name)."""


def _value(index: int, text: str) -> int:
    """One value of field `index`: ASCII digits or (month, day-of-week) a name, in range."""
    _, low, high, names = CRON_FIELDS[index]
    if text.isascii() and text.isdigit():
        number = int(text)
    elif text.upper() in _NAMES[index]:
        number = _NAMES[index][text.upper()]
    else:
        raise _Refused(f"is not valid: use {low}-{high}{names}; {_CRON_FORMS}")
    if not low <= number <= high:
        raise _Refused(f"{text} is out of range, use {low}-{high}{names}")
    return number


def _item_values(index: int, item: str) -> set[int]:
    """The values one comma-separated item of field `index` stands for: `*`, `5`, `1-5`, each
    with an optional `/step`, and `5/15` (from 5 to the field's end, croniter's reading)."""
    _, low, high, _ = CRON_FIELDS[index]
    top = 6 if index == 4 else high  # a day-of-week step runs over 0-6 (7 is Sunday again)
    _refuse_other_last_form(index, item)
    match = _ITEM.fullmatch(item)
    if match is None:
        if "/" in item and not re.fullmatch(r"[0-9]+", item.rpartition("/")[2]):
            raise _Refused("the step after / must be a whole number of at least 1")
        raise _Refused(f"is not valid: use {low}-{high}{CRON_FIELDS[index][3]}; {_CRON_FORMS}")
    base, step_text = match["base"], match["step"]
    if base == "*":
        first, last = low, top
    elif "-" in base:
        first, last = (_value(index, part) for part in base.split("-"))
        if first > last:
            raise _Refused(_backwards(index, base, first, last))
        if first == last:
            raise _Refused(f"the range {base} is one value: write {base.split('-')[0]}")
    else:
        first = last = _value(index, base)
        if step_text is not None:
            last = top  # `5/15`: from 5 to the field's end
    if step_text is None:
        return set(range(first, last + 1))
    step = int(step_text)
    if step < 1:
        raise _Refused("the step after / must be a whole number of at least 1")
    if step > last - first:
        raise _Refused(
            f"the step /{step} is longer than the range {first}-{last}, so only {first} would match:"
            f" write {first}, or step a larger field (0 */2 * * * is every 2 hours)"
        )
    return set(range(first, last + 1, step))


def _refuse_other_last_form(index: int, item: str) -> None:
    """`_Refused` saying what to write when `item` is another cron's last-day form
    (`_OTHER_LAST_FORMS`: Quartz's `5L`, `LW`, `L-3`; a name after `L`)."""
    for field, pattern, message in _OTHER_LAST_FORMS:
        match = pattern.fullmatch(item) if field == index else None
        if match is None:
            continue
        day = match.groupdict().get("day")
        if day is None:
            raise _Refused(message.format(item=item))
        number = _value(index, day)
        raise _Refused(
            message.format(item=item, number=number, name=f"{_DAY_NAMES[number % 7]} of the month")
        )


def _backwards(index: int, base: str, first: int, last: int) -> str:
    """Why a range such as 5-1 is refused, and how to write what it likely means."""
    _, low, high, _ = CRON_FIELDS[index]
    top = 6 if index == 4 else high
    if index == 4 and last == 0:
        wrap = f"{first}-7"  # FRI-SUN: 7 is Sunday too
    elif first > top:
        wrap = _span(low, last)  # 7-2: 7 is Sunday, i.e. 0
    else:
        wrap = f"{_span(first, top)},{_span(low, last)}"
    return (
        f"the range {base} runs backwards ({first} is after {last}): write the lower value first"
        f" ({last}-{first}), or two ranges for one that wraps around the end ({wrap})"
    )


def _span(first: int, last: int) -> str:
    return str(first) if first == last else f"{first}-{last}"


def _field_values(index: int, text: str) -> set[int] | None:
    """The values field `index` matches, or None when it uses croniter's `L`, `W`, `#` or `?`
    (checked here, read by croniter). `_Refused` when it is no field cron reads as written."""
    if text == "?":
        if index not in (2, 4):
            raise _Refused("? (no particular value) is only for the day-of-month and day-of-week fields")
        return None
    values: set[int] = set()
    special = False
    for item in text.split(","):
        if not item:
            raise _Refused("has an empty item: a comma must be between two values, as in 1,15")
        for pattern in _SPECIAL[index]:
            match = pattern.fullmatch(item)
            if match is not None:
                special = True
                if match.groupdict().get("value") is not None:
                    _value(index, match["value"])
                if match.groupdict().get("nth") is not None and not 1 <= int(match["nth"]) <= 5:
                    raise _Refused(f"#{match['nth']}: the week of the month after # is 1-5")
                break
        else:
            values |= _item_values(index, item)
    if index == 4:
        values = {0 if value == 7 else value for value in values}
    return None if special else values


def _odd_character(expression: str) -> str | None:
    """Why `expression` (trimmed) has a character no cron field takes, or None: a line break, a
    control character or one that is not ASCII (a full-width or other script's digit is never read
    as an ASCII one; a no-break space is no field separator)."""
    for position, char in enumerate(expression):
        if char in " \t" or " " < char < "\x7f":
            continue
        if char in "\r\n\v\f\x85\u2028\u2029":
            return "is one line: it has a line break (one expression per schedule)"
        where = ""
        for index, token in enumerate(re.finditer(r"\S+", expression)):
            if token.start() <= position < token.end() and index < len(CRON_FIELDS):
                where = f"{CRON_FIELDS[index][0]} field {token[0]!r}: "
        name = unicodedata.name(char, "")
        what = f"{char!r} (U+{ord(char):04X}{' ' + name if name else ''})"
        if unicodedata.decimal(char, None) is not None:
            return f"{where}{what} is not an ASCII digit: type the digits 0-9"
        if char.isspace():
            return f"{what} is not a plain space: separate the fields with spaces or tabs"
        return f"{where}{what} is not a character cron expressions take: use ASCII, e.g. 30 2 * * *"
    return None


def _croniter_refuses(index: int, text: str) -> bool:
    """Whether croniter refuses field `index` read alone (the others `*`): a combination it does
    not take although each item is valid, such as `1#2,3` (`#` mixed with plain days)."""
    probe = ["*"] * 5
    probe[index] = text
    try:
        croniter(" ".join(probe))
        return False
    except (CroniterError, ValueError, KeyError, IndexError):
        return True


def _field_count_problem(fields: list[str]) -> str:
    names = " ".join(field[0] for field in CRON_FIELDS)
    hint = "e.g. 30 2 * * * for 02:30 daily"
    if len(fields) in (6, 7):
        hint = "there is no seconds or year field: the first field is the minute, " + hint
    return f"needs 5 fields ({names}): found {len(fields)}, {hint}"


def check_cron(expression: str) -> str:
    """The expression, normalised: trimmed, its fields separated by single spaces, a macro
    (`@daily`...) replaced by its 5 fields. `Invalid` (422, field `cron`) unless cron reads it as
    written and it matches some date; the message names each wrong field, what is wrong and what
    it takes ("minute field '61': 61 is out of range, use 0-59; hour field '25': ..."), joined
    by "; " in the fields' order.

    Syntax: Vixie cron's five fields (ASCII digits, `JAN`-`DEC`, `SUN`-`SAT`, `*`, lists,
    ranges, `/step`) plus croniter's `L`, `nW` (day of month), `n#k`, `Ln` (day of week) and `?`.
    Refused, though croniter would read them some other way than written: a backwards range
    (`5-1`: croniter wraps it around, Vixie cron matches nothing), a one-value range (`3-3`:
    croniter reads it as `*`), a step longer than its range (`*/1000`, `0-59/61`: only the first
    value would match), croniter's random or hashed `R`/`H`, and any character that is not
    printable ASCII (a full-width digit is no digit here; a line break, a no-break space)."""
    text = expression.strip()
    odd = _odd_character(text)
    if odd is not None:
        raise Invalid.at("cron", odd)
    if text.startswith("@"):
        if text.lower() not in CRON_MACROS:
            known = ", ".join(CRON_MACROS)
            raise Invalid.at(
                "cron",
                f"{text!r} is no macro a schedule takes: use {known}, or 5 fields (@reboot has no time)",
            )
        text = CRON_MACROS[text.lower()]
    fields = text.split()
    if len(fields) != 5:
        raise Invalid.at("cron", _field_count_problem(fields))
    # Every wrong field is named, in order ("minute field '61': ...; hour field '25': ..."): the
    # first alone was, and the next save found the next one.
    problems: list[str] = []
    for index, field in enumerate(fields):
        name = CRON_FIELDS[index][0]
        try:
            _field_values(index, field)
        except _Refused as refused:
            problems.append(f"{name} field {field!r}: {refused}")
            continue
        if _croniter_refuses(index, field):
            mixed = "this list of L, nW, n#k or Ln with other days is not read: use one schedule for each"
            problems.append(f"{name} field {field!r}: {mixed}")
    if problems:
        raise Invalid.at("cron", "; ".join(problems))
    normal = " ".join(fields)
    if not any(_matches_a_date(half) for half in day_halves(normal)):
        raise Invalid.at(
            "cron",
            "matches no date: the day-of-month never occurs in the month(s) given (e.g. 30 in February)",
        )
    return normal


def _matches_a_date(cron: str) -> bool:
    """Whether croniter finds a fire time of `cron` (one of `check_cron`'s `day_halves`)."""
    try:
        croniter(cron, datetime(2000, 1, 1, tzinfo=UTC)).get_next(datetime)
    except (CroniterError, ValueError, KeyError, IndexError):
        return False
    return True


UNKNOWN_ZONE = "unknown time zone: use an IANA name such as Europe/Paris or UTC"
FACTORY_ZONE = (
    "Factory is the tz database's placeholder for a machine whose zone was never set (its clocks"
    " read -00), no place's time: use the zone of the place, such as Europe/Paris, or UTC"
)


@functools.cache
def _zone_names() -> dict[str, str]:
    """The IANA zone names (`zoneinfo.available_timezones()`) by their lowercase spelling (no two
    differ only in case), without `localtime`: that one is the zone of whichever machine reads it
    (the tz directory's link to /etc/localtime), so two server processes on machines set
    differently would fire one schedule at two times. Files of the tz directory that are no zone
    name (`posixrules`, the `posix/` and `right/` copies) are not in the list either, though
    `ZoneInfo` opens them."""
    return {name.lower(): name for name in available_timezones() - {"localtime"}}


def check_timezone(name: str, field: str = "timezone") -> ZoneInfo:
    """The zone, under its IANA spelling (`europe/paris` is Europe/Paris: names differ in more
    than case); 422 naming `field` for a name that is no IANA zone name (`_zone_names`), and for
    `Factory` (`FACTORY_ZONE`). Legacy links (`US/Pacific`, `Zulu`) are the zones they link to;
    `Etc/GMT+5` is UTC-05:00 (POSIX's inverted sign, as the tz database defines it)."""
    if name.lower() == "factory":
        raise Invalid.at(field, FACTORY_ZONE)
    known = _zone_names().get(name.lower())
    if known is None:
        raise Invalid.at(field, UNKNOWN_ZONE)
    try:
        return ZoneInfo(known)
    except (ZoneInfoNotFoundError, ValueError):
        raise Invalid.at(field, UNKNOWN_ZONE) from None


async def _script(session: AsyncSession, script_id: int, *, held: bool = False) -> Script:
    """The live script; `held` (a schedule is saved on it): not deleted until the commit
    (`db.turns.read_held`). `NotFound` when it is missing or deleted."""
    script = await read_held(session, Script, script_id) if held else await session.get(Script, script_id)
    if script is None or script.deleted_at is not None:
        raise NotFound.gone("script")
    return script


def _apply(
    schedule: Schedule, script: Script, data: ScheduleIn | Mapping[str, Any], *, keep_values: bool = False
) -> None:
    """Check the body (cron and time zone by `ScheduleIn`, which normalises the cron), its
    parameters with the script's resolver (a required one may lack a value while the schedule is
    switched off; `keep_values`: the stored ones are kept unchecked, `parameters.keeps_stored_values`),
    its Terraform action and workspace and its Ansible
    run options as a manual run's (`executions.automation_terraform`, `automation_run_options`):
    one `Invalid` naming every problem, the parameters checked even when the model refuses
    another field. Then set them on `schedule`."""
    problems = Problems()
    body, sent = problems.body(ScheduleIn, data)
    resolved: dict[str, Any] = dict(schedule.parameters) if keep_values else {}
    if "parameters" not in problems.fields() and not keep_values:
        with problems.check():
            resolved = parameters.resolve(
                script.parameters,
                sent.get("parameters", {}),
                script.script_type,
                complete=sent.get("enabled") is not False,
            )
    action = workspace = None
    with problems.check():
        action, workspace = executions.automation_terraform(
            script.script_type, sent.get("terraform_action"), sent.get("terraform_workspace")
        )
    options = None
    with problems.check():
        options = executions.automation_run_options(script.script_type, sent.get("run_options"))
    problems.raise_if_any()
    assert body is not None  # else raised above
    data, cron = body, body.cron
    schedule.name = data.name
    schedule.cron, schedule.timezone, schedule.parameters = cron, data.timezone, resolved
    schedule.enabled = data.enabled
    schedule.missed_policy, schedule.overlap_policy = data.missed_policy, data.overlap_policy
    schedule.terraform_action, schedule.terraform_workspace = action, workspace
    schedule.run_options = options
    schedule.paused_reason = None
    schedule.next_fire_at = next_times(cron, data.timezone, utcnow())[0] if data.enabled else None
    schedule.updated_at = utcnow()


async def create(
    session: AsyncSession, actor: Actor, script_id: int, data: ScheduleIn | Mapping[str, Any]
) -> Schedule:
    """A new schedule of `script_id`, owned by the caller; 422 naming `cron`, `timezone` or a
    parameter, 409 (field `name`) when the script has a schedule of that name (`names`), 404 for
    an unknown script."""
    user = require(actor.user, Permission.edit_scripts, MANAGE)
    script = await _script(session, script_id, held=True)
    schedule = Schedule(script_id=script_id, name="", cron="", timezone="UTC", owner_id=user.id)
    _apply(schedule, script, data)
    await _check_name(session, schedule)
    session.add(schedule)
    await conflicts.flush(session)
    audit.record(session, actor, "schedule.create", "schedule", schedule.id, **_facts(schedule))
    await conflicts.commit(session)
    return schedule


async def _check_name(session: AsyncSession, schedule: Schedule) -> None:
    scope = [col(Schedule.script_id) == schedule.script_id]
    await names.check_free(
        session, Schedule, schedule.name, scope, names.SCHEDULE_TAKEN, except_id=schedule.id
    )


def _facts(schedule: Schedule) -> dict[str, Any]:
    return {
        "script_id": schedule.script_id,
        "name": schedule.name,
        "cron": schedule.cron,
        "timezone": schedule.timezone,
        "enabled": schedule.enabled,
        "parameters": sorted(schedule.parameters),
        "terraform_action": schedule.terraform_action,
        "terraform_workspace": schedule.terraform_workspace,
        "run_options": schedule.run_options,
    }


async def get(
    session: AsyncSession, actor: Actor, schedule_id: int, script_id: int | None = None
) -> Schedule:
    """A schedule by id (of `script_id` when given); needs view_scripts. Raises NotFound (404) for an
    unknown schedule or one of another script.
    """
    require(actor.user, Permission.view_scripts)
    schedule = await session.get(Schedule, schedule_id)
    if schedule is None or (script_id is not None and schedule.script_id != script_id):
        raise NotFound.gone("schedule")
    return schedule


async def update_schedule(
    session: AsyncSession,
    actor: Actor,
    schedule_id: int,
    data: ScheduleIn | Mapping[str, Any],
    script_id: int | None = None,
    base: Mapping[str, Any] | None = None,
) -> Schedule:
    """Change a schedule's settings (a field `data` leaves out keeps its stored value:
    `partial.over_stored`); the caller becomes its owner (runs start on their behalf) and a
    paused schedule resumes. The next fire time is computed from now. A save that changes
    nothing (`partial.unchanged`: `{}`, or what `GET` gave) writes nothing: no new owner or fire
    time, no audit event. `base` (field -> stored value when the edit started, e.g. a form's
    copy; else the body's `base`: `partial.split_base`): a field of `data` changed meanwhile by
    someone else is a `Conflict` (409 naming it, nothing written: `partial.three_way`) instead
    of a silent undo of their save."""
    user = require(actor.user, Permission.edit_scripts, MANAGE)
    schedule = await get(session, actor, schedule_id, script_id)
    data, base = partial.split_base(ScheduleChanges, data, base)
    sent = data.model_fields_set if isinstance(data, ScheduleIn) else data  # before `three_way`
    if base is not None:
        data = three_way(schedule, data, base, "the schedule", user.id)
    merged = over_stored(ScheduleIn, data, schedule)
    if isinstance(sent, Mapping | set) and "timezone" not in sent:  # not an object: refused below
        # Kept as stored: an empty zone saved before "empty is UTC" (`ScheduleIn`) read as no
        # zone and paused the schedule; a save that keeps it does not make it fire in UTC unasked.
        check_timezone(schedule.timezone)
    if schedule.paused_reason is not None and "enabled" not in sent:
        merged["enabled"] = True  # paused by the system, not disabled by a user: a save resumes it
    keep = parameters.keeps_stored_values(data, merged)
    script = await _script(session, schedule.script_id, held=True)
    _apply(schedule, script, merged, keep_values=keep)
    await _check_name(session, schedule)
    if unchanged(schedule):
        await session.commit()
        return schedule
    schedule.owner_id = user.id
    audit.record(session, actor, "schedule.update", "schedule", schedule.id, **_facts(schedule))
    await conflicts.commit(session)
    return schedule


async def delete(session: AsyncSession, actor: Actor, schedule_id: int, script_id: int | None = None) -> None:
    """Delete a schedule (audited as `schedule.delete`, committed); needs edit_scripts.

    Raises Forbidden (403) without the permission, NotFound (404) for an unknown schedule or one of another
    script.
    """
    require(actor.user, Permission.edit_scripts, MANAGE)
    schedule = await get(session, actor, schedule_id, script_id)
    await session.delete(schedule)
    audit.record(session, actor, "schedule.delete", "schedule", schedule_id, script_id=schedule.script_id)
    await session.commit()


@dataclass(frozen=True)
class ScheduleView:
    """A schedule with what lists show: script and owner names, last run's status, and whether its
    script was deleted (`script_deleted`: only the overview lists such a schedule, so it can be
    seen and deleted)."""

    schedule: Schedule
    script_name: str
    owner_name: str | None
    last_status: str | None
    script_deleted: bool = False

    def not_firing(self) -> str | None:
        """Why the schedule starts no run: its `paused_reason` when disabled, or, while enabled,
        the rule its stored cron expression or zone breaks (`stored_problem`: the scheduler pauses
        it at its due time); None when it fires."""
        s = self.schedule
        if not s.enabled:
            return s.paused_reason or "disabled"
        problem = stored_problem(s.cron, s.timezone) or stored_shapes.note(s)
        return None if problem is None else f"not fired: {problem}"

    def next_fires(self, after: datetime, count: int) -> list[datetime]:
        """The next `count` fire times after `after` (aware UTC); none while `not_firing`. A
        stored expression or zone that croniter or the tz database cannot even read (`61 * * * *`,
        six fields, a zone a tzdata update dropped) made every list holding it a 500."""
        if self.not_firing() is not None:
            return []
        return next_times(*fired_as(self.schedule.cron, self.schedule.timezone), after, count)

    def zone(self) -> ZoneInfo:
        """The schedule's zone as stored (`Factory` too) or, stored in another form than a save
        stores (`europe/paris`), as it fires (`fired_as`); UTC when this machine's tz database
        has no such zone: the times shown are then in UTC, and `not_firing` says why."""
        try:
            return ZoneInfo(self.schedule.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            pass
        try:
            return check_timezone(self.schedule.timezone.strip())
        except Invalid:
            return ZoneInfo("UTC")


def _views_query(*, with_deleted: bool = False) -> Any:
    """The schedules of live scripts (`with_deleted`: of deleted ones too) with their script's
    and owner's names and last run's status, by script name, then schedule name (ignoring case
    and width), then id: a stable order."""
    query = (
        select(Schedule, Script.name, User.username, Execution.status, Script.deleted_at)
        .join(Script, col(Script.id) == col(Schedule.script_id))
        .join(User, col(User.id) == col(Schedule.owner_id), isouter=True)
        .join(Execution, col(Execution.id) == col(Schedule.last_execution_id), isouter=True)
        .order_by(*names.name_order(Script.name), col(Schedule.name_key), col(Schedule.id))
    )
    return query if with_deleted else query.where(col(Script.deleted_at).is_(None))


def _as_view(row: Any) -> ScheduleView:
    schedule, script_name, owner, status, deleted_at = row
    status = stored_shapes.as_loaded(Execution, "status", status) if status else None
    return ScheduleView(schedule, script_name, owner, str(status) if status else None, deleted_at is not None)


async def list_schedules(
    session: AsyncSession,
    actor: Actor,
    script_id: int | None = None,
    *,
    skip: int = 0,
    limit: int = paging.DEFAULT_PAGE,
) -> tuple[list[ScheduleView], int]:
    """A page (`paging.page`) of every schedule (or a script's), by script and name, and how many
    there are; `NotFound` (404) for a `script_id` that is missing or deleted. Every schedule
    includes those of deleted scripts (paused when the script was deleted, `script_deleted`):
    the script's page is gone, so the overview is where they are seen and deleted."""
    require(actor.user, Permission.view_scripts)
    query = _views_query(with_deleted=script_id is None)
    if script_id is not None:
        await _script(session, script_id)
        query = query.where(col(Schedule.script_id) == script_id)
    rows, total = await paging.page(session, query, skip, limit)
    return [_as_view(row) for row in rows], total


async def view(session: AsyncSession, actor: Actor, script_id: int, schedule_id: int) -> ScheduleView:
    """Schedule `schedule_id` of script `script_id` as the lists show it; `NotFound` (404) when
    either is missing, the script is deleted or the schedule is another script's."""
    require(actor.user, Permission.view_scripts)
    query = _views_query().where(col(Schedule.script_id) == script_id, col(Schedule.id) == schedule_id)
    row = (await session.exec(query)).first()
    if row is None:
        raise NotFound.gone("schedule")
    return _as_view(row)


# --- firing ----------------------------------------------------------------------------------


def process_name() -> str:
    """This process's name for schedule claims: `host:pid`."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class Claimed:
    """A claimed fire, with the schedule's settings as they were at the claim (plain values: no
    ORM object outlives the claim's transaction)."""

    schedule_id: int
    fire_time: datetime
    script_id: int
    owner_id: int | None
    parameters: dict[str, Any]
    overlap: OverlapPolicy
    missed_skip: bool
    terraform_action: str | None = None
    terraform_workspace: str | None = None
    run_options: dict[str, Any] | None = None


def _advance(row: Schedule, now: datetime) -> tuple[datetime, datetime]:
    """(the fire time to handle, the next one after `now`) for a schedule due at `next_fire_at`."""
    assert row.next_fire_at is not None
    cron, zone = fired_as(row.cron, row.timezone)
    latest, following = row.next_fire_at, next_times(cron, zone, row.next_fire_at)[0]
    if following <= now:  # down for a while: jump to the last due time, not one by one
        latest = max(row.next_fire_at, previous_time(cron, zone, now))
        following = next_times(cron, zone, latest)[0]
        while following <= now:
            latest, following = following, next_times(cron, zone, following)[0]
    return latest, following


def stored_problem(cron: str, timezone: str) -> str | None:
    """`_stored_refusal` with what to do about it, as the schedule's pause reason says it; None
    when today's rules take the stored expression and zone."""
    refusal = _stored_refusal(cron, timezone)
    return None if refusal is None else f"{refusal} (saved before this rule: fix it to resume)"


@functools.lru_cache(maxsize=256)
def _stored_refusal(cron: str, timezone: str) -> str | None:
    """Why a stored schedule's cron expression or time zone is one `check_cron` or
    `check_timezone` refuses today (saved before their rules: `0 3-3 * * *`, which croniter reads
    as every hour, `5-1 * * * *`, `Factory`), said as the 422 would; None when both pass."""
    try:
        fired_as(cron, timezone)
    except Invalid as exc:
        return exc.message
    return None


@functools.lru_cache(maxsize=256)
def fired_as(cron: str, timezone: str) -> tuple[str, str]:
    """The five fields and the zone a stored schedule that today's rules take fires with, as a
    save stores them: `check_cron`'s normal form (`@yearly` is `0 0 1 1 *`) and the zone as IANA
    spells it (`europe/paris` is `Europe/Paris`, surrounding spaces dropped). A version, an import
    or a manual edit may have stored another form (`@yearly`, `@Daily`, tabs, `europe/paris`):
    the fire times computed from it as stored made every list holding it a 500 and, once due,
    failed every round of the scheduler, so no schedule fired again. Raises Invalid for what
    `stored_problem` names (callers leave those out first)."""
    return check_cron(cron), check_timezone(timezone.strip()).key


async def _deleted_scripts(session: AsyncSession, rows: list[Schedule]) -> set[int]:
    """The ids among `rows`' scripts that are deleted (or missing)."""
    wanted = {row.script_id for row in rows}
    live = await session.exec(
        select(Script.id).where(col(Script.id).in_(wanted), col(Script.deleted_at).is_(None))
    )
    return wanted - set(live.all())


def _unfireable(
    row: Schedule, now: datetime, deleted: set[int]
) -> tuple[str | None, tuple[datetime, datetime]]:
    """(why `row` cannot be fired, or None; its (fire time, next fire time) by `_advance` when it
    can): a stored cron expression or zone today's rules refuse (`stored_problem`), a stored value
    of another shape (`stored_shapes.note`), a deleted script, or fire times that cannot be
    computed from what is stored (a next fire time of year 1 raises `OverflowError` in the
    schedule's zone). Any exception of that computation is a reason (logged with its trace): one
    row must never fail the round of every schedule (module doc of tests/automation/
    test_schedule_round_faults.py)."""
    reason = stored_problem(row.cron, row.timezone) or stored_shapes.note(row)
    if reason is None and row.script_id in deleted:
        reason = SCRIPT_DELETED
    if reason is not None:
        return reason, (now, now)
    try:
        return None, _advance(row, now)
    except Exception as exc:
        log.exception("schedule %s: its next fire time cannot be computed", row.id)
        problem = f"{type(exc).__name__}: {exc}"
        return f"its next fire time cannot be computed: {problem} (save it to resume)", (now, now)


async def _pause_unfireable(
    session: AsyncSession, rows: list[Schedule], now: datetime
) -> dict[int, tuple[Schedule, datetime, datetime]]:
    """`rows` that can be fired at `now`, by id, each with its (fire time, next fire time); each
    of the others (`_unfireable`) is paused instead, with the reason shown on the schedule and
    audited (`schedule.paused`): a save resumes it. So a stored cron expression today's rules
    refuse is not fired at times croniter reads other than as written. In the caller's
    transaction (not committed)."""
    deleted = await _deleted_scripts(session, rows)
    kept = {}
    for row in rows:
        reason, (latest, following) = _unfireable(row, now, deleted)
        if reason is None and row.id is not None:
            kept[row.id] = (row, latest, following)
            continue
        paused = await session.exec(
            update(Schedule)
            .where(col(Schedule.id) == row.id, col(Schedule.enabled))
            .values(enabled=False, next_fire_at=None, paused_reason=f"paused: {reason}"[:255])
        )
        if paused.rowcount:  # not already paused by another process's claim
            audit.record(
                session,
                Actor(None),
                "schedule.paused",
                "schedule",
                row.id,
                actor_name=f"schedule:{row.id}",
                reason=reason,
            )
    return kept


async def _claim_batch(db: Database, now: datetime, me: str) -> list[Claimed]:
    """Claim every due fire with one statement: insert the (schedule, fire time) rows, skipping
    those that exist (`ON CONFLICT DO NOTHING ... RETURNING`): the rows this process inserted
    are its claims, whatever other processes do at the same moment. Then advance the claimed
    schedules' `next_fire_at` (one executemany)."""
    async with db.session() as session:
        rows = list(
            (
                await session.exec(
                    select(Schedule)
                    .where(col(Schedule.enabled), compared(col(Schedule.next_fire_at), LE, now))
                    .order_by(col(Schedule.next_fire_at), col(Schedule.id))
                    .limit(BATCH)
                )
            ).all()
        )
        fireable = await _pause_unfireable(session, rows, now)
        if not fireable:
            await session.commit()
            return []
        # Every process inserts and updates in schedule-id order: concurrent claims of the same
        # fires then wait on each other instead of deadlocking (PostgreSQL's unique-index waits).
        plans = dict(sorted(fireable.items()))
        dialect = session.bind.dialect.name if session.bind else "sqlite"
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        claimed_at = utcnow()
        fires, table = cast(Table, ScheduleFire.__table__), cast(Table, Schedule.__table__)
        connection = await session.connection()
        statement = (
            insert(fires)
            .values(
                [
                    {
                        "schedule_id": sid,
                        "fire_time": latest,
                        "claimed_at": claimed_at,
                        "claimed_by": me,
                        "outcome": "due",
                    }
                    for sid, (_, latest, _) in plans.items()
                ]
            )
            .on_conflict_do_nothing()
            .returning(fires.c.schedule_id)
        )
        won = {int(sid) for sid in (await connection.execute(statement)).scalars().all()}
        if won:
            await connection.execute(
                table.update()
                .where(table.c.id == bindparam("sid"), earlier(table.c.next_fire_at, bindparam("following")))
                .values(next_fire_at=bindparam("following"), last_fire_at=bindparam("latest")),
                [{"sid": sid, "following": plans[sid][2], "latest": plans[sid][1]} for sid in sorted(won)],
            )
        await session.commit()
    claimed = []
    for sid in sorted(won, key=lambda i: plans[i][1]):
        row, latest, _ = plans[sid]
        claimed.append(
            Claimed(
                sid,
                latest,
                row.script_id,
                row.owner_id,
                dict(row.parameters),
                OverlapPolicy(row.overlap_policy),
                now - latest > MISSED_GRACE and row.missed_policy == MissedPolicy.skip,
                row.terraform_action,
                row.terraform_workspace,
                row.run_options,
            )
        )
    return claimed


async def _active_run(session: AsyncSession, schedule_id: int) -> str | None:
    """What holds the schedule's next fire back: a run it started that is not finished yet,
    said as "run #12 is still awaiting approval" (a run waiting for approval is not "going": it
    holds every fire back until someone decides or it expires); None when there is none."""
    rows = await session.exec(
        select(Execution.id, Execution.status)
        .join(ScheduleFire, col(ScheduleFire.execution_id) == col(Execution.id))
        .where(col(ScheduleFire.schedule_id) == schedule_id)
        .order_by(col(ScheduleFire.fire_time).desc())
        .limit(5)
    )
    for execution_id, stored in rows.all():
        status = stored_shapes.as_loaded(Execution, "status", stored)  # none of today's: failed
        if status not in FINAL_STATUSES:
            return f"the previous run, #{execution_id}, is still {str(status).replace('_', ' ')}"
    return None


async def _waiting(session: AsyncSession, schedule_id: int) -> bool:
    found = await session.exec(
        select(ScheduleFire.fire_time).where(
            col(ScheduleFire.schedule_id) == schedule_id, col(ScheduleFire.outcome) == "waiting"
        )
    )
    return found.first() is not None


@dataclass
class Outcome:
    """How one claimed fire went: `outcome` (started, skipped, error...), the run it started and why it
    started none.
    """

    fire: Claimed
    outcome: str
    execution_id: int | None = None
    message: str | None = None


async def _start(session: AsyncSession, fire: Claimed) -> Outcome:
    """Start the run of a fire; on a refused owner, pause the schedule (committed at once)."""
    ref = f"schedule:{fire.schedule_id}"
    try:
        execution = await start_for(
            session,
            fire.owner_id,
            ref,
            Trigger.schedule,
            fire.script_id,
            fire.parameters,
            fire.terraform_action,
            fire.terraform_workspace,
            fire.run_options,
        )
    except OwnerRefused as exc:
        await session.rollback()
        await _pause(session, fire, str(exc))
        return Outcome(fire, "paused_owner", message=str(exc)[:500])
    except ServiceError as exc:
        await session.rollback()
        return Outcome(fire, "error", message=exc.message[:500])
    return Outcome(fire, "started", execution_id=execution.id)


async def _pause(session: AsyncSession, fire: Claimed, reason: str) -> None:
    await session.exec(
        update(Schedule)
        .where(col(Schedule.id) == fire.schedule_id)
        .values(enabled=False, next_fire_at=None, paused_reason=f"paused: {reason}"[:255])
    )
    audit.record(
        session,
        Actor(None),
        "schedule.paused",
        "schedule",
        fire.schedule_id,
        actor_name=f"schedule:{fire.schedule_id}",
        reason=reason,
        fire_time=fire.fire_time.isoformat(),
    )
    await session.commit()


async def _handle(session: AsyncSession, fire: Claimed) -> Outcome:
    """Apply the missed-fire and overlap policies, then start the run if they allow it."""
    if fire.missed_skip:
        return Outcome(fire, "skipped_missed", message="the server was not running at this time")
    held = await _active_run(session, fire.schedule_id) if fire.overlap != OverlapPolicy.allow else None
    if held is not None:
        if fire.overlap == OverlapPolicy.queue and not await _waiting(session, fire.schedule_id):
            return Outcome(fire, "waiting", message=held)
        return Outcome(fire, "skipped_overlap", message=held)
    return await _start(session, fire)


async def _record(session: AsyncSession, outcomes: list[Outcome]) -> None:
    """Write the outcomes of a round (fire rows and each schedule's last result) in one commit."""
    if outcomes:
        fires, table = cast(Table, ScheduleFire.__table__), cast(Table, Schedule.__table__)
        values = [
            {
                "sid": o.fire.schedule_id,
                "ft": o.fire.fire_time,
                "oc": o.outcome,
                "ex": o.execution_id,
                "msg": o.message,
            }
            for o in outcomes
        ]
        connection = await session.connection()
        await connection.execute(
            fires.update()
            .where(fires.c.schedule_id == bindparam("sid"), fires.c.fire_time == bindparam("ft"))
            .values(outcome=bindparam("oc"), execution_id=bindparam("ex"), message=bindparam("msg")),
            values,
        )
        await connection.execute(
            table.update()
            .where(table.c.id == bindparam("sid"))
            .values(
                last_outcome=bindparam("oc"),
                last_message=bindparam("msg"),
                last_execution_id=func.coalesce(bindparam("ex"), table.c.last_execution_id),
            ),
            values,
        )
    await session.commit()


PAUSED_WHILE_WAITING = "the schedule was paused while this fire waited for the previous run"


async def _start_waiting(db: Database, me: str) -> None:
    """Start queued fires (overlap policy `queue`) whose schedule has no active run any more; a
    fire of a schedule paused meanwhile (by a user or the system) is skipped, not started."""
    async with db.session() as session:
        waiting = list(
            (
                await session.exec(
                    select(ScheduleFire, Schedule)
                    .join(Schedule, col(Schedule.id) == col(ScheduleFire.schedule_id))
                    .where(col(ScheduleFire.outcome) == "waiting")
                    .order_by(col(ScheduleFire.fire_time))
                )
            ).all()
        )
        pending = [
            (
                Claimed(
                    s.id,
                    f.fire_time,
                    s.script_id,
                    s.owner_id,
                    dict(s.parameters),
                    OverlapPolicy.allow,
                    False,
                    s.terraform_action,
                    s.terraform_workspace,
                    s.run_options,
                ),
                s.enabled,
            )
            for f, s in waiting
            if s.id is not None
        ]
    for fire, enabled in pending:
        async with db.session() as session:
            if enabled and await _active_run(session, fire.schedule_id) is not None:
                continue
            taken = await session.exec(
                update(ScheduleFire)
                .where(
                    col(ScheduleFire.schedule_id) == fire.schedule_id,
                    col(ScheduleFire.fire_time) == fire.fire_time,
                    col(ScheduleFire.outcome) == "waiting",
                )
                .values(outcome="starting", claimed_by=me)
            )
            await session.commit()
            if taken.rowcount != 1:
                continue
            outcome = (
                await _start(session, fire)
                if enabled
                else Outcome(fire, "skipped_paused", message=PAUSED_WHILE_WAITING)
            )
            await _record(session, [outcome])


async def tick(db: Database, now: datetime | None = None, me: str | None = None) -> int:
    """Claim and handle every fire due at `now` (default: the current time); returns how many
    fires this process claimed. Safe to call from any number of processes at once. Waiting
    fires (overlap `queue`) whose previous run ended start first, before the new fires are
    claimed: started after them, a run that ended while no tick ran (a restart, a run ending
    just before a fire time) let the new fire start and left the older one waiting behind it."""
    now = now or utcnow()
    me = me or process_name()
    await _start_waiting(db, me)
    total = 0
    while True:
        claimed = await _claim_batch(db, now, me)
        if claimed:
            async with db.session() as session:
                outcomes = []
                for fire in claimed:
                    try:
                        outcomes.append(await _handle(session, fire))
                    except Exception:  # one broken schedule must not stop the others
                        log.exception("schedule %s: firing failed", fire.schedule_id)
                        await session.rollback()
                        outcomes.append(Outcome(fire, "error", message="internal error: see the server log"))
                await _record(session, outcomes)
        total += len(claimed)
        if len(claimed) < BATCH:
            break
    return total


async def seconds_to_next(db: Database, most: float) -> float:
    """Seconds until the earliest enabled fire time, between MIN_IDLE_SECONDS and `most`."""
    async with db.session() as session:
        earliest = (
            await session.exec(
                select(Schedule.next_fire_at)
                .where(col(Schedule.enabled), col(Schedule.next_fire_at).is_not(None))
                .order_by(col(Schedule.next_fire_at))
                .limit(1)
            )
        ).first()
    if earliest is None:
        return most
    return min(max((earliest - utcnow()).total_seconds(), MIN_IDLE_SECONDS), most)


async def run_scheduler(db: Database, idle_seconds: float) -> None:
    """Fire schedules (and expire approval requests) until cancelled: a tick, then sleep until
    the next fire time, at most `idle_seconds` (`OPSCRAFT_SCHEDULER_IDLE_SECONDS`), so that
    schedules saved elsewhere are seen quickly.

    The first tick comes at the first fire time, at most `idle_seconds` after the start, not at
    the start (one query, `seconds_to_next`, instead of a tick): a fire missed while no process
    ran is due, and ticked `MIN_IDLE_SECONDS` after the start; approval requests that expired
    meanwhile are expired by that first tick (a decision on one checks its deadline itself). A
    start that is over before (a one-off test's runtime) pays no tick (docs/benchmarks.md,
    session 54)."""
    me = process_name()
    failures = RoundFailures(log, "scheduler tick")
    first = True
    while True:
        try:
            if first:
                first = False
                await asyncio.sleep(await seconds_to_next(db, idle_seconds))
            await tick(db, me=me)
            await approvals.expire_due(db)
            pause = await seconds_to_next(db, idle_seconds)
            failures.succeeded()
            await asyncio.sleep(pause)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            failures.failed(exc)
            await asyncio.sleep(idle_seconds)
