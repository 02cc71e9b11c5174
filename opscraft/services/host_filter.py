"""The history's host filter: the runs of one inventory host (`?host=db1`), and of those the
ones where it ended a given way (`&host_status=failed`), read from `ExecutionHost` (the hosts of
each finished Ansible run's per-host summary, `services.host_summaries`).

`host_status`, from the counts AWX's job host summaries also keep per host:

- `failed`: a task failed on the host (its PLAY RECAP's `failed` > 0);
- `unreachable`: the host could not be reached (`unreachable` > 0);
- `changed`: a task changed something on it (`changed` > 0; the host may also have failed);
- `ok`: it neither failed nor was unreachable (`failed` = 0 and `unreachable` = 0: the recap
  line Ansible prints green or yellow, `ansible.utils.color.hostcolor`).

The host is matched in any case and any canonically equivalent spelling, as every search
compares text: both the host rows and the term are kept in lower case and NFC
(`ansible_recap.host_key`, cut to `ansible_recap.MAX_HOST_CHARS`), so `?host=DB1` finds `db1`
and `café` typed a host listed as `cafe` + U+0301 (migration 0039 put the rows of earlier runs
so); the host is matched whole, not as a substring. A run lists at most
`ansible_recap.MAX_HOSTS` hosts (failed and unreachable ones first), so a host past that cap of
a larger run is not found in it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import Select, and_
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col, select

from opscraft.db.models import Execution, ExecutionHost
from opscraft.execution.ansible_recap import MAX_HOST_CHARS, host_key
from opscraft.services.errors import Invalid
from opscraft.services.invisible import check_filters

_H = ExecutionHost


class HostStatus(NamedTuple):
    """One `host_status`: the `condition` on the host's row it stands for, the `rule` it is in
    the API's words (its parameter's description) and its `label` for people (the history's
    select)."""

    condition: ColumnElement[bool]
    rule: str
    label: str


HOST_STATUSES: dict[str, HostStatus] = {
    "failed": HostStatus(col(_H.failed) > 0, "failed > 0 on that host", "Failed there"),
    "unreachable": HostStatus(col(_H.unreachable) > 0, "unreachable > 0", "Unreachable"),
    "changed": HostStatus(col(_H.changed) > 0, "changed > 0", "Changed something"),
    "ok": HostStatus(
        and_(col(_H.failed) == 0, col(_H.unreachable) == 0),
        "failed = 0 and unreachable = 0",
        "OK (no failure)",
    ),
}
"""Each `host_status` and what it stands for (module docstring)."""
NEEDS_HOST = "needs a host: the runs of which host (host=...)"


@dataclass(frozen=True)
class HostFilter:
    """A checked host filter (`of`): the join and conditions to add to the history's query."""

    host: str
    status: str | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        """WHERE terms on `ExecutionHost` (joined by `ON`)."""
        found = [col(_H.host) == host_key(self.host)]
        return [*found, HOST_STATUSES[self.status].condition] if self.status else found

    @staticmethod
    def runs(*columns: Any) -> Select[Any]:
        """The runs, each with `columns`, joined to their host rows, to filter with `conditions`
        (and the history's)."""
        return select(Execution, *columns).join(_H, col(_H.execution_id) == col(Execution.id))

    @staticmethod
    def ids(joined: bool) -> Select[Any]:
        """The ids of the runs to count: from the host rows alone (its index covers `conditions`)
        unless `joined`, when the history's other filters read the runs too. Every host row has
        its run (a foreign key, deleted with it), so both count the same."""
        ids = select(col(_H.execution_id))
        return ids.join(Execution, col(_H.execution_id) == col(Execution.id)) if joined else ids

    @staticmethod
    def order_columns() -> tuple[Any, Any]:
        """`(queued_at, id)` of the run as read from the host's index (`history_cursor.Keyset`)."""
        return col(_H.queued_at), col(_H.execution_id)


def of(host: str | None, host_status: str | None) -> HostFilter | None:
    """The filter of `?host=&host_status=` (None or "" for either: not given); None for no host
    filter. Raises Invalid (422 naming the field) for a host longer than `MAX_HOST_CHARS` or with
    a control character, an unknown `host_status`, or a `host_status` without a host."""
    host, host_status = host or None, host_status or None
    check_filters(host=(host, MAX_HOST_CHARS))
    problem = None
    if host_status is not None and host_status not in HOST_STATUSES:
        problem = f"must be one of: {', '.join(HOST_STATUSES)}"
    elif host_status is not None and host is None:
        problem = NEEDS_HOST
    if problem:
        raise Invalid.input("host_status", problem)
    return HostFilter(host, host_status) if host is not None else None
