"""Why a Terraform run failed, read from Terraform's own error lines, for its `error_message`.

Terraform exits with 1 for every error (`terraform init`, `plan`, `apply`), so "the script exited
with code 1" told nothing: the message now names Terraform's first error summary, the
`Error: <summary>` line of its diagnostic box on stderr (Terraform's "Diagnostics" format,
the same from 1.0 to 1.11):

    ╷
    │ Error: Failed to query available provider packages
    │
    │ Could not retrieve the list of available versions for provider hashicorp/aws: ...

and, for the errors a user of OpsCraft meets for OpsCraft's reasons, what to do: a provider that
cannot be downloaded (no network, or none at all on the machine: a provider mirror), a state
locked by another run, a saved plan gone stale. The text read is the run's stderr after the
masker.
"""

from __future__ import annotations

import re

from opscraft.execution.escape_codes import ANSI_RE

# The stderr a run keeps to find its errors: Terraform prints them last.
TAIL_CHARS = 64 * 1024
MAX_SUMMARY = 200

_ERROR = re.compile(r"^\s*(?:│\s*)?Error: (?P<summary>\S.*?)\s*$")
_PROVIDER = (
    "Failed to query available provider packages",
    "Failed to install provider",
    "Failed to resolve provider packages",
    "Invalid provider registry host",
)
HINTS = {
    _PROVIDER: (
        "a provider could not be downloaded: a Docker run needs the script's Network setting, "
        "and a machine without internet a provider mirror (docs/executions.md, Secrets and providers)"
    ),
    ("Error acquiring the state lock",): (
        "another run held the state lock past the lock timeout (OPSCRAFT_TERRAFORM_LOCK_TIMEOUT_SECONDS; "
        "Terraform before 1.2.4 does not wait for it): the output names it; run again once it ends"
    ),
    ("Saved plan is stale",): "the state changed since the plan was made: plan again and apply the new plan",
    # "Error saving state: HTTP error: 413" (OpsCraft's body limit for states), 403, or no answer.
    ("Failed to save state",): (
        "OpsCraft did not take the state (HTTP 413: it is over OPSCRAFT_MAX_STATE_BYTES; 403: the "
        "run's credentials ended; or the server did not answer)"
    ),
}


def summaries(stderr: str) -> list[str]:
    """Terraform's error summaries in `stderr` (ANSI colours removed), each once, in order."""
    found: dict[str, None] = {}
    for line in ANSI_RE.sub("", stderr).splitlines():
        match = _ERROR.match(line)
        if match:
            found.setdefault(match.group("summary")[:MAX_SUMMARY], None)
    return list(found)


def exit_message(exit_code: int, stderr: str) -> str:
    """The failed run's message: "the script exited with code 1: Terraform's error: Failed to
    query available provider packages (a provider could not be downloaded: ...)"; without an
    error line in `stderr`, "the script exited with code 1"."""
    message = f"the script exited with code {exit_code}"
    errors = summaries(stderr)
    if not errors:
        return message
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    message += f": Terraform's error: {errors[0]}{more}"
    hints = [hint for starts, hint in HINTS.items() if any(e.startswith(starts) for e in errors)]
    return message + "".join(f"; {hint}" for hint in hints)
