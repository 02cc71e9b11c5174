"""Every script type runs for real, in a container and with the local runner; parameters arrive
the documented way; exit codes map to states.

Terraform runs against a stand-in `terraform` (in the test image and put on PATH for the local
runner) that records its arguments and TF_VAR_* variables: no Terraform binary can be had here.
"""

from __future__ import annotations

import httpx
import pytest
from sqlmodel import col, update

from opscraft import runtime
from opscraft.db.models.scripts import Script, ScriptVersion
from tests.conftest import LoggedIn
from tests.executions.conftest import make_script, run, start, wait_for

RUNNERS = pytest.mark.parametrize("runner_name", ["docker", "local"], indirect=True)


@pytest.fixture
def backend() -> str:
    """Runner behaviour does not depend on the database: SQLite (the API tests cover PostgreSQL)."""
    return "sqlite"


@RUNNERS
async def test_bash_parameters_as_environment(
    client: httpx.AsyncClient, viewer: LoggedIn, admin: LoggedIn, runner_name: str
) -> None:
    hostile = "O'Brien; rm -rf / $(id) `id`"
    final, text = await run(
        client,
        admin,
        'echo "hello $NAME"\necho "count=$COUNT"\necho "to stderr" >&2\n',
        runner_name,
        parameters={"NAME": "world", "COUNT": 3},
        run_parameters={"NAME": hostile},
    )
    assert final["status"] == "success" and final["exit_code"] == 0, final
    assert f"hello {hostile}\n" in text and "count=3\n" in text and "to stderr" in text
    assert final["runner"] == runner_name
    assert final["parameters"] == {"NAME": hostile, "COUNT": 3}


@RUNNERS
async def test_python_exit_codes_map_to_states(
    client: httpx.AsyncClient, admin: LoggedIn, runner_name: str
) -> None:
    script = 'import os, sys\nprint("code", os.environ["CODE"])\nsys.exit(int(os.environ["CODE"]))\n'
    python = {"script_type": "python", "parameters": {"CODE": 0}}
    ok, text = await run(client, admin, script, runner_name, **python)
    assert ok["status"] == "success" and ok["exit_code"] == 0 and "code 0" in text
    bad, text = await run(client, admin, script, runner_name, run_parameters={"CODE": 7}, **python)
    assert bad["status"] == "failed" and bad["exit_code"] == 7 and "code 7" in text
    assert bad["error_message"] == "the script exited with code 7"


@RUNNERS
async def test_python_is_unbuffered(client: httpx.AsyncClient, admin: LoggedIn, runner_name: str) -> None:
    script = 'import sys\nprint("out")\nprint("err", file=sys.stderr)\nraise SystemExit(2)\n'
    final, text = await run(client, admin, script, runner_name, script_type="python")
    assert final["status"] == "failed" and final["exit_code"] == 2
    assert "out" in text and "err" in text


@RUNNERS
async def test_python_reads_its_text_in_the_encoding_it_declares(
    client: httpx.AsyncClient, admin: LoggedIn, runner_name: str
) -> None:
    # PEP 263: the file is the stored text in latin-1, so Python reads back what was saved (the
    # file was UTF-8 under this line, and printed 'cafÃ© Â½').
    script = "# -*- coding: latin-1 -*-\nimport sys\nprint('café ½', len('café'), sys.stdout.encoding)\n"
    final, text = await run(client, admin, script, runner_name, script_type="python")
    assert final["status"] == "success", final
    assert text == "café ½ 4 utf-8\n"


async def test_python_text_its_declared_encoding_cannot_hold(
    client: httpx.AsyncClient, admin: LoggedIn, runner_name: str
) -> None:
    # Refused on save, the line named; it failed each run with "SyntaxError: encoding problem".
    body = {
        "name": "narrow",
        "script_type": "python",
        "content": "#!/usr/bin/env python3\n# coding: latin-1\nprint('€')\n",
    }
    refused = await client.post("/api/v1/scripts", json=body, headers=admin.headers)
    assert refused.status_code == 422, refused.text
    assert "line 3" in refused.text and "'€' (U+20AC) cannot be written in iso-8859-1" in refused.text
    body["content"] = "# coding: no-such-codec\nprint(1)\n"
    refused = await client.post("/api/v1/scripts", json=body, headers=admin.headers)
    assert refused.status_code == 422 and "'no-such-codec', which Python does not know" in refused.text
    # One saved before the check: its runs end in `error` saying why, before any container.
    script_id = await make_script(client, admin, "print(1)\n", script_type="python")
    narrow = "# coding: ascii\nprint('é')\n"
    async with runtime.current().db.session() as session:
        await session.exec(update(Script).where(col(Script.id) == script_id).values(content=narrow))
        await session.exec(
            update(ScriptVersion).where(col(ScriptVersion.script_id) == script_id).values(content=narrow)
        )
        await session.commit()
    started = await start(client, admin, script_id, runner_name)
    final = await wait_for(client, admin, started["id"])
    assert final["status"] == "error", final
    assert "line 2: 'é' (U+00E9) cannot be written in ascii" in final["error_message"]


@RUNNERS
async def test_ansible_gets_parameters_as_extra_vars(
    client: httpx.AsyncClient, admin: LoggedIn, runner_name: str
) -> None:
    playbook = (
        "- hosts: localhost\n"
        "  gather_facts: false\n"
        "  tasks:\n"
        "    - name: write\n"
        '      copy:\n        content: "hello {{ TARGET }} x{{ REPLICAS }}"\n'
        '        dest: "{{ playbook_dir }}/greeting.txt"\n'
        "    - name: read\n"
        '      command: cat "{{ playbook_dir }}/greeting.txt"\n'
        "      register: greeting\n"
        "    - name: greet\n"
        '      debug:\n        msg: "read {{ greeting.stdout }}"\n'
    )
    final, text = await run(
        client,
        admin,
        playbook,
        runner_name,
        script_type="ansible",
        parameters={"TARGET": "web", "REPLICAS": 2},
        run_parameters={"TARGET": "db"},
        timeout=120,
    )
    assert final["status"] == "success", (final, text)
    assert "read hello db x2" in text
    failing = playbook + "    - name: stop\n      fail:\n        msg: boom\n"
    final, text = await run(
        client, admin, failing, runner_name, script_type="ansible", parameters={"TARGET": "x", "REPLICAS": 1}
    )
    assert final["status"] == "failed" and final["exit_code"] == 2 and "boom" in text
    assert final["error_message"] == "the script exited with code 2: a task failed on localhost (1 of 1 host)"


@RUNNERS
async def test_ansible_without_inventory_targets_localhost_as_all(
    client: httpx.AsyncClient, admin: LoggedIn, runner_name: str
) -> None:
    """Without an inventory the run's only host is `localhost` (`-i localhost,`), so a play
    for `hosts: all` runs there instead of matching no host and "succeeding" having done nothing."""
    playbook = (
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        '    - debug:\n        msg: "on {{ inventory_hostname }}"\n'
    )
    final, text = await run(client, admin, playbook, runner_name, script_type="ansible", timeout=120)
    assert final["status"] == "success", (final, text)
    assert '"msg": "on localhost"' in text, text
    assert "no hosts matched" not in text and "Unable to parse" not in text, text


@RUNNERS
@pytest.mark.parametrize("action", ["plan", "apply"])
async def test_terraform_plan_or_apply_with_tf_vars(
    client: httpx.AsyncClient, admin: LoggedIn, runner_name: str, action: str
) -> None:
    main_tf = 'variable "region" {\n  type = string\n}\n\noutput "region" {\n  value = var.region\n}\n'
    final, text = await run(
        client,
        admin,
        main_tf,
        runner_name,
        script_type="terraform",
        parameters={"region": "eu-west-1"},
        run_parameters={"region": "us-east-2"},
        terraform_action=action,
    )
    assert final["status"] == "success" and final["terraform_action"] == action, (final, text)
    steps = [
        line for line in text.splitlines() if line.startswith("terraform-standin ") and " env " not in line
    ]
    expected = (
        "apply -auto-approve -input=false -lock-timeout=60s"
        if action == "apply"
        else "plan -input=false -lock-timeout=60s -out=opscraft.tfplan"
    )
    assert steps == ["terraform-standin init -input=false", f"terraform-standin {expected}"]
    assert text.count("terraform-standin env TF_VAR_region=us-east-2") == 2


async def test_terraform_action_only_for_terraform(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    from tests.executions.conftest import make_script

    script_id = await make_script(client, admin, "echo hi\n")
    response = await client.post(
        "/api/v1/executions",
        json={"script_id": script_id, "terraform_action": "apply", "runner": "local"},
        headers=admin.headers,
    )
    assert response.status_code == 422 and "only to terraform" in response.json()["detail"]
