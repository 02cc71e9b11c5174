"""The script library: scripts, their immutable versions, search, diff and rollback.

Every change of content, parameters, type or run settings writes a new `ScriptVersion`;
history is never rewritten. Deleting is a soft delete (`deleted_at`): the row and its versions
stay so past executions remain readable, and the name becomes free for a new script.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, Field, ValidationError, ValidationInfo, field_validator
from sqlalchemy import exists, func
from sqlalchemy.orm import defer
from sqlmodel import col, select
from sqlmodel import delete as sql_delete
from sqlmodel import update as sql_update
from sqlmodel.ext.asyncio.session import AsyncSession

from opscraft import runtime
from opscraft.db import fold, read_as, stored_shapes
from opscraft.db.models import (
    ChainLink,
    Inventory,
    Schedule,
    Script,
    ScriptTag,
    ScriptVersion,
    Secret,
    User,
    WebhookTrigger,
)
from opscraft.db.models.scripts import ScriptStatus, ScriptType
from opscraft.db.models.secrets import SecretKind
from opscraft.db.text import NUL_MESSAGE
from opscraft.db.turns import take_write_turn
from opscraft.db.types import MAX_ID, utcnow
from opscraft.services import (
    audit,
    conflicts,
    input_words,
    inventories,
    invisible,
    like,
    line_endings,
    parameters,
    partial,
    script_checks,
    stored_values,
    terraform_modules,
    terraform_variables,
)
from opscraft.services.actor import Actor
from opscraft.services.ahead import Ahead
from opscraft.services.bodies import Body, not_nullable, null_refused
from opscraft.services.errors import (
    Conflict,
    Invalid,
    NotFound,
    Problems,
    ServiceError,
    input_message,
    input_summary,
    unreadable,
)
from opscraft.services.line_endings import Notice
from opscraft.services.linters import LintReport
from opscraft.services.names import name_key, name_order, trimmed
from opscraft.services.parameters import Declarations
from opscraft.services.permissions import Permission, require
from opscraft.services.script_checks import Checks, Finding
from opscraft.services.storable import Text, limited

MAX_NAME = 128
"""The most characters of a script's (and a shared inventory's) name (`NAME_RE`)."""
MAX_VERSION_LABEL = 32
"""The most characters of a version label (`VERSION_LABEL_RE`)."""
NAME_RE = re.compile(rf"^[A-Za-z0-9][A-Za-z0-9._-]{{0,{MAX_NAME - 1}}}$")
VERSION_LABEL_RE = re.compile(rf"^[0-9A-Za-z][0-9A-Za-z.+_-]{{0,{MAX_VERSION_LABEL - 1}}}$")
MAX_DESCRIPTION = 2000
MAX_TAGS = 20
MAX_TAG = 50
MAX_NOTE = 500
MAX_SEARCH = 200  # characters of a list's `search` filter
SCRIPT_DELETED = "its script was deleted"  # why its schedules are paused (here, or at a fire: schedules)
ANSIBLE_SETTINGS = ("inventory", "inventory_id", "ssh_user", "ssh_key_secret")
RUN_SETTINGS = (
    "timeout_seconds",
    "memory_mb",
    "cpus",
    "network_enabled",
    "max_concurrent",
    "viewers_choose_run_options",
    *ANSIBLE_SETTINGS,
)
SSH_USER_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}$")
SECRET_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
VERSIONED = ("script_type", "content", "parameters", *RUN_SETTINGS)
Sort = Literal["name", "-name", "updated_at", "-updated_at"]
# What `_check_tags` accepts, for the OpenAPI schema: the rule of every name
# (`invisible.name_problem`).
TAG_PATTERN = invisible.NAME_PATTERN
# Lengths are checked by `_check_tags`, which words them for a tag (pydantic said "items").
Tag = Annotated[Text, Field(json_schema_extra={"pattern": TAG_PATTERN, "maxLength": MAX_TAG})]
M = TypeVar("M", bound=BaseModel)


def _check_tags(tags: list[str]) -> list[str]:
    """The tags trimmed, each once: tags that differ only in case (or in compatibility forms, as
    names: `names.name_key`) are one tag (the first spelling stays). `ValueError` saying what is
    wrong with a tag or the list."""
    cleaned: list[str] = []
    seen: set[str] = set()
    for tag in (invisible.canonical(t).strip() for t in tags):  # NFC: as names
        if not tag:
            raise ValueError("tags must not be empty")
        if len(tag) > MAX_TAG:
            raise ValueError(f"each tag must be at most {MAX_TAG} characters, not {len(tag)}")
        problem = invisible.name_problem(tag)
        if problem:
            raise ValueError(f"tags {problem}")
        if name_key(tag) not in seen:
            seen.add(name_key(tag))
            cleaned.append(tag)
    if len(cleaned) > MAX_TAGS:
        raise ValueError(f"must have at most {MAX_TAGS} tags, not {len(cleaned)}")
    return cleaned


# Run settings a script always has (max_concurrent's null is "no limit"), by type: null is refused
# for them, as for any field that cannot be null (`bodies.null_refused`).
NOT_NULL_RUN_SETTINGS: dict[str, type] = {
    "timeout_seconds": int,
    "memory_mb": int,
    "cpus": float,
    "network_enabled": bool,
    "viewers_choose_run_options": bool,
}


class _ScriptFields(Body):
    """Field rules shared by create and update (every field optional here)."""

    model_config = {"extra": "forbid"}

    description: limited(Text, MAX_DESCRIPTION) | None = None
    script_type: ScriptType | None = None
    content: Text | None = Field(default=None, json_schema_extra=input_words.NOT_EMPTY)
    parameters: Declarations | None = Field(
        default=None, examples=[{"ENV": "prod"}, [{"name": "COUNT", "type": "integer", "default": 3}]]
    )
    version: str | None = Field(
        default=None, examples=["1.0.0"], json_schema_extra={"pattern": VERSION_LABEL_RE.pattern}
    )
    tags: list[Tag] | None = Field(
        default=None, json_schema_extra={"maxItems": MAX_TAGS}, examples=[["deployment", "production"]]
    )
    status: ScriptStatus | None = None
    # Run settings: left out, a new script takes the defaults in `Script` and an update keeps them.
    # Never null (`_run_setting_not_null`), which their schema says (`not_nullable`).
    timeout_seconds: int | None = Field(default=None, ge=1, json_schema_extra=not_nullable)
    memory_mb: int | None = Field(default=None, ge=16, le=65536, json_schema_extra=not_nullable)
    cpus: float | None = Field(
        default=None, ge=0.1, le=64, allow_inf_nan=False, json_schema_extra=not_nullable
    )
    network_enabled: bool | None = Field(default=None, json_schema_extra=not_nullable)
    max_concurrent: int | None = Field(default=None, ge=1, le=100)
    viewers_choose_run_options: bool | None = Field(
        default=None,
        description="Whether users who may not edit the script (viewers) may choose the run "
        "options of its Ansible runs (limit, tags, skip_tags, check, diff); operators and admins "
        "always may. New scripts: true",
        json_schema_extra=not_nullable,
    )
    inventory: str | None = Field(
        default=None,
        description="Ansible only: INI or YAML inventory (data only: no plugin, no script); "
        "empty or null: localhost",
        examples=["[web]\nweb1 ansible_host=192.0.2.10\n\n[web:vars]\nhttp_port=8080\n"],
    )
    inventory_id: int | None = Field(
        default=None,
        ge=1,
        le=MAX_ID,
        description="Ansible only: the id of a shared inventory (/api/v1/inventories) to use instead "
        "of the script's own `inventory` (set one or the other)",
    )
    ssh_user: str | None = Field(
        default=None,
        max_length=64,
        description="Ansible only: the SSH user name on the hosts",
        json_schema_extra={"pattern": SSH_USER_RE.pattern},
    )
    ssh_key_secret: str | None = Field(
        default=None,
        max_length=128,
        json_schema_extra={"pattern": SECRET_NAME_RE.pattern},
        description="Ansible only: name of the `file` secret (attached to the script) "
        "holding the SSH private key",
    )
    change_note: Text = Field(default="", max_length=MAX_NOTE)
    acknowledge_risks: bool = Field(
        default=False, description="Required (true) to save content with dangerous-pattern findings."
    )

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _check_tags(value)

    @field_validator("name", "version", "ssh_user", "ssh_key_secret", mode="before", check_fields=False)
    @classmethod
    def _trimmed(cls, value: Any) -> Any:
        return trimmed(value)

    @field_validator("name", check_fields=False)
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and not NAME_RE.fullmatch(value):
            raise ValueError(
                "must be 1-128 characters: ASCII letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
        return value

    @field_validator("ssh_user")
    @classmethod
    def _ssh_user(cls, value: str | None) -> str | None:
        if value and not SSH_USER_RE.fullmatch(value):
            raise ValueError(
                "must be a user name: ASCII letters, digits, '_', '.', '@' or '-', not starting with '-'"
            )
        return value or None

    @field_validator("ssh_key_secret")
    @classmethod
    def _ssh_key_secret(cls, value: str | None) -> str | None:
        if value and not SECRET_NAME_RE.fullmatch(value):
            raise ValueError("must be the name of a secret")
        return value or None

    @field_validator("inventory")
    @classmethod
    def _inventory(cls, value: str | None) -> str | None:
        value = inventories.without_bom(value) if value else value
        return value if value and value.strip() else None

    @field_validator(*NOT_NULL_RUN_SETTINGS, mode="before")
    @classmethod
    def _run_setting_not_null(cls, value: Any, info: ValidationInfo) -> Any:
        """A run setting the script always has is never null: an update dropped the null (the
        editor's emptied Timeout box, or CPUs of 1e309, which the browser reads as empty, kept
        the old value and said "Saved") and a new script took the default unasked."""
        if value is None:
            raise null_refused(NOT_NULL_RUN_SETTINGS[info.field_name or ""])
        return value

    @field_validator("version")
    @classmethod
    def _version(cls, value: str | None) -> str | None:
        if value is not None and not VERSION_LABEL_RE.fullmatch(value):
            raise ValueError(
                "must be 1-32 characters: ASCII letters, digits, '.', '+', '_' or '-', like 1.0.0"
            )
        return value


class ScriptCreate(_ScriptFields):
    """A script as created: name, type, first content and run settings; its status starts as draft unless
    given.
    """

    name: str = Field(examples=["deploy-app"], json_schema_extra={"pattern": NAME_RE.pattern})
    description: Text = Field(default="", max_length=MAX_DESCRIPTION, examples=["Deploy application"])
    script_type: ScriptType = Field(examples=["bash"])
    content: Text = Field(
        json_schema_extra=input_words.NOT_EMPTY, examples=["#!/bin/bash\necho 'Deploying...'"]
    )
    version: str = Field(default="1.0.0", json_schema_extra={"pattern": VERSION_LABEL_RE.pattern})
    tags: list[Tag] = Field(
        default_factory=list,
        json_schema_extra={"maxItems": MAX_TAGS},
        examples=[["deployment", "production"]],
    )
    status: ScriptStatus = ScriptStatus.draft
    network_enabled: bool = False
    # Run settings left out take the defaults in `Script`.


# `ScriptBase` fields the script always has a value for (the others may be null).
_NOT_NULL = ("name", "description", "script_type", "parameters", "version", "tags", "status")
_NOT_NULL += ("timeout_seconds", "memory_mb", "cpus", "network_enabled", "viewers_choose_run_options")


class ScriptBase(Body):
    """What each field held when an edit started (`ScriptUpdate.base`), as `GET` returned it:
    plain types, without the save's rules (a value stored before a rule was tightened is still a
    base). The content is not here: `base_version` guards it."""

    model_config = {"extra": "forbid"}

    name: Text | None = None
    description: Text | None = None
    script_type: ScriptType | None = None
    parameters: Declarations | None = None
    version: Text | None = None
    tags: list[Text] | None = None
    status: ScriptStatus | None = None
    timeout_seconds: int | None = None
    memory_mb: int | None = None
    cpus: float | None = None
    network_enabled: bool | None = None
    max_concurrent: int | None = None
    viewers_choose_run_options: bool | None = None
    inventory: Text | None = None
    inventory_id: int | None = None
    ssh_user: Text | None = None
    ssh_key_secret: Text | None = None

    @field_validator(*(f for f in _NOT_NULL), check_fields=False)
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("must not be null: the script always has a value here")
        return value


def base_of(script: Script) -> dict[str, Any]:
    """`ScriptBase` of a stored script: what an edit of it starts from (the web editor's `base`)."""
    return {key: getattr(script, key) for key in ScriptBase.model_fields}


class ScriptUpdate(_ScriptFields):
    """Partial update: only the fields sent change."""

    name: str | None = Field(default=None, json_schema_extra={"pattern": NAME_RE.pattern})
    base_version: int | None = Field(
        default=None,
        ge=1,
        le=MAX_ID,
        description="The version the edit started from; 409 if the script moved on.",
    )
    base: ScriptBase | None = Field(
        default=None,
        description="What the fields the edit changes held when it started (as GET returned them): "
        "a field sent with a new value whose stored value is neither this nor the new one was changed "
        "meanwhile (409 naming it, nothing saved); a field sent equal to its base keeps the stored "
        "value. Fields without a base: last write wins.",
        examples=[{"description": "Deploy application", "tags": ["deployment"]}],
    )


@dataclass(frozen=True)
class ScriptQuery:
    """Filters (combined with AND), sort and paging of a script listing; `search` matches name,
    description and tags, ignoring case (`db.fold`).
    """

    search: str | None = None
    script_type: ScriptType | None = None
    status: ScriptStatus | None = None
    tag: str | None = None
    sort: Sort = "name"
    skip: int = 0
    limit: int = 50


@dataclass(frozen=True)
class Saved:
    """A saved script, the dangerous-pattern findings of its content (acknowledged when
    non-empty), what the save normalised (`notices`) and the linters' report (`lint`)."""

    script: Script
    findings: list[Finding] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    lint: LintReport = field(default_factory=LintReport)


@dataclass(frozen=True)
class VersionRow:
    """A version and its author's username (None once the user is deleted)."""

    version: ScriptVersion
    author_name: str | None


@dataclass(frozen=True)
class Diff:
    """The difference between two versions of a script: a unified diff of the content and the names of the
    fields that changed.
    """

    from_version: int
    to_version: int
    diff: str
    changed: list[str]


def parse(model: type[M], data: M | Mapping[str, Any]) -> M:
    """Validate a dict from the UI the way the API validates a body: `Invalid` naming each field."""
    if isinstance(data, model):
        return data
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [
            {
                "field": ".".join(str(p) for p in e["loc"]) or "body",
                "message": input_message(e),
            }
            for e in exc.errors()
        ]
        raise Invalid(input_summary(errors), details=errors) from None


# --- reading ------------------------------------------------------------------------------


async def get(session: AsyncSession, actor: Actor, script_id: int) -> Script:
    """A live script; 404 when missing or deleted (or the id is out of the databases' range)."""
    require(actor.user, Permission.view_scripts)
    script = await session.get(Script, script_id) if 1 <= script_id <= MAX_ID else None
    if script is None or script.deleted_at is not None:
        raise NotFound.gone("script")
    return script


def search_text(name: str, description: str, tags: list[str]) -> str:
    """What `search` matches of a script: name, description and tags, one per line, in lower case
    as the searched term (`db.fold.lower`)."""
    return fold.lower("\n".join([name, description, " ".join(tags)]))


async def list_scripts(session: AsyncSession, actor: Actor, query: ScriptQuery) -> tuple[list[Script], int]:
    """A page of live scripts (without their content) and the total matching `query`.

    `search` matches name, description and tags, case-insensitively; several words must all match.
    Raises `Invalid` naming `search` or `tag` when one is too long or holds a control character
    (`invisible.check_filters`).
    """
    require(actor.user, Permission.view_scripts)
    invisible.check_filters(search=(query.search, MAX_SEARCH), tag=(query.tag, MAX_TAG))
    conditions: list[Any] = [col(Script.deleted_at).is_(None)]
    for word in (query.search or "").split():
        conditions.append(like.holds(col(Script.search_text), word, folded=True))
    if query.script_type:
        conditions.append(await read_as.reading_as(session, col(Script.script_type), query.script_type))
    if query.status:
        conditions.append(await read_as.reading_as(session, col(Script.status), query.status))
    if query.tag:
        spellings = await _spellings(session, query.tag)
        conditions.append(
            exists().where(col(ScriptTag.script_id) == col(Script.id), col(ScriptTag.tag).in_(spellings))
        )
    total = (await session.exec(select(func.count()).select_from(Script).where(*conditions))).one()
    # Two steps: the page's ids (from an index on SQLite), then those rows without their content.
    # Live names are unique, so the name order needs no tie-breaker.
    if query.sort.lstrip("-") == "name":
        order = name_order(Script.name, descending=query.sort.startswith("-"))
    else:
        desc = query.sort.startswith("-")
        order = [
            col(Script.updated_at).desc() if desc else col(Script.updated_at),
            col(Script.id).desc() if desc else col(Script.id),
        ]
    ids = list(
        (
            await session.exec(
                select(Script.id).where(*conditions).order_by(*order).offset(query.skip).limit(query.limit)
            )
        ).all()
    )
    if not ids:
        return [], int(total)
    rows = await session.exec(
        select(Script)
        .options(defer(Script.content), defer(Script.search_text))  # type: ignore[arg-type]
        .where(col(Script.id).in_(ids))
    )
    by_id = {script.id: script for script in rows.all()}
    return [by_id[i] for i in ids if i in by_id], int(total)


async def list_versions(
    session: AsyncSession, actor: Actor, script_id: int, *, skip: int = 0, limit: int = 50
) -> tuple[list[VersionRow], int]:
    """Versions of a script, newest first, without their content."""
    await get(session, actor, script_id)
    where = col(ScriptVersion.script_id) == script_id
    total = (await session.exec(select(func.count()).select_from(ScriptVersion).where(where))).one()
    rows = await session.exec(
        select(ScriptVersion, User.username)
        .outerjoin(User, col(User.id) == col(ScriptVersion.author_id))
        .options(defer(ScriptVersion.content))  # type: ignore[arg-type]
        .where(where)
        .order_by(col(ScriptVersion.number).desc())
        .offset(skip)
        .limit(limit)
    )
    return [VersionRow(version, name) for version, name in rows.all()], int(total)


async def _stored_tags(session: AsyncSession) -> list[str]:
    """Every spelling of a tag stored on a live script (an index-only scan), sorted."""
    return sorted((await session.exec(select(ScriptTag.tag).distinct())).all())


async def _spellings(session: AsyncSession, tag: str) -> list[str]:
    """The stored spellings of `tag` (`Prod`, `PROD`...): one tag, as `_check_tags` has it."""
    key = name_key(tag.strip())
    return [stored for stored in await _stored_tags(session) if name_key(stored) == key]


async def tags_in_use(session: AsyncSession, actor: Actor) -> list[str]:
    """Every tag of a live script, once each whatever its case on different scripts (its first
    spelling in code point order), sorted by `names.name_key`: the choices of the tag filter."""
    require(actor.user, Permission.view_scripts)
    first: dict[str, str] = {}
    for stored in await _stored_tags(session):
        first.setdefault(name_key(stored), stored)
    return [first[key] for key in sorted(first)]


async def check(actor: Actor, script_type: ScriptType, content: str) -> Checks:
    """What a save would say about unsaved content, for the editor (see `script_checks.check`).

    Raises Invalid (field `content`) when the content is over the size limit, as saving would."""
    require(actor.user, Permission.edit_scripts)
    check_size(content)
    return await script_checks.check(script_type, content)


def content_limit() -> int:
    """The largest script content accepted, in bytes of UTF-8 (`OPSCRAFT_MAX_SCRIPT_BYTES`)."""
    return runtime.current().settings.max_script_bytes


def check_size(content: str) -> None:
    """Raises Invalid (field `content`) when `content` is larger than `content_limit()` bytes,
    saying the size in bytes (in KiB it rounds to the limit when just over it) and the limit in
    KiB when it is a whole number of them, else in bytes."""
    limit = content_limit()
    size = len(content.encode())
    if size > limit:
        limit_text = f"{limit // 1024} KiB" if limit % 1024 == 0 else f"{limit} bytes"
        raise Invalid(
            f"content is {size} bytes, larger than the limit of {limit_text}: split the "
            "script or raise OPSCRAFT_MAX_SCRIPT_BYTES",
            details=[{"field": "content", "message": f"must be at most {limit} bytes, not {size}"}],
        )


async def get_version(session: AsyncSession, actor: Actor, script_id: int, number: int) -> VersionRow:
    """One version of a live script, with its content and its author's username."""
    await get(session, actor, script_id)
    row = (
        await session.exec(
            select(ScriptVersion, User.username)
            .outerjoin(User, col(User.id) == col(ScriptVersion.author_id))
            .where(col(ScriptVersion.script_id) == script_id, col(ScriptVersion.number) == number)
        )
    ).first()
    if row is None:
        numbers = select(func.min(ScriptVersion.number), func.max(ScriptVersion.number), func.count()).where(
            col(ScriptVersion.script_id) == script_id
        )
        raise NotFound.no_version("script", number, *(await session.exec(numbers)).one())
    return VersionRow(*row)


def _version_fields(version: ScriptVersion) -> dict[str, Any]:
    return {
        "script_type": version.script_type,
        "parameters": version.parameters,
        "run_settings": version.run_settings,
        "version_label": version.version_label,
    }


def _same_version(first: ScriptVersion, second: ScriptVersion) -> bool:
    """Two versions that a rollback from one to the other would not change."""
    return first.content == second.content and _version_fields(first) == _version_fields(second)


async def diff(session: AsyncSession, actor: Actor, script_id: int, from_n: int, to_n: int) -> Diff:
    """Unified diff of the content of two versions (`line_endings.unified_diff`: GNU diff's form),
    and the names of the other fields that differ."""
    script = await get(session, actor, script_id)
    old = (await get_version(session, actor, script_id, from_n)).version
    new = (await get_version(session, actor, script_id, to_n)).version
    text = line_endings.unified_diff(
        old.content, new.content, f"{script.name} v{from_n}", f"{script.name} v{to_n}"
    )
    before, after = _version_fields(old), _version_fields(new)
    changed = (["content"] if old.content != new.content else []) + [
        key for key in before if before[key] != after[key]
    ]
    return Diff(from_n, to_n, text, changed)


# --- writing ------------------------------------------------------------------------------


def _run_settings(script: Script) -> dict[str, Any]:
    return {key: getattr(script, key) for key in RUN_SETTINGS}


@dataclass(frozen=True)
class CheckedContent:
    """Content as it will be stored (normalised) with its checks, and the parameter schema."""

    checks: Checks
    schema: list[dict[str, Any]]

    @property
    def content(self) -> str:
        """The content as checked and normalised (line endings, byte order mark)."""
        return self.checks.content

    def saved(self, script: Script, findings: list[Finding] | None = None) -> Saved:
        """The save result of `script`, with these checks' notices and lint, and `findings` (default: these
        checks' findings).
        """
        found = self.checks.findings if findings is None else findings
        return Saved(script, found, self.checks.notices, self.checks.lint)


async def check_content(
    script_type: ScriptType, content: str, parameters_raw: Any, acknowledge: bool
) -> CheckedContent:
    """Size, line endings, syntax and parameters (all errors at once), then the dangerous-pattern
    lint; `Invalid` on any error. Linter findings are warnings and never refuse the save.

    The checks of every save, and of a test run of unsaved content (services/draft_runs.py).
    `acknowledge`: the author has reviewed the dangerous-pattern findings (else `Invalid` lists
    them, each with `rule`, `line`, `excerpt` and `message`)."""
    check_size(content)
    errors: list[dict[str, Any]] = []
    # Read past a byte order mark, as the checks read it (`line_endings`): a BOM and a line break
    # are a blank script.
    blank = input_words.blank_problem(line_endings.strip_boms(content)[0], "write the script")
    if blank:
        errors.append({"field": "content", "message": blank})
    if "\x00" in content:
        errors.append({"field": "content", "message": NUL_MESSAGE})
    # Blank content has nothing to check: a blank playbook was also told "a non-empty YAML list
    # of plays", and its linters (`terraform validate`...) ran for nothing.
    checks = None if blank else await script_checks.check(script_type, content)
    problems = checks.problems if checks else []
    errors += [
        {"field": "content", "line": p.line, "message": f"line {p.line}: {p.message}"} for p in problems
    ]
    schema: list[dict[str, Any]] = []
    try:
        schema = parameters.normalize(parameters_raw, script_type.value)
    except Invalid as exc:
        errors += exc.details
    if script_type == ScriptType.terraform and checks and not problems:
        names = [spec["name"] for spec in schema]
        errors += await asyncio.to_thread(terraform_variables.errors, checks.content, names)
        errors += terraform_modules.errors(checks.content)  # the document parsed (and cached) above
    if errors:
        summary = "; ".join(
            e["message"] if "line" in e else f"{e['field']}: {e['message']}" for e in errors[:5]
        )
        raise Invalid(f"the {script_type.value} script has errors: {summary}", details=errors)
    assert checks is not None  # blank content is one of the errors above
    findings = checks.findings
    if findings and not acknowledge:
        raise Invalid(
            f"the content matches {len(findings)} dangerous pattern(s): review them, then save again "
            "with acknowledge_risks: true",
            details=[{"field": "content", **f.as_dict()} for f in findings],
        )
    return CheckedContent(checks, schema)


def _snapshot(script: Script, actor: Actor, note: str) -> ScriptVersion:
    return ScriptVersion(
        script_id=script.id,  # type: ignore[arg-type]
        number=script.current_version,
        script_type=script.script_type,
        content=script.content,
        parameters=script.parameters,
        run_settings=_run_settings(script),
        version_label=script.version,
        change_note=note,
        author_id=actor.user_id,
    )


async def _check_no_shadowing(
    session: AsyncSession, script_id: int, params: list[dict[str, Any]], script_type: str
) -> None:
    """A parameter may not reach a `script_type` run under the name of a secret attached to the
    script (`secrets.check_parameter_shadowing`)."""
    from opscraft.services import secrets  # secrets builds on this module

    await secrets.check_parameter_shadowing(session, script_id, [p["name"] for p in params], script_type)


async def _name_taken(session: AsyncSession, name: str, except_id: int | None = None) -> bool:
    """Whether another live script has this name, ignoring case ("Deploy" and "deploy" read as one
    script in a list; names are ASCII, so SQL's and Python's lower case agree)."""
    stmt = select(Script.id).where(
        func.lower(col(Script.name)) == name.lower(), col(Script.deleted_at).is_(None)
    )
    if except_id is not None:
        stmt = stmt.where(col(Script.id) != except_id)
    return (await session.exec(stmt)).first() is not None


async def _replace_tags(session: AsyncSession, script_id: int, tags: list[str]) -> None:
    await session.exec(sql_delete(ScriptTag).where(col(ScriptTag.script_id) == script_id))
    session.add_all(ScriptTag(script_id=script_id, tag=tag) for tag in tags)


def _audit_findings(session: AsyncSession, actor: Actor, script: Script, findings: list[Finding]) -> None:
    if findings:
        audit.record(
            session,
            actor,
            "script.risks_acknowledged",
            "script",
            script.id,
            version=script.current_version,
            findings=[{"rule": f.rule, "line": f.line} for f in findings],
        )


NAME_TAKEN = "a script with this name already exists: choose another name"


async def _all_checks(problems: Problems, name_taken: bool, *checks: Callable[[], Any]) -> list[Any]:
    """Run every check and return their results; every field error at once in one `Invalid`.

    `problems` holds the body's own field errors (`_readable`), reported with the checks'. A
    check fails by raising `Invalid`. A name in use (`name_taken`) is a 409 `Conflict` on its
    own, and one more field error when there are others. Dangerous-pattern findings (details
    with a `rule`) are raised only when nothing else is wrong: they ask for an acknowledgement,
    which makes sense once the content is otherwise acceptable."""
    results: list[Any] = []
    messages = [input_summary(problems.details)] if problems.details else []
    risks: Invalid | None = None
    for check in checks:
        try:
            result = check()
            results.append(await result if inspect.isawaitable(result) else result)
        except Invalid as exc:
            results.append(None)
            if exc.details and all("rule" in d for d in exc.details):
                risks = exc
            else:
                problems.details.extend(exc.details or [{"field": "body", "message": exc.message}])
                messages.append(exc.message)
    if problems.details:
        if name_taken:
            problems.add("name", "another script has this name")
            messages.append(NAME_TAKEN)
        raise Invalid("; ".join(messages), details=problems.details)
    if name_taken:
        raise Conflict(NAME_TAKEN, details=[{"field": "name", "message": "another script has this name"}])
    if risks is not None:
        raise risks
    return results


def _readable(model: type[M], data: M | Mapping[str, Any], problems: Problems) -> M | ScriptUpdate:
    """`data` as `model`; when `model` refuses it, its field errors go to `problems` and the
    fields it accepted are returned (a `ScriptUpdate`, every field optional) for the checks that
    can still run on them (content, parameters, timeout...): one 422 then names every problem of
    the save instead of the body's first and the rest on the next try."""
    with problems.check():
        return parse(model, data)
    refused = problems.fields()
    accepted = {k: v for k, v in data.items() if k not in refused} if isinstance(data, Mapping) else {}
    try:
        return ScriptUpdate.model_validate(accepted)
    except ValidationError:  # a rule across fields: check nothing more than the body
        return ScriptUpdate()


async def _check_content_of(
    script_type: ScriptType | None, content: str | None, parameters_raw: Any, acknowledge: bool
) -> CheckedContent | None:
    """`check_content`; the parameters alone when the body's type or content was refused, so
    that their errors are reported with the body's (None: nothing will be saved)."""
    if script_type is None or content is None:
        parameters.normalize(parameters_raw, script_type.value if script_type else None)
        return None
    return await check_content(script_type, content, parameters_raw, acknowledge)


async def create(session: AsyncSession, actor: Actor, data: ScriptCreate | Mapping[str, Any]) -> Saved:
    """A new script at version 1. Every field error is reported at once (`Invalid`, 422); a name
    in use alone is a `Conflict` (409); dangerous patterns need `acknowledge_risks`."""
    require(actor.user, Permission.edit_scripts)
    problems = Problems()
    body = _readable(ScriptCreate, data, problems)
    values = body.model_dump(exclude={"parameters", "change_note", "acknowledge_risks"}, exclude_none=True)
    checked, _, _ = await _all_checks(
        problems,
        body.name is not None and await _name_taken(session, body.name),
        lambda: _check_content_of(body.script_type, body.content, body.parameters, body.acknowledge_risks),
        lambda: _check_timeout(values["timeout_seconds"]) if values.get("timeout_seconds") else None,
        lambda: (
            _check_ansible_settings(session, body.script_type, values, set(values), Ahead())
            if body.script_type
            else None
        ),
    )
    assert isinstance(body, ScriptCreate) and checked is not None  # else _all_checks raised
    values["content"] = checked.content
    script = Script(
        **values,
        parameters=checked.schema,
        search_text=search_text(body.name, body.description, body.tags),
        created_by=actor.user_id,
        updated_by=actor.user_id,
    )
    session.add(script)
    await conflicts.flush(session)
    assert script.id is not None
    await _replace_tags(session, script.id, body.tags)
    session.add(_snapshot(script, actor, body.change_note or "created"))
    await conflicts.flush(session)
    audit.record(
        session, actor, "script.create", "script", script.id, name=script.name, script_type=script.script_type
    )
    _audit_findings(session, actor, script, checked.checks.findings)
    broken = await stored_values.broken_by(session, script)
    await session.commit()
    saved = checked.saved(script)
    return replace(saved, notices=[*saved.notices, *broken])


async def _check_ansible_settings(
    session: AsyncSession,
    script_type: ScriptType,
    values: Mapping[str, Any],
    changed: set[str],
    ahead: Ahead,
) -> None:
    """Inventory and SSH credential: Ansible scripts only; the inventory is data that
    `ansible-inventory` parses (checked when it changed: its answer as `ahead` kept it, when it
    checked the same text), or an existing shared inventory (`inventory_id`), never both; the
    key is a `file` secret."""
    given = [key for key in ANSIBLE_SETTINGS if values.get(key)]
    if given and script_type != ScriptType.ansible:
        raise Invalid(
            f"{given[0]} applies only to ansible scripts: leave it out",
            details=[{"field": key, "message": "only for ansible scripts"} for key in given],
        )
    if values.get("inventory") and values.get("inventory_id"):
        raise Invalid(
            "inventory_id: a script uses either its own inventory text or a shared inventory, not "
            "both: clear the inventory text or leave inventory_id out",
            details=[{"field": "inventory_id", "message": "leave out inventory, or this"}],
        )
    if values.get("inventory") and "inventory" in changed:
        await ahead.answer(inventories.validate, values["inventory"])
    if values.get("inventory_id") and "inventory_id" in changed:
        # Locked (PostgreSQL) like a delete locks it: a deleted inventory is never picked up.
        found = await session.exec(
            select(Inventory.id).where(col(Inventory.id) == values["inventory_id"]).with_for_update()
        )
        if found.first() is None:
            raise Invalid(
                "inventory_id: no such shared inventory: choose one from the inventories list",
                details=[{"field": "inventory_id", "message": "no such inventory"}],
            )
    key_name = values.get("ssh_key_secret")
    if key_name and "ssh_key_secret" in changed:
        kind = (await session.exec(select(Secret.kind).where(col(Secret.name) == key_name))).first()
        if kind != SecretKind.file:
            message = "no such secret" if kind is None else "must be a secret of kind file"
            raise Invalid(
                f"ssh_key_secret: {message}: create a file secret holding the private key, attach it "
                "to the script and name it here",
                details=[{"field": "ssh_key_secret", "message": message}],
            )


# The longest number a refusal repeats back; past it the message says how many digits were sent
# (JSON allows any length: `10**400` was written back whole, 401 digits in `detail` and `errors`).
ECHOED_DIGITS_MOST = 15


def _check_timeout(seconds: int) -> None:
    """Invalid (422, field `timeout_seconds`) past `OPSCRAFT_MAX_TIMEOUT_SECONDS`, saying the
    value sent when it has at most `ECHOED_DIGITS_MOST` digits, else how many it has."""
    limit = runtime.current().settings.max_timeout_seconds
    if seconds > limit:
        digits = str(seconds)
        sent = digits if len(digits) <= ECHOED_DIGITS_MOST else f"a number of {len(digits)} digits"
        raise Invalid.at(
            "timeout_seconds", f"must be at most {limit} (OPSCRAFT_MAX_TIMEOUT_SECONDS), not {sent}"
        )


async def _locked(session: AsyncSession, actor: Actor, script_id: int) -> Script:
    """The live script, held until the transaction ends (`FOR UPDATE` on PostgreSQL, the write
    turn on SQLite: `db.turns`) so concurrent edits get consecutive versions. Without the turn,
    SQLite's edits of one script at once both read version N and the second was a 409 on
    version N+1, where PostgreSQL saved both."""
    await get(session, actor, script_id)
    await take_write_turn(session, Script, col(Script.id) == script_id)
    script = (await session.exec(select(Script).where(col(Script.id) == script_id).with_for_update())).one()
    await session.refresh(script)
    return script


def _check_base_version(script: Script, base_version: int | None, then: str, editor: int | None) -> None:
    """`Conflict` (409, field `base_version`, as the 409 of an edit racing another:
    services/conflicts.py) when `base_version` is given and the script has moved past it:
    "the script is at version N (saved by you in another tab, window or API client at 09:12 UTC), " + `then`
    (what the refused request started from, and what to do), who saved as seen by the user
    `editor` (id; `partial.saved_by`). A save that someone else's landed before silently
    replaced it otherwise."""
    if base_version is None or base_version == script.current_version:
        return
    when = partial.saved_at(script)
    saved = f"saved {partial.saved_by(script, editor)}" + (f" {when}" if when else "")
    message = f"the script is at version {script.current_version} ({saved}), {then}"
    raise Conflict(message, details=[{"field": "base_version", "message": message}])


def _declared_as_stored(values: dict[str, Any], script: Script, base: bool = False) -> dict[str, Any]:
    """`values` (an update's fields, or its `base` when `base`) with `parameters` in the form the
    script stores and `GET` returns (`parameters.normalize`), so that the three-way check
    compares declarations, not spellings: `{"env": "prod"}` is the list GET shows for it. A
    declaration of the update that does not normalize is left as sent (the save's own checks
    name its errors); one of the base is `Invalid` (422) naming `base.parameters...`: no GET
    returned it, and compared as sent it was taken for a change made meanwhile (a 409)."""
    raw = values.get("parameters")
    if raw is None:
        return values
    script_type = values.get("script_type") or script.script_type
    try:
        declared = parameters.normalize(raw, ScriptType(script_type).value)
    except Invalid as exc:
        if not base:
            return values
        details = [{**d, "field": f"base.{d['field']}"} for d in exc.details or []]
        raise Invalid(
            f"base.parameters is not a declaration GET returns: {exc.message}", details=details
        ) from None
    return {**values, "parameters": declared}


@dataclass(frozen=True)
class _Planned:
    """What an update would change in a script, as `_planned` reads it from the body and the row:
    `changes` (field -> new value), the script type and content it would have, whether the
    content is the stored one (`same_content`: no fresh acknowledgement needed), the Ansible
    settings in effect (`effective`), the fields whose value differs (`changed_keys`), and
    whether the content, type or parameters are sent (`content_changes`: checked again)."""

    changes: dict[str, Any]
    script_type: ScriptType
    content: str
    same_content: bool
    effective: dict[str, Any]
    changed_keys: set[str]
    content_changes: bool

    def content_check(self, script: Script, body: ScriptUpdate) -> tuple[Any, ...]:
        """The arguments of `check_content` for this update of `script`."""
        declared = self.changes.get("parameters", script.parameters)
        return (self.script_type, self.content, declared, body.acknowledge_risks or self.same_content)


def _planned(script: Script, body: ScriptUpdate, editor: int | None) -> _Planned:
    """What `body` changes in `script` (`_Planned`), an edit of the user `editor` (id); reads the
    row, writes nothing. `Conflict` (409) when `base_version` is not the current version or a
    field sent was changed since the edit's `base` (each saying who saved since:
    `partial.saved_by`); `Invalid` (422) for a versioned field stored in another shape that a new
    version would carry over (see `update`)."""
    _check_base_version(
        script,
        body.base_version,
        f"your edit started from version {body.base_version}: reload it and apply your change again",
        editor,
    )
    changes = body.model_dump(
        exclude_unset=True, exclude={"base_version", "base", "change_note", "acknowledge_risks"}
    )
    nullable = {"max_concurrent", *ANSIBLE_SETTINGS}
    changes = {k: v for k, v in changes.items() if v is not None or k in nullable}
    if body.base is not None:
        base = _declared_as_stored(body.base.model_dump(exclude_unset=True), script, base=True)
        changes = partial.three_way(script, _declared_as_stored(changes, script), base, "the script", editor)
    if changes.keys() & set(VERSIONED):  # a new version would carry the rest over as they read
        unread = stored_shapes.problems(script)
        partial.refuse_unreadable(
            {k: p for k, p in unread.items() if k in VERSIONED and k not in changes}, "the script"
        )
    script_type = changes.get("script_type", script.script_type)
    if script_type != ScriptType.ansible:
        # Changing the type away from Ansible drops the Ansible settings it no longer uses (the
        # editor hides and does not send them); settings sent with another type stay refused.
        changes |= {k: None for k in ANSIBLE_SETTINGS if k not in changes and getattr(script, k)}
    content = changes.get("content", script.content)
    # Only new content needs a fresh acknowledgement; unchanged content was acknowledged before.
    # Compared once normalised: re-sending the stored script with CRLF endings changes nothing.
    same_content = (
        line_endings.normalize(content, script_type)[0] == script.content
        and script_type == script.script_type
    )
    return _Planned(
        changes=changes,
        script_type=script_type,
        content=content,
        same_content=same_content,
        effective={key: changes.get(key, getattr(script, key)) for key in ANSIBLE_SETTINGS},
        changed_keys={k for k in changes if changes[k] != getattr(script, k)},
        content_changes=bool(changes.keys() & {"content", "script_type", "parameters"}),
    )


async def _check_ahead(session: AsyncSession, actor: Actor, script_id: int, body: ScriptUpdate) -> Ahead:
    """The slow checks of an update (`check_content`: the linters, `bash -n`, parsing; the
    inventory's `ansible-inventory`) run on the script as read before the write turn
    (`services.ahead`). A refusal of the body or the row is said under the turn, where it is
    decided: nothing is checked ahead then."""
    ahead = Ahead()
    try:
        script = await get(session, actor, script_id)
        plan = _planned(script, body, actor.user.id if actor.user else None)
    except ServiceError:
        return ahead
    if plan.content_changes:
        await ahead.run(check_content, *plan.content_check(script, body))
    inventory = plan.effective["inventory"]
    if inventory and "inventory" in plan.changed_keys:
        await ahead.run(inventories.validate, inventory)
    return ahead


async def update(
    session: AsyncSession, actor: Actor, script_id: int, data: ScriptUpdate | Mapping[str, Any]
) -> Saved:
    """Partial update; a change to a versioned field writes the next version. `Conflict` (409)
    when `base_version` is not the current version, or when a field sent with a new value was
    changed since the edit's `base` (`partial.three_way`: nothing written). `Invalid` (422)
    naming each versioned field stored in another shape (db/stored_shapes.py: parameters, type)
    that a change writing a new version leaves out: the version would hold what it reads as
    (`[]`, `bash`), the declarations silently dropped.

    A change of the parameters (or type) that breaks values stored by a schedule, webhook or
    incoming link is saved, with one notice per such trigger (services/stored_values.py).

    The content's and the inventory's checks run before the write turn (`_check_ahead`): under
    it, on SQLite, every other writer waited for their seconds."""
    require(actor.user, Permission.edit_scripts)
    problems = Problems()
    body = _readable(ScriptUpdate, data, problems)
    ahead = await _check_ahead(session, actor, script_id, body)
    script = await _locked(session, actor, script_id)
    plan = _planned(script, body, actor.user.id if actor.user else None)
    changes = plan.changes
    checked: CheckedContent | None
    checked, _, _ = await _all_checks(
        problems,
        "name" in changes and await _name_taken(session, changes["name"], script.id),
        lambda: (
            ahead.answer(check_content, *plan.content_check(script, body)) if plan.content_changes else None
        ),
        lambda: _check_timeout(changes["timeout_seconds"]) if "timeout_seconds" in changes else None,
        lambda: (
            _check_ansible_settings(session, plan.script_type, plan.effective, plan.changed_keys, ahead)
            if changes.keys() & {"script_type", *ANSIBLE_SETTINGS}
            else None
        ),
    )
    acknowledged: list[Finding] = []
    if checked is not None:
        changes["parameters"] = checked.schema
        if "content" in changes:
            changes["content"] = checked.content
        acknowledged = [] if plan.same_content else checked.checks.findings
        await _check_no_shadowing(session, script_id, changes["parameters"], plan.script_type)
    changed = stored_shapes.changed(script, changes)
    if not changed:
        return checked.saved(script) if checked else Saved(script)
    old_status = script.status
    for key, value in changed.items():
        setattr(script, key, value)
    script.search_text = search_text(script.name, script.description, script.tags)
    script.updated_by = actor.user_id
    script.updated_at = utcnow()
    new_version = bool(changed.keys() & set(VERSIONED))
    if new_version:
        script.current_version += 1
        session.add(_snapshot(script, actor, body.change_note))
    await conflicts.flush(session)  # before any statement that would autoflush it
    if "tags" in changed:
        await _replace_tags(session, script_id, script.tags)
    fields = sorted(changed.keys() - {"status"})
    if fields:
        audit.record(
            session,
            actor,
            "script.update",
            "script",
            script_id,
            fields=fields,
            version=script.current_version if new_version else None,
        )
    if "status" in changed:
        audit.record(
            session, actor, "script.status", "script", script_id, **{"from": old_status, "to": script.status}
        )
    if new_version:
        _audit_findings(session, actor, script, acknowledged)
    broken = (
        await stored_values.broken_by(session, script)
        if changed.keys() & {"parameters", "script_type"}
        else []
    )
    await session.commit()
    saved = checked.saved(script) if checked else Saved(script)
    return replace(saved, notices=[*saved.notices, *broken])


async def _check_version_inventory(number: int, inventory: str | None) -> None:
    """`Conflict` naming the `inventory` field when version `number`'s own inventory text is
    refused by today's checks (`inventories.validate`), which a rollback would make current."""
    if not inventory:
        return
    try:
        await inventories.validate(inventory)
    except Invalid as refused:
        message = refused.details[0]["message"] if refused.details else refused.message
        raise Conflict(
            f"version {number}'s inventory is refused today: {message}: roll back to another "
            "version, or edit the script's inventory",
            details=[{"field": "inventory", "message": message}],
        ) from None


async def rollback(
    session: AsyncSession,
    actor: Actor,
    script_id: int,
    number: int,
    *,
    acknowledge_risks: bool = False,
    change_note: str | None = None,
    base_version: int | None = None,
) -> Saved:
    """Write a new version equal to version `number` (content, type, parameters, run settings, label).

    `Conflict` (409) when `base_version` (the current version the rollback was asked at: the
    Versions tab's question names the version it adds) is given and someone saved since: the
    rollback would replace that save unseen; when there is nothing to roll back (`number` is
    the current version, or equal to it in all of those), when the version's shared inventory
    was deleted or its own inventory is refused by today's checks (`inventories.validate`: a text
    saved before a rule, such as a line break Ansible reads and the page does not show), or when
    it holds a setting stored in another shape (db/stored_shapes.py: its
    parameters were written as the `[]` they read as, the declarations silently dropped). Stored
    trigger values the version's parameters refuse are notices, as for `update`."""
    require(actor.user, Permission.edit_scripts)
    target = (await get_version(session, actor, script_id, number)).version
    # A version never changes: its checks run before the write turn (`services.ahead`).
    content_check = (target.script_type, target.content, target.parameters, acknowledge_risks)
    inventory_check = (number, target.run_settings.get("inventory"))
    ahead = Ahead()
    await ahead.run(check_content, *content_check)
    await ahead.run(_check_version_inventory, *inventory_check)
    script = await _locked(session, actor, script_id)
    _check_base_version(
        script,
        base_version,
        f"the rollback was asked at version {base_version}: look at what was saved since, then roll "
        "back again if you still want to",
        actor.user.id if actor.user else None,
    )
    if number == script.current_version:
        raise Conflict(f"version {number} is already the current version: there is nothing to roll back")
    unread = stored_shapes.problems(target)
    if unread:  # what it would write is what the version is read as: `[]` for its declarations
        message = f"version {number} holds settings that cannot be read ({stored_shapes.worded(unread)})"
        raise Conflict(
            f"{message}: roll back to another version, or edit the script",
            details=unreadable(unread),
        )
    current = (await get_version(session, actor, script_id, script.current_version)).version
    if _same_version(target, current):
        raise Conflict(
            f"version {number} is the same as the current version {current.number} (content, type, "
            "parameters, run settings and label): there is nothing to roll back"
        )
    checked = await ahead.answer(check_content, *content_check)
    await _check_no_shadowing(session, script_id, target.parameters, target.script_type)
    script.script_type = target.script_type
    script.content = checked.content
    script.parameters = target.parameters
    script.version = target.version_label
    shared = target.run_settings.get("inventory_id")
    if shared and await session.get(Inventory, shared) is None:
        raise Conflict(
            f"version {number} uses shared inventory {shared}, which was deleted: roll back to "
            "another version, or edit the script and choose an inventory",
            details=[{"field": "inventory_id", "message": "deleted"}],
        )
    await ahead.answer(_check_version_inventory, *inventory_check)
    for key in RUN_SETTINGS:
        if key in target.run_settings:
            setattr(script, key, target.run_settings[key])
    script.inventory_id = shared  # versions from before shared inventories had none
    script.current_version += 1
    script.updated_by = actor.user_id
    script.updated_at = utcnow()
    session.add(_snapshot(script, actor, change_note or f"rollback to version {number}"))
    await conflicts.flush(session)
    audit.record(
        session,
        actor,
        "script.rollback",
        "script",
        script_id,
        to_version=number,
        version=script.current_version,
    )
    _audit_findings(session, actor, script, checked.checks.findings)
    broken = await stored_values.broken_by(session, script)
    await session.commit()
    saved = checked.saved(script)
    return replace(saved, notices=[*saved.notices, *broken])


async def _stop_triggers(session: AsyncSession, actor: Actor, script_id: int) -> None:
    """Pause the enabled schedules of deleted script `script_id` and disable the enabled links of
    other scripts that start it, each audited in the deleter's name with the reason
    (`schedule.paused`, `chain_link.update`), as its webhooks' deletions are: they were changed
    with no event, so the audit log of a link or schedule that stopped said nothing of why.
    The script's row is held (`_locked`): a link or schedule saved meanwhile waits for it."""
    paused = (
        await session.exec(
            select(Schedule.id).where(col(Schedule.script_id) == script_id, col(Schedule.enabled))
        )
    ).all()
    if paused:
        await session.exec(
            sql_update(Schedule)
            .where(col(Schedule.id).in_(paused))
            .values(enabled=False, next_fire_at=None, paused_reason=f"paused: {SCRIPT_DELETED}")
        )
    for schedule_id in paused:
        audit.record(
            session,
            actor,
            "schedule.paused",
            "schedule",
            schedule_id,
            script_id=script_id,
            reason=SCRIPT_DELETED,
        )
    links = (
        await session.exec(
            select(ChainLink.id, ChainLink.script_id).where(
                col(ChainLink.target_script_id) == script_id, col(ChainLink.enabled)
            )
        )
    ).all()
    if links:
        await session.exec(
            sql_update(ChainLink)
            .where(col(ChainLink.id).in_([link_id for link_id, _ in links]))
            .values(enabled=False, updated_at=utcnow())
        )
    for link_id, source_id in links:
        audit.record(
            session,
            actor,
            "chain_link.update",
            "chain_link",
            link_id,
            script_id=source_id,
            target_script_id=script_id,
            enabled=False,
            reason="its target script was deleted",
        )


async def delete(session: AsyncSession, actor: Actor, script_id: int) -> None:
    """Soft delete: hidden from the library, still readable through past executions. Its
    schedules stop (paused, saying why; the Schedules page still lists them, to delete), and so
    do the "then run" links of other scripts that start it (disabled), each audited with the
    reason (`_stop_triggers`): either fired an `error` every time ("script N not found"). Its
    webhooks are deleted (`webhook.delete`, audited with
    the reason): they could start nothing, nothing listed them, and a signed one kept its
    secret from being deleted."""
    require(actor.user, Permission.edit_scripts)
    script = await _locked(session, actor, script_id)
    script.deleted_at = utcnow()
    await _stop_triggers(session, actor, script_id)
    hooks = (
        await session.exec(select(WebhookTrigger).where(col(WebhookTrigger.script_id) == script_id))
    ).all()
    for hook in hooks:
        await session.delete(hook)
        audit.record(
            session,
            actor,
            "webhook.delete",
            "webhook",
            hook.id,
            script_id=script_id,
            name=hook.name,
            reason=SCRIPT_DELETED,
        )
    # `script_tags` indexes live scripts only; the row keeps its `tags` for the record.
    await session.exec(sql_delete(ScriptTag).where(col(ScriptTag.script_id) == script_id))
    script.updated_by = actor.user_id
    audit.record(session, actor, "script.delete", "script", script_id, name=script.name)
    await session.commit()
