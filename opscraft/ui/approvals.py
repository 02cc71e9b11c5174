"""Approvals in the UI: the pending list (with the navigation badge) and the decision panel of
the run page (trail, approve/reject with a comment)."""

from __future__ import annotations

import inspect

from nicegui import ui

from opscraft import runtime
from opscraft.db.models import Execution
from opscraft.db.models.executions import ExecutionStatus
from opscraft.services import approvals
from opscraft.services.actor import Actor
from opscraft.services.permissions import Permission, can
from opscraft.ui.execution_widgets import run_title, trigger_label
from opscraft.ui.layout import NAV_BADGES, follow, frame, guard, protected_page, reread, run_action
from opscraft.ui.widgets import OneRead, Rows, call, call_all, format_time, one_click, says_limit


async def _badge_count(actor: Actor) -> int:
    async with runtime.current().db.session() as session:
        return await approvals.pending_count(session, actor)


NAV_BADGES["approvals"] = _badge_count

# The requests that ended last the Approvals page shows.
ENDED_SHOWN = 50


def _progress(approved: int, required: int) -> str:
    """ "1 of 2 approvals": the same words on the Approvals page and the run page."""
    return f"{approved} of {required} approval{'' if required == 1 else 's'}"


async def _notes(actor: Actor, execution: Execution) -> None:
    """What an approver should know first (`approvals.notes`), one line each."""
    _note_lines(execution, await call(approvals.notes, actor, execution))


def _note_lines(execution: Execution, notes: list[str]) -> None:
    for note in notes:
        ui.label(note).classes("text-caption text-deep-orange-10").props(
            f'data-testid="approval-note-{execution.id}"'
        )


def _decision_buttons(
    actor: Actor, execution: Execution, decided: bool, after: object, typed: dict[int, str] | None = None
) -> None:
    """Comment box and Approve/Reject, for someone who may decide on this run and has not yet
    (`decided`: they approved it, it waits for the others). `typed`: the comments typed so far by
    run, kept there as typed and shown again when the row is redrawn (another approval of it)."""
    if execution.triggered_by == actor.user_id or decided:
        said = (
            "You requested this run: someone else must approve it."
            if execution.triggered_by == actor.user_id
            else "You approved this run: it waits for the other approvals."
        )
        ui.label(said).classes("text-caption text-grey-7").props(f'data-testid="approval-own-{execution.id}"')
        return
    if not can(actor.user, Permission.approve_executions):
        return
    assert execution.id is not None
    execution_id = execution.id
    kept = typed if typed is not None else {}
    comment = says_limit(
        ui.input("Comment", value=kept.get(execution_id, ""))
        .props(f'outlined dense data-testid="approval-comment-{execution_id}"')
        .classes("w-72"),
        approvals.COMMENT_MAX,
    )
    comment.on_value_change(lambda event: kept.__setitem__(execution_id, event.value or ""))

    async def decide(verb: str) -> bool:
        """True once the decision is recorded (the list or page is redrawn)."""
        current = await guard(Permission.approve_executions)
        if current is None:
            return False
        func = approvals.approve if verb == "approve" else approvals.reject
        done = await run_action(
            lambda: call(func, current, execution_id, comment.value or ""),
            f"Run {verb}d",
            {"comment": comment},
        )
        if done is None:
            return False
        kept.pop(execution_id, None)
        result = after()  # type: ignore[operator]
        if inspect.isawaitable(result):
            await result
        return True

    ui.button("Approve", icon="check", on_click=one_click(lambda: decide("approve"))).props(
        f'unelevated color=positive data-testid="approve-{execution_id}"'
    )
    ui.button("Reject", icon="close", on_click=one_click(lambda: decide("reject"))).props(
        f'outline color=negative data-testid="reject-{execution_id}"'
    )


def outcome_text(p: approvals.Pending) -> str:
    """How a request ended, in words: "cancelled by alice at ...", "expired at ..."."""
    outcome, request = p.request.outcome, p.request
    if outcome is None:
        return ""
    by = f" by {p.decided_by}" if p.decided_by else ""
    when = f" at {format_time(request.decided_at)}" if request.decided_at else ""
    meaning = {"cancelled": " (the run was cancelled while it waited)"}.get(outcome, "")
    return f"{outcome.capitalize()}{by}{when}{meaning}"


async def approval_panel(actor: Actor, execution: Execution) -> None:
    """On the run page: the decision trail, how the request ended, and the decision buttons
    while the run waits."""
    assert execution.id is not None
    trail = await call_all(approvals.trail, actor, execution.id)
    request = await call(approvals.request_of, actor, execution.id)
    # The service's count (approvals of people demoted since no longer count), not the trail's.
    state = await call(approvals.state_of, actor, execution.id) if request is not None else None
    waiting = execution.status == ExecutionStatus.awaiting_approval
    if not trail and not waiting and (request is None or request.outcome is None):
        return
    with ui.card().classes("w-full gap-1").props('data-testid="approval-panel"'):
        with ui.row().classes("items-center gap-3"):
            ui.label("Awaiting approval" if waiting else "Approval").classes("text-subtitle1 font-medium")
            if state is not None:
                ui.label(_progress(state.approvals, state.request.required)).props(
                    'data-testid="approval-progress"'
                )
                if waiting:
                    ui.label(f"expires {format_time(state.request.expires_at)}").classes(
                        "text-caption text-grey-7"
                    )
        for d in trail:
            verb = "approved" if d.decision == "approve" else "rejected"
            note = f": {d.comment}" if d.comment else ""
            ui.label(f"{d.username} {verb} at {format_time(d.created_at)}{note}").props(
                f'data-testid="approval-trail-{d.username}"'
            )
        if state is not None and state.request.outcome is not None:
            ui.label(outcome_text(state)).classes("font-medium").props('data-testid="approval-outcome"')
        if waiting:
            await _notes(actor, execution)
            decided = any(d.user_id == actor.user_id for d in trail)
            with ui.row().classes("items-center gap-2"):
                _decision_buttons(actor, execution, decided, ui.navigate.reload)


@protected_page("/approvals", Permission.view_scripts, "Approvals")
async def approvals_page(actor: Actor) -> None:
    """Page /approvals (needs view_scripts): the runs waiting for approval, with approve and reject buttons
    for those who may decide, and the requests that ended last.
    """
    with frame(actor, "Approvals"):
        ui.label(
            "Runs of scripts that require approval wait here until enough other people approve. "
            "Operators and admins make a script require approval on its page: Overview, Require approval."
        ).classes("text-grey-7").props('data-testid="approvals-how"')  # the list has nothing to add

        reads = OneRead()  # the page's reads of both lists, one at a time (`follow`)
        comments: dict[int, str] = {}  # what is typed in each row's comment: a redrawn row keeps it
        Listed = list[tuple[approvals.Pending, list[str]]]
        Read = tuple[Listed, list[approvals.Pending]]

        async def read(reader: Actor) -> Read:
            """The waiting runs, each with what an approver should know first (`_notes`), and the
            `ENDED_SHOWN` requests that ended last (`approvals.ended`)."""
            rows = await call_all(approvals.pending, reader)
            listed = [(p, await call(approvals.notes, reader, p.execution)) for p in rows]
            return listed, (await call(approvals.ended, reader, limit=ENDED_SHOWN))[0]

        def draw(listed: tuple[approvals.Pending, list[str]]) -> None:
            p, notes = listed
            e = p.execution
            with ui.card().classes("w-full gap-1").props(f'data-testid="pending-{e.id}"'):
                with ui.row().classes("items-center gap-3 w-full"):
                    ui.link(f"Run #{e.id}: {run_title(e)}", f"/executions/{e.id}").classes("oc-wrap min-w-0")
                    # how it started in the history's words (`web UI`, `API token`), not `api_token`
                    ui.label(f"requested by {e.triggered_by_name or '?'} ({trigger_label(e)})").classes(
                        "text-caption"
                    )
                    ui.label(_progress(p.approvals, p.request.required)).classes("text-caption")
                    expires = f"expires {format_time(p.request.expires_at)}"
                    ui.label(expires).classes("text-caption text-grey-7")
                _note_lines(e, notes)
                with ui.row().classes("items-center gap-2"):
                    _decision_buttons(actor, e, p.decided, update, comments)

        def picture(listed: tuple[approvals.Pending, list[str]]) -> object:
            p, notes = listed
            e = p.execution
            shown = (e.id, run_title(e), e.triggered_by_name, e.trigger, p.request.expires_at)
            return (*shown, p.approvals, p.request.required, p.decided, tuple(notes))

        def show(value: Read) -> None:
            body.show(value[0])
            ended.show(value[1])

        async def update() -> None:
            await reread(read, show, reads=reads)

        first: Read = await run_action(lambda: read(actor)) or ([], [])
        body = Rows(
            draw,
            first[0],
            key=lambda listed: listed[0].execution.id,
            picture=picture,
            empty=("Nothing is waiting for approval.", "approvals-empty"),
        )
        ui.label("Ended recently").classes("text-subtitle1 font-medium mt-4")
        with ui.column().classes("w-full gap-1").props('data-testid="approvals-ended"'):
            ended = Rows(
                _ended_row,
                first[1],
                key=lambda p: p.execution.id,
                picture=_ended_picture,
                empty=("No request has ended yet.", "approvals-ended-empty"),
            )
        # One timer follows both lists (each `Rows` redraws only the rows that changed).
        follow(read, show, reads=reads)


def _ended_row(p: approvals.Pending) -> None:
    """A request that ended (`approvals.ended`), with its outcome."""
    e = p.execution
    with ui.row().classes("items-center gap-3").props(f'data-testid="ended-{e.id}"'):
        ui.link(f"Run #{e.id}: {run_title(e)}", f"/executions/{e.id}").classes("oc-wrap min-w-0")
        ui.label(f"requested by {e.triggered_by_name or '?'}").classes("text-caption")
        ui.label(outcome_text(p)).classes("text-caption").props(f'data-testid="ended-outcome-{e.id}"')


def _ended_picture(p: approvals.Pending) -> object:
    return (run_title(p.execution), p.execution.triggered_by_name, outcome_text(p))
