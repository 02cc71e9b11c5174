"""`MigrationError`, in a module of its own: the command line catches it without importing the
migrations' machinery (SQLAlchemy's asyncio extension) for commands that open no database."""

from __future__ import annotations


class MigrationError(RuntimeError):
    """The database cannot be brought to this version's schema: it was migrated by a newer
    version (a revision none of this version's scripts has), or a migration would leave it
    inconsistent. The message says what to do; nothing was changed."""
