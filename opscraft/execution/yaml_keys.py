"""Keys written twice in one YAML mapping: the text shows a value that Ansible does not use.

YAML requires the keys of a mapping to be unique (YAML 1.2, 3.2.1.1); PyYAML and Ansible's
loader accept a repeated one and keep its last value. Ansible only warns ("found a duplicate
dict key (hosts). Using last defined value only"), in the run's output. So a play written
`hosts: staging` at its top and `hosts: all` further down ran on every host, and an inventory
listing `web1` twice used the second entry's variables, while a reviewer reads the first. A
save refuses such a text (the playbook: services/script_checks; a YAML inventory:
services/inventories), naming both lines; a run of a text stored before that rule fails at its
claim, before any task (`stored_refusal`: execution.store), and the script's page says the same
(services/script_checks.stored_problems). Keys a merge (`<<: *defaults`) brings in are not
written in the mapping and may be overridden there, as YAML intends: only keys written twice
count (Ansible's `DUPLICATE_YAML_DICT_KEY=error` also refuses the override of a merged key,
which is why runs do not set it).
"""

from __future__ import annotations

import yaml


def repeated(root: yaml.Node | None) -> list[tuple[int, str]]:
    """(1-based line of the second writing, message) per key written again in the same mapping
    of the composed YAML `root` (`yaml.compose`), in document order. Keys are compared as YAML
    resolves them (`1` and `"1"` are two keys); keys that are no scalar are not compared. A node
    an alias repeats is read once."""
    found: list[tuple[int, str]] = []
    seen: set[int] = set()
    pending = [root] if root is not None else []
    while pending:
        node = pending.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            pending.extend(reversed(node.value))
        elif isinstance(node, yaml.MappingNode):
            first: dict[tuple[str, str], int] = {}
            for key, _ in node.value:
                if not isinstance(key, yaml.ScalarNode):
                    continue
                written = (key.tag, key.value)
                if written in first:
                    found.append((key.start_mark.line + 1, _message(key.value, first[written])))
                else:
                    first[written] = key.start_mark.line + 1
            pending.extend(value for _, value in reversed(node.value))
    return sorted(found)


def _message(key: str, earlier: int) -> str:
    shown = key if len(key) <= 80 else key[:77] + "..."
    return (
        f"the key '{shown}' is written twice in one mapping (first at line {earlier}): Ansible "
        "uses only the last value, so the one written first is shown but not used: write it once"
    )


def stored_refusal(text: str, what: str) -> str | None:
    """Why `what` ("the playbook", "the script's inventory", "the shared inventory") cannot run
    when its stored `text` writes a key twice in one mapping: a text saved before saves refused
    that. Names the first such key and its lines, and what to do. None when no key is written
    twice, and for a text that is no YAML (an INI inventory; a playbook Ansible will refuse)."""
    try:
        root = yaml.compose(text, Loader=_LOADER)
    except (yaml.YAMLError, RecursionError):
        return None
    found = repeated(root)
    if not found:
        return None
    line, message = found[0]
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    return (
        f"{what} cannot be used: line {line}: {message}{more}; it was saved before such texts were "
        "refused: fix it and save it again"
    )


def inventory_refusal(inventory: str, shared: bool) -> str | None:
    """`stored_refusal` of an Ansible run's `inventory` (`shared`: a shared inventory's, else the
    script's own), as the claim says it and the pages showing the text do."""
    return stored_refusal(inventory, "the shared inventory" if shared else "the script's inventory")


def run_refusals(playbook: str, inventory: str | None, shared: bool) -> list[str]:
    """`stored_refusal` of an Ansible run's `playbook` and `inventory_refusal` of its
    `inventory`, in that order: the claim refuses the run with the first, the script's page
    shows each."""
    said = [
        stored_refusal(playbook, "the playbook"),
        inventory_refusal(inventory, shared) if inventory else None,
    ]
    return [refusal for refusal in said if refusal]


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's composer when installed: faster
