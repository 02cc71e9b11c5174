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
locked by another run (told from a lock request that failed by the diagnostic's "Error message:"
detail), a saved plan gone stale. The text read is the run's stderr after the masker.
"""

from __future__ import annotations

import re

from opscraft.execution.escape_codes import ANSI_RE

# The stderr a run keeps to find its errors: Terraform prints them last.
TAIL_CHARS = 64 * 1024
MAX_SUMMARY = 200

# The summary is taken to the line's end and stripped after: a lazy `\S.*?` before `\s*$` read
# every run of blanks inside it again at each of its characters (a 64 KiB line took a minute).
_ERROR = re.compile(r"\s*(?:│\s*)?Error: (?P<summary>\S.*)")
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
    ("Saved plan is stale",): "the state changed since the plan was made: plan again and apply the new plan",
    # "Error saving state: HTTP error: 413" (OpsCraft's body limit for states), 403, 423 (the run's
    # lock was broken, `DELETE .../lock`, and another run took it), or no answer.
    ("Failed to save state",): (
        "OpsCraft did not take the state (HTTP 413: it is over OPSCRAFT_MAX_STATE_BYTES; 403: the "
        "run's credentials ended; 423: an admin broke the run's state lock and another run holds "
        "it; or the server did not answer)"
    ),
}


LOCK_ERROR = "Error acquiring the state lock"
HELD_LOCK = (
    "another run held the state lock past the lock timeout (OPSCRAFT_TERRAFORM_LOCK_TIMEOUT_SECONDS; "
    "Terraform before 1.2.4 does not wait for it): the output names it; run again once it ends"
)
"""The hint of a lock another run holds: Terraform's detail says `HTTP remote state already
locked` (the backend's 423)."""
LOCK_FAILED = (
    "no other run held it: the state server refused or did not answer Terraform's lock request "
    "(Terraform: {detail}); a proxy in front of OpsCraft must pass the LOCK and UNLOCK methods"
)
"""The hint of any other failed lock request (a 401, 403, 405, 5xx or no answer): Terraform
says "Error acquiring the state lock" for those too, and the held-lock hint sent users to look
for a run that did not exist."""
UNSET_VARIABLE = "No value for required variable"
_UNSET = re.compile(r'input\s+variable\s+"(?P<name>[^"\s]{1,64})"\s+is\s+not\s+set')
UNSET_HINT = (
    "{names} {have} no default and no value: declare a parameter of that name, or attach a secret "
    "named TF_VAR_<name> to the script (Terraform's -var is not how a run gets values: "
    "docs/executions.md, Parameters and secrets)"
)
"""The hint of variables without a default that nothing set: Terraform's own detail says to use
`-var` or `-var-file`, which an OpsCraft run has no way to pass."""
_DETAIL = re.compile(r"^Error message: (?P<detail>.*)$")
_BOX = re.compile(r"^\s*│?\s?")


def summaries(stderr: str) -> list[str]:
    """Terraform's error summaries in `stderr` (ANSI colours removed), each once, in order."""
    return list(_diagnostics(stderr))


def _diagnostics(stderr: str) -> dict[str, str]:
    """Terraform's error summaries in `stderr`, each once, in order, with the detail of its first
    diagnostic that has one: the text after "Error message: " and the lines it wraps onto, up to
    a blank line or the "Lock Info:" that follows it, cut at `MAX_SUMMARY` ("" for none)."""
    found: dict[str, str] = {}
    current: str | None = None  # the summary whose diagnostic is being read
    reading = False  # its detail's lines
    for line in ANSI_RE.sub("", stderr).splitlines():
        if match := _ERROR.match(line):
            current, reading = match.group("summary").rstrip()[:MAX_SUMMARY], False
            found.setdefault(current, "")
        elif current is not None:
            text = _BOX.sub("", line, count=1).strip()
            if reading and (not text or text.startswith("Lock Info:")):
                current, reading = None, False
            elif reading:
                found[current] = f"{found[current]} {text}"[:MAX_SUMMARY]
            elif not found[current] and (said := _DETAIL.match(text)):
                found[current], reading = said.group("detail").strip()[:MAX_SUMMARY], True
    return found


def exit_message(exit_code: int, stderr: str) -> str:
    """The failed run's message: "the script exited with code 1: Terraform's error: Failed to
    query available provider packages (a provider could not be downloaded: ...)"; without an
    error line in `stderr`, "the script exited with code 1"."""
    message = f"the script exited with code {exit_code}"
    found = _diagnostics(stderr)
    errors = list(found)
    if not errors:
        return message
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    message += f": Terraform's error: {errors[0]}{more}"
    hints = [hint for starts, hint in HINTS.items() if any(e.startswith(starts) for e in errors)]
    if UNSET_VARIABLE in found:
        hints.insert(0, _unset_hint(stderr))
    if LOCK_ERROR in found:
        detail = found[LOCK_ERROR]
        held = "already locked" in detail or not detail
        hints.insert(0, HELD_LOCK if held else LOCK_FAILED.format(detail=detail))
    return message + "".join(f"; {hint}" for hint in hints)


def _unset_hint(stderr: str) -> str:
    """`UNSET_HINT` naming the variables Terraform says are not set ("The root module input
    variable "x" is not set", read across its wrapped lines), each once."""
    text = " ".join(_BOX.sub("", line, count=1) for line in ANSI_RE.sub("", stderr).splitlines())
    names = list(dict.fromkeys(match.group("name") for match in _UNSET.finditer(text)))
    if not names:
        return UNSET_HINT.format(names="a variable", have="has")
    said = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
    return UNSET_HINT.format(
        names=f"the variable{'s' if len(names) > 1 else ''} {said}", have="have" if len(names) > 1 else "has"
    )
