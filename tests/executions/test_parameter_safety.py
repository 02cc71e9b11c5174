"""No parameter value is evaluated by a tool, and no parameter takes a name a tool interprets.

Real runs: Ansible (the test image's ansible-core 2.14 and this machine's 2.19), bash and Python
in both runners; Terraform with the real binary at /usr/local/bin/terraform (the engine's runs use
a stand-in, see conftest, so the Terraform case runs the built command directly).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import col, update

from opscraft import runtime
from opscraft.db.models import Script, User
from opscraft.execution.commands import build
from opscraft.execution.param_env import (
    INTERPRETED_NAMES,
    INTERPRETED_PREFIXES,
    RUNTIME_NAMES,
    ansible_extra_vars,
    interpreted_name,
)
from opscraft.execution.spec import RunnerError, RunSpec
from opscraft.services import executions
from opscraft.services.actor import Actor
from opscraft.services.errors import Invalid
from opscraft.services.parameters import MAX_TOTAL_BYTES, MAX_VALUE_BYTES, normalize, resolve
from tests.conftest import IN_CI, LoggedIn
from tests.executions.conftest import make_script, output, run, start, wait_for

RUNNERS = pytest.mark.parametrize("runner_name", ["docker", "local"], indirect=True)
DBPW = "Tr0ub4dor-and-3-more"
ENV_LOOKUP = "{{ lookup('env','DBPW') | reverse }}"
PIPE_LOOKUP = "{{ lookup('pipe','id') }}"
# One member of each prefix, as a program reads it.
PREFIX_EXAMPLES = {
    "BASH": ["BASH_ENV", "BASHOPTS", "BASH_XTRACEFD", "BASH_LOADABLES_PATH", "BASH_COMPAT"],
    "PYTHON": ["PYTHONPATH", "PYTHONSTARTUP", "PYTHONHOME", "PYTHONINSPECT", "PYTHONWARNINGS", "PYTHON_GIL"],
    "ANSIBLE_": ["ANSIBLE_CONFIG", "ANSIBLE_LIBRARY", "ansible_python_interpreter", "ansible_connection"],
    "TF_": ["TF_CLI_ARGS", "TF_CLI_ARGS_plan", "TF_CLI_CONFIG_FILE", "TF_DATA_DIR", "TF_VAR_x", "TF_LOG"],
    "LD_": ["LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "LD_DEBUG_OUTPUT", "LD_BIND_NOW"],
    "MALLOC_": ["MALLOC_TRACE", "MALLOC_CHECK_"],
    "LC_": ["LC_CTYPE", "LC_MESSAGES"],
    "OPENSSL_": ["OPENSSL_CONF", "OPENSSL_ENGINES", "OPENSSL_MODULES"],
    "GIT_CONFIG": ["GIT_CONFIG_COUNT", "GIT_CONFIG_KEY_0", "GIT_CONFIG_VALUE_0", "GIT_CONFIG_GLOBAL"],
    "GIT_SSL_": ["GIT_SSL_NO_VERIFY", "GIT_SSL_CAINFO", "GIT_SSL_CAPATH"],
    "PERL5": ["PERL5LIB", "PERL5OPT", "PERL5DB"],
    "PIP_": ["PIP_INDEX_URL", "PIP_CERT", "PIP_TRUSTED_HOST"],
}
# Names that change what a tool trusts or runs, one family each (docs/scripts.md).
FAMILIES = {
    "TLS trust": ["SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "AWS_CA_BUNDLE"],
    "TLS trust (Node, keys)": ["NODE_EXTRA_CA_CERTS", "NODE_TLS_REJECT_UNAUTHORIZED", "SSLKEYLOGFILE"],
    "proxies": ["HTTP_PROXY", "https_proxy", "ALL_PROXY", "no_proxy", "FTP_PROXY"],
    "commands run by git and ssh": ["GIT_SSH_COMMAND", "GIT_ASKPASS", "SSH_ASKPASS", "GIT_EXEC_PATH"],
    "code loaded by other runtimes": ["NODE_OPTIONS", "RUBYOPT", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS"],
    "credentials and daemons": ["KUBECONFIG", "DOCKER_HOST", "AWS_CONFIG_FILE", "SSH_AUTH_SOCK"],
    # Found from outside: each ran a command, loaded code or chose a route or credential.
    "any scheme's proxy": ["SOCKS_PROXY", "socks5_proxy", "RSYNC_PROXY", "wss_proxy", "Ftps_Proxy"],
    "internal variables of a family": [
        "_ANSIBLE_CONNECTION_PATH",
        "_ANSIBLE_ANSIBALLZ_COVERAGE_CONFIG",
        "_ANSIBLE_TEMPLAR_SANDBOX_MODE",
        "_ansible_ansiballz_debugpy_config",
        "_PYTHON_SYSCONFIGDATA_NAME",
        "_PYTHON_PROJECT_BASE",
    ],
    "commands run by common tools": ["TAR_OPTIONS", "ZIPOPT", "LESSOPEN", "RSYNC_RSH", "SUDO_ASKPASS"],
    "repositories and transports of git": ["GIT_COMMON_DIR", "GIT_ALLOW_PROTOCOL", "GIT_INDEX_FILE"],
    "credential files": ["NETRC", "GOOGLE_APPLICATION_CREDENTIALS", "KRB5CCNAME", "PGPASSFILE"],
    # git commit without -m starts the editor they name without a terminal too
    "editors": ["EDITOR", "VISUAL", "editor"],
}
REFUSED = sorted(
    {
        *INTERPRETED_NAMES,
        *RUNTIME_NAMES,
        *(n for ns in PREFIX_EXAMPLES.values() for n in ns),
        *(n for ns in FAMILIES.values() for n in ns),
    }
)
ALLOWED = ["VERSION", "ENV", "REGION", "DB_HOST", "LDAP_URL", "TFVERSION", "PY_VERSION", "name", "value"]
# Ordinary names that only look like a refused family.
ALLOWED += ["NODE_NAME", "GIT_BRANCH", "GIT_REF", "AWS_REGION", "DOCKER_IMAGE", "PROXY_URL", "ENVIRONMENT"]
ALLOWED += ["_PRIVATE", "_VERSION", "PROXY_HOST", "TAR_FILE", "NET_RC_USER"]


@pytest.fixture
def backend() -> str:
    """Runner behaviour does not depend on the database: SQLite (the API tests cover PostgreSQL)."""
    return "sqlite"


def test_every_prefix_has_examples() -> None:
    assert set(PREFIX_EXAMPLES) == set(INTERPRETED_PREFIXES)
    for prefix, names in PREFIX_EXAMPLES.items():
        assert all(n.upper().startswith(prefix) for n in names)


@pytest.mark.parametrize("name", REFUSED)
def test_interpreted_names_are_refused_at_save(name: str) -> None:
    for spelling in {name, name.lower()}:
        with pytest.raises(Invalid) as exc:
            normalize({spelling: "x"})
        message = {d["field"]: d["message"] for d in exc.value.details}[f"parameters.{spelling}"]
        assert "reserved" in message and interpreted_name(spelling) in message


@pytest.mark.parametrize("name", ALLOWED)
def test_ordinary_names_are_allowed(name: str) -> None:
    assert interpreted_name(name) is None
    assert normalize({name: "x"})[0]["name"] == name


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_each_family_of_trust_and_command_names_is_refused(family: str) -> None:
    for name in FAMILIES[family]:
        for script_type in ("bash", "python", "ansible", "terraform"):
            with pytest.raises(Invalid) as exc:
                normalize({name: "x"}, script_type)
            assert [d["field"] for d in exc.value.details] == [f"parameters.{name}"], name


def _ansible_own_names() -> dict[str, set[str]]:
    """Ansible's reserved and magic variable names, from the installed ansible-core's source."""
    import ansible.constants as ansible_constants
    from ansible.vars.reserved import get_reserved_names

    connection = {n for names in ansible_constants.MAGIC_VARIABLE_MAPPING.values() for n in names}
    return {
        "play keywords and Jinja2 globals (get_reserved_names)": set(get_reserved_names()),
        "magic variables (INTERNAL_STATIC_VARS)": set(ansible_constants.INTERNAL_STATIC_VARS),
        "connection variables": set(ansible_constants.COMMON_CONNECTION_VARS) | connection,
    }


@pytest.mark.parametrize("family", sorted(_ansible_own_names()))
def test_ansible_reserved_names_are_refused_for_ansible_scripts(family: str) -> None:
    names = _ansible_own_names()[family]
    assert names >= ({"omit", "vars"} if "keywords" in family else set())
    for name in sorted(names):
        with pytest.raises(Invalid) as exc:
            normalize({name: "x"}, "ansible")
        assert [d["field"] for d in exc.value.details] == [f"parameters.{name}"], name
        schema = [{"name": name, "type": "string", "required": False, "default": "x", "options": []}]
        with pytest.raises(Invalid):
            resolve(schema, {}, "ansible")
        spec = RunSpec(1, "ansible", "- hosts: all\n", {name: "x"}, {}, 10, 64, 1.0, False)
        with pytest.raises(RunnerError, match=f"parameter {name} cannot be used"):
            build(spec, "")


@pytest.mark.parametrize("name", ["__ansible_unsafe", "__ansible_vault"])
async def test_ansibles_json_markers_are_refused_as_ansible_parameter_names(
    client: httpx.AsyncClient, operator: LoggedIn, name: str
) -> None:
    """The extra-vars file is JSON read by Ansible's decoder, which takes these keys as markers:
    a parameter so named would make the whole file one value (`extra vars could not be made into
    a dictionary`). Refused at save, named; other script types keep the name."""
    assert interpreted_name(name, "ansible") is not None and interpreted_name(name, "bash") is None
    body = {"name": f"m-{name}", "script_type": "ansible", "content": ANSIBLE_PLAYBOOK}
    r = await client.post(
        "/api/v1/scripts", json={**body, "parameters": {name: "x"}}, headers=operator.headers
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == f"parameters.{name}", r.text


def test_ansible_names_stay_allowed_for_other_types_and_in_other_case() -> None:
    """Ansible's variables are case-sensitive: `ENVIRONMENT` is not `environment`."""
    for name in ("omit", "hostvars", "environment", "inventory_hostname", "with_items"):
        assert interpreted_name(name, "bash") is None and interpreted_name(name, "ansible") is not None
        assert normalize({name.upper(): "x"}, "ansible")[0]["name"] == name.upper()


def test_a_schema_saved_before_the_rule_is_refused_at_run() -> None:
    schema = [{"name": "BASH_ENV", "type": "string", "required": False, "default": "x", "options": []}]
    with pytest.raises(Invalid) as exc:
        resolve(schema, {"BASH_ENV": "$(echo INJECTED >&2)"})
    assert exc.value.details[0]["field"] == "parameters.BASH_ENV"
    spec = RunSpec(1, "bash", "echo hi\n", {"BASH_ENV": "$(id)"}, {}, 10, 64, 1.0, False)
    with pytest.raises(RunnerError, match="parameter BASH_ENV cannot be used: bash reads BASH_ENV"):
        build(spec, "")


def test_ansible_extra_vars_mark_every_string_unsafe() -> None:
    values: dict[str, Any] = {"S": '{{ x }} "q" \\ é\n', "C": PIPE_LOOKUP, "I": 10**30, "F": 1e20, "B": True}
    loaded = json.loads(ansible_extra_vars(values))
    unsafe = {"S": {"__ansible_unsafe": values["S"]}, "C": {"__ansible_unsafe": PIPE_LOOKUP}}
    assert loaded == {**values, **unsafe}


async def test_api_refuses_bash_env_at_save(client: httpx.AsyncClient, operator: LoggedIn) -> None:
    body = {
        "name": "inject",
        "script_type": "bash",
        "content": "echo hi\n",
        "parameters": {"BASH_ENV": "$(echo INJECTED >&2)"},
    }
    r = await client.post("/api/v1/scripts", json=body, headers=operator.headers)
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["errors"]] == ["parameters.BASH_ENV"]
    assert "bash reads BASH_ENV" in r.json()["detail"]


@RUNNERS
async def test_bash_env_saved_before_the_rule_is_refused_at_run(
    client: httpx.AsyncClient, operator: LoggedIn, runner_name: str
) -> None:
    script_id = await make_script(client, operator, "echo hi\n", parameters={"X": "$(echo INJECTED >&2)"})
    async with runtime.current().db.session() as session:
        stored = [{"name": "BASH_ENV", "type": "string", "required": False, "default": "$(echo X >&2)"}]
        await session.exec(update(Script).where(col(Script.id) == script_id).values(parameters=stored))
        await session.commit()
    r = await client.post(
        "/api/v1/executions", json={"script_id": script_id, "runner": runner_name}, headers=operator.headers
    )
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["errors"]] == ["parameters.BASH_ENV"]


API_REFUSED = ["omit", "hostvars", "inventory_hostname", "REQUESTS_CA_BUNDLE"]
API_REFUSED += ["_ANSIBLE_CONNECTION_PATH", "TAR_OPTIONS"]  # found from outside


@pytest.mark.parametrize("name", API_REFUSED)
async def test_api_refuses_ansible_and_trust_names_at_save_and_at_run(
    client: httpx.AsyncClient, operator: LoggedIn, name: str
) -> None:
    playbook = "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - debug:\n        msg: hi\n"
    body = {
        "name": f"reserved-{name}",
        "script_type": "ansible",
        "content": playbook,
        "parameters": {name: "x"},
    }
    r = await client.post("/api/v1/scripts", json=body, headers=operator.headers)
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["errors"]] == [f"parameters.{name}"]
    script_id = await make_script(client, operator, playbook, script_type="ansible", parameters={"X": "x"})
    async with runtime.current().db.session() as session:
        stored = [{"name": name, "type": "string", "required": False, "default": "x"}]
        await session.exec(update(Script).where(col(Script.id) == script_id).values(parameters=stored))
        await session.commit()
    r = await client.post("/api/v1/executions", json={"script_id": script_id}, headers=operator.headers)
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["errors"]] == [f"parameters.{name}"]


ANSIBLE_PLAYBOOK = """- hosts: localhost
  gather_facts: false
  tasks:
    - debug:
        msg: "Deploying {{ VERSION }}"
    - debug:
        msg: "choice={{ CHOICE }} n={{ N }} x={{ X }} b={{ B }}"
"""
ANSIBLE_PARAMETERS = [
    {"name": "VERSION", "type": "string", "required": True},
    {"name": "CHOICE", "type": "choice", "options": [PIPE_LOOKUP, ENV_LOOKUP, "plain"], "default": "plain"},
    {"name": "N", "type": "integer", "default": 3},
    {"name": "X", "type": "number", "default": 2.5},
    {"name": "B", "type": "boolean", "default": False},
]


# Text YAML 1.1 would read as another type when written plain: a bool, null, octal, a date...
LOOKS_TYPED = ["yes", "no", "on", "null", "~", "1.10", "01234", "0x10", "1_000", "2026-01-01", "<<", "="]


@RUNNERS
async def test_a_string_parameter_reaches_ansible_as_the_text_typed(
    client: httpx.AsyncClient, viewer: LoggedIn, operator: LoggedIn, runner_name: str
) -> None:
    """ansible-core 2.19 resolves a `!unsafe` scalar's type again from its text, quotes or not:
    VERSION=1.10 arrived as the float 1.1, COUNTRY=no as false, ZIP=01234 as 668, 2026-01-01 as
    a date. Each string parameter is a string in the playbook, with every Ansible here."""
    playbook = (
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - debug:\n"
        "        msg: \"{{ item }}=[{{ lookup('vars', item) }}] {{ lookup('vars', item) | type_debug }}\"\n"
        f"      loop: {[f'V{i}' for i in range(len(LOOKS_TYPED))]}\n"
    )
    schema = {f"V{i}": {"type": "string", "default": "x"} for i in range(len(LOOKS_TYPED))}
    script_id = await make_script(client, operator, playbook, script_type="ansible", parameters=schema)
    values = {f"V{i}": value for i, value in enumerate(LOOKS_TYPED)}
    execution = await start(client, viewer, script_id, runner_name, parameters=values)
    final = await wait_for(client, viewer, execution["id"], timeout=180)
    text = await output(client, viewer, execution["id"])
    assert final["status"] == "success", (final, text)
    for name, value in values.items():
        shown = rf'"msg": "{name}=\[{re.escape(value)}\] (str|AnsibleUnsafeText)"'
        assert re.search(shown, text), (value, text)


@RUNNERS
@pytest.mark.parametrize(("version", "choice"), [(ENV_LOOKUP, PIPE_LOOKUP), (PIPE_LOOKUP, ENV_LOOKUP)])
async def test_viewer_cannot_make_ansible_template_a_parameter(
    client: httpx.AsyncClient,
    operator: LoggedIn,
    viewer: LoggedIn,
    runner_name: str,
    version: str,
    choice: str,
) -> None:
    r = await client.post("/api/v1/secrets", json={"name": "DBPW", "value": DBPW}, headers=operator.headers)
    assert r.status_code == 201, r.text
    script_id = await make_script(
        client, operator, ANSIBLE_PLAYBOOK, script_type="ansible", parameters=ANSIBLE_PARAMETERS
    )
    r = await client.post(f"/api/v1/scripts/{script_id}/secrets/{r.json()['id']}", headers=operator.headers)
    assert r.status_code == 201, r.text
    values = {"VERSION": version, "CHOICE": choice, "N": "7", "X": "-1.5e3", "B": "yes"}
    execution = await start(client, viewer, script_id, runner_name, parameters=values)
    final = await wait_for(client, viewer, execution["id"], timeout=180)
    text = await output(client, viewer, execution["id"])
    assert final["status"] == "success", (final, text)
    assert f'"msg": "Deploying {version}"' in text
    assert f'"msg": "choice={choice} n=7 x=-1500.0 b=True"' in text
    assert DBPW[::-1] not in text and DBPW not in text and "uid=" not in text
    # A template in a typed parameter is refused before anything runs.
    for name in ("N", "X", "B"):
        r = await client.post(
            "/api/v1/executions",
            json={"script_id": script_id, "runner": runner_name, "parameters": {**values, name: version}},
            headers=viewer.headers,
        )
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == f"parameters.{name}"


@RUNNERS
@pytest.mark.parametrize("script_type", ["bash", "python"])
async def test_bash_and_python_get_values_as_data(
    client: httpx.AsyncClient, admin: LoggedIn, runner_name: str, script_type: str
) -> None:
    hostile = "$(echo INJECTED) `echo INJECTED` ${HOME} %s {0} __import__('os') \\n \"' é"
    content = {"bash": 'printf "[%s]\\n" "$V"\n', "python": 'import os\nprint("[" + os.environ["V"] + "]")\n'}
    fields = {"script_type": script_type, "parameters": {"V": "x"}, "run_parameters": {"V": hostile}}
    final, text = await run(client, admin, content[script_type], runner_name, **fields)
    assert final["status"] == "success", (final, text)
    assert text == f"[{hostile}]\n"


TERRAFORM = shutil.which("terraform", path="/usr/local/bin")
MAIN_TF = """
variable "region" {
  type = string
}
variable "untyped" {}
variable "tags" {
  type    = list(string)
  default = []
}
output "region" {
  value = var.region
}
output "untyped" {
  value = var.untyped
}
output "tags" {
  value = var.tags
}
"""


def _terraform(tmp_path: Path, parameters: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """Run the command `build` makes for an apply, with the real Terraform, in `tmp_path`."""
    spec = RunSpec(1, "terraform", MAIN_TF, parameters, {}, 60, 256, 1.0, False, terraform_action="apply")
    command = build(spec, "")
    for name, data in command.files.items():
        (tmp_path / name).write_bytes(data)
    env = {
        "PATH": f"{Path(TERRAFORM or '').parent}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "TF_CLI_CONFIG_FILE": os.devnull,
        **command.env,
    }
    return subprocess.run(command.argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(TERRAFORM is None and not IN_CI, reason="no Terraform binary (tests/run provides one)")
def test_terraform_takes_string_values_literally(tmp_path: Path) -> None:
    template = '${file("/etc/hostname")} %{ if true }x%{ endif } ${path.cwd}'
    done = _terraform(tmp_path, {"region": template, "untyped": "${path.cwd}", "tags": '["a", "b\\"c"]'})
    assert done.returncode == 0, done.stderr
    outputs = done.stdout[done.stdout.index("Outputs:") :]
    assert 'region = "${file(\\"/etc/hostname\\")} %{ if true }x%{ endif } ${path.cwd}"' in outputs
    assert 'untyped = "${path.cwd}"' in outputs
    assert str(tmp_path) not in outputs


@pytest.mark.skipif(TERRAFORM is None and not IN_CI, reason="no Terraform binary (tests/run provides one)")
@pytest.mark.parametrize(
    ("tags", "error"),
    [('["a", upper("b")]', "Function calls not allowed"), ('["${path.cwd}"]', "Variables not allowed")],
)
def test_terraform_complex_values_are_literals_only(tmp_path: Path, tags: str, error: str) -> None:
    done = _terraform(tmp_path, {"region": "eu", "untyped": "u", "tags": tags})
    assert done.returncode != 0 and error in done.stdout + done.stderr


@RUNNERS
async def test_parameters_named_like_the_secret_loaders_variables_arrive_intact(
    client: httpx.AsyncClient, operator: LoggedIn, runner_name: str
) -> None:
    """The Docker runner's secret loader once used `name`, `data` and `value` and overwrote them."""
    r = await client.post("/api/v1/secrets", json={"name": "DBPW", "value": DBPW}, headers=operator.headers)
    assert r.status_code == 201, r.text
    params = {"name": "n-param", "data": "d-param", "value": "v-param"}
    script_id = await make_script(client, operator, 'echo "$name $data $value"\n', parameters=params)
    r = await client.post(f"/api/v1/scripts/{script_id}/secrets/{r.json()['id']}", headers=operator.headers)
    assert r.status_code == 201, r.text
    execution = await start(client, operator, script_id, runner_name)
    final = await wait_for(client, operator, execution["id"])
    assert final["status"] == "success"
    assert await output(client, operator, execution["id"]) == "n-param d-param v-param\n"


@RUNNERS
async def test_every_value_the_service_accepts_fits_the_environment(
    client: httpx.AsyncClient, admin: LoggedIn, runner_name: str
) -> None:
    """Field report: 32,768 emoji (the most characters a value may have) are 131,072 bytes in
    UTF-8, past the kernel's limit for one environment variable (128 KiB with its name and NUL),
    so the run the service had accepted failed: "Argument list too long" (exit 125 in Docker,
    127 locally). Values are bounded in bytes too, with room for the longest name (TF_VAR_ and
    64 characters); the most a value may be runs, one byte more is refused before any run."""
    name = "P" * 64
    content = f'printf "%s" "${{{name}}}" | wc -c\n'
    script_id = await make_script(client, admin, content, parameters={name: ""})
    too_long = "😀" * 32768
    refused = await client.post(
        "/api/v1/executions",
        json={"script_id": script_id, "parameters": {name: too_long}},
        headers=admin.headers,
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"] == [
        {
            "field": f"parameters.{name}",
            "message": f"must be at most {MAX_VALUE_BYTES} bytes in UTF-8 (it has 131072): a "
            "value is an environment variable, which the system limits to 128 KiB",
        }
    ]
    longest = "😀" * (MAX_VALUE_BYTES // 4) + "é" * (MAX_VALUE_BYTES % 4 // 2) + "x" * (MAX_VALUE_BYTES % 2)
    assert len(longest.encode()) == MAX_VALUE_BYTES
    started = await start(client, admin, script_id, runner_name, parameters={name: longest})
    final = await wait_for(client, admin, started["id"])
    assert final["status"] == "success", (final, await output(client, admin, started["id"]))
    assert (await output(client, admin, started["id"])).strip() == str(MAX_VALUE_BYTES)

    # All values together stay within the environment as well (ARG_MAX, with the secrets).
    many = [{"name": f"V{i}", "type": "string", "default": ""} for i in range(40)]
    script_id = await make_script(client, admin, "true\n", parameters=many)
    values = {f"V{i}": "x" * 30_000 for i in range(40)}  # 1.2 MB: within each value's bound
    async with runtime.current().db.session() as session:
        actor = Actor(await session.get(User, admin.id))
        with pytest.raises(Invalid) as raised:
            await executions.create(session, actor, script_id, values)
    assert raised.value.details == [
        {
            "field": "parameters",
            "message": f"must be at most {MAX_TOTAL_BYTES} bytes in UTF-8 together (they have "
            "1200000): values are environment variables, which the system limits with the secrets",
        }
    ]
