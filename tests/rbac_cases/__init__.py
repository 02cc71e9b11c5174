"""The RBAC matrix: one `Case` per API route, collected from every module in this package.

Add a module (or a case to one) for every new route: `test_rbac_matrix.py` fails for any
route of the app that has no case here.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

ROLES = ("anonymous", "viewer", "operator", "admin")

# setup(client, users) -> {"path": {...path params}, "json": body or None, "params": query or None}
Setup = Callable[[httpx.AsyncClient, dict[str, Any]], Awaitable[dict[str, Any]]]


async def no_setup(_client: httpx.AsyncClient, _users: dict[str, Any]) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    expected: dict[str, int]  # role -> status code
    setup: Setup = no_setup
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"


# Settings for routes that start runs: the local runner on, for every role (the matrix checks
# the roles' permissions, not the `local_runner_role` refinement, which has its own tests).
LOCAL_FOR_ALL = {"local_runner_enabled": True, "local_runner_role": "viewer"}


def allow(min_role: str, ok: int = 200) -> dict[str, int]:
    """Roles from `min_role` up get `ok`, lower roles 403, anonymous 401."""
    order = ROLES[1:]
    rank = order.index(min_role)
    return {"anonymous": 401, **{r: (ok if i >= rank else 403) for i, r in enumerate(order)}}


def public(ok: int = 200) -> dict[str, int]:
    return dict.fromkeys(ROLES, ok)


def all_cases() -> list[Case]:
    cases: list[Case] = []
    for module in pkgutil.iter_modules(__path__):
        cases.extend(importlib.import_module(f"{__name__}.{module.name}").CASES)
    return cases
