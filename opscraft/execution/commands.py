"""The command line and files of each script type. Only constants go on the command line:
the script, the parameters and the secrets travel in files and environment variables, never
as code (see `param_env` for how each program gets parameter values as data).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from opscraft.execution import ansible_options, python_source, ssh_keys, terraform_backend, terraform_plan
from opscraft.execution.param_env import ansible_extra_vars, interpreted_name, to_env
from opscraft.execution.spec import RunnerError, RunSpec
from opscraft.execution.ssh_guard import SSH_GUARD, SSH_GUARD_FILE


@dataclass(frozen=True)
class Command:
    """Run `argv` in a work directory holding `files`, with `env` added to the environment.
    `tool`: the program the run needs besides `argv[0]`, when a shell runs it (Terraform's
    steps under `/bin/sh -c`): the local runner looks for both before it starts anything."""

    argv: list[str]
    files: dict[str, bytes]
    env: dict[str, str] = field(repr=False)  # holds secret values
    tool: str | None = None

    @property
    def programs(self) -> list[str]:
        """The programs the run needs on the machine's PATH: `argv[0]`, then `tool`."""
        return [self.argv[0], self.tool] if self.tool else [self.argv[0]]


EXTRA_VARS_FILE = "extra_vars.yml"
INVENTORY_FILE = "inventory.yml"
# Read before the script's inventory, so any `ansible_remote_tmp` it sets wins (a later source's
# `all` vars override an earlier one's; a group's or host's own vars override `all`'s). A host of
# the inventory with `ansible_connection=local` runs modules here, in the run: Ansible expands its
# `~/.ansible/tmp` as `~USER`, the password database's home (`/nonexistent` for the container
# user), so such hosts get a directory under the run's HOME; other hosts keep their user's home.
# Their modules run with the Python running Ansible (run_env: the one Ansible would discover here
# may be a broken shim); other hosts' Python is discovered. A constant: no user-supplied value is
# templated.
LOCAL_TMP_INVENTORY_FILE = "opscraft_local_tmp.yml"
LOCAL_TMP_INVENTORY = (
    b"all:\n"
    b"  vars:\n"
    b"    ansible_remote_tmp: \"{{ lookup('env', 'HOME') ~ '/.ansible/tmp'"
    b" if (ansible_connection | default('ssh')) == 'local' else '~/.ansible/tmp' }}\"\n"
    b'    ansible_python_interpreter: "{{ ansible_playbook_python'
    b" if (ansible_connection | default('ssh')) == 'local' else 'auto_silent' }}\"\n"
)
# Only the inventory plugins that read data: no script, no `plugin:` configuration (which could
# load a plugin that runs code or templates values), see services/inventories.py.
INVENTORY_PLUGINS = "yaml,ini"
# An inventory no enabled plugin parses whole ends the run before any task: by default Ansible
# only warns ("Unable to parse ... as an inventory source") and plays on what the plugin read
# before it stopped (a YAML file's first hosts, without the group variables after them) or on
# no host. The save's check refuses such a text with the server's Ansible (services/inventories),
# but a run's Ansible can read it otherwise (another version in the image than on the server,
# none on the server, a text stored before a rule), so the run refuses it too.
UNPARSED_INVENTORY_FAILS = {
    "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True",
    "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "True",
}
# The known_hosts a script may attach as a `file` secret of this name; without it each run
# accepts the host keys it meets (trust on first use, per run: see docs/scripts.md).
KNOWN_HOSTS_SECRET = "SSH_KNOWN_HOSTS"
# Ansible reads the path of a file from these variables (the vault password, the become
# password: ansible-core's `DEFAULT_VAULT_PASSWORD_FILE` and `BECOME_PASSWORD_FILE` settings), so
# a script gets them as `file` secrets of these names, whose variable holds the file's path. An
# `env` secret of such a name would hand Ansible the password as a file name to open.
PASSWORD_FILE_SECRETS = ("ANSIBLE_VAULT_PASSWORD_FILE", "ANSIBLE_BECOME_PASSWORD_FILE")


PLAYBOOK_FILE = "playbook.yml"


def said_paths(script_type: str, work: str, secret_dir: str) -> dict[str, str]:
    """What each path of an Ansible run's files is to its user (`said_paths.SaidPaths`): path ->
    words (`script_type`: the run's script's type); none for other runs, whose output is passed
    on as the script printed it (a Bash or Python script's `pwd` is its own business). `work`:
    the run's work directory (its files under their own names, the playbook and the inventory
    as such); `secret_dir`: where its `file` secrets are ("" when it has none)."""
    if script_type != "ansible":
        return {}
    words = {
        f"{work}/{PLAYBOOK_FILE}": "the playbook",
        f"{work}/{INVENTORY_FILE}": "the inventory",
        f"{work}/": "",
    }
    if secret_dir:
        words[f"{secret_dir}/"] = "the file secret "
    return words


def password_file_problem(name: str) -> str | None:
    """What is wrong with an `env` secret named `name` (None when nothing is): one of
    `PASSWORD_FILE_SECRETS`, whose value Ansible would take as the path of a file."""
    if name not in PASSWORD_FILE_SECRETS:
        return None
    return (
        f"{name} must be a file secret: Ansible reads the path of a file holding the password from "
        "this variable, and would take the value of an env secret as a file name"
    )


def build(spec: RunSpec, secret_dir: str) -> Command:
    """The command for `spec`, whose `file` secrets the runner writes into `secret_dir` (an
    absolute path in the run); every run also sees OPSCRAFT_EXECUTION_ID."""
    command = _build(spec, secret_dir)
    return dataclasses.replace(command, env={**command.env, "OPSCRAFT_EXECUTION_ID": str(spec.execution_id)})


def secret_file_env(spec: RunSpec, secret_dir: str) -> dict[str, str]:
    """NAME -> path of each `file` secret (the path is not secret; the content never leaves the file)."""
    return {name: f"{secret_dir}/{name}" for name in spec.secret_files}


SSH_KEEPALIVE_COUNT = 3
# A host that stops answering over an open connection (frozen, a network cut without a reset)
# ends its ssh after `RunSpec.ssh_keepalive_seconds` (OPSCRAFT_SSH_KEEPALIVE_SECONDS, default 15)
# x SSH_KEEPALIVE_COUNT (45 s) without an answer to the keepalives ssh sends when the connection
# is quiet: Ansible reports the host UNREACHABLE and goes on with the others. Without them ssh
# waited as long as the kernel kept the connection (for ever for a frozen host), and the whole
# run waited for its timeout. Connecting is bounded by Ansible's own `timeout` (10 s).


def ssh_keepalive(interval_seconds: int) -> str:
    """ssh's keepalive options: a probe after `interval_seconds` of silence, given up after
    SSH_KEEPALIVE_COUNT unanswered ones."""
    return f"-o ServerAliveInterval={interval_seconds} -o ServerAliveCountMax={SSH_KEEPALIVE_COUNT}"


def _ansible(spec: RunSpec, secret_dir: str) -> Command:
    misfiled = [problem for name in spec.env if (problem := password_file_problem(name))]
    if misfiled:  # an env secret created before the rule (services/secrets.py refuses it now)
        raise RunnerError(f"the secret {misfiled[0]}: create it again as a file secret and attach that")
    files = {
        PLAYBOOK_FILE: spec.content.encode(),
        EXTRA_VARS_FILE: ansible_extra_vars(spec.parameters),
        SSH_GUARD_FILE: SSH_GUARD,  # a host address or command starting with '-' never reaches ssh
    }
    env = {"ANSIBLE_FORCE_COLOR": "1", "ANSIBLE_INVENTORY_ENABLED": INVENTORY_PLUGINS}
    if spec.inventory:
        files[INVENTORY_FILE] = spec.inventory.encode()
        files[LOCAL_TMP_INVENTORY_FILE] = LOCAL_TMP_INVENTORY
        target = ["-i", LOCAL_TMP_INVENTORY_FILE, "-i", INVENTORY_FILE]
        env.update(UNPARSED_INVENTORY_FAILS)
        # Remote hosts: their own Python, found by Ansible (not the controller's, see run_env).
        env["ANSIBLE_PYTHON_INTERPRETER"] = "auto_silent"
        env["ANSIBLE_REMOTE_TEMP"] = "~/.ansible/tmp"  # on the host: its user's home
        if spec.ssh_user:
            env["ANSIBLE_REMOTE_USER"] = spec.ssh_user
        if spec.ssh_key_secret:
            if spec.ssh_key_secret not in spec.secret_files:
                raise RunnerError(
                    f"the SSH key secret {spec.ssh_key_secret} is not attached to the script as a file "
                    "secret: attach it on the script's Secrets tab and run it again"
                )
            problem = ssh_keys.key_problem(spec.secret_files[spec.ssh_key_secret])
            if problem:
                raise RunnerError(f"the SSH key secret {spec.ssh_key_secret} {problem}")
            env["ANSIBLE_PRIVATE_KEY_FILE"] = f"{secret_dir}/{spec.ssh_key_secret}"
        if KNOWN_HOSTS_SECRET in spec.secret_files:
            known = f"{secret_dir}/{KNOWN_HOSTS_SECRET}"
            keys = f"-o UserKnownHostsFile={known} -o StrictHostKeyChecking=yes"
        else:
            # ssh finds `~/.ssh` through the password database, not HOME: no file to keep keys in.
            keys = "-o StrictHostKeyChecking=accept-new -o UserKnownHostsFile=/dev/null"
        env["ANSIBLE_SSH_COMMON_ARGS"] = f"{keys} {ssh_keepalive(spec.ssh_keepalive_seconds)}"
    else:
        target = ["-i", "localhost,", "-c", "local"]
        # `localhost,` is a host list: only its plugin reads this constant (no inventory text).
        env["ANSIBLE_INVENTORY_ENABLED"] = "host_list"
    try:
        options = ansible_options.argv(spec.run_options)
    except ansible_options.OptionError as exc:
        raise RunnerError(f"run option {exc}") from None
    argv = ["ansible-playbook", *target, "-e", f"@{EXTRA_VARS_FILE}", *options, PLAYBOOK_FILE]
    return Command(argv, files, env)


def _build(spec: RunSpec, secret_dir: str) -> Command:
    refused = {name: why for name in spec.parameters if (why := interpreted_name(name, spec.script_type))}
    if refused:  # saved before the rule existed: never hand such a name to a program
        raise RunnerError(
            "; ".join(f"parameter {name} cannot be used: {why}" for name, why in sorted(refused.items()))
        )
    content = spec.content.encode()
    params = to_env(spec.parameters)
    secrets = {**spec.env, **secret_file_env(spec, secret_dir)}
    if spec.script_type == "bash":
        return Command(["bash", "script.sh"], {"script.sh": content}, {**params, **secrets})
    if spec.script_type == "python":
        try:
            source = python_source.encoded(spec.content)
        except python_source.SourceError as exc:  # saved before the save-time check existed
            raise RunnerError(f"script line {exc.line}: {exc.message}") from None
        return Command(["python3", "-u", "script.py"], {"script.py": source}, {**params, **secrets})
    if spec.script_type == "ansible":
        command = _ansible(spec, secret_dir)
        return Command(command.argv, command.files, {**command.env, **secrets})
    if spec.script_type == "terraform":
        tf_vars = {f"TF_VAR_{name}": value for name, value in params.items()}
        files = {"main.tf": content}
        if "TF_HTTP_ADDRESS" in spec.env:  # OpsCraft keeps the state (terraform_backend)
            files[terraform_backend.OVERRIDE_FILE] = terraform_backend.OVERRIDE
        action = spec.terraform_action or "plan"
        if action == terraform_plan.APPLY_PLAN:
            if spec.plan_file is None:
                raise RunnerError("the saved plan this run applies is not available")
            files[terraform_plan.PLAN_FILE] = spec.plan_file
        return Command(
            ["/bin/sh", "-c", terraform_plan.steps(action, spec.lock_timeout_seconds)],
            files,
            {"TF_IN_AUTOMATION": "1", **tf_vars, **secrets},
            tool="terraform",
        )
    raise ValueError(f"unknown script type {spec.script_type!r}")
