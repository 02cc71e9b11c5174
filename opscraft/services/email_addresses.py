"""Email addresses as OpsCraft takes them, for accounts and for e-mail notification channels alike.

An address is valid as email-validator reads RFC 5322's `addr-spec` (no display name, no quoted
local part, no address literal) and within RFC 5321's lengths (section 4.5.3.1: a local part of
at most 64 octets, a path of at most 256: email-validator's `strict` mode checks the first, its
default the total). A 65-character local part was taken and stored, and a mail server then
refused every message to it (an account's address, a channel's recipient or sender).
"""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email
from email_validator.rfc_constants import EMAIL_MAX_LENGTH

from opscraft.services.names import trimmed

MAX_LENGTH = EMAIL_MAX_LENGTH
"""The most characters of an address email-validator takes (254: RFC 5321's path of 256 octets
less its angle brackets), for a form's field to say (`ui.widgets.says_limit`)."""


def normalized(address: str) -> str:
    """`address` in its normalized form (domain lower-cased and in Unicode, IDNA 2008), without
    the spaces and tabs around it (`names.trimmed`, as a username's: an address pasted or read
    from a file with a blank after it, or `a@x.com, b@x.com` split at the comma, was refused
    "invalid characters before the @-sign: SPACE" by the API while the browser's forms trimmed
    it; `opscraft user create " bob "` was refused for the address it made, which no one typed).
    Raises `EmailNotValidError` (a `ValueError`) whose text says what is wrong and where ("The
    email address is too long before the @-sign (1 character too many).")."""
    return validate_email(trimmed(address), check_deliverability=False, strict=True).normalized


def checked(address: str) -> str:
    """`normalized(address)`, or `ValueError` "must be an email address: <email-validator's
    reason>": the one check of an account's address (`users.Email`) and a notification
    channel's sender (`notifications`). Accounts also went through pydantic's `EmailStr` first,
    a second, laxer reading (it took `Name <a@example.com>` and kept the address) with its own
    wording ("value is not a valid email address: ..."), so one address was refused in two
    ways depending on which check tripped."""
    try:
        return normalized(address)
    except EmailNotValidError as exc:
        raise ValueError(f"must be an email address: {exc}") from None


__all__ = ["MAX_LENGTH", "EmailNotValidError", "checked", "normalized"]
