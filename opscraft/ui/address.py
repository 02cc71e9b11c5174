"""The typed parts of a page's address (path and query parameters), read by the page, not by FastAPI.

FastAPI answers a path or query parameter it cannot convert (`/executions?script_id=abc`,
`/executions/abc`) with its JSON 422 body, which a browser shows as raw JSON. Pages therefore
declare their typed parameters to FastAPI as text (`exposed_parameters`), and `parse` converts
them with the page's own annotations (pydantic's lax conversion, the one FastAPI applies): a part
that does not convert is named with what it must be, and the page shows that (`show_bad_address`)
under the frame instead of its content, with status 400.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Collection, Iterable, Sequence
from datetime import date
from typing import Annotated, Any

from nicegui import context, ui
from pydantic import BeforeValidator, TypeAdapter, ValidationError

from opscraft.services import instants
from opscraft.services.bodies import WHOLE_TEXT
from opscraft.services.errors import input_message

BAD_ADDRESS_STATUS = 400
# pydantic error types -> what the part must be, for a person reading the address bar (a whole
# number is refused by `WHOLE_TEXT` in the API's words: "must be a whole number (it is text)").
_EXPECTED = {
    "float_parsing": "must be a number",
    "bool_parsing": "must be true or false",
    "date_from_datetime_parsing": "must be a date written YYYY-MM-DD",
}
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)


def _iso_day(value: Any) -> Any:
    # A year outside 1-9999 first (0000, 10000, +2026): the API's words (`instants.OUT_OF_RANGE`);
    # checked after the form, a five-digit year was told to be written YYYY-MM-DD.
    if isinstance(value, str) and instants.out_of_range(value):
        raise ValueError(instants.OUT_OF_RANGE)
    if isinstance(value, str) and not _DAY.fullmatch(value):
        raise ValueError("must be a date written YYYY-MM-DD")
    return value


Day = Annotated[date, BeforeValidator(_iso_day)]
"""A calendar day in an address, written as the date inputs write it (`2026-11-30`) and nothing
else (pydantic alone also reads `0` as 1970-01-01)."""


def exposed_parameters(
    params: list[inspect.Parameter],
) -> tuple[list[inspect.Parameter], dict[str, TypeAdapter[Any]]]:
    """The page's parameters as FastAPI should read them (each typed one as text, its default kept),
    and a converter for each typed one, by name. Text parameters (`str`, `str | None`) stay."""
    exposed: list[inspect.Parameter] = []
    converters: dict[str, TypeAdapter[Any]] = {}
    for param in params:
        if param.annotation in (str, str | None) or param.annotation is inspect.Parameter.empty:
            exposed.append(param)
            continue
        whole = param.annotation in (int, int | None)  # `5.0` is no id (services/bodies.py)
        converters[param.name] = TypeAdapter(
            Annotated[param.annotation, WHOLE_TEXT] if whole else param.annotation
        )
        optional = param.default is not inspect.Parameter.empty
        exposed.append(param.replace(annotation=str | None if optional else str))
    return exposed, converters


def parse(
    converters: dict[str, TypeAdapter[Any]], values: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    """`values` with each typed part converted, and what each part that does not convert must be,
    by name ("must be a whole number"); the submitted text is never repeated (it may be long or
    hold markup). A part sent empty (`?script_id=`, `?tag=`: an emptied filter box) is as if
    absent, typed or text: the page's own default applies, as the API reads an emptied query
    parameter (api/query_check.py; an emptied text filter reached
    `/scripts` as empty text, a server error)."""
    converted = {name: value for name, value in values.items() if value != ""}
    problems: dict[str, str] = {}
    for name, converter in converters.items():
        if name not in converted or converted[name] is None:
            continue
        try:
            converted[name] = converter.validate_python(values[name])
        except ValidationError as error:
            first = error.errors()[0]
            problems[name] = _EXPECTED.get(first["type"], input_message(first))
    return converted, problems


def ignored_parameters(sent: Iterable[str], read: Collection[str]) -> dict[str, str]:
    """What the page did not take of the query parameters' names `sent` (in order, a name as
    often as it was sent), by name: one the page does not read (`read`: its parameter names),
    with what it reads instead (`scrip_id` for `script_id`: the filter the person meant is not
    applied, and is named rather than silently dropped); one sent more than once
    (`?status=success&status=failed`), of which the page read only the last, as the API refuses
    it (api/query_check.py)."""
    sent = list(sent)
    reads = f"it reads only {', '.join(sorted(read))}" if read else "it reads none"
    ignored = {name: f"is not a parameter of this page ({reads})" for name in sent if name not in read}
    for name in dict.fromkeys(sent):
        if name in read and (times := sent.count(name)) > 1:
            ignored[name] = f"is given {times} times (the page reads only the last)"
    return ignored


def unknown_choice(name: str, value: str, choices: Sequence[str]) -> dict[str, str]:
    """For `say_ignored`: query parameter `name` holds `value`, none of the page's `choices` (an
    unknown `?tab=`): the value (cut to 40 characters, as plain text) and the choices."""
    shown = value if len(value) <= 40 else value[:40] + "…"
    return {name: f"{shown!r} is not one of this page's: {', '.join(choices)}"}


def say_ignored(ignored: dict[str, str]) -> None:
    """A warning on the page naming the query parameters it ignored (`ignored_parameters`). The
    page itself still opens (200): a link with a tracking tag (`?utm_source=mail`) or from an
    older version must not break, but a mistyped filter must not pass for an applied one."""
    problems = "; ".join(f"{name} {problem}" for name, problem in ignored.items())
    ui.notify(f"Ignored in the address: {problems}", type="warning", position="top", multi_line=True)


def show_bad_address(problems: dict[str, str], template: str, path: str) -> None:
    """The page's content when its address has parts that do not convert (`problems` from `parse`):
    what is wrong, and a link to the page without its query string (`path`), or to the list above
    it when a part of the path (`template`: `/executions/{execution_id}`) is wrong. Sets the
    response status to 400."""
    context.client.status_code = BAD_ADDRESS_STATUS
    with ui.card().classes("p-6 gap-2").props('data-testid="bad-address"'):
        ui.label("This address is not valid").classes("text-lg font-semibold")
        for name, problem in problems.items():
            ui.label(f"{name} {problem}.").classes("text-negative").props('data-testid="bad-address-problem"')
        if any(f"{{{name}}}" in template for name in problems):
            ui.link("Back to the list", template.split("/{")[0] or "/").props(
                'data-testid="bad-address-reset"'
            )
        else:
            ui.link("Open the page without its filters", path).props('data-testid="bad-address-reset"')
