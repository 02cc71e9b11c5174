"""The hosts a playbook failed on, read from its PLAY RECAP, for a failed run's `error_message`.

`ansible-playbook` ends its output with one line per host (ansible-core's default callback,
`v2_playbook_on_stats`, the same from 2.14 to 2.19):

    PLAY RECAP *****************************************************
    db1                        : ok=2    changed=0    unreachable=0    failed=1    skipped=0 ...

coloured when colours are on. A run that failed on one host of many said only "a task failed on
at least one host (the PLAY RECAP says which)"; the message now names them: "a task failed on
db1; unreachable: dead (2 of 4 hosts)". The text read is the run's stdout after the masker, so
a host name that is a secret value is `***` here too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# The stdout a run keeps to find its recap: a thousand hosts' lines (about 130 characters each).
TAIL_CHARS = 256 * 1024
MAX_NAMED = 10  # hosts named per list; the rest are counted ("and 3 more")

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_HEADER = re.compile(r"^PLAY RECAP \*+\s*$")
_LINE = re.compile(
    r"^(?P<host>\S.*?)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+"
    r"unreachable=(?P<unreachable>\d+)\s+failed=(?P<failed>\d+)(?:\s+\w+=\d+)*\s*$"
)


@dataclass(frozen=True)
class HostCounts:
    """One host's line of the recap: its task counts."""

    host: str
    ok: int
    changed: int
    unreachable: int
    failed: int


def parse(stdout: str) -> list[HostCounts]:
    """The host lines of the last PLAY RECAP in `stdout` (ANSI colours removed), in the order
    printed; empty when there is none (the output was cut, or Ansible stopped before any play)."""
    lines = _ANSI.sub("", stdout).splitlines()
    start = next((i for i in range(len(lines) - 1, -1, -1) if _HEADER.match(lines[i])), None)
    if start is None:
        return []
    hosts = []
    for line in lines[start + 1 :]:
        if not line.strip():
            if hosts:
                break
            continue
        match = _LINE.match(line)
        if match is None:
            break
        counts = {key: int(match.group(key)) for key in ("ok", "changed", "unreachable", "failed")}
        hosts.append(HostCounts(host=match.group("host"), **counts))
    return hosts


def _names(hosts: list[str]) -> str:
    shown = ", ".join(hosts[:MAX_NAMED])
    return shown + (f" and {len(hosts) - MAX_NAMED} more" if len(hosts) > MAX_NAMED else "")


def failed_hosts(stdout: str) -> str | None:
    """What went wrong where, from the recap: "a task failed on db1; unreachable: dead (2 of 4
    hosts)", or None when the recap names no failed or unreachable host."""
    hosts = parse(stdout)
    failed = [h.host for h in hosts if h.failed]
    unreachable = [h.host for h in hosts if h.unreachable]
    if not failed and not unreachable:
        return None
    parts = ([f"a task failed on {_names(failed)}"] if failed else []) + (
        [f"unreachable: {_names(unreachable)}"] if unreachable else []
    )
    bad = len({*failed, *unreachable})
    return f"{'; '.join(parts)} ({bad} of {len(hosts)} host{'s' if len(hosts) != 1 else ''})"
