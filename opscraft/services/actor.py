"""Who is acting, and from where: passed into every service call."""

from __future__ import annotations

from dataclasses import dataclass

from opscraft.db.models import User


@dataclass(frozen=True)
class Actor:
    """A user acting (from `client_ip`), or a system actor acting on a user's behalf.

    `system` names the system actor, e.g. "schedule:3" or "webhook:7" (at most 128 characters);
    its `user` is the one on whose behalf it acts, whose permissions are checked at the time of
    the action (None when that user no longer exists). `token_id` is set when the request was
    authenticated with a personal access token (then `user` carries the token's role).
    """

    user: User | None
    client_ip: str | None = None
    system: str | None = None
    token_id: int | None = None
    # The password sign-in (`RefreshToken.family_id`) of the access token the request came with.
    sign_in: str | None = None

    @classmethod
    def on_behalf_of(cls, user: User | None, system: str) -> Actor:
        """The system actor `system` acting for `user`."""
        return cls(user, None, system)

    @property
    def user_id(self) -> int | None:
        """The acting user's id, or None for an anonymous or system actor."""
        return self.user.id if self.user else None

    @property
    def name(self) -> str | None:
        """The acting user's username, or None for an anonymous or system actor."""
        return self.user.username if self.user else None
