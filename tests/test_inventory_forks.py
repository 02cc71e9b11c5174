"""Inventory checks forked from a fork server holding ansible-core's imports
(opscraft/services/inventory_forks.py): each check was a Python start of about 0.45 s of CPU."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from opscraft.execution.commands import INVENTORY_FILE
from opscraft.services import inventories, inventory_forks, inventory_listing
from opscraft.services.linters import find_tool
from tests.conftest import require_service
from tests.waiting import until

pytestmark = pytest.mark.asyncio

VALID = "[web]\nweb1 ansible_host=192.0.2.10\n\n[web:vars]\nhttp_port=8080\n"
REFUSED = "[web]\nweb1 http_port\n"  # INI: `Expected key=value`


@pytest.fixture
def server() -> Iterator[inventory_forks.ForkServer]:
    """A fork server of its own for the test (the process's own stays as it is)."""
    tool = find_tool("ansible-inventory")
    require_service(tool, "ansible-inventory")
    python = inventory_listing.python_of(tool)
    assert python is not None, f"{tool} is no Python script"
    forks = inventory_forks.ForkServer(python, INVENTORY_FILE, inventories._environment(python[0]))
    try:
        yield forks
    finally:
        forks._stop()


def _folder(tmp_path: Path, name: str, text: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / INVENTORY_FILE).write_text(text)
    return folder


async def _separately(tool: str, folder: Path) -> tuple[int, str, str]:
    """The check run by a Python of its own (as before the fork server)."""
    both = inventory_listing.command(tool, INVENTORY_FILE)
    assert both is not None
    return await inventories._run(both, folder, "inventory")


async def test_a_forked_check_tells_what_a_python_of_its_own_tells(
    server: inventory_forks.ForkServer, tmp_path: Path
) -> None:
    """Both listings of a valid text and the refusal of an invalid one are the same from a
    forked child as from a Python started for the check (its exit code, its JSON, Ansible's
    own words on stderr), and a refusal leaves nothing behind for the next child."""
    tool = find_tool("ansible-inventory")
    assert tool is not None
    for name, text in (("valid", VALID), ("refused", REFUSED), ("valid-again", VALID)):
        forked = await server.check(_folder(tmp_path, f"forked-{name}", text), 60)
        code, out, err = await _separately(tool, _folder(tmp_path, f"separate-{name}", text))
        assert forked.code == code, (name, forked, err)
        if code == 0:
            assert json.loads(forked.out) == json.loads(out), name
            assert forked.err == "", forked.err
        else:
            assert "Expected key=value" in forked.err, forked.err
            said = forked.err.replace(f"forked-{name}", f"separate-{name}")
            assert said.strip() and said.strip() in err, (said, err)


async def test_a_fork_server_that_died_is_started_again_by_the_next_check(
    server: inventory_forks.ForkServer, tmp_path: Path
) -> None:
    first = await server.check(_folder(tmp_path, "first", VALID), 60)
    assert first.code == 0 and json.loads(first.out)["list"]["web"]["hosts"] == ["web1"]
    assert server._process is not None
    dead = server._process.pid
    os.kill(dead, signal.SIGKILL)
    server._process.wait(30)
    second = await server.check(_folder(tmp_path, "second", VALID), 60)
    assert second.code == 0 and json.loads(second.out) == json.loads(first.out)
    assert server._process.pid != dead


async def test_checks_at_once_each_get_their_own_answer(
    server: inventory_forks.ForkServer, tmp_path: Path
) -> None:
    texts = [f"[group{n}]\nhost{n}\n" for n in range(6)]
    answers = await asyncio.gather(
        *(server.check(_folder(tmp_path, f"at-once-{n}", text), 60) for n, text in enumerate(texts))
    )
    for n, answer in enumerate(answers):
        assert answer.code == 0, answer
        assert json.loads(answer.out)["list"][f"group{n}"]["hosts"] == [f"host{n}"]


async def test_a_check_past_its_time_is_killed_with_its_session(
    server: inventory_forks.ForkServer, tmp_path: Path
) -> None:
    """A child that does not end in time (here: its inventory is a named pipe nobody writes, so
    reading it waits for ever) is killed, and the check says it ran out of time."""
    folder = tmp_path / "hangs"
    folder.mkdir()
    os.mkfifo(folder / INVENTORY_FILE)
    with pytest.raises(inventory_forks.CheckTimeout):
        await server.check(folder, 3)

    def children() -> list[int]:
        assert server._process is not None
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(stat[1]) == server._process.pid and stat[0] != "Z":
                    found.append(int(entry.name))
        return found

    await until(lambda: not children(), "the timed-out child to be gone", 30)
    after = await server.check(_folder(tmp_path, "after", VALID), 60)  # the server goes on
    assert after.code == 0


async def test_a_fork_server_ends_when_its_process_lets_it_go(
    server: inventory_forks.ForkServer, tmp_path: Path
) -> None:
    await server.check(_folder(tmp_path, "one", VALID), 60)
    process = server._process
    assert process is not None and process.poll() is None
    assert server._control is not None
    server._control.close()  # as when this process ends
    server._control = None
    assert process.wait(30) == 0
