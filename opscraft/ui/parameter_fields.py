"""One field per declared parameter (text, number, switch or select, with its default and its
validation under it): the run form (`execute_dialog`), a schedule's form and a webhook's fixed
values use this one component, so a value is typed and judged the same way wherever it is set.

The fields judge with the service's own conversion (`parameters.convert`): what a field lets
through, the service takes, and what the service refuses is said under that field
(`inputs`: the service's field names, `parameters.NAME`)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from nicegui import ui
from nicegui.elements.mixins.validation_element import ValidationElement

from opscraft.db import stored_shapes
from opscraft.services import parameters
from opscraft.services.parameters import ParamType
from opscraft.ui.layout import plain
from opscraft.ui.widgets import carried

# A boolean without a default: true or false, neither chosen at first.
BOOLEAN_CHOICES = {True: "true", False: "false"}


def validator(spec: dict[str, Any], required: bool = True) -> Callable[[Any], str | None]:
    """Inline validation of `spec`'s field with the service's conversion rules, so the form and
    the API agree; `required` False: an empty field is no error even for a required parameter
    (a webhook's fixed value: the request body may give it, `parameters.check_preset`)."""
    kind = ParamType(spec["type"])
    needed = required and bool(spec.get("required"))

    def validate(value: Any) -> str | None:
        if value is None or (value == "" and kind is not ParamType.string):
            return "Required" if needed else None
        if value == "" and needed:
            return "Required"
        if parameters.blank_required(spec, value):
            return plain(parameters.BLANK_REQUIRED)
        try:
            parameters.convert(kind, value, spec.get("options"))
        except ValueError as exc:
            return plain(str(exc))  # as the service's refusal reads under the field (`run_action`)
        return None

    return validate


class NumberText(ui.input):
    """A number parameter's field: a text box whose digits are sent as typed.

    A browser number field (`ui.number`) goes through a JavaScript double, which rounds integers
    beyond 2**53 (`9007199254740993` became `...992`); the service converts the typed text itself
    (`parameters.convert`: exact 64-bit integers, finite floats) or refuses it under the field.
    """

    def __init__(self, label: str, value: str, validation: Callable[[Any], str | None]) -> None:
        super().__init__(label, value=value, validation=validation)
        self.props('inputmode="decimal" autocomplete="off"')


def _text(value: Any) -> str:
    """`value` as a text field shows it: a string as it is, anything else as JSON (`1.5`, `true`)."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _field(spec: dict[str, Any], start: Any, required: bool, filled: bool) -> ui.element:
    """One input for one parameter showing `start` (a value that fits `spec`, or None): switch
    (a boolean with a default, when `filled`: the fields start at the defaults), select (a
    boolean without one: true/false, empty until chosen; a choice), number or text. An optional
    select can be cleared back to no value, which the run leaves out as the API does
    (`ParameterFields.values`). Not `filled`: the hint says the default an empty field gets."""
    kind = ParamType(spec["type"])
    needed = required and bool(spec.get("required"))
    label = spec["name"] + (" *" if needed else "")
    testid = f'data-testid="param-{spec["name"]}"'
    check = validator(spec, required)
    default = spec.get("default")
    if kind is ParamType.boolean and (default is None or not filled):  # a required one has no default
        # Chosen by whoever sets it, or left out: a switch is never "not chosen", and sent false
        # untouched where the API says "is required" or leaves an optional one out.
        element: ui.element = ui.select(
            BOOLEAN_CHOICES, label=label, value=start, clearable=not needed, validation=check
        ).props("outlined dense")
    elif kind is ParamType.boolean:
        return ui.switch(label, value=bool(start)).props(testid)
    elif kind is ParamType.choice:
        element = ui.select(
            spec.get("options") or [], label=label, value=start, clearable=not needed, validation=check
        ).props("outlined dense options-dense")
    elif kind in (ParamType.integer, ParamType.number):
        element = NumberText(label, value="" if start is None else _text(start), validation=check)
    else:
        element = ui.input(label, value="" if start is None else _text(start), validation=check)
    if isinstance(element, ui.input):  # a number is typed as text too (`NumberText`)
        element.props(f"outlined dense {carried(parameters.MAX_VALUE_CHARS)}")
    hints = [spec.get("description") or ""]
    if not filled and default is not None:
        hints.append(f"Empty: the default, {_text(default)}")
    if any(hints):
        element.props["hint"] = ". ".join(hint for hint in hints if hint)
    return element.props(testid).classes("w-full")


def _misfit_field(spec: dict[str, Any], stored: Any, why: str, required: bool) -> ui.input:
    """A text field showing a stored value the script's declaration no longer takes (`why`,
    `parameters.stored_misfits`), with the reason under it until it is changed: a switch or a
    select cannot show "abc" for a parameter now declared boolean or a choice without it."""
    needed = required and bool(spec.get("required"))
    label = spec["name"] + (" *" if needed else "")
    element = ui.input(label, value=_text(stored), validation=validator(spec, required))
    element.props(f'outlined dense {carried(parameters.MAX_VALUE_CHARS)} data-testid="param-{spec["name"]}"')
    element.error = f"The stored value {why}: the script's declaration changed since it was saved"
    return element.classes("w-full")


def stored_values(row: Any | None) -> dict[str, Any] | None:
    """The parameter values `row` (a schedule, a webhook; None: a new one) stores, or None when
    it has none or stores them in a shape that cannot be read (`stored_shapes.problems`, said
    under the row): the fields then start empty and a save replaces them."""
    if row is None or "parameters" in stored_shapes.problems(row):
        return None
    return dict(row.parameters)


class ParameterFields:
    """The fields of `schema`'s parameters (normalized, `parameters.normalize`), built where it is
    created, each showing its `stored` value (a schedule's or webhook's, name -> value) or else
    its default (`filled`; else empty, its hint naming the default: a webhook's fixed values,
    which would otherwise store every default as fixed). `required` False: no field is required
    (a webhook's fixed values: its mapping may give them; a schedule saved switched off).

    Stored values that no longer fit the declaration (`parameters.stored_misfits`) are shown and
    explained, never dropped unsaid: a value of the wrong type in a text field with the reason
    under it; a value of a parameter the script no longer declares on a line of its own
    (`param-unknown-NAME`), left out of `values`, which the line says."""

    def __init__(
        self,
        schema: list[dict[str, Any]],
        stored: Mapping[str, Any] | None = None,
        *,
        required: bool = True,
        filled: bool = True,
    ) -> None:
        self.elements: dict[str, ui.element] = {}
        self.kinds = {spec["name"]: ParamType(spec["type"]) for spec in schema}
        self.filled = filled
        stored = stored or {}
        misfits = parameters.stored_misfits(schema, stored)
        for spec in schema:
            name = spec["name"]
            value = stored.get(name)
            if value is not None and name in misfits:
                self.elements[name] = _misfit_field(spec, value, misfits[name], required)
                continue
            if value is None:
                value = spec.get("default") if filled else None
            else:  # as a run gets it: "yes" of a parameter now boolean is true (it fits)
                value = parameters.convert(ParamType(spec["type"]), value, spec.get("options"))
            self.elements[name] = _field(spec, value, required, filled)
        for name, value in stored.items():
            if name in misfits and name not in self.elements:
                ui.label(f"{name} = {_text(value)}: {misfits[name]}").classes(
                    "text-caption text-negative oc-wrap"
                ).props(f'data-testid="param-unknown-{name}"')

    def inputs(self) -> dict[str, ui.element]:
        """The fields by the name the services give their problems (`parameters.NAME`), for
        `layout.run_action` and a dialog's draft."""
        return {f"parameters.{name}": element for name, element in self.elements.items()}

    def problem_inputs(self) -> dict[str, ui.element]:
        """`inputs` for `layout.run_action`, and `parameters` (a problem of them all: their total
        size, a change saved meanwhile elsewhere, 409 `partial.three_way`) under the first field;
        none when there are no fields."""
        first = next(iter(self.elements.values()), None)
        return self.inputs() | ({"parameters": first} if first is not None else {})

    def invalid(self) -> list[str]:
        """The names of the fields whose value their validation refuses (each says why under it)."""
        return [
            name
            for name, element in self.elements.items()
            if isinstance(element, ValidationElement) and not element.validate()
        ]

    def values(self) -> dict[str, Any]:
        """The values to send; empty optional fields are left out so the script's defaults apply
        (an empty text field too when not `filled`: a webhook's fixed value left empty).

        A number is sent as its typed text (trimmed), never through a float, unless the
        service's conversion reads it (`parameters.convert`, exact): then as that number, so a
        stored 5 and a typed "5" are the same value and a form's save does not send it again."""
        values: dict[str, Any] = {}
        for name, element in self.elements.items():
            value = element.value  # type: ignore[attr-defined]
            if isinstance(element, NumberText):
                value = value.strip() if isinstance(value, str) else value
                if value in (None, ""):
                    continue
                if element.validate():
                    value = parameters.convert(self.kinds[name], value)
            elif value is None or (value == "" and (not self.filled or not isinstance(element, ui.input))):
                continue  # not `filled`: an empty text is no fixed value, the default applies
            values[name] = value
        return values
