"""Terraform state kept by OpsCraft: the HTTP backend runs talk to, and what operators do with it.

Backend side (Terraform's "http" backend protocol: GET fetches the state, POST stores it, with
`?ID=<lock id>` while locked, DELETE purges it; LOCK and UNLOCK carry Terraform's lock info as
JSON and a taken lock answers 423 with the holder's lock info): callers are runs, authenticated
with their per-run credentials (`execution.terraform_backend`), valid only while the run is
`running`, only for its own script's workspace, and for storing or purging only in a run that
changes the state.

Operator side: list a script's states and their versions, download one (audited), roll back
to one (a new version with its content), and, for admins, break the lock a crashed run left
(audited). Every stored state is a new encrypted version (the vault, like secrets); none is
ever changed or dropped.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NoReturn

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import defer
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from opscraft import runtime
from opscraft.db import text
from opscraft.db.models import Execution, Script, TerraformState, TerraformStateVersion
from opscraft.db.models.executions import FINAL_STATUSES, ExecutionStatus
from opscraft.db.models.scripts import ScriptType
from opscraft.db.turns import take_write_turn
from opscraft.db.types import utcnow
from opscraft.execution import terraform_backend
from opscraft.security.tokens import same_secret
from opscraft.services import audit, execution_counts, invisible, keyring, paging
from opscraft.services.actor import Actor
from opscraft.services.errors import Conflict, Forbidden, Invalid, NotFound, Unauthorized
from opscraft.services.permissions import Permission, require

# What a refusal names (services/permissions.require; the routes' early check says the same).
READ_STATE = "read Terraform state"
ROLL_BACK = "roll back Terraform state"

TARGET = "terraform_state"
MAX_LOCK_INFO_BYTES = 4096
MAX_LOCK_ID = 64
MAX_LOCK_FIELD = 1024
# Terraform's lock info (`statemgr.LockInfo` in its source: every field a string); a field it
# does not send is dropped, so nothing else is stored or handed to the next run's Terraform.
LOCK_INFO_FIELDS = ("ID", "Operation", "Info", "Who", "Version", "Created", "Path")
# `terraform force-unlock` over the http backend sends UNLOCK without a body (the ID typed stays
# in Terraform): whose lock it would release is unknown, and a run may not break another's.
NO_LOCK_INFO = (
    "the lock info is missing (Terraform's force-unlock sends none): a run releases only its own "
    "lock; an admin breaks a stale one (DELETE /api/v1/scripts/{id}/terraform/states/{workspace}/lock)"
)


@dataclass(frozen=True)
class Lock:
    """A held lock: Terraform's lock info (with the holding execution in `Info`)."""

    info: dict[str, Any]


class Locked(Conflict):
    """The state is locked by someone else (HTTP 423 for Terraform, with the holder's lock info)."""

    def __init__(self, info: dict[str, Any]) -> None:
        super().__init__("the state is locked by another run")
        self.info = info


# --- the backend (runs) -----------------------------------------------------------------------


def _workspace(workspace: str) -> str:
    if not terraform_backend.WORKSPACE_RE.fullmatch(workspace):
        raise Invalid(
            "workspace must be 1-64 ASCII letters, digits, '_', '.' or '-'",
            details=[{"field": "workspace", "message": "1-64 ASCII letters, digits, '_', '.' or '-'"}],
        )
    return workspace


REQUIRED = "run credentials required (TF_HTTP_USERNAME / TF_HTTP_PASSWORD)"


def basic_credentials(header: str | None) -> tuple[str | None, str | None]:
    """(user name, password) of an `Authorization: Basic` header (RFC 7617: base64 of
    `user:password` in UTF-8), or (None, None) when no header was sent (`authenticate_run` says
    they are required). `Unauthorized` naming what to fix when one was sent in another form:
    another scheme (`Bearer`: a user's token never opens a state), or Basic credentials that are
    not base64 of UTF-8 text; never repeating the header. Those were told "run credentials
    required", as if nothing had been sent."""
    if header is None or not header.strip():
        return None, None
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        raise Unauthorized(
            "run credentials go as HTTP Basic (Authorization: Basic <base64 of "
            "TF_HTTP_USERNAME:TF_HTTP_PASSWORD>), not another scheme: a user's token never opens "
            "a Terraform state"
        )
    try:
        user, _, password = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise Unauthorized(
            "run credentials must be HTTP Basic: base64 of TF_HTTP_USERNAME:TF_HTTP_PASSWORD "
            "in UTF-8 (RFC 7617)"
        ) from None
    return user, password


async def authenticate_run(
    session: AsyncSession,
    script_id: int,
    workspace: str,
    username: str | None,
    password: str | None,
    *,
    write: bool = False,
) -> Execution:
    """The running execution whose credentials these are, for the state of `script_id` in
    `workspace` (the scope rules are execution/terraform_backend.py's).

    `Unauthorized` for missing credentials ("required") or wrong ones (a user name that names
    no run, no password, a password of another run), and for credentials issued for another
    state (another workspace or script: the password does not match); `Forbidden` when the run
    is over or past the longest run's lifetime (its credentials died with it), or when a run
    that only plans asks to store or purge the state (`write`).
    """
    execution_id = terraform_backend.execution_of(username or "")
    settings = runtime.current().settings
    if not username and not password:
        raise Unauthorized(REQUIRED)
    if execution_id is None or not password or not settings.secret_key:
        # credentials were sent: "required" sent the caller looking for a missing setting
        raise Unauthorized(
            "wrong run credentials: send the TF_HTTP_USERNAME and TF_HTTP_PASSWORD a run is given "
            "(its user name names the run)"
        )
    execution = await session.get(Execution, execution_id)
    scope = (
        terraform_backend.Scope(execution_id, script_id, _workspace(workspace), execution.started_at)
        if execution is not None and execution.started_at is not None
        else None
    )
    if scope is None or not same_secret(terraform_backend.password(settings.secret_key, scope), password):
        raise Unauthorized(
            "wrong run credentials: a run's credentials open only the state of its own script and workspace"
        )
    assert execution is not None and execution.started_at is not None
    if execution.status != ExecutionStatus.running:
        raise Forbidden("these run credentials are no longer valid: the run is over")
    lifetime = timedelta(
        seconds=terraform_backend.lifetime_seconds(
            settings.max_timeout_seconds, settings.terraform_stop_grace_seconds
        )
    )
    if utcnow() > execution.started_at + lifetime:
        raise Forbidden("these run credentials are no longer valid: they outlived the longest run")
    if execution.script_id != script_id or execution.script_type != ScriptType.terraform:
        raise Forbidden("these run credentials are for another script's state")
    if write and (execution.terraform_action or "plan") not in terraform_backend.WRITING_ACTIONS:
        raise Forbidden("a plan run reads and locks the state, it never stores or purges it")
    return execution


async def _state(
    session: AsyncSession, script_id: int, workspace: str, *, create: bool = False, change: bool = False
) -> TerraformState | None:
    """The state row of a script's workspace (None when there is none and not `create`).

    `change` (implied by `create`): the caller decides on what it reads (the lock, the current
    version) and then writes, so no other change of the state may come in between: PostgreSQL
    locks the row (`FOR UPDATE`); SQLite ignores that, so the caller first takes the write turn
    (`db.turns`). Without it, concurrent LOCKs on SQLite each read the state unlocked and were all
    answered 200."""
    where = (col(TerraformState.script_id) == script_id, col(TerraformState.workspace) == workspace)
    stmt = select(TerraformState).where(*where).with_for_update()
    if create or change:
        await take_write_turn(session, TerraformState, *where)
    state = (await session.exec(stmt)).first()
    if state is None and create:
        state = TerraformState(script_id=script_id, workspace=workspace)
        session.add(state)
        try:
            await session.flush()
        except IntegrityError:  # created at the same time by another process
            await session.rollback()
            await take_write_turn(session, TerraformState, *where)
            state = (await session.exec(stmt)).one()
    return state


async def _current(session: AsyncSession, state: TerraformState) -> TerraformStateVersion | None:
    if not state.current_version:
        return None
    return (
        await session.exec(
            select(TerraformStateVersion).where(
                col(TerraformStateVersion.state_id) == state.id,
                col(TerraformStateVersion.number) == state.current_version,
            )
        )
    ).one()


async def identity(session: AsyncSession, script_id: int, workspace: str) -> tuple[int, str, int]:
    """(serial, lineage, version number) of the current state of a script's workspace, as
    Terraform tells states apart; (0, "", 0) when there is none (never written, or deleted)."""
    state = await _state(session, script_id, _workspace(workspace), create=False)
    version = await _current(session, state) if state is not None else None
    if version is None:
        return 0, "", 0
    return version.serial or 0, version.lineage or "", version.number


async def read(session: AsyncSession, run: Execution, workspace: str) -> str | None:
    """The current state (JSON text) of the run's script in `workspace`, or None (no state yet)."""
    state = await _state(session, run.script_id, _workspace(workspace), create=False)
    version = await _current(session, state) if state is not None else None
    return keyring.reveal_state(keyring.current_vault(), version) if version is not None else None


async def _add_version(
    session: AsyncSession,
    state: TerraformState,
    text: str,
    *,
    execution_id: int | None,
    user_id: int | None,
    note: str,
) -> TerraformStateVersion:
    serial, lineage = _serial_lineage(text)
    number = int(
        (
            await session.exec(
                select(func.coalesce(func.max(TerraformStateVersion.number), 0)).where(
                    col(TerraformStateVersion.state_id) == state.id
                )
            )
        ).one()
    )
    assert state.id is not None
    version = TerraformStateVersion(
        state_id=state.id,
        number=number + 1,
        serial=serial,
        lineage=lineage,
        size_bytes=len(text.encode()),
        sha256=hashlib.sha256(text.encode()).hexdigest(),
        execution_id=execution_id,
        created_by=user_id,
        note=note,
        ciphertext=b"",
        salt=b"",
        nonce=b"",
    )
    session.add(version)
    await session.flush()
    await keyring.require_current(session, keyring.current_vault())
    keyring.seal_state(keyring.current_vault(), version, text)
    state.current_version = version.number
    state.updated_at = utcnow()
    return version


def _not_a_number(name: str) -> NoReturn:
    raise Invalid(
        f"the state is not valid JSON: {name} is not a JSON number (RFC 8259), "
        "and Terraform could not read it back"
    )


def _finite(literal: str) -> float:
    value = float(literal)
    if math.isinf(value):
        raise Invalid(
            f"the state is not valid JSON for Terraform: the number {literal[:32]} is beyond "
            "a double (it reads as Infinity)"
        )
    return value


def _serial_lineage(text: str) -> tuple[int | None, str | None]:
    """(serial, lineage) of a state a run POSTs. `Invalid` (422) for anything the next run's
    Terraform could not read back: no JSON object, or NaN, Infinity or a number beyond a double,
    which Python's parser takes and Go's (Terraform's) refuses."""
    try:
        data = json.loads(text, parse_constant=_not_a_number, parse_float=_finite)
    except (ValueError, RecursionError):
        raise Invalid("the state is not valid JSON") from None
    if not isinstance(data, dict):
        raise Invalid("the state must be a JSON object")
    _check_state_fields(data)
    serial = data.get("serial")
    lineage = data.get("lineage")
    return (
        serial if isinstance(serial, int) and 0 <= serial < 2**31 else None,
        lineage[:64] if isinstance(lineage, str) else None,
    )


_STATE_FIELDS: dict[str, tuple[tuple[type, ...], str]] = {
    "terraform_version": ((str,), "a string"),
    "lineage": ((str,), "a string"),
    "outputs": ((dict,), "a JSON object"),
    "resources": ((list,), "a JSON array"),
    "check_results": ((list, type(None)), "a JSON array or null"),
}
"""The top-level fields of a state (format version 4, what Terraform 0.12 to 1.11 write) whose
JSON type Terraform's reader checks (`statefile.readStateV4`: "The state file field ... has
invalid value ..."), with the type it takes. `version` and `serial` are whole numbers."""


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_state_fields(data: dict[str, Any]) -> None:
    """`Invalid` (422) for a state object Terraform's reader refuses, as it says it ("Unsupported
    state file format", "Invalid state file format"): no `version`, or one that is no whole
    number; a `serial` that is no whole number of at least 0; a field of `_STATE_FIELDS` of
    another JSON type (those of format 4 only: older formats are laid out otherwise, and
    Terraform upgrades them). Such a body was stored as the current state, and every later run
    of the script failed reading it (checked against Terraform 1.11's reader)."""
    said = "and Terraform could not read it back"
    version = data.get("version")
    if "version" not in data or not _whole(version):
        found = "it has none" if "version" not in data else f"it is {_json_type(version)}"
        raise Invalid(f'the state\'s "version" must be a whole number ({found}), {said}')
    if "serial" in data and not _whole(data["serial"]):
        found = _json_type(data["serial"])
        raise Invalid(f'the state\'s "serial" must be a whole number of at least 0 (it is {found}), {said}')
    for field, (types, wanted) in _STATE_FIELDS.items() if version == 4 else ():
        if field in data and not isinstance(data[field], types):
            raise Invalid(
                f'the state\'s "{field}" must be {wanted} (it is {_json_type(data[field])}), {said}'
            )


def _json_type(value: Any) -> str:
    """How a JSON value's type is named in a refusal: "a JSON string", "the number -1", "null"."""
    if value is None:
        return "null"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"the number {value!r}"
    return "a JSON " + ("string" if isinstance(value, str) else _JSON_TYPES[type(value)])


def _audit_by_run(
    session: AsyncSession, action: str, state: TerraformState, run: Execution, workspace: str, **details: Any
) -> None:
    """Audit a backend change of `state` by `run` (named as its backend user, `run-<id>`)."""
    assert run.id is not None  # a run the backend authenticated
    audit.record(
        session,
        Actor(None),
        action,
        TARGET,
        state.id,
        actor_name=terraform_backend.username(run.id),
        script_id=run.script_id,
        workspace=workspace,
        execution_id=run.id,
        **details,
    )


async def write(session: AsyncSession, run: Execution, workspace: str, text: str, lock_id: str | None) -> int:
    """Store `text` as the next version; the run must hold the lock when the state is locked
    (`Locked` otherwise, also for another run sending the holder's ID: `_holds`); `Invalid`
    naming `ID` for a malformed `lock_id` (`check_lock_id`). Returns the version number."""
    lock_id = check_lock_id(lock_id)
    state = await _state(session, run.script_id, _workspace(workspace), create=True)
    assert state is not None and run.id is not None
    if state.lock_id is not None and not _holds(state, run, lock_id):
        raise Locked(state.lock_info or {})
    version = await _add_version(session, state, text, execution_id=run.id, user_id=None, note="")
    _audit_by_run(session, "terraform.state_write", state, run, workspace, version=version.number)
    await session.commit()
    return version.number


async def purge(session: AsyncSession, run: Execution, workspace: str, lock_id: str | None) -> None:
    """Terraform's DELETE: the state becomes empty; its versions are kept. Audited as
    `terraform.state_purge` (by the run, with the version that was current), like a write. `Invalid`
    naming `ID` for a malformed `lock_id`; `Locked` as `write`."""
    lock_id = check_lock_id(lock_id)
    state = await _state(session, run.script_id, _workspace(workspace), change=True)
    if state is None:
        return
    if state.lock_id is not None and not _holds(state, run, lock_id):
        raise Locked(state.lock_info or {})
    emptied = state.current_version
    state.current_version = 0
    state.updated_at = utcnow()
    _audit_by_run(session, "terraform.state_purge", state, run, workspace, previous_version=emptied)
    await session.commit()


async def recover(session: AsyncSession, execution_id: int, content: bytes) -> str:
    """Keep the state the ended run `execution_id` (an apply, destroy or apply of a saved plan)
    could not store, which Terraform wrote to `errored.tfstate` in the run's work directory
    ("Failed to persist state to backend ... To allow for recovery"): the state was over
    `OPSCRAFT_MAX_STATE_BYTES` (413), the server did not answer, the run's credentials ended.
    The work directory is thrown away with the run, so the resources the run made or destroyed
    were in no state any more: the next plan did not know them.

    The text is kept as a new version (noted "errored.tfstate of execution N", audited as
    `terraform.state_recover`), the current one when it follows the current state as `terraform
    state push` requires (no state yet, or the same lineage and a higher serial) and no other run
    in progress holds the lock (one that took it once this run released it read the state
    before); otherwise a version that is not current, to roll back to. Returns the sentence the
    run's error message ends with. `content` is `terraform_plan.TOO_LARGE` (empty) when it was
    too large to read back; a text that is no state is said, not kept."""
    lost = f"Terraform could not store the state, and its {terraform_backend.ERRORED_STATE}"
    run = await session.get(Execution, execution_id)
    if run is None or not content:
        return f"{lost} is lost: it is over the size the worker reads back"
    try:
        text = content.decode()
        serial, lineage = _serial_lineage(text)
    except (UnicodeDecodeError, Invalid) as exc:
        return f"{lost} was not kept: it is not a Terraform state ({exc})"
    workspace = run.terraform_workspace or terraform_backend.DEFAULT_WORKSPACE
    state = await _state(session, run.script_id, workspace, create=True)
    assert state is not None
    current = await _current(session, state)
    follows = current is None or (
        lineage == current.lineage and serial is not None and serial > (current.serial or 0)
    )
    held = (
        state.lock_id is not None
        and state.locked_by_execution != run.id
        and not await _holder_over(session, state)
    )
    previous = state.current_version
    note = f"{terraform_backend.ERRORED_STATE} of execution {execution_id}"
    version = await _add_version(session, state, text, execution_id=execution_id, user_id=None, note=note)
    made_current = follows and not held
    if not made_current:
        state.current_version = previous
    _audit_by_run(
        session,
        "terraform.state_recover",
        state,
        run,
        workspace,
        version=version.number,
        current=made_current,
    )
    await session.commit()
    kept = (
        f"OpsCraft kept the state it wrote to {terraform_backend.ERRORED_STATE} as version {version.number}"
    )
    if made_current:
        return f"Terraform could not store the state; {kept}, now the current state"
    why = (
        f"execution {state.locked_by_execution} holds the state's lock"
        if held
        else "the current state is not the one it follows (another lineage, or a serial as high)"
    )
    return (
        f"Terraform could not store the state; {kept}, not made current because {why}: "
        "compare it with the current state and roll back to it if it is the right one"
    )


def check_lock_id(value: str | None) -> str | None:
    """The lock ID Terraform sends as `?ID=` while it holds the lock (None: no lock held).

    Raises `Invalid` (422 naming `ID`, an error to Terraform's protocol) for an ID no lock can
    have: not 1-64 characters, or a control, invisible or bidi control character, or text the
    databases cannot store (NUL, a lone surrogate). Terraform's own IDs are UUIDs; one typed for
    `terraform force-unlock` is checked the same way."""
    if value is None:
        return None
    problem = (
        f"must be 1-{MAX_LOCK_ID} characters (it has {len(value)})"
        if not 0 < len(value) <= MAX_LOCK_ID
        else text.problem(value) or invisible.name_problem(value)
    )
    if problem:
        raise Invalid.at("ID", problem)
    return value


def _lock_field(field: str, value: Any) -> str | None:
    if value is None and field != "ID":
        return None
    if not isinstance(value, str):
        kind = (
            "missing"
            if value is None
            else f"{value.name}, which is not JSON"
            if isinstance(value, _NotJson)
            else f"a JSON {_JSON_TYPES.get(type(value), 'value')}"
        )
        raise Invalid.at(field, f"must be a string (it is {kind}), as Terraform's lock info has it")
    if field == "ID":
        return check_lock_id(value)
    problem = (
        f"must be at most {MAX_LOCK_FIELD} characters (it has {len(value)})"
        if len(value) > MAX_LOCK_FIELD
        else text.problem(value) or invisible.name_problem(value or "-")
    )
    if problem:
        raise Invalid.at(field, problem)
    return value


_JSON_TYPES = {bool: "boolean", int: "number", float: "number", list: "array", dict: "object"}


@dataclass(frozen=True)
class _NotJson:
    """Where a body had `NaN`, `Infinity` or `-Infinity` (Python's parser takes them)."""

    name: str


def _lock_info(body: bytes) -> dict[str, Any]:
    """The lock info of a LOCK or UNLOCK body: Terraform's fields (`LOCK_INFO_FIELDS`), each a
    string; `Invalid` naming the field otherwise (`body` when it is no JSON object). NaN and
    Infinity, which are not JSON (RFC 8259), are refused under the field holding them."""
    if not body.strip():
        raise Invalid.at("body", NO_LOCK_INFO)
    if len(body) > MAX_LOCK_INFO_BYTES:
        raise Invalid.at("body", f"lock info must be at most {MAX_LOCK_INFO_BYTES} bytes")
    try:
        info = json.loads(body, parse_constant=_NotJson)
    except (ValueError, RecursionError):
        raise Invalid.at("body", "lock info must be a JSON object (Terraform's lock info)") from None
    if not isinstance(info, dict):
        raise Invalid.at("body", f"lock info must be a JSON object, not a JSON {type(info).__name__}")
    checked = {field: _lock_field(field, info.get(field)) for field in LOCK_INFO_FIELDS}
    return {field: value for field, value in checked.items() if value is not None}


async def lock(session: AsyncSession, run: Execution, workspace: str, body: bytes) -> dict[str, Any]:
    """Take the lock for the run (again under the same ID: idempotent); `Locked` (with the holder's
    info) when another run in progress holds it, whatever ID is sent. The lock of a run that is
    over (cancelled, timed out: killed before Terraform could release it) is taken over, audited
    as `terraform.lock_release`."""
    info = _lock_info(body)
    state = await _state(session, run.script_id, _workspace(workspace), create=True)
    assert state is not None
    if state.lock_id is not None:
        if _holds(state, run, info["ID"]):
            return state.lock_info or info
        if not await _holder_over(session, state):
            raise Locked(state.lock_info or {})
        audit.record(
            session,
            Actor(None),
            "terraform.lock_release",
            TARGET,
            state.id,
            actor_name=terraform_backend.username(run.id or 0),
            script_id=run.script_id,
            workspace=workspace,
            execution_id=state.locked_by_execution,
            lock_id=state.lock_id,
            reason="the run holding the lock is over",
        )
    info["Info"] = f"OpsCraft execution {run.id} ({run.script_name})"
    state.lock_id, state.lock_info = info["ID"], info
    state.locked_by_execution, state.locked_at = run.id, utcnow()
    await session.commit()
    return info


async def unlock(session: AsyncSession, run: Execution, workspace: str, body: bytes) -> None:
    """Release the lock the run holds: `Locked` (with the holder's info) when it is another run's,
    even one whose ID `body` repeats (`_holds`)."""
    info = _lock_info(body)
    state = await _state(session, run.script_id, _workspace(workspace), change=True)
    if state is None or state.lock_id is None:
        return
    if not _holds(state, run, info["ID"]):
        raise Locked(state.lock_info or {})
    _release(state)
    await session.commit()


async def _holder_over(session: AsyncSession, state: TerraformState) -> bool:
    """Whether the lock's holder is a run that is over (cancelled, timed out, failed, lost...):
    its credentials died with it, so it can never store the state nor release the lock, and
    the lock only blocks the script's next runs. A holder still `running` (or unknown) keeps it."""
    if state.locked_by_execution is None:
        return False
    holder = await session.get(Execution, state.locked_by_execution)
    return holder is not None and holder.status in FINAL_STATUSES


def _holds(state: TerraformState, run: Execution, lock_id: str | None) -> bool:
    """Whether `run` holds the state's lock under `lock_id`. The ID alone proves nothing: the 423
    answer hands the holder's lock info, ID included, to every run that asks for the lock (as
    Terraform's protocol wants), and the states list shows it; a lock is the run's that took it."""
    return state.lock_id is not None and state.lock_id == lock_id and state.locked_by_execution == run.id


def _release(state: TerraformState) -> None:
    state.lock_id = state.lock_info = state.locked_by_execution = state.locked_at = None


# --- operators ----------------------------------------------------------------------------------


async def _script(session: AsyncSession, actor: Actor, script_id: int) -> Script:
    """The script (not deleted), whatever its type now: a script changed from Terraform to
    another type keeps its states readable (listed, downloaded, rolled back), not hidden until
    its type is changed back."""
    script = await session.get(Script, script_id)
    if script is None or script.deleted_at is not None:
        raise NotFound.gone("script")
    return script


@dataclass(frozen=True)
class StateView:
    """A state with its lock as it stands. `lock_ended`: the run holding the lock is over (killed
    or timed out before Terraform could release it), so the lock blocks nothing: the script's
    next run takes it over (`lock`), an admin may break it."""

    state: TerraformState
    lock_ended: bool


async def _views(session: AsyncSession, states: list[TerraformState]) -> list[StateView]:
    """`states` as `StateView`s, with one query for the runs holding their locks."""
    holders = {s.locked_by_execution for s in states if s.lock_id is not None} - {None}
    ended: set[int] = set()
    if holders:
        rows = await session.exec(
            select(Execution.id).where(col(Execution.id).in_(holders), execution_counts.finished())
        )
        ended = {i for i in rows.all() if i is not None}
    return [StateView(s, s.lock_id is not None and s.locked_by_execution in ended) for s in states]


async def list_states(
    session: AsyncSession, actor: Actor, script_id: int, *, skip: int = 0, limit: int = paging.DEFAULT_PAGE
) -> tuple[list[StateView], int]:
    """A page (`paging.page`) of the script's states (one per workspace, by workspace name), with
    their locks, and how many there are; `NotFound` for a script that is not a Terraform script
    and has no state."""
    require(actor.user, Permission.edit_scripts, READ_STATE)
    script = await _script(session, actor, script_id)
    query = (
        select(TerraformState)
        .where(col(TerraformState.script_id) == script_id)
        .order_by(col(TerraformState.workspace), col(TerraformState.id))
    )
    rows, total = await paging.page(session, query, skip, limit)
    if not total and script.script_type != ScriptType.terraform:
        raise NotFound("this script is not a Terraform script: it has no state")
    return await _views(session, rows), total


async def _existing(
    session: AsyncSession, actor: Actor, script_id: int, workspace: str, *, change: bool = False
) -> TerraformState:
    """The state of a script's workspace (`NotFound` when none); `change`: as `_state`'s."""
    await _script(session, actor, script_id)
    state = await _state(session, script_id, _workspace(workspace), change=change)
    if state is None:
        raise NotFound(f"this script has no state in the workspace {workspace!r}")
    return state


async def list_versions(
    session: AsyncSession, actor: Actor, script_id: int, workspace: str, *, skip: int = 0, limit: int = 50
) -> tuple[StateView, list[TerraformStateVersion], int]:
    """A state, one page of its versions, newest first (metadata only: the encrypted content is
    not loaded), and how many versions it has. Every write of a run is a version (Terraform also
    writes during a long apply), so a state applied for years has thousands: a page, not all."""
    require(actor.user, Permission.edit_scripts, READ_STATE)
    state = await _existing(session, actor, script_id, workspace)
    where = col(TerraformStateVersion.state_id) == state.id
    total = (await session.exec(select(func.count()).select_from(TerraformStateVersion).where(where))).one()
    rows = await session.exec(
        select(TerraformStateVersion)
        .options(defer(TerraformStateVersion.ciphertext))  # type: ignore[arg-type]
        .where(where)
        .order_by(col(TerraformStateVersion.number).desc())
        .offset(skip)
        .limit(limit)
    )
    return (await _views(session, [state]))[0], list(rows.all()), int(total)


async def _version(session: AsyncSession, state: TerraformState, number: int) -> TerraformStateVersion:
    version = (
        await session.exec(
            select(TerraformStateVersion).where(
                col(TerraformStateVersion.state_id) == state.id, col(TerraformStateVersion.number) == number
            )
        )
    ).first()
    if version is None:
        raise NotFound.gone("state version")
    return version


async def download(session: AsyncSession, actor: Actor, script_id: int, workspace: str, number: int) -> str:
    """The plaintext of one version (it may hold secrets: operators only, audited)."""
    require(actor.user, Permission.edit_scripts, READ_STATE)
    state = await _existing(session, actor, script_id, workspace)
    version = await _version(session, state, number)
    text = keyring.reveal_state(keyring.current_vault(), version)
    audit.record(
        session, actor, "terraform.state_download", TARGET, state.id, script_id=script_id, version=number
    )
    await session.commit()
    return text


async def rollback(session: AsyncSession, actor: Actor, script_id: int, workspace: str, number: int) -> int:
    """Make version `number`'s content current again as a new version; returns its number.

    `Conflict` (409) while a run in progress holds the lock, and when there is nothing to roll back: the
    version is the current one, or has the current one's content (serial aside, which a rollback
    raises anyway). `NotFound` for an unknown script, workspace or version."""
    require(actor.user, Permission.edit_scripts, ROLL_BACK)
    state = await _existing(session, actor, script_id, workspace, change=True)
    if state.lock_id is not None and not await _holder_over(session, state):
        raise Conflict(
            f"the state is locked by execution {state.locked_by_execution}: wait for it to end, "
            "or have an admin break the lock"
        )
    target = await _version(session, state, number)
    if number == state.current_version:
        raise Conflict(f"version {number} is already the current state: there is nothing to roll back")
    vault = keyring.current_vault()
    text = keyring.reveal_state(vault, target)
    current = await _current(session, state)
    if current is not None and _same_content(text, keyring.reveal_state(vault, current)):
        raise Conflict(
            f"version {number} has the same content as the current version {current.number}: there "
            "is nothing to roll back"
        )
    highest = (
        await session.exec(
            select(func.max(TerraformStateVersion.serial)).where(
                col(TerraformStateVersion.state_id) == state.id
            )
        )
    ).one()
    version = await _add_version(
        session,
        state,
        _with_serial(text, (highest or 0) + 1),
        execution_id=None,
        user_id=actor.user_id,
        note=f"rollback to {number}",
    )
    audit.record(
        session,
        actor,
        "terraform.state_rollback",
        TARGET,
        state.id,
        script_id=script_id,
        workspace=workspace,
        to_version=number,
        version=version.number,
    )
    await session.commit()
    return version.number


def _same_content(first: str, second: str) -> bool:
    """Two states alike but for their serial (Terraform's counter of writes)."""
    a, b = json.loads(first), json.loads(second)
    return {**a, "serial": None} == {**b, "serial": None}


def _with_serial(text: str, serial: int) -> str:
    """The old content with `serial`, above every stored one: Terraform treats a state whose
    serial went backwards for the same lineage as older than the one it has."""
    data = json.loads(text)
    data["serial"] = serial
    return json.dumps(data, indent=2) + "\n"


async def break_lock(session: AsyncSession, actor: Actor, script_id: int, workspace: str) -> None:
    """Admin: release a lock a crashed run left (audited with the holder's lock info)."""
    require(actor.user, Permission.manage_settings)
    state = await _existing(session, actor, script_id, workspace, change=True)
    if state.lock_id is None:
        raise Conflict("the state is not locked")
    audit.record(
        session,
        actor,
        "terraform.lock_break",
        TARGET,
        state.id,
        script_id=script_id,
        workspace=workspace,
        execution_id=state.locked_by_execution,
        lock_id=state.lock_id,
    )
    _release(state)
    await session.commit()
