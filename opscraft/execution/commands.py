"""The command line and files of each script type. Only constants go on the command line:
the script, the parameters and the secrets travel in files and environment variables, never
as code (see `param_env` for how each program gets parameter values as data).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from opscraft.execution.param_env import ansible_extra_vars, interpreted_name, to_env
from opscraft.execution.spec import RunnerError, RunSpec


@dataclass(frozen=True)
class Command:
    """Run `argv` in a work directory holding `files`, with `env` added to the environment."""

    argv: list[str]
    files: dict[str, bytes]
    env: dict[str, str] = field(repr=False)  # holds secret values


EXTRA_VARS_FILE = "extra_vars.yml"
TERRAFORM_STEPS = {
    "plan": "terraform init -input=false && exec terraform plan -input=false",
    "apply": "terraform init -input=false && exec terraform apply -auto-approve -input=false",
}


def build(spec: RunSpec) -> Command:
    """The command for `spec`; every run also sees OPSCRAFT_EXECUTION_ID."""
    command = _build(spec)
    return Command(
        command.argv, command.files, {**command.env, "OPSCRAFT_EXECUTION_ID": str(spec.execution_id)}
    )


def _build(spec: RunSpec) -> Command:
    refused = {name: why for name in spec.parameters if (why := interpreted_name(name))}
    if refused:  # saved before the rule existed: never hand such a name to a program
        raise RunnerError(
            "; ".join(f"parameter {name} cannot be used: {why}" for name, why in sorted(refused.items()))
        )
    content = spec.content.encode()
    params = to_env(spec.parameters)
    if spec.script_type == "bash":
        return Command(["bash", "script.sh"], {"script.sh": content}, {**params, **spec.env})
    if spec.script_type == "python":
        return Command(["python3", "-u", "script.py"], {"script.py": content}, {**params, **spec.env})
    if spec.script_type == "ansible":
        extra_vars = ansible_extra_vars(spec.parameters)
        return Command(
            [
                "ansible-playbook",
                "-i",
                "localhost,",
                "-c",
                "local",
                "-e",
                f"@{EXTRA_VARS_FILE}",
                "playbook.yml",
            ],
            {"playbook.yml": content, EXTRA_VARS_FILE: extra_vars},
            {"ANSIBLE_FORCE_COLOR": "1", **spec.env},
        )
    if spec.script_type == "terraform":
        tf_vars = {f"TF_VAR_{name}": value for name, value in params.items()}
        return Command(
            ["/bin/sh", "-c", TERRAFORM_STEPS[spec.terraform_action or "plan"]],
            {"main.tf": content},
            {"TF_IN_AUTOMATION": "1", **tf_vars, **spec.env},
        )
    raise ValueError(f"unknown script type {spec.script_type!r}")
