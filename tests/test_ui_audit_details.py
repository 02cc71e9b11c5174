"""Audit details read as sentences for people, not raw JSON."""

from __future__ import annotations

from opscraft.ui.audit import readable


def test_changes_lists_and_values_read_plainly() -> None:
    details = {
        "changes": {"role": {"from": "viewer", "to": "operator"}},
        "fields": ["content", "name"],
        "to_version": 2,
        "execution_id": None,
    }
    assert readable(details) == (
        "changes: role: viewer -> operator\nexecution id: -\nfields: content, name\nto version: 2"
    )
    assert readable({"from": "draft", "to": "active"}) == "from: draft\nto: active"
    assert readable({}) == "" and readable(None) == ""
