"""The OpenAPI shape of a partial update ("only the fields sent change; send at least one").

The models accept `null` for a field (it means "no change") and refuse a body that changes
nothing with a 422; their documented schema states the stricter, exact contract instead: at least
one property, and no `null`. A request the schema calls valid is then always accepted.
"""

from __future__ import annotations

from typing import Any


def at_least_one_field(schema: dict[str, Any]) -> None:
    """`json_schema_extra` for a partial-update model: `minProperties: 1`, nulls left out."""
    schema["minProperties"] = 1
    for prop in schema.get("properties", {}).values():
        choices = prop.get("anyOf")
        if choices:
            kept = [c for c in choices if c.get("type") != "null"]
            prop.pop("anyOf")
            prop.pop("default", None)
            prop.update(kept[0] if len(kept) == 1 else {"anyOf": kept})
