"""NiceGUI pages. `register_pages()` imports the page modules, whose decorators register routes."""

from __future__ import annotations

import importlib

PAGE_MODULES = [
    "auth_pages",
    "dashboard",
    "scripts",
    "script_edit",
    "script_page",
    "profile",
    "users",
    "audit",
    "settings_page",
    "secrets",
    "script_secrets",
    "inventories",
    "inventory_versions",
    "executions",
    "execution_page",
    "execute_dialog",
    "tokens",
    "schedules",
    "webhooks",
    "chains",
    "notifications",
    "approvals",
    "workers",
]


def register_pages() -> None:
    """Import the page modules (their decorators register the routes) and hold every request with
    a 503 + Retry-After until start-up has finished (NiceGUI runs start-up handlers as background
    tasks, so the server listens before the database is ready). Every text field gets a length
    ceiling first (`widgets.bound_text_fields`), every button shows its words as written
    (`widgets.sentence_case_buttons`)."""
    from nicegui import app

    from opscraft import runtime
    from opscraft.security.http import StartupGateMiddleware
    from opscraft.ui.widgets import bound_text_fields, sentence_case_buttons

    bound_text_fields()
    sentence_case_buttons()
    for name in PAGE_MODULES:
        importlib.import_module(f"opscraft.ui.{name}")
    importlib.import_module("opscraft.ui.not_found").install()
    importlib.import_module("opscraft.ui.unavailable").install()
    app.add_middleware(StartupGateMiddleware, ready=runtime.ready)
