"""Ansible's password variables written out in clear in the text of a script.

A script's playbook and inventory and a shared inventory are stored and shown as written to every
role that may read them, so a password variable of Ansible's with a value written out in them is
refused at save (docs/scripts.md, *Secrets in variables*): the inventory's (`services/inventories`,
from `ansible-inventory --list --export`) and the playbook's (`services/script_checks`, any
mapping key of the YAML: a play's, a block's or a task's `vars`, `set_fact`, ...). A template
passes when it only reads what the text does not hold (a secret through `lookup('env', ...)`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

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


def written_out(value: object, clear: frozenset[str] = frozenset()) -> bool:
    """Whether a password variable's `value`, as `ansible-inventory` lists it (JSON), is written
    out in clear. Not so: empty or null, an Ansible Vault value (listed as
    `{"__ansible_vault": ...}`), and a template (`{{ lookup('env', 'X') }}`, filled in the run
    from a secret) with no text outside `{{ }}`, not of constants only (`{{ 'pw' }}`) and reading
    none of `clear`, the variables written out beside it in the same text (`clear_names`:
    `pw: s3cret` with `"{{ pw }}"`). A template Jinja cannot parse is the run's to report. A
    number, a boolean, any other mapping or a list is written out."""
    if isinstance(value, str) and "{{" in value:
        return _template_written_out(value, clear)
    return _plain(value)


def clear_names(variables: Iterable[tuple[str, object]]) -> frozenset[str]:
    """The names of `variables` (name, value as listed) whose value is written out as it stands,
    not a template: what a password template may not read (`written_out`)."""
    return frozenset(name for name, value in variables if _plain(value))


def _plain(value: object) -> bool:
    if value in ("", None) or (isinstance(value, str) and "{{" in value):
        return False
    return not (isinstance(value, dict) and "__ansible_vault" in value)


def _template_written_out(text: str, clear: frozenset[str]) -> bool:
    import jinja2  # NiceGUI's and Ansible's template engine; Ansible parses these the same
    from jinja2 import meta, nodes

    try:
        parsed = jinja2.Environment().parse(text)  # noqa: S701 (parsed, never rendered)
    except jinja2.TemplateSyntaxError:
        return False
    if any(data.data.strip() for data in parsed.find_all(nodes.TemplateData)):
        return True
    read = meta.find_undeclared_variables(parsed)
    return not read or bool(read & clear)


def in_playbook(root: yaml.Node) -> list[tuple[int, str]]:
    """(1-based line, message) per mapping key of the composed playbook `root` that names a
    password variable (`PASSWORD_VAR_RE`) whose value is written out (`written_out`, where a
    `!vault` value and a null are not, and every key of the playbook with a value written out
    counts as a variable a template may not read), in the order of the text."""
    pairs: list[tuple[yaml.ScalarNode, yaml.Node]] = []
    pending = [root]
    while pending:
        node = pending.pop()
        if isinstance(node, yaml.SequenceNode):
            pending.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                pending.append(value)
                if isinstance(key, yaml.ScalarNode):
                    pairs.append((key, value))
    clear = clear_names((key.value, _listed(value)) for key, value in pairs)
    found = [
        (
            key.start_mark.line + 1,
            f"{key.value} holds a password in clear, and a playbook is stored and shown as written "
            f"to everyone who may see it: {INSTEAD}",
        )
        for key, value in pairs
        if PASSWORD_VAR_RE.fullmatch(key.value) and written_out(_listed(value), clear)
    ]
    return sorted(found)


def _listed(node: yaml.Node) -> object:
    """A composed YAML value as `written_out` reads it: a `!vault` scalar as Ansible lists one,
    a null as None, another scalar as its text, a mapping or sequence as a (non-empty) list."""
    if isinstance(node, yaml.ScalarNode):
        if node.tag == _VAULT_TAG:
            return {"__ansible_vault": node.value}
        return None if node.tag == _NULL_TAG else node.value
    return [node]
