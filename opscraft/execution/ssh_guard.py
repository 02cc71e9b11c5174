"""The run-time guard against a host address, or a command, that ssh would read as one of its options.

Ansible's ssh connection puts a host's address (its `ansible_host` or `ansible_ssh_host`,
templated at run time: a secret's `lookup('env', ...)`, a parameter's `{{ db_host }}`) on ssh's
command line with no `--` before it (ansible-core's plugins/connection/ssh.py), so an address
`-oProxyCommand=...` is an option that runs a command on the machine running Ansible. So is the
command after the address (ssh reads options after the host too): a `raw` task's text, as
written (`raw: "{{ cmd }}"`). The inventory check at save refuses such an address where it is
written out (`services.inventories`); a value known only at run is refused here: every Ansible
run gets `SSH_GUARD` as `connection_plugins/ssh.py` beside its playbook. It is Ansible's own
plugin, loaded from its file under another module name, with a check before each ssh, scp or
sftp command: a host address starting with `-`, or an argument after it for ssh, ends that
host's tasks UNREACHABLE saying why, and ssh never starts.

Every name that chooses the ssh connection gets it. `ssh` (the default), `smart` (which Ansible
turns into `ssh`) and `ansible.legacy.ssh` find the playbook's adjacent plugin before Ansible's
own. `ansible.builtin.ssh` (in a host's `ansible_connection`, a play's `connection:`, a delegated
host) does not search there: Ansible loads it as the Python module
`ansible_collections.ansible.builtin.plugins.connection.ssh`, taken from `sys.modules` when
present. Ansible's main process loads every connection plugin before any host connects
(`PlaybookExecutor.run`), and the guard then takes that module name and Ansible's
`ansible.plugins.connection.ssh`; the processes that connect are forked from it afterwards.

Not of this kind (no option reaches ssh), one line each:
- user (`ansible_user`, `remote_user`): the value of `-o User="..."`; ssh refuses one starting with '-'.
- port (`ansible_port`): Ansible refuses a value that is no integer, and passes it as `-o Port=...`.
- `ansible_ssh_executable` (`_scp_`, `_sftp_`): the program to run, its command built by this guard.
- `ansible_ssh_args`, `*_common_args`, `*_extra_args`: ssh options by definition, the author's.
- `paramiko` (`ansible.builtin.paramiko_ssh`): a Python library opening a socket, no program (not installed).
- `-c ssh` on the command line: OpsCraft writes that line, a run's input never (`-c local` without inventory).
- `local` and other connections: no ssh; untouched (a run's `ansible_connection=local` host runs).
- scp and sftp: Ansible writes the address as `[host]:path` or `[host]`, no option (still checked).
"""

from __future__ import annotations

# Where the plugin goes in the run's work directory, beside playbook.yml.
SSH_GUARD_FILE = "connection_plugins/ssh.py"
# The message of the refusal, as the run's output shows it (after the host's address or the command).
REFUSAL = "starts with '-', which ssh would read as one of its options: refused"
# The longest part of a refused command the message quotes, in characters.
COMMAND_SHOWN = 200

SSH_GUARD = f'''"""OpsCraft: Ansible's ssh connection, refusing what ssh would read as an option."""

import importlib.util
import sys
from pathlib import Path

import ansible.plugins.connection as _connections
from ansible.errors import AnsibleConnectionFailure
from ansible.module_utils.common.text.converters import to_text

_SPEC = importlib.util.spec_from_file_location(
    "opscraft_builtin_ssh", Path(_connections.__path__[0]) / "ssh.py"
)
_builtin = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(_builtin)
DOCUMENTATION = _builtin.DOCUMENTATION


class Connection(_builtin.Connection):
    """Ansible's ssh connection; `_build_command` refuses a host starting with '-', and for ssh
    any argument after the host starting with '-' (ssh reads options after the host too)."""

    def _build_command(self, binary, subsystem, *other_args):
        host = to_text(self.host)
        if host.startswith("-"):
            raise AnsibleConnectionFailure(f"host address {{host!r}} {REFUSAL}")
        args = [to_text(arg) for arg in other_args]
        if subsystem == "ssh" and host in args:
            for arg in args[args.index(host) + 1 :]:
                if arg.startswith("-"):
                    raise AnsibleConnectionFailure(f"command {{arg[:{COMMAND_SHOWN}]!r}} {REFUSAL}")
        return super()._build_command(binary, subsystem, *other_args)


# Whatever name loads Ansible's ssh connection from now on gets this module (see ssh_guard.py).
for _name in ("ansible.plugins.connection.ssh", "ansible_collections.ansible.builtin.plugins.connection.ssh"):
    sys.modules[_name] = sys.modules[__name__]
'''.encode()
