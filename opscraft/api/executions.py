"""`/api/v1/executions`: start, list, inspect, read output and cancel script runs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Query, Request, Response
from fastapi.responses import StreamingResponse

from opscraft import runtime
from opscraft.api import sse, token_watch
from opscraft.api.deps import NO_BODY, CurrentActor, Session, client_ip
from opscraft.api.executions_schemas import (
    ExecutionCreate,
    ExecutionDetailOut,
    ExecutionOut,
    ExecutionPage,
    HostSummaryOut,
    LogsOut,
    RanContentOut,
    RerunCreate,
)
from opscraft.api.schemas import AUTHED, MAX_ID, IdPath, IdQuery, Limit, Skip, error_responses
from opscraft.db.models.executions import Execution, Trigger
from opscraft.execution.ansible_recap import MAX_HOST_CHARS, MAX_HOSTS
from opscraft.services import executions, history_cursor, host_summaries, idempotency, log_text, runs, workers
from opscraft.services.actor import Actor
from opscraft.services.bodies import ISO_TEXT, ISO_UNTIL, WHOLE_TEXT
from opscraft.services.executions import MAX_LOG_PAGE, STATUS_FILTERS
from opscraft.services.host_filter import HOST_STATUSES
from opscraft.services.invisible import FilterText

router = APIRouter(prefix="/api/v1/executions", tags=["executions"])

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias=idempotency.HEADER,
        description="Optional: a key of yours (a UUID, say; 1 to 255 visible ASCII characters). The "
        "same request sent again with it within 24 hours answers the run the first one started "
        "(`Idempotent-Replayed: true`) instead of starting another; with another body, 422. "
        "docs/executions.md, *Sending a request again*.",
    ),
]
REPLAYED_HEADER = "Idempotent-Replayed"  # Stripe's name: the answer repeats an earlier request's


async def _keyed(
    request: Request,
    session: Session,
    actor: Actor,
    key_header: str | None,
    body: Any,
    start: Callable[[], Awaitable[Execution]],
) -> tuple[ExecutionOut, bool]:
    """The run `start` starts, or, with an `Idempotency-Key` this user sent before with the same
    request (method, path, `body`: a JSON-like value), the run that one started, without starting
    another (`services.idempotency.once`); and whether it is that earlier one's."""
    key = idempotency.read_key(key_header)
    if key is None or actor.user_id is None:
        return ExecutionOut.of(await start()), False
    started: list[Execution] = []

    async def run() -> int:
        started.append(await start())
        return started[0].id

    request_print = idempotency.fingerprint(request.method, request.scope["path"], body)
    outcome = await idempotency.once(runtime.current().db, actor.user_id, key, request_print, run)
    if started:
        return ExecutionOut.of(started[0]), False
    return ExecutionOut.of(await executions.get(session, actor, outcome.execution_id)), True


@router.post(
    "",
    response_model=ExecutionOut,
    status_code=202,
    summary="Run a script: queued at once; follow it over the WebSocket",
    responses=error_responses(*AUTHED, 400, 404, 409),
)
async def create_execution(
    body: ExecutionCreate,
    session: Session,
    actor: CurrentActor,
    request: Request,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> ExecutionOut:
    """Needs execute_scripts (every role). The script must be active (409 otherwise);
    the parameters are checked against its declarations (422 naming each). A Terraform `destroy`
    needs `confirm_destroy` and an operator or admin (403). A script with an approval policy
    answers `awaiting_approval` instead of `queued`, and a run a worker of this process took in
    its submission (SQLite, a free consumer thread) `running`. 409 also when no runner can take it (Docker
    unreachable, local runner disabled, no worker). Audited as `execution.create`. With an
    `Idempotency-Key` sent before with the same body, the run that request started
    (`Idempotent-Replayed: true`); 422 with another body, 409 while that request is still
    starting it, 400 for a malformed key."""
    created, replayed = await _create_keyed(request, session, actor, idempotency_key, body)
    if replayed:
        response.headers[REPLAYED_HEADER] = "true"
    return created


@router.post(
    "/stream",
    response_class=StreamingResponse,
    status_code=200,
    summary="Run a script and follow it in this answer (Server-Sent Events)",
    description="Needs execute_scripts (every role). The body, the rules and the refusals of "
    "`POST /api/v1/executions` (406 when the request does not accept `text/event-stream`: no run "
    "is started); the answer is "
    "an event stream: `execution` (the run as created), then the WebSocket's `status`, `log` and "
    "`end` messages as they happen (stored output first, no gap, no duplicate), ending after `end`; "
    "`error` (401) when the token stops authenticating meanwhile, (503) when the server stops. "
    "Leaving ends the stream, not the run. Format and examples: docs/executions.md.",
    responses={
        200: {
            "description": "The run's events, as they happen",
            "content": {sse.MEDIA_TYPE: {"schema": {"type": "string"}}},
        },
        **error_responses(*AUTHED, 400, 404, 406, 409),
    },
)
async def create_execution_stream(
    body: ExecutionCreate,
    session: Session,
    actor: CurrentActor,
    request: Request,
    idempotency_key: IdempotencyKey = None,
) -> sse.EventStreamResponse:
    """Start a run like POST /executions, then stream its events as Server-Sent Events.

    Raises HTTPException 406 (before starting any run) when the request does not accept
    text/event-stream. The request's database session is closed before streaming so a long run holds
    no connection.
    """
    if not sse.accepts_event_stream(request.headers.get("accept")):
        raise HTTPException(
            406,
            f"this answer is an event stream ({sse.MEDIA_TYPE}): accept it, or start the run "
            "with POST /api/v1/executions for a JSON answer; no run was started",
        )
    created, replayed = await _create_keyed(request, session, actor, idempotency_key, body)
    # The answer may last hours: give the request's database connection back now, not at its end.
    await session.close()
    events = executions.follow(actor, created.id)
    stream = sse.run_stream(
        created.model_dump(mode="json"), events, token_watch.bearer(request.headers), client_ip(request)
    )
    headers = {**sse.HEADERS, REPLAYED_HEADER: "true"} if replayed else sse.HEADERS
    return sse.EventStreamResponse(stream, headers=headers)


@router.get("/stream", include_in_schema=False)
async def stream_is_post_only() -> None:
    """`GET /stream` is `405` naming the method to use, as `PUT`, `DELETE` or `HEAD` are:
    without this route `GET /{execution_id}` took it and answered `422` "execution_id: must be a
    whole number". A browser's `EventSource` sends GET: the detail says what to do instead."""
    raise HTTPException(
        405,
        "the event stream is started with POST /api/v1/executions/stream and the run's JSON body "
        "(EventSource sends GET: read the answer with fetch, or follow the run over the WebSocket)",
        headers={"Allow": "POST"},
    )


async def _create_keyed(
    request: Request, session: Session, actor: Actor, key_header: str | None, body: ExecutionCreate
) -> tuple[ExecutionOut, bool]:
    """`_create` under the request's `Idempotency-Key` (`_keyed`): the run, and whether it is the
    one an earlier request with that key and body started (POST /executions and its stream)."""
    sent = body.model_dump(mode="json")
    return await _keyed(request, session, actor, key_header, sent, lambda: _create(body, session, actor))


async def _create(body: ExecutionCreate, session: Session, actor: CurrentActor) -> Execution:
    """A run of `body` (every rule of `executions.create`)."""
    return await executions.create(
        session,
        actor,
        body.script_id,
        body.parameters,
        body.terraform_action,
        terraform_workspace=body.terraform_workspace,
        runner=body.runner,
        run_options=body.run_options.model_dump(exclude_defaults=True) if body.run_options else None,
        confirm_destroy=body.confirm_destroy,
        script_field="script_id",
    )


@router.get(
    "",
    response_model=ExecutionPage,
    summary="List executions, newest first (`total` is counted up to 10,000: see `total_capped`)",
    description="Needs view_scripts (every role: every user's runs). Filters combine with AND: "
    "`script_id`, `status`, `user_id` (who started it), `trigger`, `since` and `until` (queued at; "
    "ISO 8601, a day alone is that whole UTC day; 422 naming the field for a `since` after `until`), "
    "`host` (the Ansible runs whose per-host summary lists that inventory host) and `host_status` "
    "(with `host`: the runs where it failed, was unreachable, changed something, or was ok). "
    "Page with `skip` and `limit`, or with `cursor`: pass back the previous page's "
    "`next_cursor` (keyset paging: every page costs the same at any depth, and runs started "
    "between two pages neither shift nor repeat the later ones), or its `prev_cursor` to go back "
    "to newer runs. `next_cursor` is null on the last page, `prev_cursor` on the newest. An "
    "invalid cursor, or a cursor with a non-zero `skip`, is refused with 422.",
    responses=error_responses(*AUTHED),
)
async def list_executions(
    session: Session,
    actor: CurrentActor,
    script_id: IdQuery = None,
    status: Annotated[
        FilterText | None,
        Query(
            max_length=16,
            description="queued (or the seed's `pending`), running, success, failed, ...",
            json_schema_extra={"enum": STATUS_FILTERS},
        ),
    ] = None,
    user_id: IdQuery = None,
    since: Annotated[datetime | None, Query(description="Queued at or after (ISO 8601)"), ISO_TEXT] = None,
    until: Annotated[
        datetime | None,
        Query(description="Queued at or before (ISO 8601; a day alone: that whole day)"),
        ISO_UNTIL,
    ] = None,
    trigger: Annotated[
        FilterText | None,
        Query(max_length=16, description="How it started", json_schema_extra={"enum": list(Trigger)}),
    ] = None,
    host: Annotated[
        FilterText | None,
        Query(
            max_length=MAX_HOST_CHARS,
            description="An inventory host's name, exactly as the run's `host_summary` lists it "
            "(case included): the Ansible runs whose PLAY RECAP named it (a run lists at most "
            f"{MAX_HOSTS:,} hosts, failed and unreachable ones first)",
        ),
    ] = None,
    host_status: Annotated[
        str | None,
        Query(
            description="With `host`: "
            + ", ".join(f"`{name}` ({status.rule})" for name, status in HOST_STATUSES.items()),
            json_schema_extra={"enum": list(HOST_STATUSES)},
        ),
    ] = None,
    skip: Skip = 0,
    limit: Limit = 50,
    cursor: Annotated[
        str | None,
        Query(
            # Checked by the service (one message for every bad cursor); here for the schema only.
            json_schema_extra={
                "maxLength": history_cursor.MAX_CURSOR_LENGTH,
                "pattern": history_cursor.CURSOR_PATTERN,
            },
            description="Continue from a previous page: its `next_cursor` or `prev_cursor` "
            "(opaque; not with `skip`)",
        ),
    ] = None,
) -> ExecutionPage:
    """List runs, newest first, filtered and paged by offset or keyset cursor (the route description has the
    rules).
    """
    page = await executions.list_executions(
        session,
        actor,
        script_id=script_id,
        status=status,
        user_id=user_id,
        since=since,
        until=until,
        trigger=trigger,
        host=host,
        host_status=host_status,
        skip=skip,
        limit=limit,
        cursor=cursor,
    )
    return ExecutionPage(
        items=[ExecutionOut.of(e) for e in page.rows],
        total=page.total,
        total_capped=page.capped,
        skip=skip,
        limit=limit,
        next_cursor=page.next_cursor,
        prev_cursor=page.prev_cursor,
    )


@router.get(
    "/{execution_id}",
    response_model=ExecutionDetailOut,
    summary="Get an execution (with an Ansible run's per-host summary)",
    responses=error_responses(*AUTHED, 404),
)
async def get_execution(execution_id: IdPath, session: Session, actor: CurrentActor) -> ExecutionDetailOut:
    """Needs view_scripts (every role: any run, not only yours). 404 when no execution has this
    id. A finished Ansible run has `host_summary`: each host's counts from its PLAY RECAP; a
    queued one waiting for a runner no live worker offers, or for its script's limit, says so in
    `why_queued`."""
    execution = await executions.get(session, actor, execution_id)
    summary = HostSummaryOut.of(await host_summaries.of_run(session, actor, execution))
    shown = ExecutionOut.of(execution)
    shown.cancel_pending = await workers.cancel_waiting(session, execution)
    shown.why_queued = await executions.why_queued(session, actor, execution)
    return ExecutionDetailOut(**shown.model_dump(), host_summary=summary)


@router.get(
    "/{execution_id}/content",
    response_model=RanContentOut,
    summary="The exact script content the execution ran (a test run's unsaved content included)",
    responses=error_responses(*AUTHED, 404),
)
async def get_ran_content(execution_id: IdPath, session: Session, actor: CurrentActor) -> RanContentOut:
    """Needs view_scripts (every role). The script version the run used, or the stored
    content of a test run of unsaved content (`draft: true`). 404 when the execution is unknown
    or the version it ran is no longer stored."""
    execution = await executions.get(session, actor, execution_id)
    content = await executions.ran_content(session, actor, execution_id)
    return RanContentOut(
        execution_id=execution_id,
        draft=execution.draft,
        script_type=execution.script_type,
        script_version=execution.script_version,
        content=content,
    )


@router.get(
    "/{execution_id}/logs",
    response_model=LogsOut,
    summary="Stored output, in chunks ordered by `seq`",
    responses=error_responses(*AUTHED, 404),
)
async def get_logs(
    execution_id: IdPath,
    session: Session,
    actor: CurrentActor,
    offset: Annotated[
        int, Query(ge=0, le=MAX_ID, description="Return chunks with `seq` above this"), WHOLE_TEXT
    ] = 0,
    limit: Annotated[
        int, Query(ge=1, le=MAX_LOG_PAGE, description="Chunks to return at most"), WHOLE_TEXT
    ] = 500,
) -> LogsOut:
    """Needs view_scripts (every role). Chunks with `seq` above `offset`, at most `limit`
    (1-1000); pass back `next_offset` to continue. `complete` is true once the run has
    ended and nothing is left. Secret values were masked as `***` before being stored.
    404 when the execution is unknown."""
    page = await executions.read_logs(session, actor, execution_id, offset, limit)
    return LogsOut.of(execution_id, page)


@router.get(
    "/{execution_id}/output.log",
    response_class=StreamingResponse,
    summary="The whole stored output as a plain-text file (both streams, escape sequences removed)",
    responses={
        200: {"description": "The output", "content": {"text/plain": {"schema": {"type": "string"}}}},
        **error_responses(*AUTHED, 404),
    },
)
async def download_output(execution_id: IdPath, session: Session, actor: CurrentActor) -> StreamingResponse:
    """Needs view_scripts (every role). `text/plain; charset=utf-8` as an attachment, streamed;
    stdout and stderr interleaved in `seq` order, ANSI escape sequences removed, secret values
    masked as `***` as stored. 404 when the execution is unknown."""
    await executions.get(session, actor, execution_id)
    return StreamingResponse(
        log_text.plain_text(actor, execution_id),
        media_type="text/plain; charset=utf-8",
        headers=log_text.attachment(execution_id),
    )


@router.post(
    "/{execution_id}/cancel",
    dependencies=[NO_BODY],
    response_model=ExecutionOut,
    summary="Cancel: a queued run never starts, a running one is killed within two seconds",
    responses=error_responses(*AUTHED, 404, 409),
)
async def cancel_execution(execution_id: IdPath, session: Session, actor: CurrentActor) -> ExecutionOut:
    """The user who started the run, or an operator or admin (cancel_any_execution); 403
    otherwise. 404 when unknown; 409 when the run has already finished (also when it ends as the
    cancel arrives: nothing is changed or audited then). A Terraform run gets SIGINT first.
    Audited as `execution.cancel`. A running run whose worker is not answering stays `running`
    with `cancel_pending` saying why and until when (a dead worker's run ends `cancelled` within
    seconds where a worker shares its machine, at the latest once it is declared lost)."""
    execution = await executions.cancel(session, actor, execution_id)
    shown = ExecutionOut.of(execution)
    shown.cancel_pending = await workers.cancel_waiting(session, execution)
    return shown


@router.post(
    "/{execution_id}/rerun",
    response_model=ExecutionOut,
    status_code=202,
    summary="Run again: a new run of the same script with the same parameters, action and runner",
    responses=error_responses(*AUTHED, 400, 404, 409, 422),
)
async def rerun_execution(
    execution_id: IdPath,
    session: Session,
    actor: CurrentActor,
    request: Request,
    response: Response,
    body: RerunCreate | None = None,
    idempotency_key: IdempotencyKey = None,
) -> ExecutionOut:
    """Needs execute_scripts. Every rule of `POST /executions` applies again: the script
    must still be active (409), the stored parameters must fit its current declarations (422),
    a `destroy` needs `confirm_destroy` in the body again (422) and an operator or admin (403).
    A test run of unsaved content cannot be rerun (409). 404 when the execution is unknown.
    `Idempotency-Key` as for `POST /executions`."""
    confirm = body.confirm_destroy if body is not None else False
    sent = body.model_dump(mode="json") if body is not None else None
    created, replayed = await _keyed(
        request,
        session,
        actor,
        idempotency_key,
        sent,
        lambda: runs.rerun(session, actor, execution_id, confirm_destroy=confirm),
    )
    if replayed:
        response.headers[REPLAYED_HEADER] = "true"
    return created
