"""The one permission function. Roles follow the seed's table."""

from __future__ import annotations

from enum import StrEnum

from opscraft.db.models import Role, User
from opscraft.services.errors import Forbidden, Unauthorized


class Permission(StrEnum):
    """What a role may do; ROLE_PERMISSIONS maps each role to its permissions."""

    view_scripts = "view_scripts"
    execute_scripts = "execute_scripts"
    edit_scripts = "edit_scripts"
    manage_secrets = "manage_secrets"
    manage_users = "manage_users"
    view_audit = "view_audit"
    cancel_any_execution = "cancel_any_execution"
    manage_settings = "manage_settings"
    approve_executions = "approve_executions"
    view_system = "view_system"  # workers, /metrics
    # Terraform `destroy`: not the script as written but its inverse, chosen at run time.
    destroy_infrastructure = "destroy_infrastructure"
    # Lower or remove a script's approval requirement (services/approvals.py): admins only, so
    # the "second person" rule cannot be switched off by the operator it constrains.
    relax_approvals = "relax_approvals"


_VIEWER = frozenset({Permission.view_scripts, Permission.execute_scripts})
_OPERATOR = _VIEWER | {
    Permission.edit_scripts,
    Permission.manage_secrets,
    Permission.cancel_any_execution,
    Permission.approve_executions,
    Permission.destroy_infrastructure,
}
_ADMIN = frozenset(Permission)

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.viewer: _VIEWER,
    Role.operator: frozenset(_OPERATOR),
    Role.admin: _ADMIN,
}


ROLE_RANK: dict[Role, int] = {Role.viewer: 0, Role.operator: 1, Role.admin: 2}


def lower_role(a: Role | str, b: Role | str) -> Role:
    """The less privileged of two roles."""
    return min(Role(a), Role(b), key=ROLE_RANK.__getitem__)


def can(user: User | None, permission: Permission) -> bool:
    """True when `user` is active and its role has `permission`."""
    return user is not None and user.is_active and permission in ROLE_PERMISSIONS[Role(user.role)]


def roles_with(permission: Permission) -> list[Role]:
    """The roles that hold `permission`, least privileged first."""
    holders = (role for role, held in ROLE_PERMISSIONS.items() if permission in held)
    return sorted(holders, key=ROLE_RANK.__getitem__)


def require(user: User | None, permission: Permission, action: str | None = None) -> User:
    """Return the user if allowed, else raise 401 (nobody) or 403 (not allowed).

    The 403 says what was refused and which roles may do it: "your role (viewer) may not apply a
    reviewed plan: that needs operator or admin". `action` names what the caller does when the
    permission's own name ("edit scripts") would not say it (a schedule, a plan's apply...).
    """
    if user is None or not user.is_active:
        raise Unauthorized("authentication required: log in")
    if not can(user, permission):
        what = action or permission.value.replace("_", " ")
        needed = " or ".join(r.value for r in roles_with(permission))
        raise Forbidden(f"your role ({user.role}) may not {what}: that needs {needed}")
    return user
