"""Both `ansible-inventory` listings an inventory check reads, from one run of the tool's Python.

`services/inventories.py` reads two listings of an inventory text: `--list` (each host with its
variables merged as Ansible merges them: `all`, then groups by depth, priority and name, then the
host's own) and `--list --export` (each variable where it is written: a host's own, a group's
`vars`). Two runs of `ansible-inventory` cost two Python starts with ansible-core's imports,
about 0.45 s of CPU each, where parsing a small inventory costs a few milliseconds: the save of
every inventory, and the check of every run form, paid it twice.

`command` gives one run that prints both: `LISTINGS_CODE`, run by the Python named on the
tool's `#!` line (pip, pipx and Debian install it as a Python script), is ansible-core's own
`ansible-inventory --list --export` whose JSON listing is `{"export": <the --export listing>,
"list": <the --list listing>}`, the second built by the same `InventoryCLI.json_inventory` with
`export` off, from the inventory parsed once. Parse errors and warnings are the tool's own,
on stderr, with its exit code. A tool whose `#!` line names no Python (a shell wrapper) gets
None: the caller runs the tool twice, as before.
"""

from __future__ import annotations

from pathlib import Path

#: ansible-inventory whose JSON listing holds both listings (module docstring): `Both`.
LISTINGS_CLASS = """\
import sys
from ansible import context
from ansible.cli.inventory import InventoryCLI
from ansible.utils.context_objects import CLIArgs

class Both(InventoryCLI):
    def json_inventory(self, top):
        exported = super().json_inventory(top)
        context.CLIARGS = CLIArgs({**context.CLIARGS, "export": False})
        return {"export": exported, "list": super().json_inventory(top)}
"""
#: What the tool's Python runs (`python -I -c LISTINGS_CODE ARGS`): ansible-inventory with ARGS
#: (which include `--list --export`), its JSON listing holding both listings (module docstring).
#: The checks fork it from a server holding the imports (`inventory_forks`), this when they cannot.
LISTINGS_CODE = (
    LISTINGS_CLASS
    + """
Both.cli_executor(["ansible-inventory", *sys.argv[1:]])
"""
)
# The most of a `#!` line read (Linux reads at most 256 bytes of it, binfmt_script).
SHEBANG_BYTES = 256


def command(tool: str, inventory: str) -> list[str] | None:
    """The argv of one run printing both listings of the file `inventory` (a path relative to
    the run's directory) for the `ansible-inventory` at `tool` (a path), or None when its `#!`
    line names no Python (or it cannot be read). The JSON it prints is
    `{"export": {...}, "list": {...}}` (module docstring)."""
    python = python_of(tool)
    if python is None:
        return None
    return [*python, "-I", "-c", LISTINGS_CODE, "-i", inventory, "--list", "--export"]


def python_of(tool: str) -> list[str] | None:
    """The interpreter words of the `#!` line of `tool` (a path: `/venv/bin/python`, or
    `/usr/bin/env python3`) when they name a Python, else None (also when it cannot be read). As
    the kernel reads it: the interpreter's path, then at most one argument (the rest of the line)."""
    try:
        with Path(tool).open("rb") as script:
            first = script.readline(SHEBANG_BYTES)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    words = first[2:].decode(errors="replace").strip().split(None, 1)
    if not words:
        return None
    program = words[1] if Path(words[0]).name == "env" and len(words) > 1 else words[0]
    return words if Path(program).name.startswith("python") and " " not in program else None
