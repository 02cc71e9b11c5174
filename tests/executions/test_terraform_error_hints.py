"""What a failed Terraform run's `error_message` says, from real Terraform's stderr (the
`terraform` on PATH), as the worker reads a run's (`execution/terraform_errors.py`).

Why a run could not take the state lock: Terraform says "Error acquiring the state lock" for
every failed lock request of its `http` backend: a lock another run holds (the backend's 423),
and also a request the state server refused (401, 403, a 405 from a proxy that does not pass
the LOCK method) or did not answer (5xx, retried, then "giving up"). The hint said "another run
held the state lock" for all of them, sending the user to look for a run that did not exist.
The state server here is a small HTTP server answering LOCK as told.

A variable without a default that nothing set: Terraform's detail says to use `-var`, which an
OpsCraft run cannot pass; the hint names the variables and the two ways a run gets values.
"""

from __future__ import annotations

import http.server
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from opscraft.execution import terraform_backend, terraform_errors
from tests.conftest import free_port, require_service
from tests.linear_time import assert_linear

MAIN_TF = 'terraform {\n  backend "http" {}\n}\n\noutput "o" {\n  value = "x"\n}\n'
HOLDER = b'{"ID": "held-1", "Operation": "OperationTypeApply", "Info": "OpsCraft execution 12 (network)"}'


class StateServer(http.server.ThreadingHTTPServer):
    """An HTTP state server with no state whose LOCK answers `lock_status` (423 with a holder's
    lock info), as a proxy or an OpsCraft that refuses or fails would."""

    lock_status = 200
    post_status = 200  # what a state write gets


class Handler(http.server.BaseHTTPRequestHandler):
    server: StateServer

    def _answer(self, status: int, body: bytes = b"") -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._answer(204)

    def do_LOCK(self) -> None:
        status = self.server.lock_status
        self._answer(status, HOLDER if status == 423 else b"")

    def do_UNLOCK(self) -> None:
        self._answer(200)

    def do_POST(self) -> None:
        self._answer(self.server.post_status)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def state_server() -> Iterator[StateServer]:
    server = StateServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _terraform(tmp_path: Path, server: StateServer) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Real Terraform in `tmp_path` (initialised) with the environment a run gets for `server`."""
    require_service(shutil.which("terraform") is not None, "a real terraform binary on PATH")
    (tmp_path / "main.tf").write_text(MAIN_TF)
    base_url = f"http://127.0.0.1:{server.server_address[1]}"
    scope = terraform_backend.Scope(1, 1, "default", datetime.now(UTC))
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "CHECKPOINT_DISABLE": "1",
        **terraform_backend.env(base_url, scope, "k" * 32),  # what a run gets
        "TF_HTTP_RETRY_WAIT_MIN": "0",  # the 5xx's retries, at once
        "TF_HTTP_RETRY_WAIT_MAX": "1",
    }

    def terraform(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["terraform", *args], cwd=tmp_path, env=env, capture_output=True, text=True)

    init = terraform("init", "-input=false")
    assert init.returncode == 0, init.stderr
    return terraform


def _plan_stderr(tmp_path: Path, server: StateServer) -> str:
    """Real Terraform's stderr of a plan whose LOCK the server answers with its `lock_status`."""
    plan = _terraform(tmp_path, server)("plan", "-input=false", "-lock-timeout=1s")
    assert plan.returncode == 1 and "Error acquiring the state lock" in plan.stderr, plan.stderr
    return plan.stderr


def test_a_lock_another_run_holds_is_named_so(tmp_path: Path, state_server: StateServer) -> None:
    state_server.lock_status = 423
    assert terraform_errors.exit_message(1, _plan_stderr(tmp_path, state_server)) == (
        "the script exited with code 1: Terraform's error: Error acquiring the state lock; "
        + terraform_errors.HELD_LOCK
    )


@pytest.mark.parametrize(
    ("status", "detail"),
    [
        (401, "HTTP remote state endpoint requires auth"),
        (403, "HTTP remote state endpoint invalid auth"),
        (405, "Unexpected HTTP response code 405"),
        (503, "giving up after"),
    ],
)
def test_a_lock_request_the_server_refused_or_failed_is_not_called_held(
    tmp_path: Path, state_server: StateServer, status: int, detail: str
) -> None:
    state_server.lock_status = status
    message = terraform_errors.exit_message(1, _plan_stderr(tmp_path, state_server))
    said = "the script exited with code 1: Terraform's error: Error acquiring the state lock; no other run"
    assert message.startswith(said), message
    assert "another run held the state lock" not in message, message
    assert detail in message.split("(Terraform: ", 1)[1].split("); a proxy")[0], message


def test_a_state_write_refused_as_the_lock_was_broken_names_that_cause(
    tmp_path: Path, state_server: StateServer
) -> None:
    """An admin broke a running apply's lock (`DELETE .../lock`) and another run took it: the
    apply's state write got 423, and its message listed only 413, 403 and no answer."""
    state_server.post_status = 423
    apply = _terraform(tmp_path, state_server)("apply", "-input=false", "-auto-approve")
    assert apply.returncode == 1 and "Failed to save state" in apply.stderr, apply.stderr
    message = terraform_errors.exit_message(1, apply.stderr)
    assert "423: an admin broke the run's state lock and another run holds it" in message, message


def test_variables_nothing_set_are_named_with_the_ways_a_run_sets_them(tmp_path: Path) -> None:
    require_service(shutil.which("terraform") is not None, "a real terraform binary on PATH")
    (tmp_path / "main.tf").write_text(
        'variable "db_host" {\n  type = string\n}\n\nvariable "region" {}\n\n'
        'output "o" {\n  value = "${var.db_host}-${var.region}"\n}\n'
    )
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "CHECKPOINT_DISABLE": "1"}
    for args in (["init", "-input=false"], ["plan", "-input=false"]):
        done = subprocess.run(["terraform", *args], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 1 and "Use a -var" in done.stderr.replace("\n", " "), done.stderr
    assert terraform_errors.exit_message(1, done.stderr) == (
        "the script exited with code 1: Terraform's error: No value for required variable; the "
        "variables db_host, region have no default and no value: declare a parameter of that name, "
        "or attach a secret named TF_VAR_<name> to the script (Terraform's -var is not how a run gets "
        "values: docs/executions.md, Parameters and secrets)"
    )


# Error output of the largest size read (`terraform_errors.TAIL_CHARS`, the last 64 KiB of
# standard error) shaped against the pattern reading an error's summary: a lazy summary before
# trailing blanks read each run of blanks inside it again at each of its characters (67 s).
ERROR_CHARS = terraform_errors.TAIL_CHARS


def _error_shapes() -> dict[str, str]:
    size = ERROR_CHARS - 64
    return {
        "blanks inside a summary": "│ Error: a" + " " * size + "b\n",
        "blanks after the box": "│" + " " * size + "Error: a\n",
        "blanks inside a detail": "Error: a\n│ Error message: b" + " " * size + "c\n",
    }


@pytest.mark.parametrize("shape", list(_error_shapes()))
def test_a_largest_error_output_of_any_shape_is_read_in_linear_time(shape: str) -> None:
    assert_linear(lambda text: terraform_errors.exit_message(1, text), _error_shapes()[shape])


def test_a_summary_is_told_without_its_trailing_blanks() -> None:
    assert terraform_errors.exit_message(1, "│ Error: Invalid reference \t \n") == (
        "the script exited with code 1: Terraform's error: Invalid reference"
    )
