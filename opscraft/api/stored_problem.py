"""The `stored_problem` field of the answers whose rows may hold settings stored in a shape today's
version cannot read (db/stored_shapes.py: webhooks, links, channels, rules, scripts and their
versions, users, runs)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

StoredProblem = Annotated[
    str | None,
    Field(
        description="What this row holds that today's version cannot read (a JSON setting stored in "
        "another shape, a choice none of today's or a time that is no time, by an older version or a "
        "manual edit), what it is shown as meanwhile (such a time: the epoch), and that it is to be "
        "edited or deleted; runs it would start are refused meanwhile. Null when none",
        examples=[
            "mapping: stored as a list ([1, 2]), not an object of text values, read as {} (edit or delete it)"
        ],
    ),
]
