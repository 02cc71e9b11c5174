"""Response shapes of the script library API."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from opscraft.api.stored_problem import StoredProblem
from opscraft.db import stored_shapes
from opscraft.db.models import Script
from opscraft.db.models.scripts import ScriptStatus, ScriptType
from opscraft.db.types import MAX_ID
from opscraft.services import parameters
from opscraft.services.bodies import Body
from opscraft.services.script_checks import Finding
from opscraft.services.scripts import MAX_NOTE, Diff, Saved, VersionRow
from opscraft.services.storable import Text, limited


class ParameterOut(BaseModel):
    """One declared script parameter: its type, whether it is required, its default, help text and, for
    choices, the options.
    """

    type: parameters.ParamType
    required: bool
    default: Any = None
    description: str = ""
    options: list[str] = []


def _keyed(schema: list[dict[str, Any]]) -> dict[str, ParameterOut]:
    """The stored list as an object keyed by name: the seed's shape, typed (and accepted back on PUT)."""
    return {
        spec["name"]: ParameterOut.model_validate({k: v for k, v in spec.items() if k != "name"})
        for spec in schema
    }


DERIVED = {"parameters", "parameter_defaults", "stored_problem"}


class ScriptSummary(BaseModel):
    """A script without its content, as lists show it: metadata, typed parameters and run settings
    (`timeout_seconds` in seconds, `memory_mb` in MiB, `cpus` in CPU cores).
    """

    id: int
    name: str
    description: str
    script_type: ScriptType
    version: str
    tags: list[str]
    status: ScriptStatus
    current_version: int
    parameters: dict[str, ParameterOut] = Field(
        description="Typed parameters keyed by name, in declaration order."
    )
    parameter_defaults: dict[str, Any] = Field(
        description="The seed's simple form: NAME -> default (null when there is none)."
    )
    timeout_seconds: int
    memory_mb: int
    cpus: float
    network_enabled: bool
    max_concurrent: int | None
    viewers_choose_run_options: bool = Field(
        description="Whether users who may not edit the script (viewers) may choose its Ansible "
        "runs' run options; operators and admins always may"
    )
    created_by: int | None
    updated_by: int | None
    created_at: datetime
    updated_at: datetime
    stored_problem: StoredProblem

    @classmethod
    def of(cls, script: Script) -> ScriptSummary:
        """Build the summary of a stored script, with its parameters keyed by name and its stored-value
        problem, if any.
        """
        return cls.model_validate(
            {
                **{name: getattr(script, name) for name in cls.model_fields.keys() - DERIVED},
                "parameters": _keyed(script.parameters),
                "parameter_defaults": parameters.defaults(script.parameters),
                "stored_problem": stored_shapes.note(script),
            }
        )


class ScriptOut(ScriptSummary):
    """A script with its current content and, for Ansible, its inventory and SSH settings (the key is named,
    never shown).
    """

    content: str
    inventory: str | None = Field(description="Ansible: the inventory (INI or YAML); null: localhost")
    inventory_id: int | None = Field(
        description="Ansible: the shared inventory used instead of `inventory` (/api/v1/inventories)"
    )
    ssh_user: str | None
    ssh_key_secret: str | None = Field(description="Ansible: the file secret holding the SSH key")


class FindingOut(BaseModel):
    """One dangerous-pattern finding of the script checks: the rule, the 1-based line, the line's excerpt
    and why it matters.
    """

    rule: str
    line: int
    excerpt: str
    message: str

    @classmethod
    def of(cls, finding: Finding) -> FindingOut:
        """Build the API shape of a script-check finding."""
        return cls.model_validate(finding.as_dict())


class NoticeOut(BaseModel):
    """Something a save changed in the content on its own (line endings, byte order mark), or a stored
    setting it made stale.
    """

    code: str = Field(description="crlf-line-endings, cr-line-endings or byte-order-mark.")
    message: str


class LintFindingOut(BaseModel):
    """One finding of an external linter (shellcheck, ansible-lint, ...), with its 1-based line and column."""

    tool: str = Field(examples=["shellcheck"])
    rule: str = Field(examples=["SC2086"])
    line: int
    column: int | None
    severity: Literal["error", "warning", "info", "style"]
    message: str


class LinterRunOut(BaseModel):
    """Whether a linter ran on the content, and if not, why (`detail`)."""

    tool: str = Field(examples=["shellcheck"])
    status: Literal["ran", "missing", "skipped", "timeout", "failed"]
    detail: str = ""


class ScriptSaved(ScriptOut):
    """The answer to a script save: the script as saved, plus the checks' findings, notices and linter
    results on the saved content.
    """

    findings: list[FindingOut] = Field(
        description="Dangerous-pattern lint findings of the saved content (acknowledged when present)."
    )
    notices: list[NoticeOut] = Field(
        description="What the save normalised in the content (line endings, a byte order mark), "
        "and the schedules, webhooks and links whose stored parameters no longer fit."
    )
    lint: list[LintFindingOut] = Field(
        description="The linters' findings on the saved content: warnings, they never refuse a save."
    )
    linters: list[LinterRunOut] = Field(description="Which linters ran on the content, or why not.")

    @classmethod
    def saved(cls, result: Saved) -> ScriptSaved:
        """Build the save answer from the services' Saved result."""
        base = ScriptOut.of(result.script).model_dump()
        return cls.model_validate(
            {
                **base,
                "findings": [FindingOut.of(f) for f in result.findings],
                "notices": [n.as_dict() for n in result.notices],
                "lint": [f.as_dict() for f in result.lint.findings],
                "linters": [r.as_dict() for r in result.lint.linters],
            }
        )


class VersionSummary(BaseModel):
    """One saved version of a script, without its content (for version lists); `author_name` is null once
    the author is deleted.
    """

    number: int
    script_type: ScriptType
    version_label: str
    change_note: str
    author_id: int | None
    author_name: str | None = None
    created_at: datetime
    stored_problem: StoredProblem = None

    model_config = {"from_attributes": True}

    @classmethod
    def of(cls, row: VersionRow) -> VersionSummary:
        """Build a version summary from a stored version row and its author's name."""
        extra = {"author_name": row.author_name, "stored_problem": stored_shapes.note(row.version)}
        return cls.model_validate(row.version).model_copy(update=extra)


class VersionOut(VersionSummary):
    """One saved version of a script with its content, declared parameters and run settings."""

    content: str
    parameters: dict[str, ParameterOut]
    run_settings: dict[str, Any]

    @classmethod
    def of(cls, row: VersionRow) -> VersionOut:
        """Build the API shape of a stored version with its content."""
        version = row.version
        return cls.model_validate(
            {
                **VersionSummary.of(row).model_dump(),
                "content": version.content,
                "parameters": _keyed(version.parameters),
                "run_settings": version.run_settings,
            }
        )


class DiffOut(BaseModel):
    """The difference between two versions of a script."""

    from_version: int
    to_version: int
    diff: str = Field(description="Unified diff of the content (empty when identical).")
    changed: list[str] = Field(description="Fields that differ: content, script_type, parameters, ...")

    @classmethod
    def of(cls, result: Diff) -> DiffOut:
        """Build the API shape of the services' Diff."""
        return cls.model_validate(asdict(result))


class RollbackRequest(Body):
    """Body of a rollback to an earlier version: `acknowledge_risks` must be true when that version's
    content has dangerous-pattern findings; `base_version`, the version the rollback was asked
    at, refuses it (409) when someone saved since.
    """

    model_config = {"extra": "forbid"}

    acknowledge_risks: bool = False
    change_note: limited(Text, MAX_NOTE) | None = None
    base_version: int | None = Field(
        default=None,
        ge=1,
        le=MAX_ID,
        description="The current version when the rollback was asked; 409 if someone saved since.",
    )
