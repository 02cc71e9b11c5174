"""Terraform providers without the internet (local runner, real Terraform): the documented way
is a CLI configuration with a `filesystem_mirror`, given to the run as a `file` secret named
`TF_CLI_CONFIG_FILE`. The docs used to say to set TF_CLI_CONFIG_FILE in the environment, which
the local runner never passes on (a run's environment is built from nothing but its own
variables), so `terraform init` still went to the registry and failed offline.

No provider can be downloaded here, and none is needed to show where `init` takes one from: the
mirror holds a stand-in executable for `hashicorp/fake`, which `init` installs (unpacked layout,
unauthenticated) and which only `plan`, starting it, finds is no provider.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.conftest import LoggedIn
from tests.executions import test_terraform_state as state_tests
from tests.executions.conftest import make_script, output, start, wait_for

terraform_on_path = state_tests.terraform_on_path
MAIN_TF = """terraform {
  required_providers {
    fake = { source = "hashicorp/fake" }
  }
}

output "x" {
  value = 1
}
"""


def _mirror(root: Path) -> str:
    """A filesystem mirror under `root` with a stand-in `hashicorp/fake` 1.0.0; its CLI configuration."""
    package = root / "registry.terraform.io" / "hashicorp" / "fake" / "1.0.0" / "linux_amd64"
    package.mkdir(parents=True)
    binary = package / "terraform-provider-fake_v1.0.0"
    binary.write_text("#!/bin/sh\necho 'a stand-in, not a provider' >&2\nexit 1\n")
    binary.chmod(0o755)
    return f"""provider_installation {{
  filesystem_mirror {{
    path    = "{root}"
    include = ["registry.terraform.io/*/*"]
  }}
  direct {{
    exclude = ["registry.terraform.io/*/*"]
  }}
}}
"""


async def _plan(client: httpx.AsyncClient, who: LoggedIn, script_id: int) -> tuple[str, str]:
    """A failed plan's output and error message."""
    started = await start(client, who, script_id, "local", terraform_action="plan", parameters={})
    final = await wait_for(client, who, started["id"], timeout=120)
    assert final["status"] == "failed", final  # the stand-in is no provider: plan fails either way
    return await output(client, who, started["id"]), final["error_message"]


async def test_providers_come_from_a_mirror_named_by_a_file_secret(
    client: httpx.AsyncClient, operator: LoggedIn, terraform_on_path: None, tmp_path: Path
) -> None:
    script_id = await make_script(client, operator, MAIN_TF, script_type="terraform")
    text, message = await _plan(client, operator, script_id)
    assert "Failed to query available provider packages" in text, text  # offline: the registry
    assert message == (  # it said "the script exited with code 1"
        "the script exited with code 1: Terraform's error: Failed to query available provider "
        "packages; a provider could not be downloaded: a Docker run needs the script's Network "
        "setting, and a machine without internet a provider mirror (docs/executions.md, Secrets and "
        "providers)"
    )

    config = _mirror(tmp_path / "providers")
    body = {"name": "TF_CLI_CONFIG_FILE", "value": config, "kind": "file"}
    r = await client.post("/api/v1/secrets", json=body, headers=operator.headers)
    assert r.status_code == 201, r.text
    r = await client.post(f"/api/v1/scripts/{script_id}/secrets/{r.json()['id']}", headers=operator.headers)
    assert r.status_code in (200, 201, 204), r.text
    text, message = await _plan(client, operator, script_id)
    assert "Installed hashicorp/fake v1.0.0 (unauthenticated)" in text, text
    assert "Terraform has been successfully initialized!" in text, text
    assert "Failed to query available provider packages" not in text, text
    assert (
        message.startswith("the script exited with code 1: Terraform's error: ") and "mirror" not in message
    )
