"""Request and response shapes of `/api/v1/executions`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from opscraft.api.schemas import MAX_ID, Page
from opscraft.api.stored_problem import StoredProblem
from opscraft.db import stored_shapes
from opscraft.db.models import Execution, ExecutionHostSummary
from opscraft.db.models.executions import ExecutionStatus
from opscraft.db.types import utcnow
from opscraft.execution import ansible_recap
from opscraft.execution.log_pages import PAGE_CHARS, StoredChunk
from opscraft.services import host_summaries
from opscraft.services.bodies import Body
from opscraft.services.executions import AnsibleRunOptions, LogPage, TerraformWorkspace
from opscraft.services.parameters import ParameterValues

# What a schedule, webhook or chain link stores of the Ansible run options of the runs it starts.
StoredRunOptions = Annotated[
    dict[str, Any] | None,
    Field(
        description="Ansible scripts only: the run options of the runs it starts (`limit`, `tags`, "
        "`skip_tags`, `check`, `diff`, normalized as a manual run's: unset ones left out); null for none",
        examples=[{"limit": "web", "tags": ["deploy"], "check": True}],
    ),
]


class RerunCreate(Body):
    """Optional body of "Run again"."""

    model_config = {"extra": "forbid"}

    confirm_destroy: bool = Field(
        default=False,
        description="Required (true) to run a Terraform destroy again (every destroy is confirmed)",
    )


class ExecutionCreate(Body):
    """The seed's body (`script_id`, `parameters`) plus the optional runner and Terraform action."""

    model_config = {"extra": "forbid"}

    script_id: int = Field(ge=1, le=MAX_ID, examples=[1])
    parameters: ParameterValues = Field(
        default_factory=dict, examples=[{"ENV": "production", "VERSION": "2.0.1"}]
    )
    terraform_action: Literal["plan", "apply", "destroy"] | None = Field(
        default=None, description="Terraform scripts only: `plan` (default), `apply` or `destroy`"
    )
    terraform_workspace: TerraformWorkspace = None
    confirm_destroy: bool = Field(default=False, description="Required (true) with terraform_action destroy")
    runner: Literal["docker", "local"] | None = Field(
        default=None,
        description="Default: Docker when reachable, else the local runner when an admin enabled it",
    )
    run_options: AnsibleRunOptions | None = Field(
        default=None, description="Ansible scripts only: --limit, --tags, --skip-tags, --check, --diff"
    )


class ExecutionOut(BaseModel):
    """One run as the API shows it: the script version it ran, its status, parameters, options and output
    figures (`output_bytes`: every byte the script wrote, including those past the output cap, which
    are not stored).
    """

    id: int
    script_id: int
    script_name: str
    script_type: str
    script_version: int
    status: ExecutionStatus
    parameters: dict[str, Any]
    terraform_action: str | None
    terraform_workspace: str | None = Field(
        default=None, description="Terraform: the workspace whose state the run used"
    )
    run_options: dict[str, Any] | None = Field(description="Ansible run options, as validated")
    inventory_id: int | None = Field(
        default=None, description="Ansible: the shared inventory the run used (set when it started)"
    )
    inventory_sha256: str | None = Field(
        default=None, description="Hex SHA-256 of that inventory's content as the run read it"
    )
    triggered_by: int | None = Field(description="The user who started it, or on whose behalf it started")
    triggered_by_name: str | None
    trigger: str = Field(description="How it started: ui, api, api_token, schedule, webhook, retry or chain")
    trigger_ref: str | None = Field(
        description="The system actor that started it, if any (schedule:3; execution:12 for a chained run)"
    )
    draft: bool = Field(
        default=False,
        description="A test run of unsaved editor content (not a saved version); "
        "`script_version` is the version the edit started from; GET .../content has what ran",
    )
    worker_id: str | None = Field(description="The worker that ran it (none while queued)")
    runner: str | None
    rerun_of: int | None = Field(
        default=None, description="The run this one repeats (Run again: POST .../rerun), if it is a rerun"
    )
    image: str | None
    exit_code: int | None
    error_message: str | None
    output_bytes: int
    output_truncated: bool
    output_removed_at: datetime | None = Field(
        description="When output retention deleted the stored output (its size stays in output_bytes)"
    )
    cancel_requested: bool
    cancelled_by: int | None = Field(
        default=None, description="The user who cancelled it (asked to, while it ran), if anyone did"
    )
    cancelled_by_name: str | None = Field(default=None, description="Their username at the time")
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_seconds: float | None = Field(description="From start to finish (or to now while running)")
    stored_problem: StoredProblem = None
    cancel_pending: str | None = Field(
        default=None,
        description="Set while a cancel waits on a worker that is not answering (no heartbeat for two "
        "heartbeat periods): why the run has not ended yet and when it will. Given by GET "
        "/executions/{id} and POST .../cancel only; none in lists",
    )
    why_queued: str | None = Field(
        default=None,
        description="Set while a queued run waits for something other than a free worker slot: no "
        "live worker offers its runner (Docker while a worker's Docker engine answers; the run starts "
        "once one does), or its script's max_concurrent runs are running. Given by GET "
        "/executions/{id} only; none in lists",
    )

    @classmethod
    def of(cls, execution: Execution) -> ExecutionOut:
        """The run as the API shows it. Its columns are read from the row's loaded values (an
        attribute not loaded is read as usual): `model_dump()` of the row cost twice as much,
        10 of 17 us per run, a page of 50 about 0.5 ms (issue 15)."""
        loaded = execution.__dict__
        values = {name: loaded[name] if name in loaded else getattr(execution, name) for name in _COLUMNS}
        values["duration_seconds"] = _duration(execution)
        values["stored_problem"] = stored_shapes.note(execution)
        return cls.model_validate(values)


# Every field of `ExecutionOut` but these is a column of `Execution` of the same name.
_DERIVED = ("duration_seconds", "stored_problem", "cancel_pending", "why_queued")
_COLUMNS = tuple(name for name in ExecutionOut.model_fields if name not in _DERIVED)


class HostCountsOut(BaseModel):
    """One host's line of the PLAY RECAP: how many of its tasks ended each way, over all plays."""

    host: str = Field(description="The inventory name of the host, as printed (at most 255 characters)")
    ok: int = Field(ge=0)
    changed: int = Field(ge=0)
    unreachable: int = Field(ge=0)
    failed: int = Field(ge=0)
    skipped: int = Field(ge=0)
    rescued: int = Field(ge=0)
    ignored: int = Field(ge=0)


class HostSummaryOut(BaseModel):
    """A finished Ansible run's per-host summary, read from the PLAY RECAP ansible-playbook
    printed last (docs/executions.md, Per-host summary)."""

    hosts: list[HostCountsOut] = Field(
        description=f"The hosts of the recap, at most {ansible_recap.MAX_HOSTS}: those that failed or were "
        "unreachable first, then the others in the recap's order (by name); empty when `note` says why"
    )
    host_count: int = Field(ge=0, description="How many hosts the recap had (more than `hosts` when capped)")
    totals: dict[str, int] = Field(
        description="Each count (ok, changed, unreachable, failed, skipped, rescued, ignored) summed "
        "over every host",
        examples=[
            {"ok": 5, "changed": 1, "unreachable": 0, "failed": 1, "skipped": 2, "rescued": 0, "ignored": 0}
        ],
    )
    note: str | None = Field(
        description="Why there is no summary (the run was stopped before the recap, its output went past "
        "the cap, or the last recap was not the end of the output); null when there is one"
    )

    @classmethod
    def of(cls, row: ExecutionHostSummary | None) -> HostSummaryOut | None:
        """The stored summary as the API shows it; None for none."""
        if row is None:
            return None
        note = host_summaries.note_of(row)
        if note is not None:
            # Every count, each 0 (a client reads `totals["failed"]` of any summary).
            return cls(hosts=[], host_count=0, totals=dict.fromkeys(ansible_recap.COUNTS, 0), note=note)
        return cls(hosts=row.hosts, host_count=row.host_count, totals=row.totals, note=None)  # type: ignore[arg-type]


class ExecutionDetailOut(ExecutionOut):
    """One execution, with what only its own page shows."""

    host_summary: HostSummaryOut | None = Field(
        default=None,
        description="Ansible runs that ended: each host's task counts from the PLAY RECAP (or a `note` "
        "saying why there are none); null for other script types and runs not finished",
    )


class ExecutionPage(Page[ExecutionOut]):
    """A page of executions. `total` counts the matching runs up to 10,000; `total_capped` is
    true when more match (then `total` is a lower bound: show it as "10,000+")."""

    total_capped: bool = Field(description="True when more than `total` runs match")
    next_cursor: str | None = Field(
        default=None,
        description="Pass as `cursor` for the next page (opaque); null when this page is the last",
    )
    prev_cursor: str | None = Field(
        default=None,
        description="Pass as `cursor` for the runs just newer than this page (opaque); "
        "null on the newest page",
    )


def _duration(execution: Execution) -> float | None:
    if execution.started_at is None:
        return None
    end = execution.finished_at or utcnow()  # started_at is in the database's clock
    return round((end - execution.started_at).total_seconds(), 3)


class LogChunkOut(BaseModel):
    """One stored chunk of a run's output: `seq` orders the run's chunks, `stream` is stdout or stderr."""

    seq: int
    stream: Literal["stdout", "stderr"]
    content: str
    created_at: datetime

    @classmethod
    def of(cls, chunk: StoredChunk) -> LogChunkOut:
        """Build the API shape of a stored chunk."""
        return cls.model_validate(chunk, from_attributes=True)


class LogsOut(BaseModel):
    """One page of a run's output chunks, with the offset to read on from."""

    execution_id: int
    items: list[LogChunkOut]
    next_offset: int = Field(description="Pass as `offset` to read on (the last `seq` returned)")
    complete: bool = Field(description="True when the execution has finished and nothing more follows")
    more: bool = Field(
        description="True when more chunks are stored after this page now: it ended at `limit` "
        f"chunks or at {PAGE_CHARS:,} characters of content (a page may hold fewer than `limit` "
        "chunks; read on with `next_offset`)"
    )

    @classmethod
    def of(cls, execution_id: int, page: LogPage) -> LogsOut:
        """Build the API page of a run's output from the services' LogPage."""
        return cls(
            execution_id=execution_id,
            items=[LogChunkOut.of(chunk) for chunk in page.items],
            next_offset=page.next_offset,
            complete=page.complete,
            more=page.more,
        )


class RanContentOut(BaseModel):
    """What exactly an execution ran."""

    execution_id: int
    draft: bool = Field(description="True: unsaved editor content (a test run), not a saved version")
    script_type: str
    script_version: int = Field(description="The saved version that ran, or a test run's base version")
    content: str
