"""Parameter schemas: normalization of both accepted forms and runtime resolution."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from opscraft.execution.param_env import to_env
from opscraft.services.errors import Invalid
from opscraft.services.parameters import (
    FROM_REQUEST_BODY,
    NO_LONGER_DECLARED,
    check_preset,
    normalize,
    resolve,
    stored_misfits,
)
from tests.conftest import LoggedIn


def fields(exc: pytest.ExceptionInfo[Invalid]) -> dict[str, str]:
    return {d["field"]: d["message"] for d in exc.value.details}


def test_simple_form_infers_types_from_defaults() -> None:
    schema = normalize({"NAME": "World", "COUNT": 3, "RATIO": 0.5, "DEBUG": False, "TOKEN": None})
    assert [(p["name"], p["type"], p["required"], p["default"]) for p in schema] == [
        ("NAME", "string", False, "World"),
        ("COUNT", "integer", False, 3),
        ("RATIO", "number", False, 0.5),
        ("DEBUG", "boolean", False, False),
        ("TOKEN", "string", True, None),
    ]


def test_typed_list_and_typed_object_normalize_the_same() -> None:
    as_list = normalize(
        [
            {"name": "REGION", "type": "choice", "options": ["eu", "us"], "default": "eu"},
            {"name": "N", "type": "integer", "default": "7", "description": "count"},
        ]
    )
    as_object = normalize(
        {
            "REGION": {"type": "choice", "options": ["eu", "us"], "default": "eu"},
            "N": {"type": "integer", "default": 7, "description": "count"},
        }
    )
    assert as_list == as_object
    assert as_list[1]["default"] == 7
    assert normalize(as_list) == as_list, "the normalized form is accepted back unchanged"


def test_empty_declarations() -> None:
    assert normalize(None) == []
    assert normalize({}) == []
    assert normalize([]) == []


@pytest.mark.parametrize(
    ("raw", "field", "message"),
    [
        ({"1ABC": "x"}, "parameters.1ABC", "identifier"),
        ({"MY-VAR": "x"}, "parameters.MY-VAR", "identifier"),
        ({"HAS SPACE": "x"}, "parameters.HAS SPACE", "identifier"),
        ({"PATH": "x"}, "parameters.PATH", "reserved"),
        ({"OPSCRAFT_X": "x"}, "parameters.OPSCRAFT_X", "reserved"),
        ([{"type": "string"}], "parameters[0]", "needs a name"),
        ([{"name": "A"}, {"name": "A"}], "parameters.A", "declared twice"),
        ([{"name": "A", "type": "date"}], "parameters.A", "type must be one of"),
        ([{"name": "A", "type": "choice"}], "parameters.A", "non-empty list of options"),
        ([{"name": "A", "type": "choice", "options": ["x", "x"]}], "parameters.A", "distinct"),
        ([{"name": "A", "type": "choice", "options": ["x", "  "]}], "parameters.A", "visible character"),
        ([{"name": "A", "type": "choice", "options": ["\t\n"]}], "parameters.A", "visible character"),
        ([{"name": "A", "type": "choice", "options": [""]}], "parameters.A", "visible character"),
        ([{"name": "A", "options": ["x"]}], "parameters.A", "only allowed for the choice type"),
        ([{"name": "A", "type": "choice", "options": ["x"], "default": "y"}], "parameters.A", "one of: x"),
        ([{"name": "A", "type": "boolean", "default": "maybe"}], "parameters.A", "boolean"),
        ([{"name": "A", "type": "integer", "default": 2**70}], "parameters.A", "64-bit integer"),
        (
            [{"name": "A", "required": True, "default": "x"}],
            "parameters.A",
            "default not allowed on a required parameter",
        ),
        ([{"name": "A", "required": "yes"}], "parameters.A", "true or false"),
        ([{"name": "A", "colour": "red"}], "parameters.A", "unknown keys colour"),
        (["A"], "parameters[0]", "must be an object"),
        ({"A": [1, 2]}, "parameters.A", "single string value"),
        # Text no database stores, named with its parameter (the write named it
        # `parameters.0.description` / `parameters.0.default`, under no row of the editor).
        ([{"name": "A", "description": "a\x00b"}], "parameters.A", "description must not contain NUL"),
        ([{"name": "A", "default": "a\ud800"}], "parameters.A", "default must be valid Unicode"),
        ([{"name": "A", "type": "choice", "options": ["\udfff"]}], "parameters.A", "valid Unicode"),
        ([{"name": "A", "description": "\ud800"}], "parameters.A", "description must be valid Unicode"),
    ],
)
def test_bad_declarations_name_the_parameter(raw: Any, field: str, message: str) -> None:
    with pytest.raises(Invalid) as exc:
        normalize(raw)
    assert message in fields(exc)[field]


def test_every_bad_parameter_is_reported_at_once() -> None:
    with pytest.raises(Invalid) as exc:
        normalize({"1A": "x", "OK": "y", "PATH": "z"})
    assert set(fields(exc)) == {"parameters.1A", "parameters.PATH"}
    assert "parameters.1A" in exc.value.message and "parameters.PATH" in exc.value.message


def test_not_a_mapping_or_list() -> None:
    with pytest.raises(Invalid) as exc:
        normalize("ENV=prod")  # type: ignore[arg-type]
    assert fields(exc) == {"parameters": "must be an object or a list"}


SCHEMA = normalize(
    [
        {"name": "ENV", "type": "choice", "options": ["dev", "prod"], "default": "dev"},
        {"name": "COUNT", "type": "integer", "default": 1},
        {"name": "RATIO", "type": "number"},
        {"name": "DRY_RUN", "type": "boolean", "default": True},
        {"name": "TARGET", "type": "string", "required": True},
    ]
)


def test_resolve_merges_over_defaults_and_converts() -> None:
    assert resolve(SCHEMA, {"TARGET": "web-1"}) == {
        "ENV": "dev",
        "COUNT": 1,
        "DRY_RUN": True,
        "TARGET": "web-1",
    }
    resolved = resolve(
        SCHEMA, {"TARGET": 42, "ENV": "prod", "COUNT": "5", "RATIO": "2.5", "DRY_RUN": "false"}
    )
    assert resolved == {"ENV": "prod", "COUNT": 5, "RATIO": 2.5, "DRY_RUN": False, "TARGET": "42"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("false", False),
        ("FALSE", False),
        ("0", False),
        ("no", False),
        ("off", False),
        (0, False),
        ("true", True),
        ("Yes", True),
        ("1", True),
        ("on", True),
        (1, True),
        (True, True),
    ],
)
def test_boolean_words(text: Any, expected: bool) -> None:
    assert resolve(SCHEMA, {"TARGET": "t", "DRY_RUN": text})["DRY_RUN"] is expected


def test_empty_values_fall_back_to_defaults_for_typed_parameters() -> None:
    resolved = resolve(SCHEMA, {"TARGET": "t", "COUNT": "", "DRY_RUN": None})
    assert resolved["COUNT"] == 1 and resolved["DRY_RUN"] is True


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({"TARGET": "t", "COUNT": "ten"}, "parameters.COUNT", "must be an integer"),
        ({"TARGET": "t", "COUNT": 1.5}, "parameters.COUNT", "must be an integer"),
        ({"TARGET": "t", "COUNT": True}, "parameters.COUNT", "not a boolean"),
        ({"TARGET": "t", "RATIO": "nan"}, "parameters.RATIO", "finite number"),
        # Past 64 bits: was stored, then every history list answered 500 (orjson cannot write it).
        ({"TARGET": "t", "COUNT": 2**63}, "parameters.COUNT", "64-bit integer"),
        ({"TARGET": "t", "COUNT": -(2**63) - 1}, "parameters.COUNT", "64-bit integer"),
        ({"TARGET": "t", "COUNT": str(2**70)}, "parameters.COUNT", "64-bit integer"),
        ({"TARGET": "t", "COUNT": 1e300}, "parameters.COUNT", "without a fraction"),
        ({"TARGET": "t", "COUNT": 5.0}, "parameters.COUNT", "without a fraction"),
        ({"TARGET": "t", "COUNT": "5.0"}, "parameters.COUNT", "must be an integer"),
        ({"TARGET": "t", "RATIO": 2**64}, "parameters.RATIO", "whole digits fit 64 bits"),
        ({"TARGET": "t", "RATIO": "-18446744073709551616"}, "parameters.RATIO", "whole digits fit 64 bits"),
        # Python's int() and float() read these; the API reads numbers in ASCII digits only.
        ({"TARGET": "t", "COUNT": "1_000"}, "parameters.COUNT", "digits 0-9 (no '_' separators)"),
        ({"TARGET": "t", "COUNT": "\u09ea"}, "parameters.COUNT", "digits 0-9"),  # Bengali 4, looks like 8
        ({"TARGET": "t", "COUNT": "\uff11\uff12"}, "parameters.COUNT", "digits 0-9"),  # full-width 12
        ({"TARGET": "t", "RATIO": "\u0661.\u0665"}, "parameters.RATIO", "digits 0-9"),  # Arabic-Indic 1.5
        ({"TARGET": "t", "RATIO": "1_0.5"}, "parameters.RATIO", "digits 0-9"),
        ({"TARGET": "t", "DRY_RUN": "maybe"}, "parameters.DRY_RUN", "must be a boolean"),
        ({"TARGET": "t", "DRY_RUN": 2}, "parameters.DRY_RUN", "must be a boolean"),
        ({"TARGET": "t", "ENV": "staging"}, "parameters.ENV", "one of: dev, prod"),
        ({"TARGET": {"a": 1}}, "parameters.TARGET", "single string value"),
        ({"TARGET": "a\x00b"}, "parameters.TARGET", "NUL"),
        ({}, "parameters.TARGET", "is required"),
        ({"TARGET": ""}, "parameters.TARGET", "is required"),
        ({"TARGET": "  \t "}, "parameters.TARGET", "only blanks"),
        # Text that prints as nothing: zero-width space, BOM, a lone combining accent, the Hangul
        # filler, the blank Braille pattern, Mongolian vowel separator (each started a run).
        ({"TARGET": "\u200b"}, "parameters.TARGET", "print as nothing"),
        ({"TARGET": "\ufeff \u200d"}, "parameters.TARGET", "print as nothing"),
        ({"TARGET": "\u0301"}, "parameters.TARGET", "print as nothing"),
        ({"TARGET": "\u3164"}, "parameters.TARGET", "print as nothing"),
        ({"TARGET": "\u2800\u115f"}, "parameters.TARGET", "print as nothing"),
        ({"TARGET": "\u180e"}, "parameters.TARGET", "print as nothing"),
        ({"TARGET": "t", "UNKNOWN": "x"}, "parameters.UNKNOWN", "unknown parameter"),
    ],
)
def test_resolve_rejects_with_the_parameter_named(values: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(Invalid) as exc:
        resolve(SCHEMA, values)
    assert message in fields(exc)[field]


def test_a_preset_of_blanks_only_for_a_required_parameter_is_refused() -> None:
    """A webhook's or chain link's fixed value "   " would give every run a blank required value."""
    with pytest.raises(Invalid) as exc:
        check_preset(SCHEMA, {}, {"TARGET": " \n"}, FROM_REQUEST_BODY)
    assert "only blanks" in fields(exc)["parameters.TARGET"]
    check_preset(SCHEMA, {}, {"TARGET": " t "}, FROM_REQUEST_BODY)  # text around blanks is a value
    check_preset(SCHEMA, {}, {"TARGET": "e\u0301"}, FROM_REQUEST_BODY)  # an accent on a letter is a value
    check_preset(
        SCHEMA, {}, {"TARGET": "\u0928\u094d\u200d"}, FROM_REQUEST_BODY
    )  # so is a letter with a virama and a joiner
    with pytest.raises(Invalid) as exc:
        check_preset(SCHEMA, {}, {"TARGET": "\u200b"}, FROM_REQUEST_BODY)
    assert "print as nothing" in fields(exc)["parameters.TARGET"]


def test_resolve_reports_all_problems_and_never_echoes_values() -> None:
    with pytest.raises(Invalid) as exc:
        resolve(SCHEMA, {"COUNT": "s3cr3t-value", "EXTRA": "x", "OTHER": "y"})
    assert set(fields(exc)) == {
        "parameters.COUNT",
        "parameters.EXTRA",
        "parameters.OTHER",
        "parameters.TARGET",
    }
    assert "s3cr3t-value" not in str(exc.value.message) + str(exc.value.details)


def test_resolve_requires_an_object() -> None:
    with pytest.raises(Invalid):
        resolve(SCHEMA, ["TARGET"])  # type: ignore[arg-type]
    assert resolve([], None) == {}


def test_to_env() -> None:
    assert to_env({"A": True, "B": False, "C": 3, "D": 2.5, "E": "x y"}) == {
        "A": "true",
        "B": "false",
        "C": "3",
        "D": "2.5",
        "E": "x y",
    }


def test_the_64_bit_bounds_are_accepted() -> None:
    resolved = resolve(SCHEMA, {"TARGET": "t", "COUNT": 2**63 - 1, "RATIO": -(2**63)})
    assert (resolved["COUNT"], resolved["RATIO"]) == (2**63 - 1, -(2**63))


CAFE_NFC = "caf\u00e9"
CAFE_NFD = "cafe\u0301"  # the same word as a Mac or a file name often writes it


@pytest.mark.parametrize(
    ("options", "pair"),
    [([CAFE_NFC, "eu", CAFE_NFD], "1 and 3"), (["eu", " eu"], "1 and 2"), (["eu", "us", "us "], "2 and 3")],
)
def test_choice_options_that_look_the_same_are_refused(options: list[str], pair: str) -> None:
    """Two entries of the run form's list that show alike (NFC and NFD, surrounding spaces) were
    both stored: which one a run got depended on which the person happened to pick."""
    with pytest.raises(Invalid) as raised:
        normalize([{"name": "R", "type": "choice", "options": options}])
    message = fields(raised)["parameters.R"]
    assert message.startswith(f"options {pair} look the same"), message


def test_a_choice_value_in_another_normalization_form_is_that_option() -> None:
    schema = normalize([{"name": "R", "type": "choice", "options": [CAFE_NFC, "eu"], "default": CAFE_NFD}])
    assert schema[0]["default"] == CAFE_NFC, "the default is stored as the option declared"
    assert resolve(schema, {"R": CAFE_NFD}) == {"R": CAFE_NFC}
    decomposed = normalize([{"name": "R", "type": "choice", "options": [CAFE_NFD]}])
    assert resolve(decomposed, {"R": CAFE_NFC}) == {"R": CAFE_NFD}
    with pytest.raises(Invalid) as raised:
        resolve(schema, {"R": " eu"})  # spaces are the value's own: not an option
    assert fields(raised)["parameters.R"] == f"must be one of: {CAFE_NFC}, eu"


async def test_runs_and_webhooks_get_the_declared_option(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    """A run asked with the NFD "café" of the NFC option was refused with "must be one of: café,
    eu", naming what looked like the very value sent; a webhook body from a Mac likewise."""
    h = operator.headers
    params = [{"name": "R", "type": "choice", "options": [CAFE_NFC, "eu"], "default": "eu"}]
    body = {"name": "nfd-choice", "script_type": "bash", "content": 'echo "$R"\n', "status": "active"}
    r = await client.post("/api/v1/scripts", json={**body, "parameters": params}, headers=h)
    assert r.status_code == 201, r.text
    script_id = r.json()["id"]

    r = await client.post(
        "/api/v1/executions", json={"script_id": script_id, "parameters": {"R": CAFE_NFD}}, headers=h
    )
    assert r.status_code == 202, r.text
    assert r.json()["parameters"] == {"R": CAFE_NFC}

    r = await client.post(
        f"/api/v1/scripts/{script_id}/webhooks", json={"name": "push", "mapping": {"R": "/r"}}, headers=h
    )
    assert r.status_code == 201, r.text
    r = await client.post(r.json()["url_path"], json={"r": CAFE_NFD})
    assert r.status_code == 202, r.text
    run = await client.get(f"/api/v1/executions/{r.json()['execution_id']}", headers=h)
    assert run.json()["parameters"] == {"R": CAFE_NFC}

    twice = [{"name": "R", "type": "choice", "options": [CAFE_NFC, CAFE_NFD]}]
    r = await client.put(f"/api/v1/scripts/{script_id}", json={"parameters": twice}, headers=h)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "parameters.R", r.text
    version = await client.get(f"/api/v1/scripts/{script_id}", headers=h)
    assert version.json()["current_version"] == 1, "nothing was saved"


def test_a_number_parameter_past_64_bits_is_told_as_a_number() -> None:
    """A `number` given 10**30 was told "must be a 64-bit integer", the integer type's rule, though
    1e30 (the same number with an exponent) is a number it takes."""
    schema = normalize([{"name": "F", "type": "number"}])
    assert resolve(schema, {"F": 1e30}) == {"F": 1e30}
    for value in (10**30, str(10**30), -(2**63) - 1):
        with pytest.raises(Invalid) as raised:
            resolve(schema, {"F": value})
        message = fields(raised)["parameters.F"]
        assert message.startswith("must be a number whose whole digits fit 64 bits") and "1e30" in message
    with pytest.raises(Invalid) as raised:
        normalize([{"name": "F", "type": "number", "default": 10**30}])
    assert fields(raised)["parameters.F"].startswith(
        "default must be a number whose whole digits fit 64 bits"
    )


def test_a_preset_must_map_or_give_each_required_parameter() -> None:
    """A webhook's or chain link's preset that neither maps nor gives a required parameter
    (without a default) would make every call or chained run a 422 "is required"."""
    with pytest.raises(Invalid) as exc:
        check_preset(SCHEMA, {"COUNT": "/n"}, {"RATIO": 1.5}, FROM_REQUEST_BODY)
    assert fields(exc) == {
        "parameters.TARGET": "is required: map it from the request body or give it a fixed value"
    }
    with pytest.raises(Invalid) as exc:  # "" is no value, as `resolve` reads it
        check_preset(SCHEMA, {}, {"TARGET": "", "COUNT": "x"}, FROM_REQUEST_BODY)
    assert set(fields(exc)) == {"parameters.TARGET", "parameters.COUNT"}
    check_preset(SCHEMA, {"TARGET": "/ref"}, {}, FROM_REQUEST_BODY)  # mapped
    check_preset(SCHEMA, {}, {"TARGET": "t"}, FROM_REQUEST_BODY)  # fixed
    check_preset(SCHEMA, None, {}, FROM_REQUEST_BODY)  # the mapping was refused: not known


def test_stored_misfits_name_each_value_the_declaration_no_longer_takes() -> None:
    """What a schedule's or webhook's form shows and explains (`ui/parameter_fields.py`): a value
    of a parameter no longer declared, one the new type refuses; a null or one that still
    converts ("yes" of a parameter now boolean) fits."""
    schema = normalize(
        [
            {"name": "COUNT", "type": "integer"},
            {"name": "LOUD", "type": "boolean"},
            {"name": "MODE", "type": "choice", "options": ["a", "b"]},
        ]
    )
    stored = {"COUNT": "lots", "LOUD": "yes", "MODE": None, "OLD": 1}
    said = {"COUNT": "must be an integer, e.g. 42", "OLD": NO_LONGER_DECLARED}
    assert stored_misfits(schema, stored) == said
    assert stored_misfits(schema, {"MODE": "c"}) == {"MODE": "must be one of: a, b"}
