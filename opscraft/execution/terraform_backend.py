"""How a Terraform run reaches OpsCraft's HTTP state backend, and the credentials it uses.

Each run gets its own credentials: user `run-<execution id>` and a password that is an HMAC of
the execution id under the server's SECRET_KEY (so every worker with the configuration can issue
it and the server can check it without storing it). The server accepts them only while that
execution is `running` and only for the state of its own script (services/terraform_state.py):
they are worthless once the run ended. They reach Terraform as `TF_HTTP_USERNAME` and
`TF_HTTP_PASSWORD` (Terraform's http backend reads them from the environment), treated as
secrets: on stdin into a container, masked in the output, never on a command line.

The backend itself is set by an override file (`opscraft_backend_override.tf`, see Terraform's
"Override Files"), so a configuration's own `backend` block, if any, is replaced, and by
`TF_HTTP_ADDRESS`, `TF_HTTP_LOCK_ADDRESS`, `TF_HTTP_UNLOCK_ADDRESS` with the methods `LOCK` and
`UNLOCK` (Terraform's "http" backend documentation).
"""

from __future__ import annotations

import hashlib
import hmac
import re

USERNAME_PREFIX = "run-"
OVERRIDE_FILE = "opscraft_backend_override.tf"
OVERRIDE = b'terraform {\n  backend "http" {}\n}\n'
STATE_PATH = "/api/v1/terraform/state"
WORKSPACE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
DEFAULT_WORKSPACE = "default"
_CONTEXT = b"opscraft-terraform-state\x00"


def username(execution_id: int) -> str:
    """The backend user name of run `execution_id`."""
    return f"{USERNAME_PREFIX}{execution_id}"


def execution_of(name: str) -> int | None:
    """The execution id in a backend user name, or None when it is not one."""
    digits = name.removeprefix(USERNAME_PREFIX)
    if name == digits or not digits.isdigit() or len(digits) > 10:
        return None
    return int(digits)


def password(secret_key: str, execution_id: int) -> str:
    """The backend password of run `execution_id` (64 hex characters)."""
    message = _CONTEXT + str(execution_id).encode()
    return hmac.new(secret_key.encode(), message, hashlib.sha256).hexdigest()


def verify(secret_key: str, execution_id: int, given: str) -> bool:
    """True when `given` is the password of run `execution_id` (constant-time comparison)."""
    return hmac.compare_digest(password(secret_key, execution_id), given)


def state_url(base_url: str, script_id: int, workspace: str) -> str:
    """The address of a script's workspace state under the server's base URL."""
    return f"{base_url.rstrip('/')}{STATE_PATH}/{script_id}/{workspace}"


def env(base_url: str, script_id: int, workspace: str, execution_id: int, secret_key: str) -> dict[str, str]:
    """Terraform's http backend settings for one run (`TF_HTTP_PASSWORD` is a secret)."""
    address = state_url(base_url, script_id, workspace)
    return {
        "TF_HTTP_ADDRESS": address,
        "TF_HTTP_LOCK_ADDRESS": f"{address}/lock",
        "TF_HTTP_UNLOCK_ADDRESS": f"{address}/lock",
        "TF_HTTP_LOCK_METHOD": "LOCK",
        "TF_HTTP_UNLOCK_METHOD": "UNLOCK",
        "TF_HTTP_USERNAME": username(execution_id),
        "TF_HTTP_PASSWORD": password(secret_key, execution_id),
    }
