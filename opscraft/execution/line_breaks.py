"""Characters that Ansible reads as line breaks while an editor or a page shows one line.

Two readers, two sets: YAML 1.1 (production [26]; a playbook, a YAML inventory) breaks lines at
NEL, LINE SEPARATOR and PARAGRAPH SEPARATOR besides LF and CR (`YAML_BREAKS`); Ansible's INI
inventory reader splits its text with Python's `str.splitlines`, which also breaks at VT, FF and
the information separators U+001C-U+001E (`SPLITLINES_BREAKS`). A host or a task after one is
read by Ansible and seen by nobody (`[web]\\nweb1<U+2028>web2` targets web2 too).

Saves refuse them in an inventory and convert them to LF in a playbook (services.inventories,
services.line_endings); a run refuses a stored text saved before those rules (`hidden`:
execution.store's claim), so what runs is what the page showed.
"""

from __future__ import annotations

# Line breaks of YAML 1.1 (production [26]) besides LF and CR, with their Unicode names.
YAML_BREAKS = {"\x85": "NEXT LINE", "\u2028": "LINE SEPARATOR", "\u2029": "PARAGRAPH SEPARATOR"}
# What Python's `str.splitlines` (Ansible's INI inventory reader) also breaks lines at.
SPLITLINES_BREAKS = {
    "\x0b": "LINE TABULATION",
    "\x0c": "FORM FEED",
    "\x1c": "FILE SEPARATOR",
    "\x1d": "GROUP SEPARATOR",
    "\x1e": "RECORD SEPARATOR",
    **YAML_BREAKS,
}


def hidden(text: str, breaks: dict[str, str] = SPLITLINES_BREAKS) -> str | None:
    """Where `text` first holds one of `breaks` (a character Ansible reads as a line break, LF
    and CR aside), lines counted at LF as the editor numbers them: "line 2 holds U+2028 (LINE
    SEPARATOR)". None when there is none."""
    for number, line in enumerate(text.split("\n"), start=1):
        found = next((ch for ch in line if ch in breaks), None)
        if found is not None:
            return f"line {number} holds U+{ord(found):04X} ({breaks[found]})"
    return None
