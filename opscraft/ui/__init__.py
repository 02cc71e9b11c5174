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
    "executions",
    "execution_page",
    "execute_dialog",
    "workers",
]


def register_pages() -> None:
    for name in PAGE_MODULES:
        importlib.import_module(f"opscraft.ui.{name}")
