"""The run path's routers are tried first (`opscraft.api.HOT_ROUTERS`, issue 15): pinned that
none of their routes takes a request meant for a route of another router."""

from __future__ import annotations

import re

from starlette.routing import BaseRoute

from opscraft.api import HOT_ROUTERS, ROUTERS, health


def _regex(route: BaseRoute) -> re.Pattern[str]:
    return route.path_regex  # type: ignore[attr-defined,no-any-return]


def test_the_run_paths_routers_come_right_after_health() -> None:
    assert ROUTERS[: 1 + len(HOT_ROUTERS)] == [health.router, *HOT_ROUTERS]
    assert len(ROUTERS) == len(set(map(id, ROUTERS))), "each router once"


def test_no_route_of_another_router_is_shadowed_by_the_hot_routers() -> None:
    hot = [route for router in HOT_ROUTERS for route in router.routes]
    others = [route for router in ROUTERS if router not in HOT_ROUTERS for route in router.routes]
    assert hot and len(others) > 50
    for route in others:
        path: str = route.path  # type: ignore[attr-defined]
        for value in ("1", "x"):  # a path parameter's value, as a number and as a word
            sample = re.sub(r"\{[^}]+\}", value, path)
            shadowing = [h.path for h in hot if _regex(h).match(sample)]  # type: ignore[attr-defined]
            assert not shadowing, f"{path} would be taken by {shadowing}"
