"""The pages' Tailwind CSS, compiled once ahead of time instead of in every browser tab.

NiceGUI (3.18) loads Tailwind's browser build (`tailwindcss.min.js`, Tailwind 4.1) into each page
by default: it compiles Tailwind's base styles on every page load and watches the page, compiling
again whenever an element with a new class appears. That cost each page load about 0.2-0.4 s of
the browser's main thread here, a third of it (docs/benchmarks.md, session 46), on every page and
on every tab of every user.

The pages are served with `ui.run(tailwind=False)` (`opscraft.app.serve`) and link `TAILWIND_CSS`
instead: the CSS Tailwind's same browser build makes for every class name the sources could
give an element (OpsCraft's pages' and NiceGUI's, Quasar's included), written by `python -m
tests.tailwind_css`. tests/test_tailwind_css_browser.py fails when the file is no longer what
the sources make, and when Tailwind's own build, put into a page, finds a class the file lacks.

The file is served under NiceGUI's versioned prefix with its digest in the name: cached for good
by the browser (`Cache-Control: immutable`, `opscraft.api.lean_path`), compressed once
(`opscraft.static_gzip`), and served while the server starts (`StartupGateMiddleware`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from nicegui import app, ui

from opscraft.ui import lost_resources

TAILWIND_CSS = Path(__file__).resolve().parent.parent / "assets" / "tailwind.css"


def url(prefix: str) -> str:
    """Where the stylesheet is served under `prefix` (NiceGUI's versioned prefix, `/` at its
    end): `<prefix>opscraft-<first 16 hex digits of its SHA-256>.css`, a new address whenever
    its content changes."""
    digest = hashlib.sha256(TAILWIND_CSS.read_bytes()).hexdigest()[:16]
    return f"{prefix}opscraft-{digest}.css"


def install(prefix: str) -> None:
    """Serve `TAILWIND_CSS` at `url(prefix)` and link it from every NiceGUI page (the head every
    page shares), after the script that loads a page again when one of its own files failed to
    load (`lost_resources`), so that a lost stylesheet is loaded again too, and the one that
    imports a component lost after the page connected again. Call once, before
    `ui.run(tailwind=False)`."""
    address = app.add_static_file(local_file=TAILWIND_CSS, url_path=url(prefix))
    ui.add_head_html(lost_resources.RELOAD_JS, shared=True)
    ui.add_head_html(lost_resources.IMPORT_AGAIN_JS, shared=True)
    ui.add_head_html(f'<link rel="stylesheet" href="{address}">', shared=True)
