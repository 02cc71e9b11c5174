"""An inventory check's two `ansible-inventory` listings (`--list`, `--list --export`) come from
one run of the tool's Python (opscraft/services/inventory_listing.py): each run is a Python start
with ansible-core's imports, about 0.45 s of CPU, and every inventory save and run form paid two."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from opscraft.services import inventories, inventory_forks, inventory_listing
from opscraft.services.errors import Invalid
from opscraft.services.linters import find_tool
from tests.conftest import require_service

pytestmark = pytest.mark.asyncio


def _fresh(text: str) -> str:
    """`text` with a comment of its own: the checks' answers are kept by text for the process."""
    return f"# {time.monotonic_ns()}\n{text}"


# A password in the vars of a group without hosts: only the `--export` listing keeps it.
CLEAR_IN_A_HOSTLESS_GROUP = "[web]\nweb1\n\n[dbs]\n\n[dbs:vars]\nansible_become_password=Hunter2-secret\n"
# `ansible_connection=local` for every host through `all`: only the `--list` listing merges it.
LOCAL_THROUGH_ALL = "[web]\nweb2\nweb1\n\n[all:vars]\nansible_connection=local\n"
LOCAL_BUT_ONE = LOCAL_THROUGH_ALL + "\n[remote]\nweb3 ansible_connection=ssh\n"


def _counting_runs(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The argv of every process the checks start from now on (they still run); a check forked
    from the fork server (`inventory_forks`) is counted as its server's Python."""
    started: list[list[str]] = []
    run = inventories._run
    check = inventory_forks.ForkServer.check

    async def counted(argv: list[str], folder: Path, field: str) -> Any:
        started.append(argv)
        return await run(argv, folder, field)

    async def forked(server: inventory_forks.ForkServer, folder: Path, seconds: float) -> Any:
        started.append(["fork", *server._argv])
        return await check(server, folder, seconds)

    monkeypatch.setattr(inventories, "_run", counted)
    monkeypatch.setattr(inventory_forks.ForkServer, "check", forked)
    return started


async def _check_each_listing(started: list[list[str]], runs_per_check: int) -> None:
    """What each listing tells is read (the export's group password, the list's merged
    connection), each check starting `runs_per_check` processes."""
    with pytest.raises(Invalid) as refused:
        await inventories.validate(_fresh(CLEAR_IN_A_HOSTLESS_GROUP))
    assert "group dbs (ansible_become_password) holds a password in clear" in str(refused.value)
    assert len(started) == runs_per_check, started
    text = _fresh(LOCAL_THROUGH_ALL)
    assert await inventories.validate(text) == ["web1", "web2"]
    assert await inventories.reaches_network(text) is False
    assert len(started) == 2 * runs_per_check, started
    assert await inventories.reaches_network(_fresh(LOCAL_BUT_ONE)) is True
    assert len(started) == 3 * runs_per_check, started
    with pytest.raises(Invalid) as refused:
        await inventories.validate(_fresh("[web\nweb1\n"))
    assert "the group header [web has no closing ']'" in str(refused.value)
    assert len(started) == 4 * runs_per_check, started


async def test_a_check_forks_one_child_of_the_tools_python_for_both_listings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A new text's check starts no Python (it started two, then one): one child forked from
    the fork server of the tool's Python, which reads what each of the two listings tells, and
    the tool's own words for a text it refuses."""
    tool = find_tool("ansible-inventory")
    require_service(tool, "ansible-inventory")
    started = _counting_runs(monkeypatch)
    await _check_each_listing(started, 1)
    assert {tuple(argv[:2]) for argv in started} == {("fork", *inventory_listing.python_of(tool)[:1])}


async def test_a_tool_that_is_no_python_script_is_run_once_per_listing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An `ansible-inventory` that is a shell wrapper (no Python on its `#!` line) is run twice,
    with `--list` and `--list --export`, and tells the same."""
    tool = find_tool("ansible-inventory")
    require_service(tool, "ansible-inventory")
    wrapper = tmp_path / "ansible-inventory"
    wrapper.write_text(f'#!/bin/sh\nexec {tool} "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setattr(inventories, "find_tool", lambda name: str(wrapper))
    await _check_each_listing(_counting_runs(monkeypatch), 2)


@pytest.mark.parametrize(
    ("first_line", "python"),
    [
        (b"#!/venv/bin/python3.11\n", ["/venv/bin/python3.11"]),
        (b"#!/usr/bin/python3 -E\n", ["/usr/bin/python3", "-E"]),
        (b"#! /usr/bin/env python3\n", ["/usr/bin/env", "python3"]),
        (b"#!/bin/sh\n", None),
        (b"#!/usr/bin/env bash\n", None),
        (b"#!\n", None),
        (b"\x7fELF\x02\x01\x01\x00", None),
        (b"", None),
    ],
)
async def test_the_python_is_the_one_on_the_tools_first_line(
    tmp_path: Path, first_line: bytes, python: list[str] | None
) -> None:
    """The tool's own Python runs the listings (the kernel's reading of `#!`: the interpreter,
    then at most one argument); none for a tool whose `#!` line names no Python."""
    tool = tmp_path / "ansible-inventory"
    tool.write_bytes(first_line + b"import sys\n")
    listing = ["-I", "-c", inventory_listing.LISTINGS_CODE, "-i", "inventory", "--list", "--export"]
    expected = None if python is None else [*python, *listing]
    assert inventory_listing.command(str(tool), "inventory") == expected
    assert inventory_listing.command(str(tmp_path / "missing"), "inventory") is None
