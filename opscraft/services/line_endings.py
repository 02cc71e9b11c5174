"""Scripts edited on Windows (or an old Mac): line endings and a leading byte order mark.

Every save normalises content before it is checked and stored, for every script type:

- line endings follow Python's "universal newlines" (PEP 278, `io.TextIOWrapper(newline=None)`):
  `\\r\\n` (Windows) and a lone `\\r` (classic Mac OS) both become `\\n`, also when the kinds
  are mixed in one file. A carriage return the script needs as a character must be written as
  an escape (`\\r`, `$'\\r'`), as every style guide asks anyway;
- byte order marks at the very start are removed: U+FEFF (a UTF-8, UTF-16 or UTF-32 BOM once
  decoded) and its UTF-8 bytes read as Latin-1/Windows-1252 (`ï»¿`), which a tool writes when it
  decoded a UTF-8 file with the wrong code page. bash and Python choke on U+FEFF
  (`#!/bin/bash` preceded by a BOM is no shebang; `compile` refuses the character); PyYAML and
  Terraform skip it, and the mis-decoded form breaks every type.

- for Ansible (YAML), the Unicode line breaks YAML 1.1 reads besides LF and CR (NEL U+0085,
  LINE SEPARATOR U+2028, PARAGRAPH SEPARATOR U+2029) become `\\n` too: PyYAML starts a new line at
  each, where the editor and the line numbers of every message show none.

Each change is reported as a `Notice` so the API and the editor can say what was done. Inventory
text has no notices: services.inventories refuses those breaks instead (execution.line_breaks).
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass

from opscraft.execution.line_breaks import YAML_BREAKS

BOMS = ("\ufeff", "\u00ef\u00bb\u00bf")
# What a byte order mark breaks, per script type (said in the notice). YAML (PyYAML) and
# Terraform's HCL parser skip a leading U+FEFF, so for them it is only removed.
BOM_EFFECTS = {
    "bash": "with it, the first line (such as #!/bin/bash) is not read as a shebang",
    "python": "with it, Python refuses line 1 (invalid non-printable character U+FEFF)",
}


@dataclass(frozen=True)
class Notice:
    """A change made to the content on save: `code` is stable, `message` is for people."""

    code: str
    message: str

    def as_dict(self) -> dict[str, str]:
        """The notice as a JSON object, as the API shows it."""
        return asdict(self)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def strip_boms(content: str) -> tuple[str, int]:
    """`content` without the byte order marks (`BOMS`) at its very start, and how many there were."""
    boms = 0
    while content.startswith(BOMS):
        content = content[1:] if content[0] == "\ufeff" else content[3:]
        boms += 1
    return content, boms


def normalize(content: str, script_type: str | None = None) -> tuple[str, list[Notice]]:
    """`content` with LF line endings and no leading byte order mark, and what was changed.

    Returns (text, notices); the notices are empty when the content was already normal.
    `script_type` (bash, python, ansible, terraform) names what a BOM would have broken.
    """
    notices: list[Notice] = []
    content, boms = strip_boms(content)
    if boms:
        notices.append(
            Notice(
                "byte-order-mark",
                "removed the invisible byte order mark (BOM) at the start: "
                + BOM_EFFECTS.get(script_type or "", "scripts are stored without one"),
            )
        )
    crlf = content.count("\r\n")
    lone_cr = content.count("\r") - crlf
    if crlf:
        content = content.replace("\r\n", "\n")
        notices.append(
            Notice(
                "crlf-line-endings",
                f"converted {_plural(crlf, 'Windows line ending')} (CRLF) to LF: a script run on Linux "
                "would read each CR as part of the line",
            )
        )
    if lone_cr:
        content = content.replace("\r", "\n")
        notices.append(
            Notice(
                "cr-line-endings",
                f"converted {_plural(lone_cr, 'carriage return')} (CR, classic Mac line endings) to LF: "
                "write a CR the script needs as an escape such as \\r",
            )
        )
    breaks = sum(content.count(ch) for ch in YAML_BREAKS) if script_type == "ansible" else 0
    if breaks:
        for ch in YAML_BREAKS:
            content = content.replace(ch, "\n")
        notices.append(
            Notice(
                "unicode-line-breaks",
                f"converted {_plural(breaks, 'Unicode line break')} (U+0085, U+2028 or U+2029) to LF: "
                "YAML starts a new line at each, where the editor shows none; write one the playbook "
                "needs as an escape such as \\u2028 in a double-quoted string",
            )
        )
    return content, notices


# What GNU diff writes after a last line that has no line break (POSIX `diff -u`).
NO_NEWLINE_AT_END = "\\ No newline at end of file"


def lines(text: str, *, keepends: bool = False) -> list[str]:
    """The lines of stored content (LF endings: `normalize`) where the editor, bash and Python end
    them: at `\\n` only, with it when `keepends`; a final `\\n` starts no empty line. (`str.splitlines`
    also ends a line at a form feed, U+2028 and eight other characters: a diff then numbered the
    lines after one differently from the editor.)"""
    parts = text.split("\n")
    ended = [part + "\n" if keepends else part for part in parts[:-1]]
    return ended + ([parts[-1]] if parts[-1] else [])


def unified_diff(old: str, new: str, from_label: str, to_label: str) -> str:
    """The unified diff (`difflib`, 3 lines of context) of two contents, lines as `lines` counts
    them, in GNU diff's form: a last line without a line break is followed by
    `NO_NEWLINE_AT_END` (difflib glued the next line to it: `-echo b+echo c`). Empty when equal."""
    diff = difflib.unified_diff(
        lines(old, keepends=True), lines(new, keepends=True), fromfile=from_label, tofile=to_label
    )
    return "".join(line if line.endswith("\n") else f"{line}\n{NO_NEWLINE_AT_END}\n" for line in diff)
