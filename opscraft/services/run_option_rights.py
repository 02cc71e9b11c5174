"""Who may choose an Ansible run's run options (`--limit`, `--tags`, `--skip-tags`, `--check`,
`--diff`: `executions.AnsibleRunOptions`): least privilege, as Semaphore's per-template "allow
override" flags and AWX's "prompt on launch".

Rules (docs/executions.md "Run options"):
- a script's `viewers_choose_run_options` (default true, as before the setting) says whether the
  users who may not edit it (no `edit_scripts`: viewers) may choose run options when they start a
  run of it; those who may edit it (operators, admins) always may: they could change the playbook
  itself, so refusing them would protect nothing;
- off, a viewer's run with any option set is refused with a 403 (`Forbidden`) naming
  `run_options`: the options are valid (an operator's run with them starts), the person may not
  choose them for this script, a question of permission;
- `diff` on a script with a secret attached is chosen only by those who may edit it, whatever
  the setting, in a re-run too: Ansible's `--diff` prints each file a task writes before and
  after, and those hold what masking cannot know (values decrypted from Ansible Vault with an
  attached `ANSIBLE_VAULT_PASSWORD_FILE`; a host's file still holding an attached secret's
  previous value) (`diff_refused`);
- a run a schedule, webhook, "then run" link or retry starts (a system actor) is not refused:
  its options were chosen by whoever saved the trigger, which needs `edit_scripts`;
- a re-run (`runs.rerun`, Run again) repeats the options of the run it repeats, never others.
  A viewer may repeat options someone else chose: the run its chain of re-runs (`rerun_of`)
  started from was started by a trigger, or by another user (or one since deleted). Options
  the viewer chose in a run of their own are refused like new ones: else a run from before
  the setting was switched off would keep them choosing.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, literal, select
from sqlmodel.ext.asyncio.session import AsyncSession

from opscraft.db.models import Execution, ScriptSecret, User
from opscraft.db.models.executions import Trigger
from opscraft.services.errors import Forbidden
from opscraft.services.permissions import Permission, can, roles_with

SETTING = "viewers_choose_run_options"
# Triggers a person starts a run with, choosing what it carries.
_BY_HAND = frozenset({Trigger.ui.value, Trigger.api.value, Trigger.api_token.value})
WHY_NOT = (
    "only those who may edit this script (operators and admins) may choose its run options "
    f"({SETTING} is off)"
)


def _origin_statement() -> Any:
    """Who started the first run of the re-run chain ending at run `:start` (its `triggered_by`
    and `trigger`): a recursive query from `:start` along `rerun_of`, oldest row last reached.
    A chain whose first runs were deleted ends at its oldest run still stored."""
    runs = Execution.__table__  # type: ignore[attr-defined]
    chain = (
        select(runs.c.rerun_of, runs.c.triggered_by, runs.c.trigger, literal(0).label("depth"))
        .where(runs.c.id == bindparam("start"))
        .cte("chain", recursive=True)
    )
    earlier = runs.alias("earlier")
    chain = chain.union_all(
        select(earlier.c.rerun_of, earlier.c.triggered_by, earlier.c.trigger, chain.c.depth + 1).where(
            earlier.c.id == chain.c.rerun_of
        )
    )
    return select(chain.c.triggered_by, chain.c.trigger).order_by(chain.c.depth.desc()).limit(1)


_ORIGIN = _origin_statement()


DIFF_REFUSED = (
    "diff is chosen only by those who may edit this script, as it has secrets attached: Ansible's "
    "--diff prints the files a task writes before and after, which can hold values masking cannot "
    "know (decrypted from Ansible Vault, or a secret's previous value)"
)


async def diff_refused(session: AsyncSession, user: User | None, script_id: int) -> bool:
    """Whether `user` may not choose `diff` for script `script_id`: they may not edit scripts and
    the script has a secret attached (the module's rules; `DIFF_REFUSED` says why)."""
    if can(user, Permission.edit_scripts):
        return False
    attached = select(ScriptSecret.script_id).where(ScriptSecret.script_id == script_id).limit(1)
    return (await session.exec(attached)).first() is not None  # type: ignore[call-overload]


def may_choose(user: User | None, allowed_for_viewers: bool) -> bool:
    """Whether `user` may choose the run options of a script whose `viewers_choose_run_options`
    is `allowed_for_viewers` (what the run form offers them)."""
    return allowed_for_viewers or can(user, Permission.edit_scripts)


async def _chosen_by_someone_else(session: AsyncSession, rerun_of: int, user_id: int | None) -> bool:
    """Whether the options repeated from run `rerun_of` were chosen by anyone but user `user_id`:
    its re-run chain starts at a run a trigger started, or another user (see the module's rules)."""
    connection = await session.connection()
    origin = (await connection.execute(_ORIGIN, {"start": rerun_of})).first()
    if origin is None:
        return False
    return origin.trigger not in _BY_HAND or origin.triggered_by != user_id


async def check(
    session: AsyncSession,
    user: User,
    *,
    script_id: int,
    script_name: str,
    allowed_for_viewers: bool,
    options: dict[str, Any] | None,
    rerun_of: int | None,
) -> None:
    """Raises `Forbidden` (403, details naming `run_options`) when `user` starts a run by hand with
    run `options` set that they may not choose for script `script_name` (the module's rules);
    nothing for options unset (None or `{}`), or a person who may choose them. `rerun_of`: the
    run whose options a re-run repeats (`runs.rerun`), else None. A system actor's runs are not
    checked (the caller leaves them out). `diff` on a script with secrets attached is refused to
    those who may not edit it in every case (`diff_refused`), a 403 naming `run_options.diff`."""
    if options and options.get("diff") and await diff_refused(session, user, script_id):
        raise Forbidden(
            f"run_options.diff: your role ({user.role}) may not choose diff for script {script_name!r}: "
            f"{DIFF_REFUSED}; start the run without diff, or ask an operator",
            details=[{"field": "run_options.diff", "message": DIFF_REFUSED}],
        )
    if not options or may_choose(user, allowed_for_viewers):
        return
    if rerun_of is not None and await _chosen_by_someone_else(session, rerun_of, user.id):
        return
    needed = " or ".join(role.value for role in roles_with(Permission.edit_scripts))
    raise Forbidden(
        f"run_options: your role ({user.role}) may not choose the run options of script "
        f"{script_name!r}: that needs {needed} ({SETTING} is off: only those who may edit the "
        "script choose them); start the run without them, or ask an operator",
        details=[{"field": "run_options", "message": WHY_NOT}],
    )
