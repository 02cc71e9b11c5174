"""Every run has a usable, writable home inside the run, in both runners: Ansible modules (which
need a temporary directory under it) work, and scripts may keep state under `~`.

The container user is `nobody`, whose home in the password database is `/nonexistent`.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from tests.conftest import LoggedIn
from tests.executions.conftest import run
from tests.waiting import until

RUNNERS = pytest.mark.parametrize("runner_name", ["docker", "local"], indirect=True)


@pytest.fixture
def backend() -> str:
    """A run's home does not depend on the database: SQLite (as the SSH tests,
    tests/executions/test_ansible_ssh.py); each PostgreSQL twin ran the same run again."""
    return "sqlite"


MODULES_PLAYBOOK = """\
- hosts: localhost
  gather_facts: false
  vars:
    out: "{{ playbook_dir }}/out"
    who: world
  tasks:
    - name: file
      file:
        path: "{{ out }}"
        state: directory
        mode: "0750"
    - name: copy
      copy:
        content: "alpha\\n"
        dest: "{{ out }}/list.txt"
    - name: lineinfile
      lineinfile:
        path: "{{ out }}/list.txt"
        line: beta
    - name: copy a template
      copy:
        content: "{% raw %}Hello {{ who }} from {{ inventory_hostname }}{% endraw %}\\n"
        dest: "{{ out }}/greeting.j2"
    - name: template
      template:
        src: "{{ out }}/greeting.j2"
        dest: "{{ out }}/greeting.txt"
    - name: command
      command: cat list.txt greeting.txt
      args:
        chdir: "{{ out }}"
      register: shown
    - name: show
      debug:
        msg: "shown: {{ shown.stdout_lines | join('|') }}"
"""


@RUNNERS
async def test_ansible_modules_work(client: httpx.AsyncClient, admin: LoggedIn, runner_name: str) -> None:
    final, text = await run(client, admin, MODULES_PLAYBOOK, runner_name, script_type="ansible", timeout=120)
    assert final["status"] == "success", (final, text)
    assert "shown: alpha|beta|Hello world from localhost" in text, text
    assert "unreachable=0" in text and "failed=0" in text and "changed=6" in text, text


@RUNNERS
@pytest.mark.parametrize(
    ("script_type", "script"),
    [
        (
            "python",
            "import pathlib\n"
            "cache = pathlib.Path.home() / '.cache' / 'tool'\n"
            "cache.mkdir(parents=True)\n"
            "(cache / 'state').write_text('kept')\n"
            "print('home', pathlib.Path.home())\n"
            "print('cache', (cache / 'state').read_text())\n",
        ),
        (
            "bash",
            "mkdir -p ~/.cache/tool && echo kept > ~/.cache/tool/state\n"
            'echo "home $HOME"\necho "cache $(cat ~/.cache/tool/state)"\n',
        ),
    ],
)
async def test_scripts_write_under_their_home(
    client: httpx.AsyncClient, admin: LoggedIn, runner_name: str, script_type: str, script: str
) -> None:
    final, text = await run(client, admin, script, runner_name, script_type=script_type)
    assert final["status"] == "success", (final, text)
    assert "cache kept\n" in text
    home = text.split("home ", 1)[1].splitlines()[0]
    if runner_name == "docker":
        assert home == "/opscraft/work"
    else:  # a scratch directory of the run, removed with it
        owner = rf"{re.escape(final['worker_id'])}@[0-9a-f]{{12}}"  # `local_runner.owner_name`
        assert re.match(rf"opscraft-work-{owner}-{final['id']}-", Path(home).name), home
        await until(lambda: not Path(home).exists(), "the supervisor removes it after the run's end")


INVENTORY_PLAYBOOK = """\
- hosts: web
  gather_facts: false
  tasks:
    - command: echo "module ran on {{ inventory_hostname }}"
      register: said
    - debug:
        msg: "{{ said.stdout }}"
"""


@RUNNERS
async def test_ansible_modules_work_on_inventory_hosts_with_a_local_connection(
    client: httpx.AsyncClient, admin: LoggedIn, runner_name: str
) -> None:
    """An inventory host with `ansible_connection=local` (the usual first try of an inventory) ran
    no module in the Docker runner: Ansible put its temporary directory under `~nobody`
    (`/nonexistent/.ansible/tmp`, UNREACHABLE). Remote hosts keep `~/.ansible/tmp` of their user."""
    inventory = "[web]\nweb1 ansible_connection=local\nweb2 ansible_connection=local\n"
    final, text = await run(
        client,
        admin,
        INVENTORY_PLAYBOOK,
        runner_name,
        script_type="ansible",
        inventory=inventory,
        timeout=120,
    )
    assert final["status"] == "success", (final, text)
    assert "module ran on web1" in text and "module ran on web2" in text, text
    assert "unreachable=0" in text, text
