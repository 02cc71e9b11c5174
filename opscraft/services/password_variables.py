"""Ansible's password variables written out in clear in the text of a script.

A script's playbook and inventory and a shared inventory are stored and shown as written to every
role that may read them, so a password variable of Ansible's with a value written out in them is
refused at save (docs/scripts.md, *Secrets in variables*): the inventory's (`services/inventories`,
from `ansible-inventory --list --export`) and the playbook's (`services/script_checks`, any
mapping key of the YAML: a play's, a block's or a task's `vars`, `set_fact`, ...).
"""

from __future__ import annotations

import re

import yaml

# Ansible's password variables: the connection's (`ansible_password`, `ansible_ssh_pass`,
# `ansible_winrm_password`, ...), become's (`ansible_become_password`, `ansible_become_pass`,
# `ansible_sudo_pass`, `ansible_su_password`, ...) and a key's passphrase
# (`ansible_ssh_private_key_passphrase`): ansible-core's connection and become plugins' `vars`.
PASSWORD_VAR_RE = re.compile(r"ansible_(?:\w+_)?pass(?:word|phrase)?")
#: What to do instead, said after "<where> holds a password in clear".
INSTEAD = (
    "attach the password to the script as a secret instead (the become password: a file secret "
    "named ANSIBLE_BECOME_PASSWORD_FILE; another: an env secret read with "
    "\"{{ lookup('env', 'NAME') }}\"), or encrypt the value (ansible-vault encrypt_string: !vault)"
)
_VAULT_TAG = "!vault"
_NULL_TAG = "tag:yaml.org,2002:null"


def written_out(value: object) -> bool:
    """Whether a password variable's `value`, as `ansible-inventory` lists it (JSON), is written
    out in clear: not empty or null, not a template (`{{ lookup('env', 'X') }}`, filled in the run
    from a secret) and not an Ansible Vault value (listed as `{"__ansible_vault": ...}`); a
    number, a boolean, any other mapping or a list is."""
    if value in ("", None) or (isinstance(value, str) and "{{" in value):
        return False
    return not (isinstance(value, dict) and "__ansible_vault" in value)


def in_playbook(root: yaml.Node) -> list[tuple[int, str]]:
    """(1-based line, message) per mapping key of the composed playbook `root` that names a
    password variable (`PASSWORD_VAR_RE`) whose value is written out (`written_out`; a `!vault`
    value and a null are not), in the order of the text."""
    found: list[tuple[int, str]] = []
    pending = [root]
    while pending:
        node = pending.pop()
        if isinstance(node, yaml.SequenceNode):
            pending.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                pending.append(value)
                if (
                    isinstance(key, yaml.ScalarNode)
                    and PASSWORD_VAR_RE.fullmatch(key.value)
                    and _node_written_out(value)
                ):
                    found.append(
                        (
                            key.start_mark.line + 1,
                            f"{key.value} holds a password in clear, and a playbook is "
                            f"stored and shown as written to everyone who may see it: {INSTEAD}",
                        )
                    )
    return sorted(found)


def _node_written_out(node: yaml.Node) -> bool:
    if not isinstance(node, yaml.ScalarNode):
        return True
    if node.tag == _VAULT_TAG or node.tag == _NULL_TAG:
        return False
    return written_out(node.value)
