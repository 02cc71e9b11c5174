"""Terraform variables marked `sensitive = true`, which a run parameter may not feed.

A parameter `x` of a Terraform script reaches Terraform as `TF_VAR_x` (docs/executions.md,
*Parameters and secrets*), and its value is stored with the run in clear: every user who may view
runs sees it on the run's page and in `GET /executions/{id}`, and schedules and webhooks keep it.
Terraform shows a `sensitive = true` variable as `(sensitive value)`; so its value comes from a
secret named `TF_VAR_<name>` attached to the script (stored encrypted, masked in the output), and
a parameter of that name is refused when the script is saved (`services/scripts.check_content`).
So is a `default` written out for such a variable: the configuration is stored and shown as
written to everyone who may see the script, so the default would be the secret in clear.
"""

from __future__ import annotations

from typing import Any

from opscraft.services import script_checks


def sensitive_variables(content: str) -> set[str]:
    """The names of the `variable` blocks of the Terraform configuration `content` whose
    `sensitive` is true as Terraform reads it (`_true`); empty when `content` does not parse as
    HCL (the syntax check reports that, `script_checks`)."""
    return set(_sensitive_blocks(content))


def _sensitive_blocks(content: str) -> dict[str, dict[str, Any]]:
    """`sensitive_variables`'s names, each with its block's arguments as python-hcl2 reads them
    (a string keeps its quotes: `'"x"'`; `null` is None)."""
    try:
        document = script_checks.hcl_document(content)  # parsed by the syntax check before
    except Exception:  # lark's errors, ValueError, RecursionError: reported by the syntax check
        return {}
    found = {}
    for block in document.get("variable", []):
        for label, body in block.items() if isinstance(block, dict) else ():
            if isinstance(body, dict) and _true(body.get("sensitive")):
                found[str(label).strip('"')] = body  # python-hcl2 8 keeps the label's quotes
    return found


# The strings Terraform (cty) converts to false (python-hcl2 8 gives them with their quotes).
_FALSE_TEXT = ("false", "0")


def _true(value: Any) -> bool:
    """Whether a variable block's `sensitive`, as python-hcl2 reads it, marks it sensitive.

    Terraform converts the strings `"true"` and `"1"` to true (cty) and evaluates a constant
    expression (`!false`, `(true)`, `1 == 1`, `"${true}"`: python-hcl2 gives those as text); any
    other value it refuses. So everything but false, `"false"`, `"0"` and no value (absent or
    `null`) is taken as true: an expression Terraform reads as false (`!true`) then refuses a
    parameter that would be harmless, never the reverse (reading only `true` and `"true"`, a
    parameter could feed a variable written `sensitive = "1"`, its value stored with each run in
    clear)."""
    if value is None or value is False:
        return False
    return not (isinstance(value, str) and value.strip('"') in _FALSE_TEXT)


def errors(content: str, parameter_names: list[str]) -> list[dict[str, str]]:
    """The field errors of a Terraform script's save: one (`content`) per variable `content` marks
    sensitive whose `default` is written out (anything but no default, `null`, `""`, `[]` or
    `{}`), then one (`parameters.<name>`) per declared parameter that would feed such a
    variable."""
    sensitive = _sensitive_blocks(content)
    found = [
        {
            "field": "content",
            "message": f"the variable {name} is marked sensitive = true and has a default written "
            "out, and the configuration is stored and shown as written to everyone who may see "
            f"the script: remove the default and attach a secret named TF_VAR_{name} to the "
            "script instead",
        }
        for name, body in sorted(sensitive.items())
        if body.get("default") not in (None, '""', [], {})
    ]
    return found + [
        {
            "field": f"parameters.{name}",
            "message": f"the variable {name} is marked sensitive = true, and a parameter's value is "
            "stored with each run in clear and shown to everyone who may view runs: remove the "
            f"parameter and attach a secret named TF_VAR_{name} to the script instead",
        }
        for name in parameter_names
        if name in sensitive
    ]
