"""Schedules: validation, next fire times in a time zone, exactly once per fire time, missed
fires, overlap, and the owner checked at each fire."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from croniter import croniter
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlmodel import col, select, update

from opscraft import runtime
from opscraft.db.models import AuditEvent, Execution, Role, Schedule, ScheduleFire
from opscraft.db.types import utcnow
from opscraft.services import schedules
from opscraft.services.errors import Invalid
from tests.automation.conftest import LOOPBACK_RECEIVERS
from tests.conftest import IN_MODULE_LOOP, LoggedIn, Reader
from tests.cron_times import far_yearly_cron
from tests.executions.conftest import wait_for
from tests.waiting import until


@pytest.fixture
def worker_runners() -> frozenset[str]:
    """The schedules' runs only need to start (or to run a while): on the local runner, as
    `local_runner` asks, with no Docker container to start and stop for each."""
    return frozenset({"local"})


# The settings of `test_schedule_fires_on_its_own`: the scheduler loop looks at the schedules every
# half second (the test waits for it to see a fire time written to the database), not every 5.
# The other tests keep the default: a loop every half second in each test's runtime was CPU that
# no other test used (docs/benchmarks.md, session 51).
QUICK_SCHEDULER = {**LOOPBACK_RECEIVERS, "OPSCRAFT_SCHEDULER_IDLE_SECONDS": 0.5}


async def local_runner(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    r = await client.put("/api/v1/settings", json={"local_runner_enabled": True}, headers=admin.headers)
    assert r.status_code == 200, r.text


async def script(client: httpx.AsyncClient, who: LoggedIn, content: str = "true\n", **fields: Any) -> int:
    body = {
        "name": f"s-{utcnow().timestamp()}",
        "script_type": "bash",
        "content": content,
        "status": "active",
        **fields,
    }
    r = await client.post("/api/v1/scripts", json=body, headers=who.headers)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def add(client: httpx.AsyncClient, who: LoggedIn, script_id: int, **body: Any) -> httpx.Response:
    payload = {"name": "nightly", "cron": "* * * * *", **body}
    return await client.post(f"/api/v1/scripts/{script_id}/schedules", json=payload, headers=who.headers)


async def due_now(schedule_id: int, ago: timedelta = timedelta(seconds=1)) -> datetime:
    """Make the schedule's next fire time `ago` in the past (a fire time, as a real one would be)."""
    async with runtime.current().db.session() as session:
        row = await session.get(Schedule, schedule_id)
        assert row is not None
        when = schedules.previous_time(row.cron, row.timezone, utcnow() - ago + timedelta(microseconds=1))
        await session.exec(update(Schedule).where(col(Schedule.id) == schedule_id).values(next_fire_at=when))
        await session.commit()
        return when


async def fires(schedule_id: int) -> list[ScheduleFire]:
    async with runtime.current().db.session() as session:
        rows = await session.exec(select(ScheduleFire).where(col(ScheduleFire.schedule_id) == schedule_id))
        return list(rows.all())


async def test_validation_and_permissions(
    client: httpx.AsyncClient, operator: LoggedIn, viewer: LoggedIn
) -> None:
    sid = await script(client, operator, parameters=[{"name": "COUNT", "type": "integer", "required": True}])
    for body, field in [
        ({"cron": "* * * *"}, "cron"),
        ({"cron": "61 * * * *"}, "cron"),
        ({"cron": "* * * * * *"}, "cron"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"parameters": {}}, "parameters.COUNT"),
        ({"parameters": {"COUNT": "many"}}, "parameters.COUNT"),
        ({"overlap_policy": "sometimes", "parameters": {"COUNT": 1}}, "overlap_policy"),
    ]:
        r = await add(client, operator, sid, **body)
        assert r.status_code == 422, (body, r.text)
        assert field in {e["field"] for e in r.json()["errors"]} or field in r.text, (body, r.json())
    assert (await add(client, viewer, sid, parameters={"COUNT": 1})).status_code == 403
    assert (await add(client, operator, 999_999)).status_code == 404
    r = await add(client, operator, sid, parameters={"COUNT": "3"})
    assert r.status_code == 201, r.text
    assert r.json()["parameters"] == {"COUNT": 3} and r.json()["owner_name"] == "operator"


BACKWARDS = "runs backwards"
REFUSED_CRON = [
    ("* * * *", "needs 5 fields (minute hour day-of-month month day-of-week): found 4"),
    ("", "needs 5 fields (minute hour day-of-month month day-of-week): found 0"),
    (" \t ", "needs 5 fields (minute hour day-of-month month day-of-week): found 0"),
    (
        "0 30 2 * * *",
        "needs 5 fields (minute hour day-of-month month day-of-week): found 6, there is no seconds or"
        " year field: the first field is the minute",
    ),
    ("0 0 1 1 * 2030 x", "needs 5 fields (minute hour day-of-month month day-of-week): found 7, there is no"),
    # out of range, per field
    # every wrong field named, in order (the first alone was: the next save found the next one)
    ("61 25 * * *", "minute field '61': 61 is out of range, use 0-59; hour field '25': 25 is out of range"),
    (
        "0 0 32 13 8",
        "day-of-month field '32': 32 is out of range, use 1-31; month field '13': 13 is out of range,"
        " use 1-12 or JAN-DEC; day-of-week field '8': 8 is out of range",
    ),
    ("61 * * * *", "minute field '61': 61 is out of range, use 0-59"),
    ("60 * * * *", "minute field '60': 60 is out of range, use 0-59"),
    ("0 24 * * *", "hour field '24': 24 is out of range, use 0-23"),
    ("0 0 0 * *", "day-of-month field '0': 0 is out of range, use 1-31"),
    ("0 0 32 * *", "day-of-month field '32': 32 is out of range, use 1-31"),
    ("0 0 1 13 *", "month field '13': 13 is out of range, use 1-12 or JAN-DEC"),
    ("0 0 1 0 *", "month field '0': 0 is out of range, use 1-12 or JAN-DEC"),
    ("0 0 * * 8", "day-of-week field '8': 8 is out of range, use 0-7 (0 and 7 are Sunday) or SUN-SAT"),
    ("0 0 1-32 * *", "day-of-month field '1-32': 32 is out of range, use 1-31"),
    # steps: zero, or longer than the range (only its first value would match)
    ("*/0 * * * *", "minute field '*/0': the step after / must be a whole number of at least 1"),
    ("1-59/0 * * * *", "minute field '1-59/0': the step after / must be a whole number of at least 1"),
    ("*/x * * * *", "minute field '*/x': the step after / must be a whole number of at least 1"),
    ("*/1000 * * * *", "minute field '*/1000': the step /1000 is longer than the range 0-59, so only 0"),
    ("0-59/61 * * * *", "minute field '0-59/61': the step /61 is longer than the range 0-59, so only 0"),
    ("*/60 * * * *", "minute field '*/60': the step /60 is longer than the range 0-59, so only 0 would"),
    ("0 */24 * * *", "hour field '*/24': the step /24 is longer than the range 0-23"),
    ("0 0 */31 * *", "day-of-month field '*/31': the step /31 is longer than the range 1-31"),
    ("0 0 1 */12 *", "month field '*/12': the step /12 is longer than the range 1-12"),
    ("0 0 * * */7", "day-of-week field '*/7': the step /7 is longer than the range 0-6"),
    ("10-20/11 * * * *", "minute field '10-20/11': the step /11 is longer than the range 10-20, so only 10"),
    ("59/5 * * * *", "minute field '59/5': the step /5 is longer than the range 59-59, so only 59"),
    # ranges croniter reads otherwise than written: backwards (it wraps), one value (it reads *)
    (
        "5-1 * * * *",
        "minute field '5-1': the range 5-1 runs backwards (5 is after 1): write the lower"
        " value first (1-5), or two ranges for one that wraps around the end (5-59,0-1)",
    ),
    ("0 22-2 * * *", "hour field '22-2': the range 22-2 " + BACKWARDS),
    ("0 0 20-10 * *", "day-of-month field '20-10': the range 20-10 " + BACKWARDS),
    ("0 0 * NOV-FEB *", "month field 'NOV-FEB': the range NOV-FEB runs backwards (11 is after 2)"),
    (
        "0 0 * * FRI-MON",
        "day-of-week field 'FRI-MON': the range FRI-MON runs backwards (5 is after 1):"
        " write the lower value first (1-5), or two ranges for one that wraps around the end (5-6,0-1)",
    ),
    (
        "0 0 * * FRI-SUN",
        "day-of-week field 'FRI-SUN': the range FRI-SUN runs backwards (5 is after 0):"
        " write the lower value first (0-5), or two ranges for one that wraps around the end (5-7)",
    ),
    ("3-3 * * * *", "minute field '3-3': the range 3-3 is one value: write 3"),
    # names only where cron has them, whole
    ("0 0 * FOO *", "month field 'FOO': is not valid"),
    ("MON * * * *", "minute field 'MON': is not valid: use 0-59"),
    ("0 0 * * MONDAY", "day-of-week field 'MONDAY': is not valid"),
    ("0 0 * JAN-MON *", "month field 'JAN-MON': is not valid"),
    # croniter's random and hashed values, and forms no cron reads
    ("R * * * *", "minute field 'R': is not valid"),
    ("H * * * *", "minute field 'H': is not valid"),
    ("-1 * * * *", "minute field '-1': is not valid"),
    ("+1 * * * *", "minute field '+1': is not valid"),
    ("1.5 * * * *", "minute field '1.5': is not valid"),
    ("1,,2 * * * *", "minute field '1,,2': has an empty item: a comma must be between two values"),
    (",5 * * * *", "minute field ',5': has an empty item"),
    ("? * * * *", "minute field '?': ? (no particular value) is only for the day-of-month and day-of-week"),
    # other crons' last-day forms (Quartz's), each told what to write here
    ("0 0 * * 5L", "day-of-week field '5L': 5L is Quartz's form: write L5 for the last Friday of the month"),
    ("0 0 * * FRIL", "day-of-week field 'FRIL': FRIL is Quartz's form: write L5 for the last Friday of the"),
    ("0 0 * * 7L", "day-of-week field '7L': 7L is Quartz's form: write L7 for the last Sunday of the month"),
    ("0 0 * * 1-5,6L", "day-of-week field '1-5,6L': 6L is Quartz's form: write L6 for the last Saturday"),
    ("0 0 * * 9L", "day-of-week field '9L': 9 is out of range, use 0-7"),
    ("0 0 * * 5l", "day-of-week field '5l': 5l is Quartz's form: write L5 for the last Friday of the month"),
    ("0 0 lw * *", "day-of-month field 'lw': LW (the month's last weekday) is not read here"),
    (
        "0 0 * * LFRI",
        "day-of-week field 'LFRI': write L5 for the last Friday of the month (a number after L,",
    ),
    ("0 0 * * L", "day-of-week field 'L': L alone is for the day-of-month field (the month's last day)"),
    ("0 0 LW * *", "day-of-month field 'LW': LW (the month's last weekday) is not read here: use L"),
    ("0 0 L-3 * *", "day-of-month field 'L-3': L-3 (days before the month's last) is not read here"),
    (
        "0 0 L5 * *",
        "day-of-month field 'L5': L stands alone here (the month's last day); L5 in the day-of-week",
    ),
    ("0 0 * * 1#6", "day-of-week field '1#6': #6: the week of the month after # is 1-5"),
    ("0 0 * * 1#0", "day-of-week field '1#0': #0: the week of the month after # is 1-5"),
    ("0 0 * * 1#2,3", "day-of-week field '1#2,3': this list of L, nW, n#k or Ln with other days is not read"),
    ("0 0 15W,1 * *", "day-of-month field '15W,1': this list of L, nW, n#k or Ln with other days"),
    ("0 0 30 2 *", "matches no date: the day-of-month never occurs in the month(s) given"),
    # macros: cron's, with a time
    ("@reboot", "'@reboot' is no macro a schedule takes: use @yearly, @annually, @monthly, @weekly,"),
    ("@every 5m", "'@every 5m' is no macro a schedule takes"),
    # characters: never a non-ASCII digit read as an ASCII one, one line
    (
        "\uff10 0 * * *",
        "minute field '\uff10': '\uff10' (U+FF10 FULLWIDTH DIGIT ZERO) is not an ASCII digit:"
        " type the digits 0-9",
    ),
    (
        "0 \u0663 * * *",
        "hour field '\u0663': '\u0663' (U+0663 ARABIC-INDIC DIGIT THREE) is not an",
    ),
    ("0 0 1\u0967 * *", "day-of-month field '1\u0967': '\u0967' (U+0967 DEVANAGARI DIGIT ONE) is not an"),
    ("\U0001d7d1 * * * *", "minute field '\U0001d7d1': '\U0001d7d1' (U+1D7D1 MATHEMATICAL BOLD DIGIT THREE)"),
    ("0 0 * * \u00b2", "day-of-week field '\u00b2': '\u00b2' (U+00B2 SUPERSCRIPT TWO) is not a character"),
    ("0\u00a00 * * *", "'\\xa0' (U+00A0 NO-BREAK SPACE) is not a plain space: separate the fields with"),
    ("0\u30000 * * *", "'\\u3000' (U+3000 IDEOGRAPHIC SPACE) is not a plain space"),
    ("0 0 * * *\u200b", "day-of-week field '*\\u200b': '\\u200b' (U+200B ZERO WIDTH SPACE) is not a"),
    ("0 0\n* * *", "is one line: it has a line break (one expression per schedule)"),
    ("0 0 * * *\r\n0 1 * * *", "is one line: it has a line break"),
    ("0 0 * * *\x00", "day-of-week field '*\\x00': '\\x00' (U+0000) is not a character cron"),
]


@pytest.mark.parametrize(("cron", "message"), REFUSED_CRON)
@IN_MODULE_LOOP
async def test_a_bad_cron_expression_names_its_field_and_the_fix(
    reader: Reader, cron: str, message: str
) -> None:
    """A cron error says which of the five fields is wrong and what it takes (it said "is not a
    valid cron expression"); an expression no date matches is refused at save (it was a 500).
    Forms croniter read otherwise than written were saved: `5-1` wrapped around, `3-3` was every
    minute, `*/1000` was minute 0, `R` a random minute, a full-width digit was refused without
    saying why."""
    with pytest.raises(Invalid) as refused:
        schedules.check_cron(cron)
    [detail] = refused.value.details
    assert detail["field"] == "cron" and detail["message"].startswith(message), detail
    client, operator = reader.client, await reader.person(Role.operator)
    sid = await reader.rows("script", lambda: script(client, operator))
    r = await add(client, operator, sid, cron=cron)
    assert r.status_code == 422, r.text
    if cron and "\x00" not in cron:  # empty: the body's min_length; NUL: text no database stores
        assert r.json()["errors"] == [detail]
    else:
        assert [e["field"] for e in r.json()["errors"]] == ["cron"], r.text
    listed = await client.get(f"/api/v1/scripts/{sid}/schedules", headers=operator.headers)
    assert listed.status_code == 200 and listed.json()["items"] == [], listed.text


# Cron expressions cron reads, as typed -> as stored.
CRON_FORMS = [
    ("*/15 9-17 * * MON-FRI", "*/15 9-17 * * MON-FRI"),
    ("0 12 * jan-mar 7", "0 12 * jan-mar 7"),
    ("0 0 * * mon-5", "0 0 * * mon-5"),
    ("0 0 L * *", "0 0 L * *"),
    ("0 0 1,L * *", "0 0 1,L * *"),
    ("0 0 15W * *", "0 0 15W * *"),
    ("0 0 * * 1#2", "0 0 * * 1#2"),
    ("0 0 * * 1#2,3#4", "0 0 * * 1#2,3#4"),
    ("0 0 * * L5", "0 0 * * L5"),
    # L and W in any case, as month and day names (croniter reads them so; they were "not valid")
    ("0 0 l * *", "0 0 l * *"),
    ("0 0 15w * *", "0 0 15w * *"),
    ("0 0 * * l5", "0 0 * * l5"),
    ("0 0 * * fri#2", "0 0 * * fri#2"),
    ("0 0 ? * 1", "0 0 ? * 1"),
    ("0 0 1 * ?", "0 0 1 * ?"),
    ("0 0 29 2 *", "0 0 29 2 *"),
    ("*/59 * * * *", "*/59 * * * *"),
    ("0-59/59 * * * *", "0-59/59 * * * *"),
    ("1/5 * * * *", "1/5 * * * *"),
    ("0 0 * * 5-7", "0 0 * * 5-7"),
    ("00 09 * * *", "00 09 * * *"),
    ("  0\t 9  * * *\n", "0 9 * * *"),
    ("@hourly", "0 * * * *"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@weekly", "0 0 * * 0"),
    ("@monthly", "0 0 1 * *"),
    ("@yearly", "0 0 1 1 *"),
    (" @Annually ", "0 0 1 1 *"),
]


async def test_cron_forms_cron_reads_as_written_are_accepted(
    client: httpx.AsyncClient, operator: LoggedIn, backend: str
) -> None:
    """Stored trimmed, fields separated by one space, a macro as its 5 fields. Every form of
    `CRON_FORMS` in one test (a script and a schedule each): one server per database, not one per
    form (the server's start took most of each case's time)."""
    for cron, stored in CRON_FORMS:
        assert schedules.check_cron(cron) == stored, cron
        sid = await script(client, operator)
        r = await add(client, operator, sid, cron=cron)
        assert r.status_code == 201, (cron, r.text)
        assert r.json()["cron"] == stored, cron
        listed = await client.get(f"/api/v1/scripts/{sid}/schedules", headers=operator.headers)
        assert [s["cron"] for s in listed.json()["items"]] == [stored], cron


def _every_value(index: int) -> set[int]:
    _, low, high, _ = schedules.CRON_FIELDS[index]
    return set(range(low, 7 if index == 4 else high + 1))


def _croniter_reads(cron: str) -> list[set[int]]:
    """The values croniter expands each field to (`*` as every value, also in a list: `*,0` is
    `['*', 0]`; Sunday as 0)."""
    expanded = croniter(cron).expanded
    return [
        _every_value(index) if "*" in values else {0 if v == 7 and index == 4 else int(v) for v in values}
        for index, values in enumerate(expanded)
    ]


_VALUE = st.one_of(st.integers(-1, 62).map(str), st.sampled_from(["JAN", "dec", "MON", "sun", "07", "000"]))
_ITEM = st.one_of(
    st.just("*"),
    _VALUE,
    st.tuples(_VALUE, _VALUE).map("-".join),
    st.tuples(st.sampled_from(["*", "0", "5", "1-30", "10-3", "2-2"]), st.integers(0, 70)).map(
        lambda t: f"{t[0]}/{t[1]}"
    ),
)
_FIELD = st.lists(_ITEM, min_size=1, max_size=3).map(",".join)


@settings(max_examples=400, deadline=None)
@given(st.lists(_FIELD, min_size=5, max_size=5))
def test_what_is_accepted_is_read_by_croniter_as_written(fields: list[str]) -> None:
    """Every expression `check_cron` accepts is one croniter reads as cron does: each field's
    values are those written (croniter read `3-3` as every value and `5-1` wrapped around)."""
    cron = " ".join(fields)
    try:
        normal = schedules.check_cron(cron)
    except Invalid:
        return
    written = []
    for index, text in enumerate(normal.split()):
        values = schedules._field_values(index, text)
        assert values is not None  # no L, W, # or ? here
        written.append(values)
    assert _croniter_reads(normal) == written, cron


NEW_YEAR_2027 = datetime(2027, 1, 1, tzinfo=UTC)  # a Friday


# (cron expression, its first five fire dates from New Year 2027) with both day fields restricted
BOTH_DAY_FIELDS = [
    # croniter found no date and the expression was refused as "matches no date"
    ("0 0 1 * 1#2", ["2027-01-11", "2027-02-01", "2027-02-08", "2027-03-01", "2027-03-08"]),
    ("0 0 1W * SAT", ["2027-01-02", "2027-01-09", "2027-01-16", "2027-01-23", "2027-01-30"]),
    ("0 0 L * 1#2", ["2027-01-11", "2027-01-31", "2027-02-08", "2027-02-28", "2027-03-08"]),
    # croniter fired on one day field only: the 15th's weekday, second Fridays, 5th Fridays
    ("0 0 15W * MON", ["2027-01-04", "2027-01-11", "2027-01-15", "2027-01-18", "2027-01-25"]),
    ("0 0 13 * 5#2", ["2027-01-08", "2027-01-13", "2027-02-12", "2027-02-13", "2027-03-12"]),
    ("0 0 29 2 5#5", ["2028-02-29", "2032-02-29", "2036-02-29", "2040-02-29", "2044-02-29"]),
    # plain days, read so already; one half matching no date (February 30th) is no error
    ("0 0 1 * MON", ["2027-01-04", "2027-01-11", "2027-01-18", "2027-01-25", "2027-02-01"]),
    ("0 0 30 2 MON", ["2027-02-01", "2027-02-08", "2027-02-15", "2027-02-22", "2028-02-07"]),
]


async def test_both_day_fields_restricted_fire_on_a_day_matching_either(
    client: httpx.AsyncClient, operator: LoggedIn, backend: str
) -> None:
    """Vixie cron's rule, which docs/automation.md promises: when the day-of-month and the
    day-of-week are both restricted, a day matching either fires. croniter applies it to plain
    days only: with `L`, `nW`, `n#k` or `Ln` on one side it fired on one field's days, or found
    no date and the schedule was refused. The API's five next fire times and the scheduler's
    (`next_times`, `previous_time`) follow the rule. Each of `BOTH_DAY_FIELDS` in one runtime
    (one each cost more than the checks: docs/benchmarks.md, session 51)."""
    for cron, expected in BOTH_DAY_FIELDS:
        assert [t.date().isoformat() for t in schedules.next_times(cron, "UTC", NEW_YEAR_2027, 5)] == expected
        last = datetime.fromisoformat(expected[-1]).replace(tzinfo=UTC)
        assert schedules.previous_time(cron, "UTC", last).date().isoformat() == expected[-2], cron
        sid = await script(client, operator)
        before = utcnow()
        r = await add(client, operator, sid, cron=cron, timezone="UTC")
        after = utcnow()
        assert r.status_code == 201, r.text
        fires = [datetime.fromisoformat(t) for t in r.json()["next_fire_times"]]
        # As of the request's moment: the next times from before or after it (a fire time, at UTC
        # midnight, may fall between the two: the test runs at any hour).
        either = [schedules.next_times(cron, "UTC", moment, 5) for moment in (before, after)]
        assert fires in either, r.text
        listed = await client.get(f"/api/v1/scripts/{sid}/schedules", headers=operator.headers)
        assert (
            listed.status_code == 200
            and listed.json()["items"][0]["next_fire_times"] == r.json()["next_fire_times"]
        ), (cron, listed.text)


def test_both_day_fields_keep_both_instants_of_a_repeated_hour() -> None:
    """An expression read as two halves (`schedules.day_halves`) whose minute or hour field
    starts with `*` still fires at both 02:30 of a fall-back night (a merge by wall clock would
    take them for one)."""
    start = PARIS_FALL_BACK - timedelta(minutes=1)  # Sunday 31 October 2027
    got = schedules.next_times("30 * 31 10 SUN", "Europe/Paris", start, 2)
    assert [t.strftime("%Y-%m-%dT%H:%M") for t in got] == ["2027-10-31T00:30", "2027-10-31T01:30"]


async def test_a_time_zone_with_surrounding_spaces_is_the_zone(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    """The cron expression was trimmed but the zone was not: " Europe/Paris " (pasted into the
    schedule form) was refused as an unknown time zone."""
    sid = await script(client, operator)
    r = await add(client, operator, sid, cron=" 0 9 * * * ", timezone=" Europe/Paris\n")
    assert r.status_code == 201, r.text
    assert (r.json()["cron"], r.json()["timezone"]) == ("0 9 * * *", "Europe/Paris")
    # The same in the lists' and the read's `tz` (`?tz=%20UTC` was a 422 naming `tz`).
    for path in (
        f"/api/v1/scripts/{sid}/schedules",
        "/api/v1/schedules",
        f"/api/v1/scripts/{sid}/schedules/{r.json()['id']}",
    ):
        shown = await client.get(path, params={"tz": " America/New_York\t"}, headers=operator.headers)
        assert shown.status_code == 200, (path, shown.text)
        one = shown.json()["items"][0] if "items" in shown.json() else shown.json()
        assert datetime.fromisoformat(one["next_fire_times_local"][0]).utcoffset() in (
            timedelta(hours=-5),
            timedelta(hours=-4),
        ), path


async def test_a_time_zone_sent_empty_or_blank_is_utc_as_in_the_form(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    """The schedule form's zone box says "empty: UTC" and saved an emptied box as UTC, while the
    API refused `"timezone": ""` as an unknown time zone: one rule (the service's), for a new
    schedule and for a change, said in docs/automation.md."""
    sid = await script(client, operator)
    for sent in ("", "  \t"):
        r = await add(client, operator, sid, name=f"zone {len(sent)}", timezone=sent)
        assert (r.status_code, r.json().get("timezone")) == (201, "UTC"), (sent, r.text)
        path = f"/api/v1/scripts/{sid}/schedules/{r.json()['id']}"
        paris = await client.put(path, json={"timezone": "Europe/Paris"}, headers=operator.headers)
        assert paris.json()["timezone"] == "Europe/Paris", paris.text
        emptied = await client.put(path, json={"timezone": sent}, headers=operator.headers)
        assert (emptied.status_code, emptied.json()["timezone"]) == (200, "UTC"), emptied.text


async def test_next_five_fire_times_in_a_time_zone(client: httpx.AsyncClient, operator: LoggedIn) -> None:
    sid = await script(client, operator)
    r = await add(client, operator, sid, cron="0 9 * * *", timezone="Europe/Paris")
    assert r.status_code == 201, r.text
    body = r.json()
    times = [datetime.fromisoformat(t) for t in body["next_fire_times"]]
    assert len(times) == 5 and times == sorted(times)
    local = [t.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Paris")) for t in times]
    assert {(t.hour, t.minute) for t in local} == {(9, 0)}, "09:00 Paris time, daylight saving or not"
    r = await client.get(f"/api/v1/scripts/{sid}/schedules?tz=America/New_York", headers=operator.headers)
    shown = datetime.fromisoformat(r.json()["items"][0]["next_fire_times_local"][0])
    assert shown.utcoffset() in (timedelta(hours=-5), timedelta(hours=-4))
    overview = await client.get("/api/v1/schedules", headers=operator.headers)
    assert [s["id"] for s in overview.json()["items"]] == [body["id"]]


@pytest.mark.parametrize(
    ("zone", "message"),
    [
        ("localtime", schedules.UNKNOWN_ZONE),
        ("posixrules", schedules.UNKNOWN_ZONE),
        ("right/UTC", schedules.UNKNOWN_ZONE),
        ("posix/Europe/Paris", schedules.UNKNOWN_ZONE),
        ("Europe/Paris ", schedules.UNKNOWN_ZONE),
        ("Europe/Pariss", schedules.UNKNOWN_ZONE),
        ("Europe\uff0fParis", schedules.UNKNOWN_ZONE),
        ("GMT+5", schedules.UNKNOWN_ZONE),
        ("Factory", schedules.FACTORY_ZONE),
        ("factory", schedules.FACTORY_ZONE),
    ],
)
def test_a_time_zone_is_an_iana_name(zone: str, message: str) -> None:
    """ZoneInfo opens any file of the tz directory: `localtime` (the zone of whichever server
    process reads it), `posixrules`, the `right/` and `posix/` copies were accepted; so was
    `Factory`, the tz database's "zone not set" placeholder, which no one means for a schedule."""
    with pytest.raises(Invalid) as refused:
        schedules.check_timezone(zone)
    assert refused.value.details == [{"field": "timezone", "message": message}]


# Zones as typed -> as stored, and the UTC hour of 09:00 there on 2027-01-10.
ZONES = [
    ("Europe/Paris", "Europe/Paris", 8),  # 09:00 CET in January
    ("europe/paris", "Europe/Paris", 8),
    ("EUROPE/PARIS", "Europe/Paris", 8),
    (" Europe/Paris\t", "Europe/Paris", 8),
    ("UTC", "UTC", 9),
    ("utc", "UTC", 9),
    ("Zulu", "Zulu", 9),
    ("US/Pacific", "US/Pacific", 17),  # a legacy link: America/Los_Angeles, 09:00 PST
    ("Etc/GMT+5", "Etc/GMT+5", 14),  # POSIX's inverted sign: UTC-05:00
    ("Etc/GMT-14", "Etc/GMT-14", 19),  # UTC+14:00, the day before in UTC
]


async def test_a_time_zone_is_stored_as_iana_spells_it(
    client: httpx.AsyncClient, operator: LoggedIn, backend: str
) -> None:
    """A case variant was refused as unknown; a legacy link and Etc/GMT+N are the zones the tz
    database defines (Etc/GMT+5 is five hours behind UTC: the docs say so). Every zone of `ZONES`
    in one test (a script and a schedule each): one server per database, not one per zone."""
    january = datetime(2027, 1, 10, tzinfo=UTC)
    for zone, stored, utc_hour in ZONES:
        assert schedules.check_timezone(zone.strip()).key == stored, zone
        sid = await script(client, operator)
        r = await add(client, operator, sid, cron="0 9 * * *", timezone=zone)
        assert r.status_code == 201, (zone, r.text)
        assert r.json()["timezone"] == stored, zone
        [fire] = schedules.next_times("0 9 * * *", stored, january)
        assert (fire.hour, fire.minute) == (utc_hour, 0), zone
        listed = f"/api/v1/scripts/{sid}/schedules"
        shown = await client.get(listed, params={"tz": zone.strip()}, headers=operator.headers)
        assert shown.status_code == 200, (zone, shown.text)
        refused = await client.get(listed, params={"tz": "Factory"}, headers=operator.headers)
        assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "tz", refused.text


PARIS_FALL_BACK = datetime(2027, 10, 31, 0, 30, tzinfo=UTC)  # 02:30 CEST; 01:30Z is 02:30 CET


@pytest.mark.parametrize(
    ("cron", "expected"),
    [
        # a wall-clock time in the repeated hour: once, at its first occurrence (cronie, Vixie cron)
        ("30 2 * * *", ["2027-10-31T00:30", "2027-11-01T01:30"]),
        ("30 1-3 * * *", ["2027-10-31T00:30", "2027-10-31T02:30"]),
        # minute or hour starting with `*`: every matching instant, the repeated hour too
        ("30 * * * *", ["2027-10-31T00:30", "2027-10-31T01:30"]),
        ("*/30 2 * * *", ["2027-10-31T00:30", "2027-10-31T01:00"]),
    ],
)
def test_a_wall_clock_time_the_fall_back_repeats_fires_once(cron: str, expected: list[str]) -> None:
    start = PARIS_FALL_BACK - timedelta(minutes=1)
    got = [t.strftime("%Y-%m-%dT%H:%M") for t in schedules.next_times(cron, "Europe/Paris", start, 2)]
    assert got == expected
    # the same fire times read backwards (the missed-fire policy reads them so)
    later = datetime.fromisoformat(expected[1]).replace(tzinfo=UTC) + timedelta(minutes=1)
    assert schedules.previous_time(cron, "Europe/Paris", later).strftime("%Y-%m-%dT%H:%M") == expected[1]


async def test_a_daily_schedule_runs_once_on_the_fall_back_night(
    client: httpx.AsyncClient, admin: LoggedIn, no_automation_loops: None
) -> None:
    """`30 2 * * *` in Europe/Paris ran twice on the night clocks go back (02:30 CEST and 02:30
    CET, an hour apart): a daily backup or report ran twice."""
    await local_runner(client, admin)
    sid = await script(client, admin)
    schedule_id = (await add(client, admin, sid, cron="30 2 * * *", timezone="Europe/Paris")).json()["id"]
    async with runtime.current().db.session() as session:
        await session.exec(
            update(Schedule).where(col(Schedule.id) == schedule_id).values(next_fire_at=PARIS_FALL_BACK)
        )
        await session.commit()
    db = runtime.current().db
    assert await schedules.tick(db, now=PARIS_FALL_BACK + timedelta(seconds=5)) == 1
    assert await schedules.tick(db, now=PARIS_FALL_BACK + timedelta(hours=1, seconds=5)) == 0
    assert [f.fire_time for f in await fires(schedule_id)] == [PARIS_FALL_BACK]
    async with db.session() as session:
        row = await session.get(Schedule, schedule_id)
        assert row is not None and row.next_fire_at == datetime(2027, 11, 1, 1, 30, tzinfo=UTC)


PARIS_SPRING_FORWARD = datetime(2027, 3, 28, 1, 0, tzinfo=UTC)  # 02:00 CET is 03:00 CEST


@pytest.mark.parametrize(
    ("cron", "expected"),
    [
        # a wall-clock time the gap skips: once, at the first instant after it (03:00 CEST)
        ("30 2 * * *", ["2027-03-27T01:30", "2027-03-28T01:00", "2027-03-29T00:30"]),
        ("0 2 * * *", ["2027-03-27T01:00", "2027-03-28T01:00", "2027-03-29T00:00"]),
        # the times the gap skips are not made up for when the minute or hour starts with `*`
        ("30 * * * *", ["2027-03-28T00:30", "2027-03-28T01:30", "2027-03-28T02:30"]),
    ],
)
def test_a_wall_clock_time_the_spring_forward_skips_fires_once(cron: str, expected: list[str]) -> None:
    start = datetime.fromisoformat(expected[0]).replace(tzinfo=UTC) - timedelta(minutes=1)
    got = [t.strftime("%Y-%m-%dT%H:%M") for t in schedules.next_times(cron, "Europe/Paris", start, 3)]
    assert got == expected


@pytest.mark.parametrize(
    ("cron", "zone", "expected"),
    [
        # Lord Howe Island's clocks go back 30 minutes (02:00 +11 is 01:30 +1030, 15:00Z): a
        # wildcard fires at both instants of a repeated time, here 01:40 (croniter, given aware
        # times, assumed one-hour shifts and missed the second) ...
        ("*/20 * * * *", "Australia/Lord_Howe", ["2027-04-03T14:40", "2027-04-03T15:10", "2027-04-03T15:30"]),
        ("*/25 * * * *", "Australia/Lord_Howe", ["2027-04-03T14:50", "2027-04-03T15:20", "2027-04-03T15:30"]),
        ("*/20 1 * * *", "Australia/Lord_Howe", ["2027-04-03T14:40", "2027-04-03T15:10", "2027-04-04T14:30"]),
        # ... a wall-clock time once, at its first instant
        ("40 1 * * *", "Australia/Lord_Howe", ["2027-04-03T14:40", "2027-04-04T15:10", "2027-04-05T15:10"]),
        # a wildcard's times a spring-forward skips are not made up for after the gap (croniter
        # fired `*/20 2 * * *` at 03:00 CEST, once, on the night that has no 02:00) ...
        ("*/20 2 * * *", "Europe/Paris", ["2027-03-27T01:40", "2027-03-29T00:00", "2027-03-29T00:20"]),
        ("*/30 1 * * *", "Antarctica/Troll", ["2027-03-27T01:30", "2027-03-28T23:00", "2027-03-28T23:30"]),
        # ... a wall-clock time is, at the first instant after a gap of any length (two hours)
        ("30 2 * * *", "Antarctica/Troll", ["2027-03-27T02:30", "2027-03-28T01:00", "2027-03-29T00:30"]),
    ],
)
def test_fire_times_follow_clock_shifts_of_any_length(cron: str, zone: str, expected: list[str]) -> None:
    """The rules above hold for a zone whose shift is not one hour: the fire times are the zone's
    own instants of the expression's wall-clock times (`services/fire_times.py`), read the same
    way backwards (the missed-fire policy reads them so)."""
    instants = [datetime.fromisoformat(t).replace(tzinfo=UTC) for t in expected]
    got = schedules.next_times(cron, zone, instants[0] - timedelta(minutes=1), 3)
    assert [t.strftime("%Y-%m-%dT%H:%M") for t in got] == expected
    for earlier_fire, fire in itertools.pairwise(instants):
        assert schedules.previous_time(cron, zone, fire) == earlier_fire


async def test_a_daily_schedule_runs_once_on_the_spring_forward_night(
    client: httpx.AsyncClient, admin: LoggedIn, backend: str, no_automation_loops: None
) -> None:
    """`30 2 * * *` in Europe/Paris: 02:30 does not exist on the night clocks go forward; the
    schedule runs once, at 03:00 CEST (cronie runs such a job right after the gap), not zero
    times and not twice, with the scheduler's clock (`tick(now=...)`) stepping through the night."""
    await local_runner(client, admin)
    sid = await script(client, admin)
    schedule_id = (await add(client, admin, sid, cron="30 2 * * *", timezone="Europe/Paris")).json()["id"]
    night_before = datetime(2027, 3, 27, 23, 0, tzinfo=UTC)
    async with runtime.current().db.session() as session:
        row = await session.get(Schedule, schedule_id)
        assert row is not None
        first = schedules.next_times(row.cron, row.timezone, night_before)[0]
        assert first == PARIS_SPRING_FORWARD
        await session.exec(update(Schedule).where(col(Schedule.id) == schedule_id).values(next_fire_at=first))
        await session.commit()
    db = runtime.current().db
    started = 0
    for minutes in range(0, 4 * 60, 15):  # 00:00 to 04:00 Paris time, every quarter of an hour
        started += await schedules.tick(db, now=night_before + timedelta(minutes=minutes, seconds=5))
    assert started == 1
    assert [f.fire_time for f in await fires(schedule_id)] == [PARIS_SPRING_FORWARD]
    async with db.session() as session:
        row = await session.get(Schedule, schedule_id)
        assert row is not None and row.next_fire_at == datetime(2027, 3, 29, 0, 30, tzinfo=UTC)


async def test_exactly_once_per_fire_time_with_concurrent_ticks(
    client: httpx.AsyncClient, admin: LoggedIn, no_automation_loops: None
) -> None:
    await local_runner(client, admin)
    sid = await script(client, admin)
    # Once a year, months away, so that no new fire time falls due while the test runs (every
    # minute did, when a loaded machine crossed a minute between the fire and the last check).
    cron = far_yearly_cron()
    ids = [
        (await add(client, admin, sid, name=f"s{i}", cron=cron, overlap_policy="allow")).json()["id"]
        for i in range(10)
    ]
    for schedule_id in ids:
        await due_now(schedule_id)
    db = runtime.current().db
    claimed = await asyncio.gather(*(schedules.tick(db, me=f"p{i}") for i in range(4)))
    assert sum(claimed) == 10
    async with db.session() as session:
        rows = (await session.exec(select(ScheduleFire))).all()
        runs = (await session.exec(select(Execution).where(col(Execution.script_id) == sid))).all()
    assert len(rows) == 10 and {f.outcome for f in rows} == {"started"}
    assert len(runs) == 10 and {r.id for r in runs} == {f.execution_id for f in rows}
    assert sum(await asyncio.gather(*(schedules.tick(db) for _ in range(3)))) == 0, "nothing due any more"


async def test_missed_fires_follow_the_policy(
    client: httpx.AsyncClient, admin: LoggedIn, no_automation_loops: None
) -> None:
    await local_runner(client, admin)
    sid = await script(client, admin)
    once = (await add(client, admin, sid, name="once", cron="*/5 * * * *", missed_policy="run_once")).json()[
        "id"
    ]
    skip = (await add(client, admin, sid, name="skip", cron="*/5 * * * *", missed_policy="skip")).json()["id"]
    # the server was down for three hours (36 fire times) and comes back two minutes after one
    latest = schedules.previous_time("*/5 * * * *", "UTC", utcnow())
    async with runtime.current().db.session() as session:
        await session.exec(
            update(Schedule)
            .where(col(Schedule.id).in_([once, skip]))
            .values(next_fire_at=latest - timedelta(hours=3))
        )
        await session.commit()
    db = runtime.current().db
    assert await schedules.tick(db, now=latest + timedelta(minutes=2)) == 2
    (ran,) = await fires(once)
    (skipped,) = await fires(skip)
    assert ran.outcome == "started" and ran.execution_id is not None
    assert ran.fire_time == latest, "run once, for the latest missed time"
    assert skipped.outcome == "skipped_missed" and skipped.execution_id is None
    async with db.session() as session:
        row = await session.get(Schedule, skip)
        # The next fire time after the tick's moment (not the test's clock: the real five minutes
        # may have passed by now).
        assert row is not None and row.next_fire_at == latest + timedelta(minutes=5)


async def cancel_running(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    """Cancel every queued or running run (the tests' sleepers)."""
    async with runtime.current().db.session() as session:
        running = (
            await session.exec(select(Execution.id).where(col(Execution.status).in_(["queued", "running"])))
        ).all()
    for execution_id in running:
        await client.post(f"/api/v1/executions/{execution_id}/cancel", headers=admin.headers)


async def one_fire_waiting(client: httpx.AsyncClient, admin: LoggedIn) -> tuple[int, int, datetime]:
    """A schedule (overlap `queue`) of a script that sleeps a minute: its first fire started a
    run, the next (a minute later) waits for it. (script id, schedule id, the first fire's
    minute)."""
    await local_runner(client, admin)
    slow = await script(client, admin, "sleep 60\n")
    schedule_id = (await add(client, admin, slow, overlap_policy="queue")).json()["id"]
    db = runtime.current().db
    await due_now(schedule_id)
    await schedules.tick(db)
    minute = utcnow().replace(second=0, microsecond=0)
    await schedules.tick(db, now=minute + timedelta(minutes=1, seconds=1))
    assert sorted(f.outcome for f in await fires(schedule_id)) == ["started", "waiting"]
    return slow, schedule_id, minute


async def test_overlap_policies(
    client: httpx.AsyncClient, admin: LoggedIn, no_automation_loops: None
) -> None:
    await local_runner(client, admin)
    slow = await script(client, admin, "sleep 60\n")
    ids = {
        p: (await add(client, admin, slow, name=p, overlap_policy=p)).json()["id"]
        for p in ("skip", "queue", "allow")
    }
    db = runtime.current().db
    for schedule_id in ids.values():
        await due_now(schedule_id)
    await schedules.tick(db)  # first fires: all start
    # the next fire time (a minute later) while the first runs are still going
    await schedules.tick(db, now=utcnow().replace(second=0, microsecond=0) + timedelta(minutes=1, seconds=1))
    outcomes = {p: sorted(f.outcome for f in await fires(i)) for p, i in ids.items()}
    assert outcomes == {
        "skip": ["skipped_overlap", "started"],
        "queue": ["started", "waiting"],
        "allow": ["started", "started"],
    }
    (held,) = [f for f in await fires(ids["skip"]) if f.outcome == "skipped_overlap"]
    (ran,) = [f for f in await fires(ids["skip"]) if f.outcome == "started"]
    assert (held.message or "").startswith(f"the previous run, #{ran.execution_id}, is still ")
    # the queued fire starts once the previous run ends
    first = next(f for f in await fires(ids["queue"]) if f.outcome == "started")
    r = await client.post(f"/api/v1/executions/{first.execution_id}/cancel", headers=admin.headers)
    assert r.status_code == 200, r.text

    async def started() -> bool:
        if "waiting" not in {f.outcome for f in await fires(ids["queue"])}:
            return True
        await schedules.tick(db)  # a tick starts a waiting fire once the previous run ended
        return False

    await until(started, "the queued fire to start", 30, 0.2)
    assert sorted(f.outcome for f in await fires(ids["queue"])) == ["started", "started"]
    await cancel_running(client, admin)


async def test_a_fire_waiting_on_a_paused_schedule_starts_no_run(
    client: httpx.AsyncClient, admin: LoggedIn, no_automation_loops: None
) -> None:
    """Overlap `queue`: a fire waits for the previous run. The schedule is paused meanwhile; when
    the previous run ended, the waiting fire still started a run of the paused schedule."""
    slow, schedule_id, _ = await one_fire_waiting(client, admin)
    db = runtime.current().db
    path = f"/api/v1/scripts/{slow}/schedules/{schedule_id}"
    r = await client.put(path, json={"enabled": False}, headers=admin.headers)
    assert r.status_code == 200, r.text
    (first,) = [f for f in await fires(schedule_id) if f.outcome == "started"]
    assert first.execution_id is not None
    r = await client.post(f"/api/v1/executions/{first.execution_id}/cancel", headers=admin.headers)
    assert r.status_code == 200, r.text
    await wait_for(client, admin, first.execution_id)
    await schedules.tick(db)
    assert sorted(f.outcome for f in await fires(schedule_id)) == ["skipped_paused", "started"]
    runs = await client.get(f"/api/v1/executions?script_id={slow}", headers=admin.headers)
    assert runs.json()["total"] == 1, "the paused schedule started nothing more"
    shown = (await client.get(path, headers=admin.headers)).json()
    assert shown["last_outcome"] == "skipped_paused" and "paused" in shown["last_message"]


async def test_a_waiting_fire_starts_before_a_later_fire_is_handled(
    client: httpx.AsyncClient, admin: LoggedIn, no_automation_loops: None
) -> None:
    """Overlap `queue`: the previous run ended while no tick ran (the server restarting, or the
    run ending just before the next fire time). The next tick started the new fire and left the
    older, queued one waiting behind that new run: out of order, and a minute late (for ever, on
    a schedule whose runs outlast its period). The queued fire goes first; the new one waits."""
    _, schedule_id, minute = await one_fire_waiting(client, admin)
    db = runtime.current().db
    (first,) = [f for f in await fires(schedule_id) if f.outcome == "started"]
    (queued,) = [f for f in await fires(schedule_id) if f.outcome == "waiting"]
    assert first.execution_id is not None
    r = await client.post(f"/api/v1/executions/{first.execution_id}/cancel", headers=admin.headers)
    assert r.status_code == 200, r.text
    await wait_for(client, admin, first.execution_id)
    await schedules.tick(db, now=minute + timedelta(minutes=2, seconds=1))
    by_time = {f.fire_time: f.outcome for f in await fires(schedule_id)}
    later = max(by_time)
    assert by_time[queued.fire_time] == "started" and by_time[later] == "waiting", by_time
    await cancel_running(client, admin)


async def test_a_fire_held_back_by_a_run_awaiting_approval_says_so(
    client: httpx.AsyncClient, admin: LoggedIn, no_automation_loops: None
) -> None:
    """A schedule of a script that requires approval: its run waits for a decision, and every
    later fire is skipped meanwhile. The schedule said "the previous run is still going" of a
    run that never started; it says the run and that it awaits approval."""
    await local_runner(client, admin)
    sid = await script(client, admin)
    r = await client.put(f"/api/v1/scripts/{sid}/approval", json={"required": 1}, headers=admin.headers)
    assert r.status_code == 200, r.text
    schedule_id = (await add(client, admin, sid)).json()["id"]
    db = runtime.current().db
    await due_now(schedule_id)
    await schedules.tick(db)
    await schedules.tick(db, now=utcnow().replace(second=0, microsecond=0) + timedelta(minutes=1, seconds=1))
    (first,) = [f for f in await fires(schedule_id) if f.outcome == "started"]
    shown = (await client.get(f"/api/v1/scripts/{sid}/schedules/{schedule_id}", headers=admin.headers)).json()
    assert shown["last_outcome"] == "skipped_overlap"
    assert shown["last_message"] == f"the previous run, #{first.execution_id}, is still awaiting approval"


async def test_deactivated_owner_pauses_the_schedule(
    client: httpx.AsyncClient, admin: LoggedIn, operator: LoggedIn, no_automation_loops: None
) -> None:
    await local_runner(client, admin)
    sid = await script(client, operator)
    schedule_id = (await add(client, operator, sid)).json()["id"]
    r = await client.put(f"/api/v1/users/{operator.id}", json={"is_active": False}, headers=admin.headers)
    assert r.status_code == 200, r.text
    await due_now(schedule_id)
    db = runtime.current().db
    assert await schedules.tick(db) == 1
    (fire,) = await fires(schedule_id)
    assert fire.outcome == "paused_owner" and fire.execution_id is None
    r = await client.get(f"/api/v1/scripts/{sid}/schedules/{schedule_id}", headers=admin.headers)
    assert r.json()["enabled"] is False and "deactivated" in r.json()["paused_reason"]
    async with db.session() as session:
        events = (
            await session.exec(select(AuditEvent).where(col(AuditEvent.action) == "schedule.paused"))
        ).all()
        assert len(events) == 1 and events[0].target_id == str(schedule_id)
        assert (await session.exec(select(Execution).where(col(Execution.script_id) == sid))).all() == []
    # saving it again (by an active user) makes them the owner and resumes it
    r = await client.put(
        f"/api/v1/scripts/{sid}/schedules/{schedule_id}",
        json={"name": "n", "cron": "* * * * *"},
        headers=admin.headers,
    )
    assert r.status_code == 200 and r.json()["enabled"] and r.json()["owner_name"] == "admin"
    assert r.json()["paused_reason"] is None


async def test_a_fire_that_starts_nothing_says_why_on_the_schedule(
    client: httpx.AsyncClient, admin: LoggedIn, operator: LoggedIn, no_automation_loops: None
) -> None:
    """A schedule storing a parameter its script no longer accepts fires `error`: the schedule
    shows the resolver's reason next to it (it said only "error", the reason was nowhere to be
    read); the next fire that starts a run clears it."""
    await local_runner(client, admin)
    sid = await script(client, operator, parameters={"VER": "1"})
    schedule_id = (await add(client, operator, sid, parameters={"VER": "2"})).json()["id"]
    r = await client.put(
        f"/api/v1/scripts/{sid}", json={"parameters": {"OTHER": "x"}}, headers=operator.headers
    )
    assert r.status_code == 200, r.text
    url = f"/api/v1/scripts/{sid}/schedules/{schedule_id}"
    assert (await client.get(url, headers=operator.headers)).json()["last_message"] is None
    db = runtime.current().db
    await due_now(schedule_id)
    assert await schedules.tick(db) == 1
    shown = (await client.get(url, headers=operator.headers)).json()
    assert shown["last_outcome"] == "error", shown
    assert "parameters.VER" in shown["last_message"] and "unknown parameter" in shown["last_message"]
    listed = (await client.get("/api/v1/schedules", headers=operator.headers)).json()["items"]
    assert [s["last_message"] for s in listed if s["id"] == schedule_id] == [shown["last_message"]]
    r = await client.put(url, json={"parameters": {}}, headers=operator.headers)
    assert r.status_code == 200, r.text
    assert await schedules.tick(db, now=utcnow() + timedelta(minutes=1)) == 1, "the next minute's fire"
    shown = (await client.get(url, headers=operator.headers)).json()
    assert shown["last_outcome"] == "started" and shown["last_message"] is None, shown
    await wait_for(client, admin, shown["last_execution_id"])


async def test_deleting_the_script_stops_its_schedules(
    client: httpx.AsyncClient, admin: LoggedIn, operator: LoggedIn, no_automation_loops: None
) -> None:
    """A deleted script's schedule is paused in the delete's transaction: it used to stay enabled
    and fire `error` ("script N not found") at every fire time, forever, hidden from every list.
    The pause is audited (`schedule.paused`: it changed with no event)."""
    sid = await script(client, operator)
    other = await script(client, operator)
    schedule_id = (await add(client, operator, sid)).json()["id"]
    kept_id = (await add(client, operator, other)).json()["id"]
    await due_now(schedule_id)
    assert (await client.delete(f"/api/v1/scripts/{sid}", headers=operator.headers)).status_code == 204
    db = runtime.current().db
    assert await schedules.tick(db) == 0
    assert await fires(schedule_id) == []
    async with db.session() as session:
        stopped, kept = await session.get(Schedule, schedule_id), await session.get(Schedule, kept_id)
        assert stopped is not None and kept is not None
        assert not stopped.enabled and stopped.next_fire_at is None
        assert stopped.paused_reason == "paused: its script was deleted"
        assert kept.enabled and kept.next_fire_at is not None, "another script's schedule goes on"
    # Said in the schedule's audit log, in the deleter's name (it changed with no event).
    params = {"target_type": "schedule", "target_id": schedule_id, "action": "schedule.paused"}
    events = (await client.get("/api/v1/audit", params=params, headers=admin.headers)).json()["items"]
    assert [(e["actor_name"], e["details"]["reason"]) for e in events] == [
        (operator.username, "its script was deleted")
    ]


@pytest.mark.parametrize("engine_settings", [QUICK_SCHEDULER], ids=["scheduler-idle-0.5s"])
async def test_schedule_fires_on_its_own(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    """The runtime's scheduler loop (no test driving it) starts the run at the fire time."""
    await local_runner(client, admin)
    sid = await script(client, admin, "echo scheduled\n")
    schedule_id = (await add(client, admin, sid)).json()["id"]
    await due_now(schedule_id)

    async def fired() -> list[ScheduleFire] | None:
        rows = await fires(schedule_id)
        return rows if {f.outcome for f in rows} not in (set(), {"due"}) else None

    (fire,) = await until(fired, "the scheduler to fire", 30, 0.2)
    assert fire.outcome == "started"


async def test_runs_record_the_schedule_as_trigger(
    client: httpx.AsyncClient, admin: LoggedIn, no_automation_loops: None
) -> None:
    await local_runner(client, admin)
    sid = await script(client, admin)
    schedule_id = (await add(client, admin, sid)).json()["id"]
    await due_now(schedule_id)
    await schedules.tick(runtime.current().db)
    (fire,) = await fires(schedule_id)
    run = (await client.get(f"/api/v1/executions/{fire.execution_id}", headers=admin.headers)).json()
    assert (run["trigger"], run["trigger_ref"], run["triggered_by_name"]) == (
        "schedule",
        f"schedule:{schedule_id}",
        "admin",
    )


# (cron, timezone, what the refusal names) of schedules saved before today's rules
STORED_BEFORE_RULES = [
    ("0 3-3 * * *", "UTC", "cron: hour field '3-3'"),  # croniter reads it as every hour
    ("5-1 * * * *", "UTC", "cron: minute field '5-1'"),  # croniter wraps it; cron matches nothing
    ("*/1000 * * * *", "UTC", "cron: minute field '*/1000'"),
    ("* * * * *", "Factory", "timezone: "),
    # croniter or the tz database cannot read these at all
    ("61 * * * *", "UTC", "cron: minute field '61'"),
    ("* * * * * *", "UTC", "cron: needs 5 fields"),
    ("@reboot", "UTC", "cron: '@reboot' is no macro"),
    ("0 3 * * *", "Mars/Olympus", "timezone: unknown time zone"),  # e.g. dropped by a tzdata update
    ("0 3 * * *", "", "timezone: unknown time zone"),
]


async def store_as_before(schedule_id: int, cron: str, timezone: str) -> None:
    """Give schedule `schedule_id` a cron expression and zone as an older version stored them,
    due a second ago."""
    async with runtime.current().db.session() as session:
        await session.exec(
            update(Schedule)
            .where(col(Schedule.id) == schedule_id)
            .values(cron=cron, timezone=timezone, next_fire_at=utcnow() - timedelta(seconds=1))
        )
        await session.commit()


async def test_a_schedule_stored_before_the_cron_rules_lists_and_reads_then_is_paused_saying_why(
    client: httpx.AsyncClient, admin: LoggedIn, viewer: LoggedIn, no_automation_loops: None
) -> None:
    """Each of `STORED_BEFORE_RULES` in turn, in one runtime (one each cost more than the checks:
    docs/benchmarks.md, session 51), on a schedule of its own among the earlier ones.

    Before the scheduler's next round pauses it, such a schedule lists and reads: no next fire
    times, and why it does not fire (a cron expression croniter cannot read, `61 * * * *`, or a
    zone the tz database does not have made every list holding it a 500, the API's and the
    schedules pages'); a change that keeps it is a 422 naming the field.

    A schedule saved before `check_cron`/`check_timezone` refused its expression or zone kept
    firing as croniter reads it (`0 3-3 * * *` every hour, not at 3). At its next due time it is
    paused instead, the reason on the schedule and in the audit; a save with the expression fixed
    resumes it."""
    await local_runner(client, admin)
    db = runtime.current().db
    for cron, timezone, named in STORED_BEFORE_RULES:
        shape = (cron, timezone)
        sid = await script(client, admin)
        schedule_id = (await add(client, admin, sid)).json()["id"]
        await store_as_before(schedule_id, cron, timezone)
        path = f"/api/v1/scripts/{sid}/schedules"
        for url, params in [
            ("/api/v1/schedules", {}),
            (path, {}),
            (path, {"tz": "Europe/Paris"}),
            (f"{path}/{schedule_id}", {}),
            (f"{path}/{schedule_id}", {"tz": "Asia/Tokyo"}),
        ]:
            r = await client.get(url, params=params, headers=viewer.headers)
            assert r.status_code == 200, (shape, url, r.text)
            body = r.json()
            (shown,) = [s for s in body["items"] if s["id"] == schedule_id] if "items" in body else [body]
            assert (shown["cron"], shown["timezone"], shown["enabled"]) == (cron, timezone, True)
            assert shown["next_fire_times"] == shown["next_fire_times_local"] == [], shape
            assert shown["paused_reason"].startswith(f"not fired: {named}"), shown["paused_reason"]
            assert shown["paused_reason"].endswith("(saved before this rule: fix it to resume)")
        r = await client.put(f"{path}/{schedule_id}", json={"name": "renamed"}, headers=admin.headers)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == named.split(":")[0], r.text

        # the next due time: paused, not fired
        assert await schedules.tick(db) == 0, shape
        assert await fires(schedule_id) == [], shape
        path = f"{path}/{schedule_id}"
        shown = (await client.get(path, headers=admin.headers)).json()
        assert shown["enabled"] is False, shape
        assert shown["paused_reason"].startswith(f"paused: {named}"), shown["paused_reason"]
        assert shown["paused_reason"].endswith("(saved before this rule: fix it to resume)")
        async with db.session() as session:
            events = (
                await session.exec(
                    select(AuditEvent).where(
                        col(AuditEvent.action) == "schedule.paused",
                        col(AuditEvent.target_id) == str(schedule_id),
                    )
                )
            ).all()
            assert len(events) == 1, shape
        assert await schedules.tick(db) == 0, ("paused: nothing more", shape)
        r = await client.put(path, json={"cron": "0 3 * * *", "timezone": "UTC"}, headers=admin.headers)
        assert r.status_code == 200, r.text
        assert r.json()["enabled"] is True and r.json()["paused_reason"] is None, shape


# Expressions and zones today's rules take, stored in another form than a save stores (the
# expression `check_cron` normalises, the zone as IANA spells it): a version or an import that
# kept a macro as written, a manual edit. (stored cron, stored zone, the cron and zone it fires in)
STORED_IN_ANOTHER_FORM = [
    ("@yearly", "UTC", "0 0 1 1 *", "UTC"),
    ("@Daily", "UTC", "0 0 * * *", "UTC"),
    ("\t30  3 * * MON  ", "UTC", "30 3 * * MON", "UTC"),
    ("0 9 * * *", "europe/paris", "0 9 * * *", "Europe/Paris"),
    ("0 9 * * *", " Asia/Tokyo\t", "0 9 * * *", "Asia/Tokyo"),
]


async def test_a_schedule_stored_in_another_form_lists_reads_and_fires_as_saved(
    client: httpx.AsyncClient, admin: LoggedIn, viewer: LoggedIn, no_automation_loops: None
) -> None:
    """A stored `@yearly` or `europe/paris` made every list holding it a 500 (`/api/v1/schedules`,
    the script's, the Schedules pages) and, once due, failed every round of the scheduler, so
    that no schedule of any script fired again: the fire times were computed from the stored
    text (the wall-clock walk splits it into minute and hour fields; zoneinfo's names are
    case-sensitive). Such a schedule lists and reads with the fire times of the expression and
    zone a save would store, both shown as stored, and fires like the others."""
    await local_runner(client, admin)
    db = runtime.current().db
    for stored, stored_zone, fields, zone in STORED_IN_ANOTHER_FORM:
        shape = (stored, stored_zone)
        sid = await script(client, admin)
        schedule_id = (await add(client, admin, sid)).json()["id"]
        await store_as_before(schedule_id, stored, stored_zone)
        other = (await add(client, admin, await script(client, admin), name="other")).json()["id"]
        await due_now(other)
        path = f"/api/v1/scripts/{sid}/schedules"
        for url in ["/api/v1/schedules", path, f"{path}/{schedule_id}"]:
            r = await client.get(url, headers=viewer.headers)
            assert r.status_code == 200, (shape, url, r.text)
            body = r.json()
            (shown,) = [s for s in body["items"] if s["id"] == schedule_id] if "items" in body else [body]
            times = schedules.next_times(fields, zone, utcnow(), 5)
            expected = [t.isoformat().replace("+00:00", "Z") for t in times]
            assert (shown["cron"], shown["timezone"], shown["paused_reason"]) == (stored, stored_zone, None)
            assert shown["next_fire_times"] == expected, (shape, shown["next_fire_times"])
            local = [(t, t.astimezone(ZoneInfo(zone)).utcoffset()) for t in times]
            read = [datetime.fromisoformat(t) for t in shown["next_fire_times_local"]]
            assert [(t, t.utcoffset()) for t in read] == local, (shape, shown["next_fire_times_local"])
        # due with another schedule: both fire, in the same round (earlier every-minute ones
        # of this module may be due again too)
        assert await schedules.tick(db) >= 2, shape
        for fired in (schedule_id, other):
            (fire,) = await fires(fired)
            assert fire.outcome == "started", (shape, fire.outcome, fire.message)
        after = (await client.get(f"{path}/{schedule_id}", headers=admin.headers)).json()
        assert after["enabled"] is True and after["next_fire_times"][0] == expected[0], after


def test_the_far_yearly_cron_does_not_fire_within_months_of_any_day() -> None:
    """`far_yearly_cron` on every day of a year (a leap year, from its New Year's Eve at
    23:59): its next fire is at least 5 months away (`0 0 1 1 *` fired at UTC's New Year)."""
    day = datetime(2027, 12, 31, 23, 59, tzinfo=UTC)
    for _ in range(367):
        following = croniter(far_yearly_cron(day), day).get_next(datetime)
        assert following - day > timedelta(days=150), (day, following)
        day += timedelta(days=1)
