"""One execution: live output, status, timings, parameters, cancel; and its log download route."""

from __future__ import annotations

from datetime import datetime

from fastapi import Response
from fastapi.responses import PlainTextResponse, RedirectResponse, StreamingResponse
from nicegui import Client, app, background_tasks, ui

from opscraft.db.models import Execution, ExecutionHostSummary
from opscraft.db.models.executions import FINAL_STATUSES, ExecutionStatus
from opscraft.execution import ansible_options, terraform_plan
from opscraft.execution.events import LogEvent
from opscraft.services import executions, host_summaries, log_text, runs, shared_inventories, workers
from opscraft.services.actor import Actor
from opscraft.services.errors import ServiceError
from opscraft.services.permissions import Permission, can
from opscraft.ui import execute_dialog, session
from opscraft.ui.approvals import approval_panel
from opscraft.ui.chains import chain_panel
from opscraft.ui.execution_widgets import (
    STATUS_LABELS,
    banner,
    elapsed,
    format_duration,
    name_value_grid,
    parameter_text,
    status_badge,
    trigger_label,
)
from opscraft.ui.host_summary import host_summary
from opscraft.ui.inventory_versions import version_url
from opscraft.ui.layout import frame, guard, notify_error, notify_ok, protected_page, run_action
from opscraft.ui.not_found import missing
from opscraft.ui.plain_words import without_internal_names
from opscraft.ui.script_widgets import LANGUAGES
from opscraft.ui.terminal import MAX_LINE_CHARS, SCROLLBACK_LINES, LiveTerminal
from opscraft.ui.terraform_panel import TerraformPanel
from opscraft.ui.widgets import (
    call,
    close_then,
    code_block,
    dialog_title,
    live_seconds,
    live_timer,
    one_click,
    opens_dialog,
    stored_note,
)

SESSION_RECHECK_SECONDS = 15.0


def _fact(label: str, value: str, testid: str) -> ui.label:
    with ui.column().classes("gap-0 min-w-32"):
        ui.label(label).classes("text-caption text-grey-7 uppercase tracking-wide")
        return ui.label(value).classes("text-body1 font-medium").props(f'data-testid="{testid}"')


def _link_fact(label: str, text: str, url: str, testid: str) -> ui.link:
    """A fact whose value links to what it names (`_fact`'s look)."""
    with ui.column().classes("gap-0 min-w-32"):
        ui.label(label).classes("text-caption text-grey-7 uppercase tracking-wide")
        return ui.link(text, url).classes("text-body1 font-medium").props(f'data-testid="{testid}"')


def _moment(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "—"


def _size(count: int) -> str:
    if count < 1024:
        return f"{count} B"
    if count < 1024 * 1024:
        return f"{count / 1024:.1f} KiB"
    return f"{count / (1024 * 1024):.1f} MiB"


def _output_tools(terminal: LiveTerminal, autoscroll: ui.switch) -> None:
    """Timestamps toggle, search with previous/next, and a link to the selected line (`#L<n>`)."""
    ui.switch("Timestamps (UTC)", on_change=lambda e: terminal.set_timestamps(e.value)).props(
        'dense data-testid="timestamps"'
    )
    with ui.row().classes("items-center gap-1 flex-nowrap"):
        query = (
            ui.input(placeholder="Search the output")
            .props('outlined dense clearable aria-label="Search the output" data-testid="output-search"')
            .classes("w-44")
        )
        found = (
            ui.label()
            .classes("text-caption text-grey-7 min-w-16")
            .props('aria-live="polite" data-testid="search-result"')
        )

        async def search(step: int) -> None:
            needle = query.value or ""
            if not needle:
                found.text = ""
                return
            autoscroll.value = False  # stay on the match while output arrives
            number, total, line = await terminal.search(needle, step)
            found.text = f"{number} of {total} (line {line})" if total else "no match"

        query.on("keydown.enter", lambda: search(1))
        query.on("clear", lambda: search(0))
        ui.button(icon="keyboard_arrow_up", on_click=lambda: search(-1)).props(
            'flat round dense aria-label="Previous match" data-testid="search-previous"'
        ).tooltip("Previous match")
        ui.button(icon="keyboard_arrow_down", on_click=lambda: search(1)).props(
            'flat round dense aria-label="Next match" data-testid="search-next"'
        ).tooltip("Next match")

    async def link_to_line() -> None:
        line = await terminal.link_to_line()
        if line is None:
            notify_error("Select text on a line of the output (or search for it) first")
        else:
            notify_ok(f"Link to line {line} copied (#L{line})")

    # The name begins with the shown words (WCAG 2.5.3 Label in Name; "Copy a link to the selected
    # line" did not contain "Link to line": axe-core's `label-content-name-mismatch`).
    ui.button("Link to line", icon="link", on_click=link_to_line).props(
        'flat dense aria-label="Link to line: copy a link to the selected line" data-testid="link-to-line"'
    ).tooltip("Copy a link to the line of the selection or search match")


# How often the page of a run whose cancel has not landed asks whether its worker answers, and
# that of a queued run why it waits.
CANCEL_RECHECK_SECONDS = 2.0


class ExecutionView:
    """The page's state: the latest row and the summary drawn from it (status, facts, parameters)."""

    def __init__(self, actor: Actor, execution: Execution, ran_content: str | None = None) -> None:
        self.actor = actor
        self.execution = execution
        # A test run's content (never saved as a version): shown below the output.
        self.ran_content = ran_content
        # Why a queued run waits (its script's limit), read with the row (`read`).
        self.queued_note: str | None = None
        self.cancel_note: str | None = None  # a cancel waiting on a worker not answering
        # The name of the shared inventory the run used (None: none, or deleted since), read with
        # the row (`read`).
        self.inventory_name: str | None = None
        # The version of it whose text the run read (None: deleted since, with its versions).
        self.inventory_version: int | None = None
        # A finished Ansible run's per-host summary, read with the row (`read`).
        self.host_summary: ExecutionHostSummary | None = None
        self.duration: ui.label | None = None
        self.header = ui.refreshable(self._header)
        self.details = ui.refreshable(self._details)
        self.hosts = ui.refreshable(lambda: host_summary(self.host_summary))
        self.terraform = TerraformPanel(actor, execution)
        # A polite live region, outside the redrawn header: says each change of status once (the
        # badge is redrawn, and a region drawn anew is not announced).
        self.announcer: ui.label | None = None

    def _header(self) -> None:
        """Status, script, actions and banners: above the output, so a phone shows the output early."""
        run = self.execution
        with ui.row().classes("w-full items-center justify-between gap-2"):
            with ui.row().classes("items-center gap-3"):
                status_badge(run.status).classes("text-base")
                link = ui.link(f"{run.script_name}", f"/scripts/{run.script_id}")
                link.classes("text-lg font-medium oc-wrap")
                if run.draft:
                    ui.badge("Test run", color="deep-purple").props('data-testid="draft-badge"')
                    ui.label(f"unsaved content, edited from version {run.script_version}").classes(
                        "text-grey-7"
                    )
                else:
                    ui.label(f"version {run.script_version}").classes("text-grey-7")
            with ui.row().classes("items-center gap-2"):
                # An apply of a saved plan starts only from its plan run (terraform_plans.apply);
                # a test run's content was never saved.
                again = (
                    run.status in FINAL_STATUSES
                    and run.terraform_action != terraform_plan.APPLY_PLAN
                    and not run.draft
                )
                if again and can(self.actor.user, Permission.execute_scripts):
                    ui.button("Run again", icon="replay", on_click=one_click(self.run_again)).props(
                        'unelevated color=positive data-testid="run-again"'
                    ).tooltip("A new run of this script with the same parameters")
                if run.status not in FINAL_STATUSES and executions.may_cancel(self.actor, run):
                    ui.button(
                        "Cancel run", icon="stop_circle", on_click=opens_dialog(self._confirm_cancel)
                    ).props('outline color=negative data-testid="cancel-button"')
        stored_note(run, "execution-stored")  # a time or status stored as none (a manual edit)
        if run.draft:
            who = run.triggered_by_name or "a deleted user"
            banner(
                "science",
                "deep-purple",
                f"A test run of unsaved editor content, started by {who}:"
                " no version was saved and the script did not change. "
                "The content that ran is below the output.",
                "draft-notice",
            )
        if self.queued_note and run.status == ExecutionStatus.queued:
            banner("hourglass_empty", "grey", self.queued_note, "queued-note")
        if self.cancel_note and run.status == ExecutionStatus.running:
            banner("hourglass_top", "orange", self.cancel_note, "cancel-pending")
        if run.runner == "local":
            banner(
                "warning",
                "orange",
                "Not isolated: the local runner runs this script as a plain process on the server "
                "(with resource limits, but no container).",
                "not-isolated",
            )
        if run.output_removed_at is not None:
            banner(
                "auto_delete",
                "grey",
                f"Output removed by retention on {_moment(run.output_removed_at)}: an admin's setting "
                f"keeps output for a limited time (it was {_size(run.output_bytes)}).",
                "output-removed",
            )
        if run.error_message:
            expected = run.status in (ExecutionStatus.cancelled, ExecutionStatus.timed_out)
            banner(
                "info" if expected else "error",
                "orange" if expected else "red",
                without_internal_names(run.error_message),
                "error-message",
            )

    def _details(self) -> None:
        """Timings, runner and parameters: below the output."""
        run = self.execution
        with ui.card().classes("w-full").props("flat bordered"):
            with ui.row().classes("w-full gap-x-10 gap-y-4"):
                self.duration = _fact("Duration", format_duration(elapsed(run)), "duration")
                _fact("Exit code", "—" if run.exit_code is None else str(run.exit_code), "exit-code")
                _fact("Triggered by", run.triggered_by_name or "—", "triggered-by")
                _fact("Trigger", trigger_label(run), "trigger")
                if run.cancelled_by_name:
                    _fact("Cancelled by", run.cancelled_by_name, "cancelled-by")
                if run.rerun_of is not None:
                    _link_fact("Run again of", f"#{run.rerun_of}", f"/executions/{run.rerun_of}", "rerun-of")
                _fact("Queued", _moment(run.queued_at), "queued-at")
                _fact("Started", _moment(run.started_at), "started-at")
                _fact("Finished", _moment(run.finished_at), "finished-at")
                _fact("Runner", run.runner or "—", "runner")
                _fact("Image", run.image or ("—" if run.runner != "local" else "host"), "image")
                if run.terraform_action:
                    _fact("Terraform", run.terraform_action, "terraform-action")
                if run.terraform_workspace:
                    _fact("Workspace", run.terraform_workspace, "terraform-workspace")
                if run.run_options:  # a --check run is a dry run: say so, as its command line did
                    _fact("Ansible options", " ".join(ansible_options.argv(run.run_options)), "run-options")
                if run.inventory_id is not None and run.inventory_sha256:  # which hosts, as they were
                    text = self._inventory_text()
                    tip = f"SHA-256 of the inventory text the run read: {run.inventory_sha256}"
                    if self.inventory_version is None:
                        _fact("Inventory", text, "run-inventory").tooltip(tip)
                    else:
                        url = version_url(run.inventory_id, self.inventory_version)
                        _link_fact("Inventory", text, url, "run-inventory").tooltip(tip)
                if run.status in FINAL_STATUSES:
                    truncated = " (truncated)" if run.output_truncated else ""
                    removed = " (removed by retention)" if run.output_removed_at else ""
                    _fact("Output", _size(run.output_bytes) + truncated + removed, "size")
        with (
            ui.expansion("Parameters", icon="tune", value=bool(run.parameters))
            .classes("w-full")
            .props('dense header-class="text-subtitle1" data-testid="parameters"')
        ):
            if run.parameters:
                with name_value_grid("px-4 pb-2"):
                    for name, value in run.parameters.items():
                        ui.label(name).classes("font-mono text-grey-8 break-all")
                        ui.label(parameter_text(value)).classes("font-mono break-all").props(
                            f'data-testid="param-value-{name}"'
                        )
            else:
                ui.label("No parameters.").classes("text-grey-7 px-4 pb-2")
        if self.ran_content is not None:
            with (
                ui.expansion("Content that ran (unsaved)", icon="science")
                .classes("w-full")
                .props('dense header-class="text-subtitle1" data-testid="draft-content"')
            ):
                language = LANGUAGES.get(self.execution.script_type, "").lower() or None
                code_block(self.ran_content, language).classes("w-full text-sm")

    def _inventory_text(self) -> str:
        """The shared inventory the run used, by name (or id, deleted since), the version whose
        text it read and the start of that text's SHA-256, which the Inventories page shows of
        the current text."""
        run = self.execution
        name = self.inventory_name or f"id {run.inventory_id}, deleted since"
        version = f", version {self.inventory_version}" if self.inventory_version is not None else ""
        return f"{name}{version} (SHA-256 {str(run.inventory_sha256)[: shared_inventories.SHA_SHOWN]})"

    def tick(self) -> None:
        """Advance the duration while the run is going."""
        if self.duration is not None and self.execution.status == ExecutionStatus.running:
            self.duration.set_text(format_duration(elapsed(self.execution)))

    async def recheck_cancel(self) -> None:
        """While a requested cancel has not landed, show or drop the note that its worker is not
        answering (`workers.cancel_waiting`): a worker that died just before the cancel counts as
        not answering only two heartbeat periods later, after the cancel's own reload. The header
        is redrawn only when the note comes or goes."""
        run = self.execution
        if run.status != ExecutionStatus.running or not run.cancel_requested:
            return
        note = await call(workers.cancel_waiting, run)
        if (note is None) != (self.cancel_note is None):
            self.cancel_note = note
            self.header.refresh()

    async def recheck_queued(self) -> None:
        """While the run is queued, show, change or drop why it waits (`executions.why_queued`):
        a worker whose Docker engine stops or starts answering changes what is offered, not the
        run's row, so `reload` would not read it again. The header is redrawn only when the note
        changes."""
        if self.execution.status != ExecutionStatus.queued:
            return
        note = await call(executions.why_queued, self.actor, self.execution)
        if note != self.queued_note:
            self.queued_note = note
            self.header.refresh()

    async def recheck_inventory(self) -> None:
        """Show the shared inventory the run used by its name now: renamed (or deleted) by another
        user, the page went on naming it as when it was opened. The details are redrawn only
        when the name changed."""
        run = self.execution
        if run.inventory_id is None:
            return
        actor = await guard(Permission.view_scripts, ticking=True)
        if actor is None:
            return
        try:
            name = await call(shared_inventories.name_of, actor, run.inventory_id)
        except ServiceError:
            return  # refused at this tick: the page stays as it is, as a followed list does
        if name != self.inventory_name:
            self.inventory_name = name
            self.details.refresh()

    async def reload(self) -> bool:
        """Re-check the session and re-read the row through the service; redraw the summary only
        when the row changed. A redraw replaces its buttons with new elements, and the server drops
        a click sent to a replaced one: the follow of a finished run ends with its final status
        right after the page connects, just when a person may click Run again.
        False when the session ended or the run can no longer be read."""
        actor = await guard(Permission.view_scripts)
        if actor is None:
            return False
        self.actor = actor
        try:
            execution = await call(executions.get, actor, self.execution.id)
        except ServiceError as exc:
            notify_error(exc.message)
            return False
        if execution.model_dump() == self.execution.model_dump():
            return True  # redrawing would only replace the buttons a click may be on its way to
        if execution.status != self.execution.status and self.announcer is not None:
            self.announcer.set_text(status_announcement(execution))
        self.execution = execution
        await self.read()
        self.header.refresh()
        self.hosts.refresh()
        self.details.refresh()
        await self.terraform.refresh(actor, self.execution)
        return True

    async def read(self) -> None:
        """Read why the run waits (`executions.why_queued`) or why its cancel has not landed
        (`workers.cancel_waiting`), the name of the shared inventory it used and a finished
        Ansible run's per-host summary, for the next summary drawn."""
        self.queued_note = await call(executions.why_queued, self.actor, self.execution)
        self.cancel_note = await call(workers.cancel_waiting, self.execution)
        run = self.execution
        if run.status in FINAL_STATUSES:
            self.host_summary = await call(host_summaries.of_run, self.actor, run)
        if run.inventory_id is not None:
            self.inventory_name = await call(shared_inventories.name_of, self.actor, run.inventory_id)
            if run.inventory_sha256:
                self.inventory_version = await call(
                    shared_inventories.run_version, self.actor, run.inventory_id, run.inventory_sha256
                )

    def _confirm_cancel(self) -> None:
        with ui.dialog() as dialog, ui.card().classes("gap-3"):
            dialog_title(f"Cancel execution #{self.execution.id}?")
            ui.label("A running script is killed; a queued one never starts.").classes("text-grey-8")
            with ui.row().classes("w-full justify-end gap-2"):
                ui.button("Keep running", on_click=dialog.close).props("flat")

                async def confirmed() -> bool:
                    await close_then(dialog, self.cancel)
                    return True  # the dialog is closed: a click already on its way must not cancel again

                ui.button("Cancel run", on_click=one_click(confirmed)).props(
                    'unelevated color=negative data-testid="cancel-confirm"'
                )
        dialog.on("hide", dialog.delete)
        dialog.open()

    async def run_again(self) -> bool:
        """True once the new run has started (the page goes to it)."""
        actor = await guard(Permission.execute_scripts)
        if actor is None:
            return False
        destroy = self.execution.terraform_action == "destroy"
        if destroy:
            actor = await execute_dialog.confirm_destroy(
                self.execution.script_name, Permission.execute_scripts
            )
            if actor is None:
                return False
        execution = await run_action(
            lambda: call(
                runs.rerun, actor, self.execution.id, confirm_destroy=destroy, trigger=executions.Trigger.ui
            )
        )
        if execution is None:
            return False
        ui.navigate.to(f"/executions/{execution.id}")
        return True

    async def cancel(self) -> None:
        """Ask to cancel the run (the services check who may), then reload the view."""
        actor = await guard(Permission.view_scripts)
        if actor is None:
            return
        self.actor = actor
        done = await run_action(lambda: call(executions.cancel, actor, self.execution.id))
        if done is not None:
            notify_ok("Cancellation requested")
            await self.reload()


def status_announcement(run: Execution) -> str:
    """What a screen reader is told when the run's status changes: `Run #7 finished: failed,
    exit code 2.` or `Run #7 is now running.`"""
    status = STATUS_LABELS.get(run.status, run.status)
    if run.status not in FINAL_STATUSES:
        return f"Run #{run.id} is now {status}."
    code = f", exit code {run.exit_code}" if run.exit_code is not None else ""
    return f"Run #{run.id} finished: {status}{code}."


async def _follow(client: Client, view: ExecutionView, terminal: LiveTerminal) -> None:
    """Replay the stored output, then stream live events until the final status."""
    await client.connected()
    execution_id = view.execution.id
    assert execution_id is not None
    with client:
        async for event in executions.follow(view.actor, execution_id):
            if isinstance(event, LogEvent):
                terminal.write(event.content, stderr=event.stream == "stderr", at=event.at)
                await terminal.wait_for_room()
            elif event.final or event.status != view.execution.status:
                if event.final:
                    terminal.end_line()
                await terminal.drain()
                if not await view.reload():
                    return


@protected_page("/executions/{execution_id}", Permission.view_scripts, title="Execution")
async def execution_page(actor: Actor, execution_id: int) -> None:
    """Page /executions/{id} (needs view_scripts): one run with its status, hosts, approval, chain and
    Terraform panels and its live output; a missing run shows a not-found page with its status code.
    """
    try:
        execution = await call(executions.get, actor, execution_id)
    except ServiceError as exc:
        with frame(actor, "Execution"):
            missing(exc.message, "Back to the executions", "/executions", exc.status_code)
        return
    ran_content = None
    if execution.draft:
        ran_content = await call(executions.ran_content, actor, execution_id)
    title = f"Test run #{execution_id}" if execution.draft else f"Execution #{execution_id}"
    with frame(actor, title):
        view = ExecutionView(actor, execution, ran_content)
        view.announcer = (
            ui.label().classes("sr-only").props('role="status" data-testid="status-announcement"')
        )
        await view.read()
        view.header()
        view.hosts()
        await approval_panel(actor, execution)
        await chain_panel(actor, execution)
        await view.terraform.draw()
        with ui.row().classes("w-full items-center justify-between"):
            with ui.row().classes("items-baseline gap-3"):
                ui.label("Output").classes("text-subtitle1 font-medium")
                ui.label(
                    f"the terminal keeps the last {SCROLLBACK_LINES:,} lines, each cut at "
                    f"{MAX_LINE_CHARS:,} characters; stderr in red; the download has everything"
                ).classes("text-caption text-grey-7")
            with ui.row().classes("items-center gap-1"):
                autoscroll = ui.switch("Auto-scroll", value=True).props('dense data-testid="autoscroll"')
                copy = ui.button(icon="content_copy").props(
                    'flat round dense aria-label="Copy the output" data-testid="copy-output"'
                )
                copy.tooltip("Copy the output shown in the terminal")
                ui.button(
                    icon="download",
                    on_click=lambda: ui.download.from_url(f"/executions/{execution_id}/output.log"),
                ).props(
                    'flat round dense aria-label="Download the full log" data-testid="download-output"'
                ).tooltip("Download the full log")
        tools = ui.row().classes("w-full items-center gap-x-3 gap-y-1").props('data-testid="output-tools"')
        terminal = LiveTerminal()
        autoscroll.bind_value_to(terminal, "autoscroll")
        with tools:
            _output_tools(terminal, autoscroll)

        async def copy_output() -> None:
            copied = await terminal.copy()
            if copied is None:
                notify_error("The browser refused access to the clipboard: select the text and copy it")
            else:
                notify_ok(f"Copied {copied:,} characters")

        copy.on_click(copy_output)
        view.details()
        live_timer(1.0, view.tick)
        live_timer(CANCEL_RECHECK_SECONDS, view.recheck_cancel)
        live_timer(CANCEL_RECHECK_SECONDS, view.recheck_queued)
        live_timer(live_seconds(), view.recheck_inventory)
    client = ui.context.client
    task = background_tasks.create(_follow(client, view, terminal), name=f"follow-execution-{execution_id}")
    client.on_delete(task.cancel)

    async def recheck() -> None:
        """Stop streaming to a session that has ended (user deactivated, password changed)."""
        if await guard(Permission.view_scripts) is None:
            task.cancel()

    live_timer(SESSION_RECHECK_SECONDS, recheck)


@app.get("/executions/{execution_id}/output.log", include_in_schema=False)
async def download_output(execution_id: int) -> Response:
    """The stored output as plain text (ANSI colours removed), for the logged-in browser user."""
    actor = await session.current_actor()
    if actor is None:
        return RedirectResponse(session.login_url(f"/executions/{execution_id}"), status_code=303)
    try:
        await call(executions.get, actor, execution_id)
    except ServiceError as exc:
        return PlainTextResponse(exc.message, status_code=exc.status_code)
    return StreamingResponse(
        log_text.plain_text(actor, execution_id),
        media_type="text/plain; charset=utf-8",
        headers=log_text.attachment(execution_id),
    )
