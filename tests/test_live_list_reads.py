"""The live lists (`layout.follow`) re-read on a timer and also after a person's action (the
tokens page's "Show every user's tokens", a webhook's Pause): the two reads ran as tasks of
their own and ended in any order, and a tick started before the action and ending last (a busy
database) put the older state back (the switch on "every user's tokens" above only mine, a
paused webhook offering Pause) until the next tick."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import pytest
from nicegui import Client, background_tasks, core
from nicegui.page import page

from opscraft.db.models.automation import WebhookTrigger
from opscraft.services import api_tokens, secrets, webhooks
from opscraft.ui import drafts, layout, tokens
from opscraft.ui import webhooks as webhooks_ui
from opscraft.ui.script_tabs import TabAddress
from tests.waiting import until

MINE, EVERYONE = 1, 3  # tokens in all: the admin's own, every user's


class SlowService:
    """The services the pages call, as a busy database: each list read answers when the test
    says so (`answer[state]`, the state the read found when it started)."""

    def __init__(self) -> None:
        self.actor = SimpleNamespace(user_id=1, user=SimpleNamespace(is_active=True, role="admin"))
        self.enabled = True  # the webhook's
        self.answer: dict[Any, asyncio.Event] = {}
        self.started: list[Any] = []

    async def call(self, function: Any, _actor: Any, *args: Any, **kwargs: Any) -> Any:
        if function is webhooks.update_webhook:
            self.enabled = args[1]["enabled"]
            return args[1]  # saved
        if function is secrets.previous_accepted_until:
            return {}  # the fake's webhooks are not signed: no rotation window to show
        state = kwargs["all_users"] if function is api_tokens.list_tokens else self.enabled
        self.started.append(state)
        await self.answer.setdefault(state, asyncio.Event()).wait()
        if function is api_tokens.list_tokens:
            return [], EVERYONE if state else MINE
        assert function is webhooks.list_for_script
        return [WebhookTrigger(id=1, script_id=7, name="deploy", token_hash="h", prefix="abc", enabled=state)]

    async def guard(self, *_: Any, **__: Any) -> Any:
        return self.actor

    async def built(self, path: str, state: Any, build: Callable[[], Awaitable[Any]]) -> Client:
        """The page at `path`, built by `build()` with its first read (of `state`) answered at
        once; from then on every read waits for the test again."""
        self.answer[state] = asyncio.Event()
        self.answer[state].set()
        with Client(page(path)) as client:
            await build()
        self.started.clear()
        self.answer[state].clear()
        return client

    async def overlapping(
        self, tick: Callable[[], Any], action: Callable[[], Any], states: tuple[Any, Any]
    ) -> None:
        """Start the live re-read `tick()`, then the person's `action()` while its read is under
        way; answer the action's read first (the quick one), the tick's last; return once both
        have shown what they read."""
        ticked = asyncio.create_task(tick())
        await until(lambda: self.started == [states[0]], "the tick's read", timeout=5)
        before = set(background_tasks.running_tasks)
        await action()
        # the task NiceGUI runs the browser's event in (`events.handle_event`)
        acted = set(background_tasks.running_tasks) - before
        assert acted, "the action ran in a task of its own"
        await asyncio.sleep(0.05)  # the action's read is under way (or waits its turn: under test)
        self.answer.setdefault(states[1], asyncio.Event()).set()
        await asyncio.sleep(0.05)  # the quick read's time to end first: which shows last is tested
        self.answer[states[0]].set()
        await asyncio.wait_for(asyncio.gather(ticked, *acted), 5)


@contextmanager
def _no_frame(*_: Any) -> Any:
    yield


@pytest.fixture
async def slow(monkeypatch: pytest.MonkeyPatch) -> tuple[SlowService, list[Callable[[], Any]]]:
    """The slow service in place of the pages' calls, and the ticks of the pages' `follow`
    (`ticks[0]()` runs one) and their one-shot timers (run by the test, not by a browser)."""
    service = SlowService()
    ticks: list[Callable[[], Any]] = []
    for module in (layout, tokens, webhooks_ui):
        monkeypatch.setattr(module, "guard", service.guard)
    for module in (tokens, webhooks_ui):
        monkeypatch.setattr(module, "call", service.call)
        monkeypatch.setattr(module, "one_shot", lambda _delay, callback: ticks.append(callback))
    monkeypatch.setattr(webhooks_ui, "call_all", service.call)
    monkeypatch.setattr(tokens, "frame", _no_frame)
    monkeypatch.setattr(webhooks_ui, "_page_origin", lambda: "")  # no request: no browser
    monkeypatch.setattr(layout, "live_seconds", lambda: 5.0)
    monkeypatch.setattr(layout, "live_timer", lambda _seconds, callback: ticks.insert(0, callback))
    monkeypatch.setattr(drafts, "reopen", lambda *_: asyncio.sleep(0))  # no tab's draft here
    # a browser's event (the switch turned) runs its handler as a task of the page's loop
    monkeypatch.setattr(core, "loop", asyncio.get_running_loop())
    return service, ticks


def _element(client: Client, testid: str) -> Any:
    """The element of `client`'s page with `data-testid` `testid`."""
    (found,) = [e for e in client.elements.values() if e.props.get("data-testid") == testid]
    return found


async def test_the_tokens_shown_are_those_of_the_switch_turned_during_a_live_reread(
    slow: tuple[SlowService, list[Callable[[], Any]]],
) -> None:
    service, ticks = slow
    client = await service.built("/tokens", False, lambda: tokens.tokens_page(service.actor))  # type: ignore[arg-type]
    switch = _element(client, "tokens-all")

    async def turned() -> None:
        switch.set_value(True)  # "Show every user's tokens", as the browser sends it

    await service.overlapping(ticks[0], turned, (False, True))
    assert service.started == [False, True]
    assert switch.value is True
    assert _element(client, "tokens-summary").text == f"{EVERYONE} tokens"


async def test_a_webhook_paused_during_a_live_reread_shows_paused(
    slow: tuple[SlowService, list[Callable[[], Any]]],
) -> None:
    service, ticks = slow
    script = SimpleNamespace(id=7, script_type="bash")

    async def tab() -> None:
        await webhooks_ui.webhooks_tab(service.actor, script, TabAddress())  # type: ignore[arg-type]
        await ticks.pop()()  # the tab's rows, once the browser is connected

    client = await service.built("/scripts/7", True, tab)
    assert _element(client, "webhook-toggle-1").text == "Pause"

    async def paused() -> None:
        button = _element(client, "webhook-toggle-1")
        (listener_id,) = button._event_listeners
        button._handle_event({"listener_id": listener_id, "args": {}})  # the browser's click

    await service.overlapping(ticks[0], paused, (True, False))
    assert service.started == [True, False]
    assert _element(client, "webhook-toggle-1").text == "Resume"
