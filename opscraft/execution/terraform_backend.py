"""How a Terraform run reaches OpsCraft's HTTP state backend, and the credentials it uses.

Each run gets its own credentials: user `run-<execution id>` and a password that is an HMAC-SHA256,
under the server's SECRET_KEY, of the execution id, the script id, the workspace and the second
the run started (so every worker with the configuration can issue it and the server can check
it without storing it). The server (services/terraform_state.py) accepts them only
- for the one state they were issued for: that script's workspace (another workspace's or
  script's address does not match the HMAC);
- while that execution is `running`, and never longer than the longest run allows
  (`lifetime_seconds`: OPSCRAFT_MAX_TIMEOUT_SECONDS after its start, then the graceful stop's
  OPSCRAFT_TERRAFORM_STOP_GRACE_SECONDS, plus a minute): they are worthless once the run ended,
  even if a crashed worker left its row `running`;
- to write or purge the state only for a run that changes it (`apply`, `destroy`, the apply of
  a saved plan): a `plan` run reads and locks.
They reach Terraform as `TF_HTTP_USERNAME` and `TF_HTTP_PASSWORD` (Terraform's http backend
reads them from the environment), treated as secrets: on stdin into a container, masked in the
output, never on a command line.

The backend itself is set by an override file (`opscraft_backend_override.tf`, see Terraform's
"Override Files"), so a configuration's own `backend` block, if any, is replaced, and by
`TF_HTTP_ADDRESS`, `TF_HTTP_LOCK_ADDRESS`, `TF_HTTP_UNLOCK_ADDRESS` with the methods `LOCK` and
`UNLOCK` (Terraform's "http" backend documentation).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime

from opscraft.db.digits import ascii_int
from opscraft.execution import terraform_plan

USERNAME_PREFIX = "run-"
OVERRIDE_FILE = "opscraft_backend_override.tf"
OVERRIDE = b'terraform {\n  backend "http" {}\n}\n'
STATE_PATH = "/api/v1/terraform/state"
WORKSPACE_CHARS = 64
# A workspace name is a path segment of the state's address: ASCII letters and digits, `_`, `.`, `-`.
WORKSPACE_RE = re.compile(rf"^[A-Za-z0-9][A-Za-z0-9_.-]{{0,{WORKSPACE_CHARS - 1}}}$")
DEFAULT_WORKSPACE = "default"
_CONTEXT = b"opscraft-terraform-state\x00"
# Actions whose credentials may store or purge the state; a `plan` run only reads and locks it.
WRITING_ACTIONS = frozenset({"apply", "destroy", terraform_plan.APPLY_PLAN})
# Where Terraform writes the state it could not store ("Failed to persist state to backend ...
# To allow for recovery, the state has been written to the file errored.tfstate"): in a run's
# work directory, which is thrown away, so a run of a writing action collects it and the worker
# keeps it as a version (services/terraform_state.recover).
ERRORED_STATE = "errored.tfstate"


def collected(action: str | None, draft: bool, keeps_state: bool) -> tuple[str, ...]:
    """The files a Terraform run of `action` leaves to its worker (`RunSpec.collect`): a `plan`
    run's saved plan (not a test run's: its content is unsaved) and, when OpsCraft keeps the
    state (`keeps_state`), a writing run's `ERRORED_STATE`."""
    if action == "plan" and not draft:
        return terraform_plan.COLLECT
    if keeps_state and action in WRITING_ACTIONS:
        return (ERRORED_STATE,)
    return ()


# Credentials outlive their run's start by at most the longest timeout, the graceful stop after
# it and this margin (the timeout is armed a moment after `started_at`: secrets, saved plan).
GRACE_SECONDS = 60


def username(execution_id: int) -> str:
    """The backend user name of run `execution_id`."""
    return f"{USERNAME_PREFIX}{execution_id}"


def execution_of(name: str) -> int | None:
    """The execution id in a backend user name, or None when it is not one."""
    digits = name.removeprefix(USERNAME_PREFIX)
    return None if name == digits else ascii_int(digits, 10)


@dataclass(frozen=True)
class Scope:
    """What one set of credentials opens: the state of `script_id` in `workspace`, for the run
    `execution_id` that started at `started_at` (its `executions.started_at`, whole seconds count)."""

    execution_id: int
    script_id: int
    workspace: str
    started_at: datetime


def password(secret_key: str, scope: Scope) -> str:
    """The backend password of a run for one state (64 hex characters)."""
    fields = (scope.execution_id, scope.script_id, scope.workspace, int(scope.started_at.timestamp()))
    message = _CONTEXT + "\x00".join(str(f) for f in fields).encode()
    return hmac.new(secret_key.encode(), message, hashlib.sha256).hexdigest()


def lifetime_seconds(max_timeout_seconds: int, stop_grace_seconds: int) -> int:
    """How long after its start a run's credentials may be used (seconds): a run timed out at the
    longest timeout gets SIGINT and up to `stop_grace_seconds` to write its state and release the
    lock (Terraform's graceful stop, docs/executions.md) before it is killed, then the margin."""
    return max_timeout_seconds + stop_grace_seconds + GRACE_SECONDS


def state_url(base_url: str, script_id: int, workspace: str) -> str:
    """The address of a script's workspace state under the server's base URL."""
    return f"{base_url.rstrip('/')}{STATE_PATH}/{script_id}/{workspace}"


def env(base_url: str, scope: Scope, secret_key: str) -> dict[str, str]:
    """Terraform's http backend settings for one run (`TF_HTTP_PASSWORD` is a secret)."""
    address = state_url(base_url, scope.script_id, scope.workspace)
    return {
        "TF_HTTP_ADDRESS": address,
        "TF_HTTP_LOCK_ADDRESS": f"{address}/lock",
        "TF_HTTP_UNLOCK_ADDRESS": f"{address}/lock",
        "TF_HTTP_LOCK_METHOD": "LOCK",
        "TF_HTTP_UNLOCK_METHOD": "UNLOCK",
        "TF_HTTP_USERNAME": username(scope.execution_id),
        "TF_HTTP_PASSWORD": password(secret_key, scope),
    }
