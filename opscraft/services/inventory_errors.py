"""What to fix in an inventory that `ansible-inventory --list` refused, from its own output.

When no enabled plugin parses the file, ansible-inventory prints one warning per plugin,
`[WARNING]: Failed to parse inventory with 'ini' plugin: <reason>` (ansible-core 2.19; before,
`Failed to parse <path> with ini plugin: <path>:<line>: <reason>`), then an error,
`Completely failed to parse inventory source <path>`. The reason of the plugin the text
was written for is kept: YAML's when it starts as a YAML document (`---`) or mapping (`all:`),
INI's otherwise. Where Ansible names no line, it is found here: the one holding what the
reason quotes (a host definition, a host pattern, `got: foo`), PyYAML's mark of a YAML syntax
error, or an INI section header without its closing bracket.

What the message repeats of the inventory has its values cut (`ansible_password=…`: a variable
may hold a secret), and the scratch folder's path is dropped.
"""

from __future__ import annotations

import re

import yaml

MAX_REASON = 300
FORMAT_HINT = "write the hosts and groups as INI ([group], then one host a line) or YAML (all: hosts: ...)"
_FAILED = re.compile(r"Failed to parse (?:\S+ )?with '?(?P<plugin>\w+)'? plugin: (?P<reason>.+)")
# Before ansible-core 2.19 the reason starts with the file and line: `inventory.yml:3: ...`.
_FILE_LINE = re.compile(r"^\S+?:(\d+): ")
_REPEATED_PREFIX = re.compile(r"^(Failed to parse inventory[:.] ?)+")
_QUOTED = re.compile(r"'([^']{2,})'")
_GOT = re.compile(r"got: (.+)$")
_CLASS = re.compile(r"\"?<class '(?:[\w.]*\.)?(\w+)'>\"?")
_VALUE = re.compile(r"""=(["']?)[^\s"']+""")
_YAML_START = re.compile(r"^(---|[^\s#:\[][^:]*:\s*(#.*)?)$")
_SECTION = re.compile(r"^\[[^\]]+\]\s*([#;].*)?$")
_TYPES = {
    "list": "a list",
    "str": "a string",
    "dict": "a mapping",
    "int": "a number",
    "float": "a number",
    "bool": "true or false",
    "nonetype": "nothing",
}


def explain(text: str, stderr: str, scratch: str = "") -> str:
    """`line N: <Ansible's reason>`, or the reason alone when no line is found, for an inventory
    `text` that ansible-inventory refused with `stderr` (run in the folder `scratch`, whose path
    is dropped). `FORMAT_HINT` when the output gives no reason."""
    if scratch:
        stderr = stderr.replace(scratch.rstrip("/") + "/", "")
    reasons = {m["plugin"]: m["reason"].strip() for m in map(_FAILED.search, stderr.splitlines()) if m}
    plugin = syntax(text)
    reason = reasons.get(plugin) or next(iter(reasons.values()), "")
    reason = _REPEATED_PREFIX.sub("", reason)
    if not reason:
        return FORMAT_HINT
    reason = _CLASS.sub(lambda m: _type_name(m[1]), reason)
    given = _FILE_LINE.match(reason)
    if given:
        line: int | None = int(given[1])
        reason = reason[given.end() :]
    else:
        line, reason = _line(text, reason, plugin)
    shown = _redact(reason)[:MAX_REASON]
    return f"line {line}: {shown}" if line else shown


def syntax(text: str) -> str:
    """`yaml` or `ini`: which of Ansible's two inventory plugins the inventory `text` is written
    for, by its first line that is not a comment (`_YAML_START`: `---` or a `key:` alone)."""
    first = next((s for s in (raw.strip() for raw in text.splitlines()) if s and s[0] not in "#;"), "")
    return "yaml" if _YAML_START.match(first) else "ini"


def _type_name(name: str) -> str:
    """Ansible's tagged types (`_AnsibleTaggedList`) in the words of the inventory's format."""
    plain = re.sub(r"^_*(Ansible)?(Tagged)?", "", name).lower()
    return _TYPES.get(plain, plain)


def _line(text: str, reason: str, plugin: str) -> tuple[int | None, str]:
    """The 1-based line of `text` at fault (or None), and the reason, in plainer words where
    Ansible's are Python's (an INI group header without its closing bracket)."""
    lines = text.splitlines()
    if plugin == "yaml":
        return _yaml_line(text), reason
    quoted = [q.strip() for q in _QUOTED.findall(reason)] + [m[1].strip() for m in [_GOT.search(reason)] if m]
    for snippet in filter(None, quoted):
        alone = re.compile(rf"(?<!\S){re.escape(snippet)}(?!\S)")  # as a whole word of the line
        for number, line in enumerate(lines, 1):
            # Ansible quotes back a host line as its shlex split it: without the quotes.
            if alone.search(line) or alone.search(line.replace("'", "").replace('"', "")):
                return number, reason
    for number, line in enumerate(lines, 1):
        header = line.strip()
        if header.startswith("[") and not _SECTION.match(header):
            return number, f"the group header {header[:60]} has no closing ']' (Ansible: {reason})"
    return None, reason


def _yaml_line(text: str) -> int | None:
    """Where PyYAML finds the syntax error: where the construct it could not finish began when
    the text ended first (an unclosed `[`), else where it stopped; a mark past the text's last
    line (PyYAML's end of stream) is the construct's start, or else the last line with text."""
    try:  # syntax only: BaseLoader builds no dates (safe_load raised ValueError on `0000-01-01`)
        yaml.load(text, Loader=yaml.BaseLoader)  # noqa: S506 (BaseLoader builds only str, list, dict)
    except yaml.MarkedYAMLError as exc:
        ended = "<stream end>" in (exc.problem or "")
        mark = exc.context_mark if ended and exc.context_mark is not None else exc.problem_mark
        if mark is None:
            return None
        lines = text.splitlines()
        if mark.line < len(lines):
            return mark.line + 1
        if exc.context_mark is not None and exc.context_mark.line < len(lines):
            return exc.context_mark.line + 1
        return max((n for n, line in enumerate(lines, 1) if line.strip()), default=None)
    except yaml.YAMLError:
        return None
    return None
    return None


def _redact(reason: str) -> str:
    """The reason with the values of `name=value` pairs it repeats cut to `name=…`."""

    def cut(match: re.Match[str]) -> str:
        return match[0].replace(match[1], _VALUE.sub(r"=\1…", match[1]))

    return _GOT.sub(cut, _QUOTED.sub(cut, reason))
