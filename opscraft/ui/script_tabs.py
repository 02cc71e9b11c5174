"""Extension points of the script page, filled by other areas (executions, secrets).

The script page renders its own tabs (overview, content, versions), then one tab per entry in
`TABS`, then the header buttons in `ACTIONS`. Each renderer gets the acting user and the script
and re-checks permissions itself through services.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from opscraft.db.models import Script
from opscraft.services.actor import Actor

Renderer = Callable[[Actor, Script], Awaitable[None]]


@dataclass(frozen=True)
class ScriptTab:
    """A tab registered on the script page: its key, label, icon, renderer and position (lower `order`
    first).
    """

    key: str
    label: str
    icon: str
    render: Renderer
    order: int = 100


TABS: dict[str, ScriptTab] = {}
ACTIONS: dict[str, Renderer] = {}


def script_tab(key: str, label: str, icon: str, order: int = 100) -> Callable[[Renderer], Renderer]:
    """Decorator: register a renderer as a script page tab."""

    def register(render: Renderer) -> Renderer:
        TABS[key] = ScriptTab(key, label, icon, render, order)
        return render

    return register


def script_action(key: str) -> Callable[[Renderer], Renderer]:
    """Decorator: register a renderer as a script page header action under `key`."""

    def register(render: Renderer) -> Renderer:
        ACTIONS[key] = render
        return render

    return register


def ordered_tabs() -> list[ScriptTab]:
    """The registered tabs, by `order`."""
    return sorted(TABS.values(), key=lambda tab: tab.order)
