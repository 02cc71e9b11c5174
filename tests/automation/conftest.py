"""Fixtures for automation tests: the execution tests' runtime (local runner allowed, the test
images for Docker runs), so runs started by schedules and webhooks really run; notifications
may reach the loopback receivers (tests/automation/receivers.py: OPSCRAFT_NOTIFY_NETWORKS)."""

from __future__ import annotations

from typing import Any

import pytest

from opscraft import runtime
from tests.executions.conftest import rt, terraform_on_path, worker_runners

__all__ = ["rt", "terraform_on_path", "worker_runners"]

# The receivers listen on 127.0.0.1: loopback, which a deployment refuses by default
LOOPBACK_RECEIVERS = {"OPSCRAFT_NOTIFY_NETWORKS": "private,loopback"}


@pytest.fixture
def engine_settings() -> dict[str, Any]:
    """The runtime's settings overrides (a test module overrides this fixture to change them)."""
    return dict(LOOPBACK_RECEIVERS)


@pytest.fixture(scope="module")
def reader_settings() -> dict[str, Any]:
    """The `reader` runtime's settings overrides: the loopback receivers, as `engine_settings`."""
    return dict(LOOPBACK_RECEIVERS)


@pytest.fixture
async def no_automation_loops(rt: runtime.Runtime) -> None:
    """Stop the runtime's background loops (sender, scheduler): the test drives them itself."""
    assert rt.automation is not None
    await rt.automation.stop()
    rt.automation = None
