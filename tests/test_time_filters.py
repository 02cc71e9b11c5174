"""The `since`/`until` filters of the audit trail and the run history (`services.instants`, SQLite
and PostgreSQL): a time at the edge of the calendar whose offset takes it past year 9999 or
before year 1 in UTC is a 422 naming the field (it was a 500: OverflowError), and `since` later
than `until` is a 422 naming `since` on both lists (the run history answered an empty page).
A number is not a time: Pydantic read `?since=2026` as a Unix time (1970-01-01T00:33:46Z), so a
year typed alone filtered from 1970 (`services.bodies.ISO_TEXT`; bodies: `expires_at`)."""

from __future__ import annotations

import httpx
import pytest

from opscraft.services.bodies import DATETIME_MESSAGE, PLUS_AS_SPACE_MESSAGE
from tests.conftest import LoggedIn

LISTS = ["/api/v1/audit", "/api/v1/executions"]
# The time each list filters `since`/`until` on (ISO 8601 UTC in its items).
TIME_FIELD = {"/api/v1/audit": "time", "/api/v1/executions": "queued_at"}


# Times whose UTC form is outside years 1-9999: (filter, value).
NO_UTC_FORM = [
    ("since", "9999-12-31T23:59:59-14:00"),
    ("until", "9999-12-31T23:00:00-01:00"),
    ("since", "0001-01-01T00:00:00+14:00"),
    ("until", "0001-01-01T13:59:59+14:00"),
]


async def test_a_time_without_a_utc_form_is_refused_naming_the_field(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """Each of `NO_UTC_FORM` on each of `LISTS`, in one test: one server per database, not one per case."""
    for path in LISTS:
        for field, value in NO_UTC_FORM:
            r = await client.get(path, params={field: value}, headers=admin.headers)
            assert r.status_code == 422, (path, value, r.text)
            assert r.json()["errors"] == [
                {"field": field, "message": "must be a time between years 1 and 9999 in UTC"}
            ], (path, value)


@pytest.mark.parametrize("path", LISTS)
async def test_the_calendars_edges_in_utc_and_a_reversed_range(
    client: httpx.AsyncClient, admin: LoggedIn, path: str
) -> None:
    edges = {"since": "0001-01-01T00:00:00Z", "until": "9999-12-31T23:59:59.999999+00:00"}
    r = await client.get(path, params=edges, headers=admin.headers)
    assert r.status_code == 200 and r.json()["total"] >= 0, r.text
    reversed_range = {"since": "2030-01-01T00:00:00Z", "until": "2020-01-01T00:00:00"}
    r = await client.get(path, params=reversed_range, headers=admin.headers)
    assert r.status_code == 422 and r.json()["errors"] == [
        {"field": "since", "message": "must not be later than until"}
    ], r.text


async def test_a_number_is_not_read_as_a_unix_time(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    """Each number on each of `LISTS`, in one test: one server per database, not one per case."""
    for path in LISTS:
        for field, value in [("since", "2026"), ("until", "1893456000"), ("since", "2026.5")]:
            r = await client.get(path, params={field: value}, headers=admin.headers)
            assert r.status_code == 422, (path, value, r.text)
            assert r.json()["errors"] == [{"field": field, "message": DATETIME_MESSAGE}], (path, value)
            r = await client.get(path, params={field: "2026-01-01"}, headers=admin.headers)
            assert r.status_code == 200, "a date alone is ISO 8601"


@pytest.mark.parametrize("value", [1893456000, "1893456000", 2030])
async def test_a_token_expiry_given_as_a_number_is_refused(
    client: httpx.AsyncClient, admin: LoggedIn, value: object
) -> None:
    r = await client.post("/api/v1/tokens", json={"name": "ci", "expires_at": value}, headers=admin.headers)
    assert r.status_code == 422, r.text
    assert {"field": "expires_at", "message": DATETIME_MESSAGE} in r.json()["errors"]
    listed = await client.get("/api/v1/tokens", headers=admin.headers)
    assert listed.json()["total"] == 0, "nothing was created"


@pytest.mark.parametrize("value", ["2030-01-01", "2030-01-01T00:00:00"])
async def test_a_token_expiry_needs_its_time_zone_unlike_the_query(
    client: httpx.AsyncClient, admin: LoggedIn, value: str
) -> None:
    """docs/api.md said "or a date alone" for `expires_at` too: a date alone (or a time without a
    zone) is refused there, naming the field; the query reads either as UTC."""
    r = await client.post("/api/v1/tokens", json={"name": "ci", "expires_at": value}, headers=admin.headers)
    assert r.status_code == 422, r.text
    assert r.json()["errors"] == [
        {"field": "expires_at", "message": "give a time zone (e.g. 2030-01-01T00:00:00Z)"}
    ]
    r = await client.post(
        "/api/v1/tokens", json={"name": "ci", "expires_at": f"{value[:10]}T00:00:00Z"}, headers=admin.headers
    )
    assert r.status_code == 201, r.text


@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize("field", ["since", "until"])
async def test_an_offset_whose_plus_became_a_space_says_so(
    client: httpx.AsyncClient, admin: LoggedIn, path: str, field: str
) -> None:
    """Field report: `curl '...?since=2026-12-02T14:00:00+01:00'` (the `+` unencoded, which a query
    string reads as a space) was refused with "unexpected extra characters at the end of the
    input", which does not say what to fix."""
    r = await client.get(f"{path}?{field}=2026-12-02T14:00:00+01:00", headers=admin.headers)
    assert r.status_code == 422, r.text
    assert r.json()["errors"] == [{"field": field, "message": PLUS_AS_SPACE_MESSAGE}]
    ok = await client.get(f"{path}?{field}=2026-12-02T14:00:00%2B01:00", headers=admin.headers)
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize("path", LISTS)
async def test_until_given_as_a_date_alone_takes_in_that_whole_day(
    client: httpx.AsyncClient, admin: LoggedIn, path: str
) -> None:
    """`?since=D&until=D` is day D, as in the UI's day-range pickers (same YYYY-MM-DD, whole UTC
    days): the API read `until=D` as D's first instant, so the pair matched nothing."""
    if path == "/api/v1/executions":  # a run queued today
        body = {"name": "today", "script_type": "bash", "content": "echo hi\n", "status": "active"}
        script = await client.post("/api/v1/scripts", json=body, headers=admin.headers)
        run = await client.post(
            "/api/v1/executions", json={"script_id": script.json()["id"]}, headers=admin.headers
        )
        assert run.status_code == 202, run.text
    # The day of the newest row, from its own time (not the test's clock: a run queued at
    # 23:59:59.9 UTC read "today" as the next day, with nothing in it).
    newest = (await client.get(path, params={"limit": 1}, headers=admin.headers)).json()["items"][0]
    day = newest[TIME_FIELD[path]][:10]
    whole_day = {"since": f"{day}T00:00:00Z", "until": f"{day}T23:59:59.999999Z"}
    expected = (await client.get(path, params=whole_day, headers=admin.headers)).json()["total"]
    assert expected > 0, "the admin's sign-in (the run) on its day is in the list"
    for dates in ({"since": day, "until": day}, {"until": day}):
        r = await client.get(path, params=dates, headers=admin.headers)
        assert r.status_code == 200, r.text
        assert r.json()["total"] == expected, dates
