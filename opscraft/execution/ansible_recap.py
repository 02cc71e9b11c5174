"""A playbook run's PLAY RECAP: each host's task counts (the run's per-host summary, as AWX and
Semaphore show it), and the hosts it failed on, for a failed run's `error_message`.

`ansible-playbook` ends its output with one line per host (ansible-core's default callback,
`v2_playbook_on_stats`, the same from 2.14 to 2.19), the hosts sorted by name, the counts summed
over every play of the playbook:

    PLAY RECAP *****************************************************
    db1                        : ok=2    changed=0    unreachable=0    failed=1    skipped=0 ...

coloured when colours are on, then a blank line, and only a `CUSTOM STATS` block (when
`show_custom_stats` is on) and a `DRY RUN` banner (check mode with `check_mode_markers`) after it.

Which recap counts (a script's tasks can print text, and the `minimal` callback prints a
command's output raw, so a line reading "PLAY RECAP ****" proves nothing): the last one in the
run's stdout, and only when it is what ansible-playbook printed last, that is when nothing but
those blocks follows it, its hosts are each named once, in Ansible's sorted order, and the
process ended by itself (the caller, `summary`'s `ended`). A run cancelled, timed out or
interrupted before its recap, or whose output went past the stored-output cap, has none, and
says why (`Recap.note`). The text read is the run's stdout after the masker, so a host name
that is a secret value is `***` here too (and the order of such names is not checked).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields
from typing import Any

from opscraft.db import stored_shapes
from opscraft.db.fold import lower
from opscraft.db.models import ExecutionHostSummary
from opscraft.execution.escape_codes import ANSI_RE
from opscraft.execution.masking import MASK

# The stdout a run keeps to find its recap: a coloured recap line takes about 330 characters,
# so about 3,000 hosts' lines.
TAIL_CHARS = 1024 * 1024
MAX_NAMED = 10  # hosts named per list in the error message; the rest are counted ("and 3 more")
MAX_HOSTS = 1000
"""The most hosts a run's stored summary lists: its failed and unreachable ones first, then the
others in the recap's order (the totals count every host)."""
MAX_HOST_CHARS = 255  # a longer name is cut (Ansible sets no limit)

_HEADER = re.compile(r"^PLAY RECAP \*+\s*$")
# A host line; its name ends with a non-blank: a lazy `\S.*?` before `\s+:` read each run of
# blanks inside the line again at each of its characters (a 64 KiB line took 21 s).
_LINE = re.compile(
    r"^(?P<host>\S(?:.*?\S)?)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+"
    r"unreachable=(?P<unreachable>\d+)\s+failed=(?P<failed>\d+)"
    r"(?:\s+skipped=(?P<skipped>\d+))?(?:\s+rescued=(?P<rescued>\d+))?(?:\s+ignored=(?P<ignored>\d+))?\s*$"
)
# What the default callback may print after the recap's host lines (see the module docstring).
_AFTER = re.compile(r"^(?:|\s*|CUSTOM STATS: \*+|DRY RUN \*+|\t.*)$")

NO_RECAP = "no PLAY RECAP in the output: ansible-playbook stopped before its plays ended (see the output)"
STOPPED = "no PLAY RECAP: the run was stopped before ansible-playbook ended"
CUT = "no PLAY RECAP: the output went past the stored-output cap (OPSCRAFT_MAX_OUTPUT_BYTES) before it"
NOT_LAST = "no PLAY RECAP taken: the last one in the output is not what ansible-playbook printed last"
EMPTY = "the PLAY RECAP names no host: no host matched the plays' hosts (or the limit), or no task ran"
TOO_LONG = "no PLAY RECAP taken: it is longer than the last 1 MiB of output read to find it"


@dataclass(frozen=True)
class HostCounts:
    """One host's line of the recap: how many of its tasks ended each way, over all plays."""

    host: str
    ok: int
    changed: int
    unreachable: int
    failed: int
    skipped: int = 0
    rescued: int = 0
    ignored: int = 0


COUNTS = tuple(f.name for f in fields(HostCounts) if f.name != "host")


def stored_hosts_problem(hosts: list[dict[str, Any]]) -> str | None:
    """Why a stored summary's `hosts` (`db.stored_shapes` has checked it is a list of objects)
    is not a list of `HostCounts` (a name, each count a whole number >= 0), None when it is: a
    row edited by hand then reads as no host, with this said, never a 500 or a count in HTML."""
    for index, host in enumerate(hosts):
        counts = [host.get(key) for key in COUNTS]
        numbers = all(type(count) is int and count >= 0 for count in counts)
        if not isinstance(host.get("host"), str) or not numbers:
            return f"stored with item {index} not a host's name and counts ({', '.join(COUNTS)})"
    return None


stored_shapes.refine(ExecutionHostSummary, "hosts", stored_hosts_problem)


@dataclass(frozen=True)
class Recap:
    """The hosts of the recap that counts (module docstring), in the order printed; `note` says
    why there are none (None when there are)."""

    hosts: list[HostCounts]
    note: str | None = None


def without_colours(text: str) -> str:
    """`text` without its ANSI escape sequences (Ansible colours its output: ANSIBLE_FORCE_COLOR)."""
    return ANSI_RE.sub("", text)


def read(stdout: str) -> Recap:
    """The recap that counts in `stdout` (the end of a run's stdout, ANSI colours allowed)."""
    lines = without_colours(stdout).splitlines()
    start = next((i for i in range(len(lines) - 1, -1, -1) if _HEADER.match(lines[i])), None)
    if start is None:
        cut = len(stdout) >= TAIL_CHARS and any(_LINE.match(line) for line in lines[:3])
        return Recap([], TOO_LONG if cut else NO_RECAP)
    hosts: list[HostCounts] = []
    end = start + 1
    for end in range(start + 1, len(lines) + 1):
        match = _LINE.match(lines[end]) if end < len(lines) else None
        if match is None:
            break
        counts = {key: int(match.group(key) or 0) for key in COUNTS}
        hosts.append(HostCounts(host=match.group("host"), **counts))
    names = [h.host for h in hosts]
    masked = any(MASK in name for name in names)  # the masker changed names: order unknown
    if not all(_AFTER.match(line) for line in lines[end:]) or (not masked and names != sorted(set(names))):
        return Recap([], NOT_LAST)
    return Recap(hosts, None if hosts else EMPTY)


def parse(stdout: str) -> list[HostCounts]:
    """The host lines of the recap that counts in `stdout`, in the order printed; empty when
    there is none (the output was cut, Ansible stopped before any play, or text followed it)."""
    return read(stdout).hosts


def summary(stdout: str, *, ended: bool, output_cut: bool) -> dict[str, object]:
    """A finished run's per-host summary as stored (`ExecutionHostSummary`): `{"hosts": [{"host",
    "ok", "changed", "unreachable", "failed", "skipped", "rescued", "ignored"}], "host_count":
    int, "totals": {count: int}, "note": str | None}`, at most `MAX_HOSTS` hosts listed (failed
    and unreachable ones first, each part in the recap's order; `host_count` counts all), names cut to
    `MAX_HOST_CHARS`. `ended`: the process ended by itself (not cancelled, timed out or
    interrupted); `output_cut`: its output went past the stored-output cap (then the recap, if
    any, was not kept)."""
    if not ended:
        recap = Recap([], STOPPED)
    elif output_cut:
        recap = Recap([], CUT)
    else:
        recap = read(stdout)
    hosts = recap.hosts
    bad = [h for h in hosts if h.failed or h.unreachable]
    listed = [*bad, *(h for h in hosts if not (h.failed or h.unreachable))][:MAX_HOSTS]
    return {
        "hosts": [{**asdict(h), "host": h.host[:MAX_HOST_CHARS]} for h in listed],
        "host_count": len(hosts),
        "totals": {key: sum(getattr(h, key) for h in hosts) for key in COUNTS},
        "note": recap.note,
    }


FILTERED = ("changed", "unreachable", "failed")
"""The counts a run's host rows keep (`ExecutionHost`): what the history's `host_status` reads."""


def host_key(name: str) -> str:
    """The form a host's name is kept and looked up in by the history's host filter: in lower
    case and NFC (`db.fold.lower`, as every search compares text), cut to `MAX_HOST_CHARS`."""
    return lower(name)[:MAX_HOST_CHARS]


def host_rows(hosts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The `ExecutionHost` rows (without `execution_id` and `queued_at`) of a summary's `hosts`
    (as `summary` lists them): one per name as `host_key` keeps it, a name listed twice (two
    hosts whose names the masker made `***`, or `DB1` and `db1`) with its counts added up."""
    rows: dict[str, dict[str, Any]] = {}
    for host in hosts:
        key = host_key(host["host"])
        row = rows.setdefault(key, {"host": key, **dict.fromkeys(FILTERED, 0)})
        for key in FILTERED:
            row[key] += host[key]
    return list(rows.values())


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
