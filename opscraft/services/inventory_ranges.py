"""How many hosts an inventory names once Ansible expands its host ranges (`web[01:50]`).

Ansible writes every host of a range out (`ansible.inventory.helpers`/`expand_hostname_range`:
the first `[begin:end(:step)]` of a name, numeric or one letter each, then the rest of the name
again), so a line of 20 characters, `h[0:99][0:99][0:99]`, is a million hosts: checking it
with `ansible-inventory --list` took 700 MB of the server's memory and the whole 60 s timeout.
This counts without expanding: the sizes of a name's ranges multiply, the names add up.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterator

# A range `[a:z]`, `[01:50:2]`: its bounds split at their first `:` (`[^\[\]]*:` split a run of
# colons at each one and read the rest to its end: a minute for a 64 KiB host name of them).
_RANGE = re.compile(r"\[([^\[\]:]*:[^\[\]]*)\]")
_SECTION = re.compile(r"^\[([^\]]+)\]")
COUNT_CAP = 10**12
"""Where a count stops: a name's ranges multiply (64 KiB of `[0:99]` is a number of 21,000
digits, which Python refuses to write out past 4,300: a 500 instead of the refusal)."""


def range_size(bounds: str) -> int:
    """Names one `begin:end` or `begin:end:step` range stands for, as Ansible counts them (letters
    a-z then A-Z, or integers; an empty begin is 0); 1 for a range Ansible refuses anyway."""
    parts = bounds.split(":")
    if len(parts) not in (2, 3) or not parts[1]:
        return 1
    begin, end, step = parts[0] or "0", parts[1], parts[2] if len(parts) == 3 else "1"
    try:
        size = int(step)
        if begin in string.ascii_letters and end in string.ascii_letters:
            first, last = string.ascii_letters.index(begin), string.ascii_letters.index(end)
        else:
            first, last = int(begin), int(end)
    except ValueError:
        return 1
    return max(0, (last - first) // size + 1) if size > 0 and last >= first else 1


def host_count(pattern: str) -> int:
    """Hosts one host name of an inventory stands for (1 without a range), at most `COUNT_CAP`."""
    count = 1
    for bounds in _RANGE.findall(pattern):
        count = min(count * range_size(bounds), COUNT_CAP)
    return count


def said(count: int) -> str:
    """A count as a refusal writes it: `1,000,000`; `more than 1,000,000,000,000` at `COUNT_CAP`."""
    return f"more than {COUNT_CAP:,}" if count >= COUNT_CAP else f"{count:,}"


def ini_host_names(text: str) -> Iterator[str]:
    """The host names of an INI inventory as written (ranges not expanded): the first word of
    each line of a host section (lines before any section, `[group]`; not `[group:vars]` or
    `[group:children]`)."""
    hosts = True
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        section = _SECTION.match(line)
        if section:
            hosts = ":" not in section[1] or section[1].rsplit(":", 1)[1] not in ("vars", "children")
            continue
        if hosts:
            yield line.split()[0]


def ini_host_count(text: str) -> int:
    """Hosts of an INI inventory, ranges expanded (`ini_host_names`)."""
    return sum(host_count(name) for name in ini_host_names(text))


def yaml_host_names(data: object) -> Iterator[str]:
    """The host names of a YAML inventory (as PyYAML's BaseLoader built it) as written (ranges
    not expanded): the keys of every `hosts:` mapping."""
    if isinstance(data, list):
        for item in data:
            yield from yaml_host_names(item)
    if not isinstance(data, dict):
        return
    for key, value in data.items():
        if key == "hosts" and isinstance(value, dict):
            yield from (str(name) for name in value)
        yield from yaml_host_names(value)


def yaml_host_count(data: object) -> int:
    """Hosts of a YAML inventory, ranges expanded (`yaml_host_names`)."""
    return sum(host_count(name) for name in yaml_host_names(data))
