"""Writes `opscraft/assets/tailwind.css`, the pages' Tailwind CSS compiled ahead of time
(`opscraft.ui.stylesheet`): `python -m tests.tailwind_css` after a change that gives an element
a Tailwind class no source named before (tests/test_tailwind_css_browser.py says when).

The CSS is what Tailwind's browser build, the one NiceGUI ships (`static/tailwindcss.min.js`),
makes in headless Chromium for a page whose one element carries every candidate class
(`candidates`), with NiceGUI's own Tailwind set-up (its `dark` variant) and the Tailwind
override NiceGUI adds with it (`static/headwind.css`, in its `overrides` layer). The candidates
are taken the way Tailwind's own compiler scans sources: every word of OpsCraft's pages
(`opscraft/ui`, the only code that gives elements classes, so that an edit elsewhere never
changes the file) and of NiceGUI (its Python, its components' and Quasar's JavaScript) that
could be a class name;
words that are no Tailwind class make no CSS. A class assembled at run time from parts (an
f-string, a JavaScript template) is not found this way, as with Tailwind's compiler: those are
listed in `ASSEMBLED`, and the page test finds one missing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nicegui

from opscraft.ui.stylesheet import TAILWIND_CSS
from tests.conftest import ROOT, chromium_launch

NICEGUI = Path(nicegui.__file__).resolve().parent
TAILWIND_JS = NICEGUI / "static" / "tailwindcss.min.js"
HEADWIND_CSS = NICEGUI / "static" / "headwind.css"
# NiceGUI's page template (templates/index.html) gives Tailwind this set-up when it loads it.
TAILWIND_SETUP = "@custom-variant dark (&:where(body.body--dark, body.body--dark *));"
# Files of NiceGUI's package not scanned: Tailwind's own build, the other CSS engines.
NOT_SCANNED = ("tailwindcss.min.js", "unocss", "sass.dart.js", "sass.default.js")
WORD = re.compile(r"[A-Za-z0-9_\-:\[\]#./%!@]+")
# A class name as Tailwind writes them: variants (`sm:`), `!`, a leading `-`, arbitrary values (`w-[40rem]`).
CLASS = re.compile(r"^!?-?[a-z@][a-z0-9\-:\[\]#./%_!@]*$")
MAX_CLASS = 60
# The style element in which Tailwind's browser build, put into a page, wrote what it compiled.
BUILT_JS = (
    "[...document.querySelectorAll('style:not([type])')].find(s => s.textContent.includes('tailwindcss v'))"
)
# Classes that are assembled at run time, so that no source holds them as words: Quasar's
# `text-${align}` (a table's cells, the `align` of its columns), `text-${color}` and
# `bg-${color}` (a button's, a chip's colours; white and black are Tailwind's too).
ASSEMBLED = (
    "text-left",
    "text-right",
    "text-center",
    "text-justify",
    "text-white",
    "text-black",
    "text-transparent",
    "bg-white",
    "bg-black",
    "bg-transparent",
)


def sources() -> Iterator[Path]:
    """Every file whose words may be a class of a page: OpsCraft's pages' Python (`opscraft/ui`)
    and NiceGUI's Python, JavaScript and Vue files (`NOT_SCANNED` left out)."""
    yield from sorted((ROOT / "opscraft" / "ui").rglob("*.py"))
    for suffix in ("py", "js", "mjs", "vue"):
        for path in sorted(NICEGUI.rglob(f"*.{suffix}")):
            if not any(part in NOT_SCANNED for part in path.relative_to(NICEGUI).parts):
                yield path


def candidates() -> list[str]:
    """The words of `sources()` shaped like a class name (trailing `.`, `:` and `/` dropped) and
    the `ASSEMBLED` classes, sorted."""
    found = set(ASSEMBLED)
    for path in sources():
        for word in WORD.findall(path.read_text(errors="replace")):
            word = word.rstrip(".:/")
            if 1 < len(word) < MAX_CLASS and CLASS.match(word):
                found.add(word)
    return sorted(found)


def compile_css(browser: Any, classes: list[str]) -> str:
    """The CSS Tailwind's browser build makes in a new page of `browser` (a Playwright browser)
    for an element with `classes`, NiceGUI's `headwind.css` after it in the `overrides` layer."""
    page = browser.new_page()
    try:
        page.set_content(
            f'<html><head><style type="text/tailwindcss">{TAILWIND_SETUP}</style></head>'
            '<body><div id="classes"></div></body></html>'
        )
        page.evaluate("names => { document.getElementById('classes').className = names; }", " ".join(classes))
        page.add_script_tag(path=str(TAILWIND_JS))
        page.wait_for_function(f"!!{BUILT_JS}")
        css = str(page.evaluate(f"{BUILT_JS}.textContent"))
    finally:
        page.close()
    return f"{css.rstrip()}\n@layer overrides {{\n{HEADWIND_CSS.read_text().strip()}\n}}\n"


def main() -> None:
    """Write `TAILWIND_CSS` from the current sources."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = chromium_launch(pw)
        try:
            TAILWIND_CSS.write_text(compile_css(browser, candidates()))
        finally:
            browser.close()
    print(f"wrote {TAILWIND_CSS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
