"""Who is acting, and from where: passed into every service call."""

from __future__ import annotations

from dataclasses import dataclass

from opscraft.db.models import User


@dataclass(frozen=True)
class Actor:
    """The caller: `user` (None when anonymous), the client IP, and `token_id` when the request
    was authenticated with a personal access token (then `user` carries the token's role)."""

    user: User | None
    client_ip: str | None = None
    token_id: int | None = None

    @property
    def user_id(self) -> int | None:
        return self.user.id if self.user else None

    @property
    def name(self) -> str | None:
        return self.user.username if self.user else None
