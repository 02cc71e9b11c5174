"""What watchers receive: output chunks, status changes and the final event."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from opscraft.db.types import utc_text

Stream = Literal["stdout", "stderr"]


@dataclass(frozen=True, slots=True)
class LogEvent:
    """One chunk of output; `seq` orders chunks within an execution (1, 2, ...); `at` is when it
    was produced (UTC), None when unknown."""

    seq: int
    stream: Stream
    content: str
    at: datetime | None = None

    def message(self) -> dict[str, Any]:
        """The WebSocket `log` message of this event (docs/executions.md has the format)."""
        return {"type": "log", "seq": self.seq, "stream": self.stream, "content": self.content}


@dataclass(frozen=True, slots=True)
class StatusEvent:
    """A status change; `final` marks the last event of an execution (`type` "end")."""

    status: str
    final: bool = False
    exit_code: int | None = None
    error_message: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None

    def message(self) -> dict[str, Any]:
        """The WebSocket `status` message (`end` when final), with times as ISO 8601 UTC text."""
        return {
            "type": "end" if self.final else "status",
            "status": self.status,
            "exit_code": self.exit_code,
            "error_message": self.error_message,
            "started_at": utc_text(self.started_at),
            "finished_at": utc_text(self.finished_at),
        }


Event = LogEvent | StatusEvent
