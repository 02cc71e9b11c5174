"""An Ansible run's output and error message name OpsCraft's scratch files in the user's words ("the
inventory", "the playbook", a file's own name), never by the server's temporary path or the
container's mount (`execution/said_paths.py`), on the local and the Docker runner alike. Before,
an inventory Ansible could not parse said "Failed to parse /tmp/opscraft-work-w1-7-x1y2z3ab/
inventory.yml" in the output and "Completely failed to parse inventory source /tmp/..." in the
run's error. Other runs' output is kept as printed (a script's own `pwd`)."""

from __future__ import annotations

import httpx
import pytest
from sqlmodel import col, update

from opscraft import runtime
from opscraft.db.models import ScriptVersion
from opscraft.execution.commands import said_paths
from opscraft.execution.events import Stream
from opscraft.execution.said_paths import SaidPaths, saying
from tests.conftest import LoggedIn
from tests.executions.conftest import make_script, output, start, wait_for

SCRATCH = ("/tmp/opscraft-work-", "/opscraft/work/")  # the local runner's and the container's
PLAYBOOK = "- hosts: all\n  gather_facts: false\n  tasks:\n    - debug: msg=hi\n"
# Ansible's yaml plugin refuses `box2[prod]` (a host range) and the ini plugin the YAML.
UNPARSED = "all:\n  hosts:\n    box1:\n      ansible_connection: local\n    box2[prod]:\n"


class Collected:
    """An `OutputSink` keeping what it is fed, per stream."""

    def __init__(self) -> None:
        self.text: dict[Stream, bytes] = {"stdout": b"", "stderr": b""}

    def feed(self, stream: Stream, data: bytes) -> None:
        self.text[stream] += data

    def tick(self) -> float:
        return 1.0


@pytest.mark.parametrize("script_type", ["bash", "python", "terraform"])
def test_a_run_with_no_path_to_say_feeds_its_output_unwrapped(script_type: str) -> None:
    """Only an Ansible run has paths to say in words: the others' output went through a
    `SaidPaths` all the same, a call and a check on every read for nothing. Its sink is the
    runner's own."""
    sink = Collected()
    with saying(sink, said_paths(script_type, "/opscraft/work", "/dev/shm/s")) as fed:
        assert fed is sink
        fed.feed("stdout", b"/opscraft/work/x\n")
    assert sink.text["stdout"] == b"/opscraft/work/x\n"


def test_an_ansible_runs_sink_says_paths_and_passes_on_what_it_held_when_it_ends() -> None:
    sink = Collected()
    with saying(sink, said_paths("ansible", "/opscraft/work", "")) as fed:
        assert isinstance(fed, SaidPaths)
        fed.feed("stderr", b"see /opscraft/work/playbook.yml and /opscraft/wo")
        assert sink.text["stderr"] == b"see the playbook and ", "a tail that may begin a path is held"
    assert sink.text["stderr"] == b"see the playbook and /opscraft/wo"


def test_a_path_cut_anywhere_between_two_reads_is_said_in_words() -> None:
    work, secrets = "/tmp/opscraft-work-w1-7-x1y2z3ab", "/dev/shm/opscraft-secrets-w1-7-q1w2e3r4"
    printed = (
        f"Failed to parse {work}/inventory.yml with yaml plugin; see '{work}/playbook.yml' and "
        f"{work}/main.tf, the password in {secrets}/ANSIBLE_VAULT_PASSWORD_FILE; /tmp/other/"
    ).encode()
    said = (
        b"Failed to parse the inventory with yaml plugin; see 'the playbook' and main.tf, the "
        b"password in the file secret ANSIBLE_VAULT_PASSWORD_FILE; /tmp/other/"
    )
    for cut in range(len(printed) + 1):
        sink = Collected()
        paths = SaidPaths(sink, said_paths("ansible", work, secrets))
        paths.feed("stderr", printed[:cut])
        paths.feed("stdout", b"x\n")  # the other stream does not release or join the held part
        paths.feed("stderr", printed[cut:])
        paths.close()
        assert sink.text == {"stdout": b"x\n", "stderr": said}, cut


async def _stored_before_the_rule(script_id: int, inventory: str) -> None:
    """The script's inventory replaced as a row saved before today's save checks would read."""
    statement = update(ScriptVersion).where(col(ScriptVersion.script_id) == script_id)
    async with runtime.current().db.session() as session:
        await session.exec(statement.values(run_settings={"inventory": inventory}))  # type: ignore[call-overload]
        await session.commit()


@pytest.mark.parametrize("runner_name", ["local", "docker"], indirect=True)
async def test_an_inventory_ansible_cannot_parse_is_named_as_the_inventory(
    client: httpx.AsyncClient, operator: LoggedIn, runner_name: str
) -> None:
    inventory = "[targets]\nbox1 ansible_connection=local\n"
    script_id = await make_script(client, operator, PLAYBOOK, script_type="ansible", inventory=inventory)
    await _stored_before_the_rule(script_id, UNPARSED)
    started = await start(client, operator, script_id, runner_name, parameters={})
    final = await wait_for(client, operator, started["id"], timeout=180)
    text = await output(client, operator, started["id"])
    assert final["status"] == "failed", (final, text)
    for said in (text, final["error_message"]):
        assert not any(path in said for path in SCRATCH), said
    assert "Completely failed to parse inventory source the inventory" in final["error_message"], final
    assert "the inventory" in text, text


@pytest.mark.parametrize("runner_name", ["local", "docker"], indirect=True)
async def test_a_playbook_ansible_cannot_read_is_named_as_the_playbook(
    client: httpx.AsyncClient, operator: LoggedIn, runner_name: str
) -> None:
    broken = "- hosts: all\n  tasks:\n    - debug: msg=hi\n      bogus_keyword: 1\n"
    script_id = await make_script(client, operator, PLAYBOOK, script_type="ansible")
    statement = update(ScriptVersion).where(col(ScriptVersion.script_id) == script_id).values(content=broken)
    async with runtime.current().db.session() as session:
        await session.exec(statement)  # type: ignore[call-overload]
        await session.commit()
    started = await start(client, operator, script_id, runner_name, parameters={})
    final = await wait_for(client, operator, started["id"], timeout=180)
    text = await output(client, operator, started["id"])
    assert final["status"] == "failed", (final, text)
    for said in (text, final["error_message"] or ""):
        assert not any(path in said for path in SCRATCH), said
    assert "the playbook" in text, text


@pytest.mark.parametrize("script_type", ["bash", "python", "terraform"])
def test_other_runs_output_is_kept_as_printed(script_type: str) -> None:
    assert said_paths(script_type, "/tmp/opscraft-work-w1-7-x1y2z3ab", "/dev/shm/opscraft-secrets-x") == {}


@pytest.mark.parametrize("runner_name", ["local", "docker"], indirect=True)
async def test_a_bash_scripts_own_paths_are_printed_as_they_are(
    client: httpx.AsyncClient, operator: LoggedIn, runner_name: str
) -> None:
    script_id = await make_script(client, operator, 'echo "here=$(pwd)/x"\n')
    started = await start(client, operator, script_id, runner_name, parameters={})
    final = await wait_for(client, operator, started["id"], timeout=120)
    text = await output(client, operator, started["id"])
    assert final["status"] == "success", (final, text)
    here = next(line for line in text.splitlines() if line.startswith("here=")).removeprefix("here=")
    assert any(here.startswith(path) for path in SCRATCH) and here.endswith("/x"), text
