"""Parameter values that are not a JSON object are refused with one message, naming `parameters`,
wherever values are stored or sent (a schedule's used to say "parameters[0]: unknown
parameter..." in the UI and "Input should be a valid dictionary" in the API)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from opscraft.db.text import NON_FINITE_MESSAGE, TOO_SMALL_MESSAGE, imprecise_message
from opscraft.services import parameters
from opscraft.services.chains import LinkIn
from opscraft.services.schedules import ScheduleIn
from opscraft.services.webhooks import WebhookIn
from tests.conftest import LoggedIn


def value_routes(script_id: int) -> dict[str, dict[str, Any]]:
    """Every route whose body carries parameter values for script `script_id` (path -> the
    body's other fields): a schedule, webhook, "then run" link, test run and run."""
    return {
        f"/api/v1/scripts/{script_id}/schedules": {"name": "n", "cron": "0 1 * * *"},
        f"/api/v1/scripts/{script_id}/webhooks": {"name": "n"},
        f"/api/v1/scripts/{script_id}/chains": {"target_script_id": script_id},
        f"/api/v1/scripts/{script_id}/test-runs": {"content": "echo x\n"},
        "/api/v1/executions": {"script_id": script_id},
    }


async def test_every_body_with_parameter_values_says_they_must_be_an_object(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    body = {"name": "shape", "script_type": "bash", "content": "echo $N\n", "status": "active"}
    created = await client.post(
        "/api/v1/scripts", json={**body, "parameters": {"N": "1"}}, headers=operator.headers
    )
    assert created.status_code == 201, created.text
    for path, payload in value_routes(created.json()["id"]).items():
        for wrong, sent in (([1, 2], "a JSON array"), ("N=1", "text"), (3, "a number")):
            r = await client.post(path, json={**payload, "parameters": wrong}, headers=operator.headers)
            assert r.status_code == 422, (path, r.text)
            said = f"must be a JSON object (it is {sent})"
            assert r.json()["errors"] == [{"field": "parameters", "message": said}], (path, r.text)


def test_a_form_box_says_the_same_as_the_api() -> None:
    """A form's JSON box goes to the body model as typed (`json_from_text`), so the model refuses
    what is not an object with the API's message, with the body's other problems."""
    assert parameters.json_from_text(' {"N": 1} ') == {"N": 1}
    assert parameters.json_from_text("") == {}
    for text in ("[1,2]", "3", "null"):
        with pytest.raises(ValidationError) as raised:
            WebhookIn.model_validate({"name": "", "mapping": parameters.json_from_text(text)})
        errors = {e["loc"][0]: e["msg"] for e in raised.value.errors()}
        assert errors["mapping"] == "must be a JSON object" and "name" in errors, text


@pytest.mark.parametrize(
    ("text", "place"),
    [
        ("{", "line 1, column 2"),
        ("{'N': 1}", "line 1, column 2"),
        ('{"N": 1,}', "line 1, column 9"),  # Python 3.13 says "Illegal trailing comma"
        ('{\r\n  "N": "a"\r\n  "M": 2\r\n}', "line 3, column 3"),
        ("N=1", "line 1, column 1"),
        ('{"N": "a\tb"}', "line 1, column 9"),
    ],
)
def test_a_form_box_that_is_not_json_says_where_it_breaks(text: str, place: str) -> None:
    """A box that is not JSON said "must be a JSON object (it is text)", for Python's quotes or
    a trailing comma too: not where it went wrong. It says so as the API says it of a body
    (`http.not_json_reason`: "Expecting ',' delimiter at line 3, column 3")."""
    for model, data in (
        (WebhookIn, {"name": "n", "mapping": parameters.json_from_text(text)}),
        (ScheduleIn, {"name": "n", "cron": "0 1 * * *", "parameters": parameters.json_from_text(text)}),
        (LinkIn, {"target_script_id": 1, "parameters": parameters.json_from_text(text)}),
    ):
        with pytest.raises(ValidationError) as raised:
            model.model_validate(data)
        message = next(e["msg"] for e in raised.value.errors())
        assert message.startswith("must be a JSON object: not valid JSON: "), (model, message)
        assert message.endswith(f" at {place}"), (model, message)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"N": "first", "N": "second"}', "N: written more than once in one object: write each key once"),
        ('{"N": NaN}', "N: must be a finite number (NaN, Infinity and numbers beyond 1.8e308 are not)"),
        (
            '{"N": {"M": 1e400}}',
            "N.M: must be a finite number (NaN, Infinity and numbers beyond 1.8e308 are not)",
        ),
        ('{"N": [0, 1e-400]}', f"N.1: {TOO_SMALL_MESSAGE}"),
        (
            '{"N": [-' + "9" * 5000 + "]}",
            "N.0: must be a finite number (NaN, Infinity and numbers beyond 1.8e308 are not)",
        ),
        ('{"N": 0.1234567890123456789}', f"N: {imprecise_message(0.12345678901234568)}"),
        # Beyond Decimal's 28-digit context (was read as 1.0) and Python's 4,300-digit int limit
        # (a ValueError the box did not catch).
        ('{"N": 1.0000000000000000000000000001}', f"N: {imprecise_message(1.0)}"),
        ('{"N": [-' + "9" * 5000 + "]}", "N.0: " + NON_FINITE_MESSAGE),
        ("[" * 5000 + "]" * 5000, "nested deeper than can be read: write an object of NAME: value"),
    ],
)
def test_a_form_box_refuses_what_the_api_refuses_in_a_body(text: str, message: str) -> None:
    """Python's parser alone kept the last of two values, read `NaN` (saved as the text "nan" of
    a string parameter) and raised RecursionError; the API's body check refuses all three."""
    for model, data in (
        (WebhookIn, {"name": "n", "mapping": parameters.json_from_text(text)}),
        (WebhookIn, {"name": "n", "parameters": parameters.json_from_text(text)}),
        (ScheduleIn, {"name": "n", "cron": "0 1 * * *", "parameters": parameters.json_from_text(text)}),
        (LinkIn, {"target_script_id": 1, "parameters": parameters.json_from_text(text)}),
    ):
        with pytest.raises(ValidationError) as raised:
            model.model_validate(data)
        errors = {".".join(map(str, e["loc"])): e["msg"] for e in raised.value.errors()}
        box = "mapping" if "mapping" in data else "parameters"
        assert errors == {box: message}, (model, errors)
