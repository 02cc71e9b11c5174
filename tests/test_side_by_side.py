"""The Versions tab's side-by-side diff (ui/side_by_side.py): aligned, escaped, and without
difflib.HtmlDiff's pairing of changed lines (31 s of the event loop for 300 changed lines,
serving no one meanwhile; a viewer could start it)."""

from __future__ import annotations

import difflib
import random
import re

import pytest

from opscraft.ui import side_by_side


def _rows(table: str) -> list[list[str]]:
    """Each body row's cells, as text."""
    body = table.split("</thead>", 1)[1]
    return [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", body)]


def test_lines_are_aligned_classed_and_escaped() -> None:
    old = ["a", "b", "<script>x</script>", "c"]
    new = ["a", "B", "c", "d"]
    table = side_by_side.table(old, new, "version 1", "version 2")
    assert "<script>" not in table and "&lt;script&gt;x&lt;/script&gt;" in table
    assert _rows(table) == [
        ["1", "a", "1", "a"],
        ["2", "b", "2", "B"],
        ["3", "&lt;script&gt;x&lt;/script&gt;", "", ""],
        ["4", "c", "3", "c"],
        ["", "", "4", "d"],
    ]
    assert table.count('class="diff_chg"') == 2  # b | B
    assert table.count('class="diff_sub"') == 1 and table.count('class="diff_add"') == 1


def test_far_apart_changes_are_shown_with_their_context_only() -> None:
    old = [f"line {n}" for n in range(100)]
    new = [*old[:10], "changed", *old[11:90], "also changed", *old[91:]]
    rows = _rows(side_by_side.table(old, new, "v1", "v2"))
    assert len(rows) == 2 * (1 + 2 * side_by_side.CONTEXT_LINES) + 1
    assert ["…"] in rows


def test_identical_content_says_so() -> None:
    assert "(the content is identical)" in side_by_side.table(["x"], ["x"], "v1", "v2")


def test_changed_lines_are_never_compared_with_each_other(monkeypatch: pytest.MonkeyPatch) -> None:
    """What made difflib.HtmlDiff slow: it scores every line of a changed block against every
    other (`SequenceMatcher.ratio` and its quick forms, quadratic in the block) to mark changes
    inside lines. The table aligns lines without any such score, so 5,000 changed lines are
    5,000 rows whatever the machine's speed (a structural check, not a timing)."""

    def scored(self: difflib.SequenceMatcher, *args: object) -> float:
        raise AssertionError("a pair of lines was scored")

    for name in ("ratio", "quick_ratio", "real_quick_ratio"):
        monkeypatch.setattr(difflib.SequenceMatcher, name, scored)
    rng = random.Random(1)
    old = [f"echo line {n} {rng.random()}" for n in range(5000)]
    new = [f"echo line {n} {rng.random()}" for n in range(5000)]
    table = side_by_side.table(old, new, "v1", "v2")
    assert len(_rows(table)) == 5000
    assert table.count('class="diff_chg"') == 2 * 5000
