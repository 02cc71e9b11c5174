"""Extension points of the script page, filled by other areas (executions, secrets).

The script page renders its own tabs (overview, content, versions), then one tab per entry in
`TABS`, then the header buttons in `ACTIONS`. Each renderer gets the acting user and the script
and re-checks permissions itself through services; a tab's renderer also gets its `TabAddress`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from opscraft.db.models import Script
from opscraft.services.actor import Actor


@dataclass
class TabAddress:
    """A registered tab's part of the script page's address. `query`: the address's parameters
    the tab reads, as the page converted them, given only when the page was opened on the tab
    (`/scripts/5?tab=executions&status=failed`: `{"status": "failed"}`); `kept`: set by a tab
    whose address says more than `?tab=<key>` (its filters): the function giving that address
    now, which the page puts in the browser's when the tab is opened again (it became the bare
    `?tab=<key>`, dropping the filters chosen)."""

    query: Mapping[str, Any] = field(default_factory=dict)
    kept: Callable[[], str] | None = None


Renderer = Callable[[Actor, Script], Awaitable[None]]
TabRenderer = Callable[[Actor, Script, TabAddress], Awaitable[None]]


@dataclass(frozen=True)
class ScriptTab:
    """A tab registered on the script page: its key, label, icon, renderer and position (lower `order`
    first).
    """

    key: str
    label: str
    icon: str
    render: TabRenderer
    order: int = 100
    reads: tuple[str, ...] = ()  # the address parameters it reads (`TabAddress.query`)


TABS: dict[str, ScriptTab] = {}
ACTIONS: dict[str, Renderer] = {}


def script_tab(
    key: str, label: str, icon: str, order: int = 100, reads: tuple[str, ...] = ()
) -> Callable[[TabRenderer], TabRenderer]:
    """Decorator: register a renderer as a script page tab, reading the address parameters
    `reads` (each one a parameter of `ui.script_page.script_page`)."""

    def register(render: TabRenderer) -> TabRenderer:
        TABS[key] = ScriptTab(key, label, icon, render, order, reads)
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
