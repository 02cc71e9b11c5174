"""Terraform's saved plans in a run: the command of each action, and the files a plan run hands back.

A `plan` run saves its plan (`terraform plan -out=opscraft.tfplan`) and its JSON form
(`terraform show -json`, Terraform's "JSON Output Format") in the work directory; the runner
reads both back (`RunSpec.collect`) and the worker hands them to the `PlanStore` port, which
keeps the plan encrypted. An `apply_plan` run gets that plan file back in its work directory
and applies exactly it (`terraform apply opscraft.tfplan`: no new plan, no approval prompt);
Terraform itself refuses a plan whose state changed since ("Saved plan is stale").

Every action waits up to `lock_timeout_seconds` for the state lock (`-lock-timeout`), then
fails with Terraform's "Error acquiring the state lock" and the holder's lock info.
"""

from __future__ import annotations

PLAN_FILE = "opscraft.tfplan"
PLAN_JSON_FILE = "opscraft-plan.json"
COLLECT = (PLAN_FILE, PLAN_JSON_FILE)
MIB = 1024 * 1024
# The plan file is a zip archive (its state compressed): small. Its JSON form holds the prior
# state, the planned values and every resource's change before and after, about 4 times the
# state's size (a 2.2 MB state gave 8.9 MB with Terraform 1.11), so it gets room for the
# largest state OpsCraft keeps (OPSCRAFT_MAX_STATE_BYTES, 64 MiB by default) four times over.
MAX_FILE_BYTES = 16 * MIB
MAX_JSON_BYTES = 256 * MIB


# What a runner hands back for a collected file over its bound (`max_bytes`): no plan file or
# JSON form is ever empty, so an empty value says "written, but too large to read back".
TOO_LARGE = b""


class PlanNotKept(Exception):
    """A plan run's plan cannot be kept, for a reason its run's page says (str of it)."""


def max_bytes(name: str) -> int:
    """The largest file `name` (one of `COLLECT`, or a run's `errored.tfstate`: JSON, as large
    as a state Terraform could not store because it was too large) a runner reads back."""
    return MAX_FILE_BYTES if name == PLAN_FILE else MAX_JSON_BYTES


APPLY_PLAN = "apply_plan"
_INIT = "terraform init -input=false"


def steps(action: str, lock_timeout_seconds: int) -> str:
    """The `/bin/sh -c` text of a Terraform action (`plan`, `apply`, `destroy`, `apply_plan`).

    Only constants and the integer timeout go into it: variables reach Terraform as `TF_VAR_*`.
    Raises `ValueError` for an unknown action.
    """
    lock = f"-lock-timeout={int(lock_timeout_seconds)}s"
    if action == "plan":
        return (
            f"{_INIT} && terraform plan -input=false {lock} -out={PLAN_FILE}"
            f" && exec terraform show -json {PLAN_FILE} > {PLAN_JSON_FILE}"
        )
    if action in ("apply", "destroy"):
        return f"{_INIT} && exec terraform {action} -auto-approve -input=false {lock}"
    if action == APPLY_PLAN:
        return f"{_INIT} && exec terraform apply -input=false {lock} {PLAN_FILE}"
    raise ValueError(f"unknown terraform action {action!r}")
