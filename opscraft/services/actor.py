"""Who is acting, and from where: passed into every service call."""

from __future__ import annotations

from dataclasses import dataclass

from opscraft.db.models import User


@dataclass(frozen=True)
class Actor:
    user: User | None
    client_ip: str | None = None

    @property
    def user_id(self) -> int | None:
        return self.user.id if self.user else None

    @property
    def name(self) -> str | None:
        return self.user.username if self.user else None
