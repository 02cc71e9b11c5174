"""The run-time guard against a host address that ssh would read as one of its options.

Ansible's ssh connection puts a host's address (its `ansible_host`, templated at run time: a
secret's `lookup('env', ...)`, a parameter's `{{ db_host }}`) on ssh's command line with no `--`
before it (ansible-core's plugins/connection/ssh.py), so an address `-oProxyCommand=...` is an
option that runs a command. The inventory check at save refuses such an address where it is
written out (`services.inventories`); a value known only at run is refused here: every Ansible
run gets `SSH_GUARD` as `connection_plugins/ssh.py` beside its playbook, which Ansible loads in
place of its own `ssh` connection (a playbook's adjacent plugins come first). It is Ansible's own
plugin, loaded from its file under another module name (the adjacent plugin is imported under
Ansible's name), with a check before each ssh, scp or sftp command: a host starting with `-`
ends that host's tasks UNREACHABLE saying why, and ssh never starts.
"""

from __future__ import annotations

# Where the plugin goes in the run's work directory, beside playbook.yml.
SSH_GUARD_FILE = "connection_plugins/ssh.py"
# The message of the refusal, as the run's output shows it (after the host's address).
REFUSAL = "starts with '-', which ssh would read as one of its options: refused"

SSH_GUARD = f'''"""OpsCraft: Ansible's ssh connection, refusing a host address ssh would read as an option."""

import importlib.util
from pathlib import Path

import ansible.plugins.connection as _connections
from ansible.errors import AnsibleConnectionFailure

_SPEC = importlib.util.spec_from_file_location(
    "opscraft_builtin_ssh", Path(_connections.__path__[0]) / "ssh.py"
)
_builtin = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(_builtin)
DOCUMENTATION = _builtin.DOCUMENTATION


class Connection(_builtin.Connection):
    """Ansible's ssh connection; `_build_command` refuses a host starting with '-'."""

    def _build_command(self, binary, subsystem, *other_args):
        if str(self.host).startswith("-"):
            raise AnsibleConnectionFailure(f"host address {{self.host!r}} {REFUSAL}")
        return super()._build_command(binary, subsystem, *other_args)
'''.encode()
