"""Fixtures for automation tests: the execution tests' runtime (local runner allowed, the test
images for Docker runs), so runs started by schedules and webhooks really run."""

from __future__ import annotations

import pytest

from opscraft import runtime
from tests.executions.conftest import engine_settings, rt, terraform_on_path

__all__ = ["engine_settings", "rt", "terraform_on_path"]


@pytest.fixture
async def no_automation_loops(rt: runtime.Runtime) -> None:
    """Stop the runtime's background loops (sender, scheduler): the test drives them itself."""
    assert rt.automation is not None
    await rt.automation.stop()
    rt.automation = None
