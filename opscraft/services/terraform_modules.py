"""Terraform `module` blocks whose source is a directory inside the run's work directory.

A Terraform script is one configuration file: a run's work directory holds `main.tf` and what
OpsCraft adds (the backend override, a saved plan), nothing else (docs/scripts.md, *Terraform:
state, plans and apply*). A module whose `source` is a local path inside it (`./modules/vpc`,
Terraform's local paths start `./` or `../`, or `.\\` and `..\\`) can never be found there:
every run failed at `terraform init` with "Unreadable module directory". Such a configuration is
refused when saved (`services/scripts.check_content`). A path that climbs out (`../`) is left:
on the local runner it may name a directory of the machine, as an Ansible role may be on it.
"""

from __future__ import annotations

import re

from opscraft.services import script_checks

_INSIDE = ("./", ".\\")


def errors(content: str) -> list[dict[str, object]]:
    """One field error (`content`, with the line of the `source`) per module of the Terraform
    configuration `content` whose source is a path inside the work directory; none when
    `content` does not parse as HCL (the syntax check reports that, `script_checks`)."""
    try:
        document = script_checks.hcl_document(content)  # parsed by the syntax check before
    except Exception:  # lark's errors, ValueError, RecursionError: reported by the syntax check
        return []
    found = []
    for block in document.get("module", []):
        for label, body in block.items() if isinstance(block, dict) else ():
            source = body.get("source") if isinstance(body, dict) else None
            path = source.strip('"') if isinstance(source, str) else ""
            if path.startswith(_INSIDE):
                name = str(label).strip('"')  # python-hcl2 8 keeps the label's quotes
                line = _line(content, path)
                found.append(
                    {
                        "field": "content",
                        "line": line,
                        "message": f'line {line}: module "{name}" has source "{path}", a directory '
                        "next to the configuration, and a Terraform script is one file (main.tf) in "
                        "a directory of its own: nothing else is there. Put the module's blocks in "
                        "the script, or use a module from a registry or a git repository (the run "
                        "needs the Network setting to download it)",
                    }
                )
    return found


def _line(content: str, path: str) -> int:
    """The line of the first `source = "<path>"` in `content` (1 when not found as written)."""
    match = re.search(r'\bsource\s*=\s*"' + re.escape(path) + '"', content)
    return content.count("\n", 0, match.start()) + 1 if match else 1
